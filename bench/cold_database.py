"""What a database nobody asked about yet costs: its first answer against a warm one.

    PYTHONPATH=. .venv/bin/python bench/cold_database.py [--slice world] [--dbs 8]

For each database of a held-out slice (``training.slices``; Spider train, CC BY-SA 4.0), two
of its questions (seeded) are asked through the answer loop at the default settings, in
three phases, each a new process that starts with nothing of the others in memory:

- ``cold``: a fresh retrieval store and a fresh folder of prompt states. ``index_s``: indexing
  the database (tables with sample values, no question/SQL pairs); ``first_s``: its first
  question, which evaluates the whole prompt (system prompt, schema, sample values);
  ``warm_s``: a second question, which reuses that prompt's cache; ``again_s``: the first
  question once more, warm (the reference of every ratio: the same answer, generated again);
- ``restored``: the first question again in a new process (a restart, the next CLI call, an
  evaluation child): the prompt's state is read back from the folder the cold phase wrote
  (``engine/backends/prompt_state_files.py``);
- ``primed``: what the app does when a database is chosen (``TextToSQL.prime``: index and
  evaluate the shared prompt in the background), then the first question: ``prime_s`` and
  ``first_s`` apart, in a third process with a folder of prompt states of its own.

Each process first answers one question on a sample database (``sample_dbs/shop.sqlite``):
what a new process pays once whatever the database (the embedder's load, the model's weights
paged in) is not counted against the database.

Prints one JSON line per database (seconds, prompt tokens evaluated, each first answer's
seconds over ``again_s``)
and one summary line (medians and the load average). Speed only; whether the answers are
right is the ablation's job (``bench/ablation.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from training.slices import SLICES, held_out_slices  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SPIDER = REPO.parent / "shared" / "data" / "spider_train"
PHASES = ("cold", "restored", "primed")
SUMMARY = (  # medians over the databases
    *("index_s", "first_s", "warm_s", "again_s", "restored_first_s"),
    *("primed_prime_s", "primed_first_s"),
    *("first_evaluated", "warm_evaluated", "restored_first_evaluated"),
    *("first_over_warm", "restored_first_over_warm", "primed_first_over_warm"),
)


def questions(data: Path, dbs: list[str], seed: int) -> dict[str, list[str]]:
    """Two questions per database, the same in every phase."""
    rows = json.loads((data / "train.json").read_text())
    rng = random.Random(seed)
    out = {}
    for db_id in dbs:
        asked = sorted({r["question"] for r in rows if r["db_id"] == db_id})
        out[db_id] = rng.sample(asked, 2)
    return out


def run_phase(phase: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One phase in this process; one record per database."""
    from engine.backends.llamacpp import load
    from engine.config import EngineConfig
    from engine.db import open_database
    from engine.factory import engine_from_config
    from engine.rag.retriever import RagRetriever
    from training.eval_loop import RunContext, ensure_index

    cfg = EngineConfig()
    rag = dataclasses.replace(cfg.rag, store_dir=str(Path(args.work) / "store"), auto_index=False)
    cfg = dataclasses.replace(cfg, rag=rag)
    backend = load(cfg.model, state_dir=Path(args.work) / f"states-{_states_of(phase)}")
    retriever = RagRetriever(cfg.rag)
    engine = engine_from_config(cfg, retriever, backend=backend)
    ctx = RunContext(dbs=None)
    asked = json.loads(Path(args.work, "questions.json").read_text())
    # A new process pays once for things no database causes (the embedder's load, the model's
    # weights paged in, llama.cpp's threads): paid here, on a sample database outside the slices.
    warm_up = open_database(REPO / "sample_dbs" / "shop.sqlite")
    ensure_index(retriever, warm_up, ctx)
    engine.ask("How many customers are there?", warm_up)
    records = []
    for db_id, (first, second) in asked.items():
        db = open_database(args.data / "database" / db_id / f"{db_id}.sqlite")
        rec: dict[str, Any] = {"phase": phase, "db_id": db_id}
        t = time.perf_counter()
        ensure_index(retriever, db, ctx)
        rec["index_s"] = round(time.perf_counter() - t, 2)
        if phase == "primed":
            t = time.perf_counter()
            rec["prime_tokens"] = engine.prime(db)
            rec["prime_s"] = round(time.perf_counter() - t, 2)
        asks = [("first", first), ("warm", second), ("again", first)]
        for key, question in asks if phase == "cold" else asks[:1]:
            before = backend.stats.to_dict()
            t = time.perf_counter()
            answer = engine.ask(question, db)
            rec[f"{key}_s"] = round(time.perf_counter() - t, 2)
            after = backend.stats.to_dict()
            rec[f"{key}_prompt_tokens"] = after["prompt_tokens"] - before["prompt_tokens"]
            rec[f"{key}_evaluated"] = rec[f"{key}_prompt_tokens"] - (
                after["prompt_tokens_reused"] - before["prompt_tokens_reused"]
            )
            rec[f"{key}_ok"] = answer.error is None
        records.append(rec)
        print(json.dumps(rec), file=sys.stderr, flush=True)
    return records


def _states_of(phase: str) -> str:
    """``restored`` reads what ``cold`` wrote; ``primed`` starts from nothing."""
    return "primed" if phase == "primed" else "cold"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=SPIDER, help="Spider folder")
    p.add_argument("--slice", choices=SLICES, default="world")
    p.add_argument("--dbs", type=int, default=8, help="databases of the slice, in its order")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    if not (args.data / "train.json").is_file():
        print(f"No Spider train data in {args.data} (see ../shared/data/README)", file=sys.stderr)
        return 2
    if args.phase:
        print(json.dumps(run_phase(args.phase, args)))
        return 0

    dbs = held_out_slices(args.data)[args.slice][: args.dbs]
    work = Path(tempfile.mkdtemp(prefix="cold-db-"))
    try:
        Path(work, "questions.json").write_text(json.dumps(questions(args.data, dbs, args.seed)))
        by_db: dict[str, dict[str, Any]] = {db: {"db_id": db} for db in dbs}
        for phase in PHASES:
            cmd = [sys.executable, __file__, "--phase", phase, "--work", str(work)]
            cmd += ["--data", str(args.data), "--slice", args.slice]
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
            for rec in json.loads(out.stdout.strip().splitlines()[-1]):
                row = by_db[rec["db_id"]]
                for key, value in rec.items():
                    if key not in ("phase", "db_id"):
                        row[key if phase == "cold" else f"{phase}_{key}"] = value
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = list(by_db.values())
    for row in rows:
        for key in ("first", "restored_first", "primed_first"):
            row[f"{key}_over_warm"] = round(row[f"{key}_s"] / row["again_s"], 2)
        print(json.dumps({"bench": "cold_database", **row}))
    summary: dict[str, Any] = {
        "bench": "cold_database",
        "slice": args.slice,
        "databases": len(rows),
    }
    for key in SUMMARY:
        summary[f"median_{key}"] = statistics.median(r[key] for r in rows)
    summary["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
