"""Follow-up questions, answered the way the chat answers them: one JSON line per row.

    PYTHONPATH=. .venv/bin/python bench/followups.py [--rows previous,history] \\
        [--set key=value ...] [--file bench/followups.json]

Each conversation in ``bench/followups.json`` (on the bundled sample databases) is a first
question with its gold SQL, then a follow-up with its own. The first turn goes into the
history as it would after a right answer; the follow-up is asked through the engine's answer
loop (configs/engine.yaml plus ``--set``, retrieval from a fresh index in a temporary folder)
and scored by execution against its gold SQL.

Rows: ``previous`` is the engine as it is (the follow-up's prompt names the previous
answer's rows as the table ``previous_result``; see engine/followup.py); ``history`` leaves
that line out, as the engine did before: the model sees only the earlier question and SQL.
Kinds: ``refers_back`` follow-ups ask about the previous answer's rows ("which of them"),
``refines`` ones change the previous question ("only for 2024").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from engine.config import parse_overrides  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FILE = Path(__file__).resolve().parent / "followups.json"
ROWS = ("previous", "history")


def load_conversations(path: Path) -> list[dict[str, Any]]:
    items = json.loads(path.read_text(encoding="utf-8"))
    for item in items:
        item["db_path"] = ROOT / "sample_dbs" / f"{item['db']}.sqlite"
    return items


def run_row(engine: Any, row: str, items: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """Ask every follow-up (``batch`` at a time) and score it; the row's JSON line."""
    from engine.followup import PREVIOUS
    from engine.pipeline import Request
    from training.metrics import GoldSQLError, execution_match

    requests = [
        Request(it["followup"], it["db_path"], [(it["first"], it["first_sql"])]) for it in items
    ]
    started = time.perf_counter()
    baseline = mock.patch("engine.pipeline.previous_note", return_value="")
    with baseline if row == "history" else contextlib.nullcontext():
        answers = []
        for start in range(0, len(requests), batch):
            answers += engine.ask_batch(requests[start : start + batch])
    seconds = time.perf_counter() - started
    right: dict[str, list[bool]] = {}
    records = []
    for it, answer in zip(items, answers, strict=True):
        try:
            ok = answer.ok and execution_match(
                answer.sql, it["followup_sql"], db_path=it["db_path"]
            )
        except GoldSQLError as err:
            raise SystemExit(f"gold SQL fails for {it['followup']!r}: {err}") from err
        right.setdefault(it["kind"], []).append(bool(ok))
        records.append({"followup": it["followup"], "sql": answer.sql, "correct": bool(ok)})
    every = [r for rs in right.values() for r in rs]
    line = {
        "row": row,
        "n": len(every),
        "accuracy": round(sum(every) / len(every), 3),
        **{f"{k}_accuracy": round(sum(v) / len(v), 3) for k, v in sorted(right.items())},
        **{f"{k}_n": len(v) for k, v in sorted(right.items())},
        "uses_previous_result": sum(PREVIOUS in (a.sql or "") for a in answers),
        "errors": sum(not a.ok for a in answers),
        "s_per_question": round(seconds / len(items), 2),
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    return {"line": line, "records": records}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=FILE)
    parser.add_argument("--rows", default=",".join(ROWS), help="previous,history")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "engine.yaml")
    parser.add_argument("--set", nargs="*", default=[], help="engine settings, key=value")
    parser.add_argument("--records", type=Path, help="write each answer here (JSON lines)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from engine.config import EngineConfig, load_config
    from engine.factory import engine_from_config

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if unknown := [r for r in rows if r not in ROWS]:
        parser.error(f"unknown rows {unknown}; choose from {ROWS}")
    items = load_conversations(args.file)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"rag.store_dir": str(Path(tmp) / "chroma"), **parse_overrides(args.set)}
        cfg = load_config(EngineConfig, args.config, overrides)
        engine = engine_from_config(cfg)
        out = []
        for row in rows:
            result = run_row(engine, row, items, cfg.batch_size)
            print(json.dumps(result["line"]), flush=True)
            out += [{"row": row, **r} for r in result["records"]]
    if args.records:
        args.records.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
