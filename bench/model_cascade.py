"""What a model cascade would score, projected from two ablation rows' recorded answers.

    PYTHONPATH=. .venv/bin/python bench/model_cascade.py runs/ablation/tune/0.5b \\
        runs/ablation/tune/1.5b+cascade5f

The cascade of issue 12's speed item: the small model answers first; only when its answer
fails checking or execution (its first attempt did not stand) does the big model answer
instead, with everything the big model's row did. Both rows must come from
``bench/ablation.py`` on the same slice and seed (the same questions). Per question the
projection takes the first row's answer when it stood at the first attempt, else the second
row's, and prints one JSON line: execution accuracy of each row and of the cascade, how many
questions escalate, and the model seconds per question (the first row's for every question
plus the second row's for the escalated ones; the rows' own batched seconds, so only the
ratio to the second row means something).

This is a projection from measured answers, not a run of a cascade: it assumes the small
model's first answer is the same inside a cascade as in its own row (greedy decoding, the
same prompt), and it prices the second model's work as it was measured in its row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def load(row: Path) -> dict[int, dict[str, Any]]:
    lines = (row / "predictions.jsonl").read_text().splitlines()
    return {r["index"]: r for r in map(json.loads, lines)}


def stood_first(record: dict[str, Any]) -> bool:
    """The answer passed checking and ran at its first attempt."""
    return record.get("attempts") == 1 and not record.get("error")


def project(first: dict[int, dict[str, Any]], second: dict[int, dict[str, Any]]) -> dict:
    asked = lambda rows: {i: (r["db_id"], r["question"]) for i, r in rows.items()}  # noqa: E731
    if asked(first) != asked(second):
        raise ValueError("the two rows answered different questions (slice, seed or limit differ)")
    n = len(first)
    escalated = [i for i in first if not stood_first(first[i])]
    correct = sum(
        bool(second[i]["correct"] if i in escalated else first[i]["correct"]) for i in first
    )
    seconds = sum(r["seconds"] for r in first.values()) + sum(
        second[i]["seconds"] for i in escalated
    )
    second_seconds = sum(r["seconds"] for r in second.values())
    return {
        "bench": "model_cascade (projection)",
        "questions": n,
        "escalated": len(escalated),
        "execution_accuracy_first": round(sum(r["correct"] for r in first.values()) / n, 4),
        "execution_accuracy_second": round(sum(r["correct"] for r in second.values()) / n, 4),
        "execution_accuracy_cascade": round(correct / n, 4),
        "seconds_per_question_cascade": round(seconds / n, 2),
        "seconds_per_question_second": round(second_seconds / n, 2),
        "cost_vs_second": round(seconds / second_seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("first", type=Path, help="ablation row folder of the small model")
    p.add_argument("second", type=Path, help="ablation row folder of the big model")
    args = p.parse_args(argv)
    try:
        print(json.dumps(project(load(args.first), load(args.second))))
    except (OSError, ValueError, KeyError) as err:
        print(f"model_cascade: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
