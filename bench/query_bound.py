"""What the hard bound on each query costs: the sample questions' SQL run in a worker process
(engine.sandbox, the default) and in the calling process, side by side.

    .venv/bin/python bench/query_bound.py [--rounds 5]

Every gold query of the sample databases' pairs files runs ``--rounds`` times each way
(after one warm-up round, which also starts the worker). Prints one JSON line: queries per
way, median and mean milliseconds per query each way, the added cost per query (median of
the per-query differences), the first call's seconds (the worker's start), and the load
average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.db.sqlite import run_readonly  # noqa: E402
from engine.paths import sample_databases, sample_pairs_file  # noqa: E402


def queries() -> list[tuple[Path, str]]:
    out = []
    for name, path in sample_databases().items():
        out += [(path, p["query"]) for p in json.loads(sample_pairs_file(name).read_text())]
    return out


def timed(db: Path, sql: str, isolated: bool) -> float:
    start = time.perf_counter()
    run_readonly(db, sql, timeout_s=10.0, max_rows=1000, isolated=isolated)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    load_before = os.getloadavg()
    work = queries()
    first = timed(*work[0], isolated=True)
    for db, sql in work:  # warm the page cache and the worker
        timed(db, sql, True)
        timed(db, sql, False)
    isolated: list[float] = []
    inline: list[float] = []
    extra: list[float] = []
    for _ in range(args.rounds):
        for db, sql in work:
            a, b = timed(db, sql, True), timed(db, sql, False)
            isolated.append(a)
            inline.append(b)
            extra.append(a - b)
    ms = 1000.0
    print(json.dumps({
        "queries": len(isolated),
        "isolated_ms_median": round(statistics.median(isolated) * ms, 3),
        "isolated_ms_mean": round(statistics.mean(isolated) * ms, 3),
        "in_process_ms_median": round(statistics.median(inline) * ms, 3),
        "in_process_ms_mean": round(statistics.mean(inline) * ms, 3),
        "added_ms_median": round(statistics.median(extra) * ms, 3),
        "first_call_s": round(first, 3),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
