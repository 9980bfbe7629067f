"""Answer quality on Spider-train databases the project never saw: one row per setting.

    PYTHONPATH=. .venv/bin/python bench/ablation.py [--slice tune|final|world] [--limit 200] \\
        [--row NAME:key=value,key=value ...] [--out runs/ablation]

The held-out databases are the slices of :mod:`training.slices`: ``tune`` for choosing
settings, ``final`` for the one number reported at the end, ``world`` (large schemas, coded
values: what people bring) reported beside them and never tuned on. Every row evaluates the same seeded sample of questions through the engine's answer
loop (``training.evaluate.run``: what the chat serves), starting from configs/engine.yaml;
``--row`` changes engine settings (``model=...``, ``generation.candidates=5``,
``rag.enabled=false``). Rows resume where an earlier run of the same row stopped.

Prints one JSON line per row (execution accuracy, valid-SQL rate, seconds per question,
questions per minute, load average) and writes ``OUT/ablation.md``. Spider: Yu et al.,
EMNLP 2018, CC BY-SA 4.0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Before torch loads OpenMP: idle threads sleep (see engine/backends/llamacpp.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from engine.config import parse_overrides  # noqa: E402
from training.slices import SLICES, held_out_slices  # noqa: E402

log = logging.getLogger("bench.ablation")
SPIDER = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "spider_train"
DEFAULT_ROWS = [
    "0.5b:model=qwen2.5-coder-0.5b-instruct",
    "1.5b:model=qwen2.5-coder-1.5b-instruct",
    "1.5b+vote3:model=qwen2.5-coder-1.5b-instruct,generation.candidates=3",
    "1.5b+vote5:model=qwen2.5-coder-1.5b-instruct,generation.candidates=5",
]


def parse_row(text: str) -> tuple[str, dict[str, Any]]:
    name, _, settings = text.partition(":")
    items = [s for s in settings.split(",") if s.strip()]
    return name.strip(), {f"engine.{k}": v for k, v in parse_overrides(items).items()}


def run_row(name: str, overrides: dict[str, Any], dbs: list[str], args: Any) -> dict[str, Any]:
    from training.eval_config import make_config
    from training.evaluate import run

    out = Path(args.out) / args.slice / name
    cfg = make_config(
        overrides={
            "data": str(args.data),
            "split": "train",
            "db_ids": dbs,
            "limit": args.limit,
            "seed": args.seed,
            "out": str(out),
            **overrides,
        }
    )
    metrics = run(cfg)
    records = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    unknown_column = sum("unknown column" in (r.get("error") or "").lower() for r in records)
    return {
        "bench": "ablation",
        "row": name,
        "slice": args.slice,
        "databases": len(dbs),
        "n": metrics["n"],
        "execution_accuracy": metrics["execution_accuracy"],
        "valid_sql_rate": metrics["valid_sql_rate"],
        "unknown_column_errors": unknown_column,
        "avg_attempts": metrics["avg_attempts"],
        "seconds_per_question": round(metrics["seconds"] / max(1, metrics["n"]), 2),
        "questions_per_minute": metrics["questions_per_minute"],
        "settings": {k.removeprefix("engine."): v for k, v in overrides.items()},
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(SPIDER), help="Spider folder (train.json, database/)")
    p.add_argument("--slice", choices=SLICES, default="tune")
    p.add_argument("--holdout", type=float, default=0.2, help="held-out fraction, by database")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=200, help="questions per row (seeded sample)")
    p.add_argument("--row", action="append", help="NAME:key=value,... (engine settings)")
    p.add_argument("--out", default="runs/ablation")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not Path(args.data, "train.json").is_file():
        print(f"No Spider data at {args.data} (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    dbs = held_out_slices(Path(args.data), args.holdout, args.seed)[args.slice]
    log.info("%s slice: %d databases: %s", args.slice, len(dbs), ", ".join(dbs))
    rows = []
    for text in args.row or DEFAULT_ROWS:
        name, overrides = parse_row(text)
        rows.append(run_row(name, overrides, dbs, args))
        print(json.dumps(rows[-1]), flush=True)
    table = ["| row | n | exec acc | valid SQL | unknown column | s/question | q/min |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        table.append(
            f"| {r['row']} | {r['n']} | {100 * r['execution_accuracy']:.1f} | "
            f"{100 * r['valid_sql_rate']:.1f} | {r['unknown_column_errors']} | "
            f"{r['seconds_per_question']:.2f} | {r['questions_per_minute']} |"
        )
    out = Path(args.out) / args.slice / "ablation.md"
    out.write_text("\n".join(table) + "\n\nSpider: Yu et al., EMNLP 2018, CC BY-SA 4.0.\n")
    print("\n".join(table), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
