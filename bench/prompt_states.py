"""Switching databases between questions: saved prompt states on and off, side by side.

    PYTHONPATH=. .venv/bin/python bench/prompt_states.py [--model M] [--questions 30]

The chat keeps one prompt cache (the system prompt and the schema of the database asked
last); llama.cpp's decoder also saves the cache's state when another database's prompt
replaces it, and restores it when a question on that database comes back
(``engine/backends/llamacpp_batch.py``). This asks the sample questions round-robin over the
sample databases (every question on another database than the one before: the worst case
for one cache, the common one for several users), the same questions with saving on and
off, the two runs alternated question by question so the machine's load falls on both
alike. Retrieval as in ``bench/inference.py`` (each database indexed with its pairs minus
the asked questions).

Prints one JSON line: p50/p95/mean seconds per answer and prompt tokens evaluated per
answer for each setting, their ratios, and the load average.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.inference import fixed_questions, make_retriever, percentile  # noqa: E402
from engine.presets import DEFAULT_MODEL  # noqa: E402

log = logging.getLogger("bench.prompt_states")


def round_robin(questions: list[dict]) -> list[dict]:
    """The questions reordered so that consecutive ones are on different databases."""
    by_db: dict[str, list[dict]] = {}
    for q in questions:
        by_db.setdefault(q["db"], []).append(q)
    out = []
    while any(by_db.values()):
        for items in by_db.values():
            if items:
                out.append(items.pop(0))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--questions", type=int, default=30)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    from engine.backends import llamacpp_batch
    from engine.backends.base import GenerationConfig
    from engine.backends.loader import load_backend
    from engine.pipeline import TextToSQL

    questions = round_robin(fixed_questions(args.questions))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-states-") as tmp:
        retriever, rag = make_retriever(questions, Path(tmp))
        engines = {}
        for mode in ("saved", "unsaved"):  # two backends: each keeps its own cache
            backend = load_backend(args.model, kind="llamacpp", batch_size=1)
            backend.decoder.saved_states_mb = (
                llamacpp_batch.SAVED_STATES_MB if mode == "saved" else 0
            )
            engines[mode] = TextToSQL(backend, retriever=retriever, generation=GenerationConfig())
        seconds: dict[str, list[float]] = {m: [] for m in engines}
        evaluated: dict[str, list[int]] = {m: [] for m in engines}
        same = 0
        for n, q in enumerate(questions, 1):
            sqls = []
            for mode in ("saved", "unsaved") if n % 2 else ("unsaved", "saved"):
                engine = engines[mode]
                stats = engine.backend.stats
                before = stats.prompt_tokens - stats.prompt_tokens_reused
                started = time.perf_counter()
                answer = engine.ask(q["question"], q["db"])
                seconds[mode].append(time.perf_counter() - started)
                evaluated[mode].append(stats.prompt_tokens - stats.prompt_tokens_reused - before)
                sqls.append(answer.sql)
            same += sqls[0] == sqls[1]
            log.info("%d/%d", n, len(questions))

    def summary(mode: str) -> dict[str, float]:
        s = seconds[mode]
        return {
            "p50_s": round(percentile(s, 0.5), 2),
            "p95_s": round(percentile(s, 0.95), 2),
            "mean_s": round(statistics.mean(s), 2),
            "prompt_tokens_evaluated_mean": round(statistics.mean(evaluated[mode])),
        }

    on, off = summary("saved"), summary("unsaved")
    print(
        json.dumps(
            {
                "bench": "prompt_states",
                "model": args.model,
                "questions": len(questions),
                "order": "round-robin over the sample databases",
                "rag": rag,
                "saved": on,
                "unsaved": off,
                "p50_ratio": round(on["p50_s"] / off["p50_s"], 2),
                "mean_ratio": round(on["mean_s"] / off["mean_s"], 2),
                "same_sql": round(same / len(questions), 3),
                "cpus": len(os.sched_getaffinity(0)),
                "load_avg_before": [round(x, 2) for x in load_before],
                "load_avg_after": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
