"""Follow-up questions, answered the way the chat answers them: one JSON line per row.

    PYTHONPATH=. .venv/bin/python bench/followups.py --part tune \\
        [--rows edit,previous,form,history,rewrite,edit+rewrite,scope,edit@model] \\
        [--set key=value ...] [--records FILE]

Each conversation of ``bench/followups.json`` (bench/followups_set.py: the sample databases
and held-out Spider-train databases, a ``tune`` and a ``final`` part by database) is a first
question with its gold SQL, then a second question with its own. The first turn goes into
the history as it would after a right answer; the second is asked through the engine's
answer loop (configs/engine.yaml plus ``--set``; retrieval from a fresh index in a temporary
folder, where a sample database is indexed without its own solved pairs, as a database
nobody has seen) and scored by execution against its gold SQL.

A row is a way of answering follow-ups (engine.conversation: ``followup.way``), optionally
``@model`` for ``followup.detect=model`` (default ``rule``). Kinds: ``refers_back`` (about the
previous answer's rows), ``refines`` (a change of the previous question), ``unrelated`` (a
new question: ``inherited`` counts those answered as follow-ups of the first one).

A row with ``compose`` (``compose+edit+rewrite``): a follow-up that engine.compose writes
itself needs no model, its answer is that SQL run on the database (:func:`composed_answer`);
the engine's answer loop does not run that way yet (engine/pipeline.py passes no composer to
engine.conversation.plan_followups, so the way is left out there), so this bench composes
with the same function and asks the engine the rest of the row for the other follow-ups.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.followups_set import FILE, load_conversations  # noqa: E402
from engine.config import parse_overrides  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROWS = "edit,previous,form,history,rewrite,edit+rewrite,scope,edit@model"


def parse_row(row: str) -> dict[str, str]:
    way, _, detect = row.partition("@")
    return {"way": way, "detect": detect or "rule"}


def inherited(answer: Any) -> bool:
    """Whether an answer was given as a follow-up of the conversation (not as a question of
    its own): answered a way other than alone, and not rewritten into itself."""
    from engine.conversation import same_question

    if answer.way is None:
        return False
    return answer.understood is None or not same_question(answer.understood, answer.question)


def rows_digest(rows: list) -> str:
    """The answer's rows as the ways' vote compares them (engine.answer.rows_key), hashed:
    the records say which ways agreed, so a combination can be told from its ways' rows."""
    import hashlib

    from engine.answer import rows_key

    return hashlib.sha1(repr(rows_key(rows)).encode()).hexdigest()[:12]


def composed_sql(row: str, item: dict[str, Any]) -> str | None:
    """The SQL engine.compose writes for a conversation's follow-up where the row asks it
    the ``compose`` way (engine.conversation.ways_for); None otherwise."""
    from engine.compose import compose_count
    from engine.conversation import FollowupConfig, ways_for
    from engine.db import read_schema

    history = [(item["first"], item["first_sql"])]
    if "compose" not in ways_for(FollowupConfig(**parse_row(row)), item["followup"], history):
        return None
    schema = read_schema(item["db_path"])
    return compose_count(item["followup"], item["first_sql"], schema, schema.dialect)


def composed_answer(item: dict[str, Any], sql: str) -> Any:
    """The answer of a composed follow-up: its SQL, run read-only on the database."""
    from engine.answer import Answer
    from engine.db import run_readonly

    result = run_readonly(item["db_path"], sql, timeout_s=5.0, max_rows=100_000)
    return Answer(
        question=item["followup"],
        sql=sql,
        columns=result.columns,
        rows=[list(r) for r in result.rows],
        error=result.error,
        way="compose",
    )


def run_row(engine: Any, row: str, items: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """Ask every second question (``batch`` at a time) and score it; the row's JSON line."""
    from engine.conversation import FollowupConfig
    from engine.pipeline import Request
    from training.metrics import GoldSQLError, execution_match

    engine.followup = FollowupConfig(**parse_row(row))
    started = time.perf_counter()
    composed = {k: sql for k, it in enumerate(items) if (sql := composed_sql(row, it))}
    requests = [
        Request(it["followup"], it["db_path"], [(it["first"], it["first_sql"])])
        for k, it in enumerate(items)
        if k not in composed
    ]
    asked = []
    for start in range(0, len(requests), batch):
        asked += engine.ask_batch(requests[start : start + batch])
    asked.reverse()
    answers = [
        composed_answer(it, composed[k]) if k in composed else asked.pop()
        for k, it in enumerate(items)
    ]
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
        records.append(
            {
                "db": it["db"],
                "part": it["part"],
                "kind": it["kind"],
                "followup": it["followup"],
                "understood": answer.understood,
                "way": answer.way,
                "sql": answer.sql,
                "ok": answer.ok,
                "rows": rows_digest(answer.rows) if answer.ok else None,
                "correct": bool(ok),
                "inherited": it["kind"] == "unrelated" and inherited(answer),
                "s_per_answer": round(seconds / len(items), 2),
            }
        )
    every = [r for rs in right.values() for r in rs]
    unrelated = [a for it, a in zip(items, answers, strict=True) if it["kind"] == "unrelated"]
    line = {
        "row": row,
        "n": len(every),
        "right": sum(every),
        "accuracy": round(sum(every) / len(every), 3),
        **{f"{k}": f"{sum(v)}/{len(v)}" for k, v in sorted(right.items())},
        "unrelated_inherited": sum(inherited(a) for a in unrelated),
        "errors": sum(not a.ok for a in answers),
        "s_per_answer": round(seconds / len(items), 2),
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    return {"line": line, "records": records}


def index_without_own_pairs(engine: Any, items: list[dict[str, Any]], tmp: Path) -> None:
    """Index each sample database with no solved pairs (its bundled ones would otherwise be
    indexed with it): every database is one the prompt knows nothing solved about."""
    from engine.rag.index import index_database

    if engine.retriever is None:
        return
    empty = tmp / "no_pairs.json"
    empty.write_text("[]", encoding="utf-8")
    for path in sorted({it["db_path"] for it in items if it["source"] == "sample"}):
        index_database(engine.retriever.cfg, path, examples=empty, store=engine.retriever.store)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=FILE)
    parser.add_argument("--part", choices=("tune", "final", "all"), default="tune")
    parser.add_argument("--rows", default=ROWS, help="ways, comma-separated: " + ROWS)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "engine.yaml")
    parser.add_argument("--set", nargs="*", default=[], help="engine settings, key=value")
    parser.add_argument("--records", type=Path, help="write each answer here (JSON lines)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from engine.config import EngineConfig, load_config
    from engine.conversation import FollowupConfig
    from engine.errors import ConfigError
    from engine.factory import engine_from_config

    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for row in rows:
        try:
            FollowupConfig(**parse_row(row))
        except ConfigError as err:
            parser.error(f"row {row!r}: {err}")
    items = load_conversations(args.file, None if args.part == "all" else args.part)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"rag.store_dir": str(Path(tmp) / "chroma"), **parse_overrides(args.set)}
        cfg = load_config(EngineConfig, args.config, overrides)
        engine = engine_from_config(cfg)
        index_without_own_pairs(engine, items, Path(tmp))
        for path in sorted({it["db_path"] for it in items}):  # indexed and primed before timing
            engine.prime(path)
        out = []
        for row in rows:
            result = run_row(engine, row, items, cfg.batch_size)
            print(json.dumps({"part": args.part, **result["line"]}), flush=True)
            out += [{"row": row, **r} for r in result["records"]]
            if args.records:
                text = "".join(json.dumps(r) + "\n" for r in out)
                args.records.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
