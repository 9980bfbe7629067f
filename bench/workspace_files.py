"""What asking files costs: the app's path against DuckDB by hand on the same file.

A GROUP BY over a 1-million-row Parquet file and a ~200 MB CSV, each in a workspace
(engine.workspace), runs the way the app runs it (``Database.run_readonly``: a worker of
engine.sandbox, read-only, the query limits) and by hand (``duckdb.sql`` on the file).

    .venv/bin/python bench/workspace_files.py [--rounds 5] [--csv-mb 200]

The files are generated once into the cache folder (``TEXT2SQL_CACHE``, else
``~/.cache/text2sql``: ``bench-workspace/``), never the repository; each is added to a
workspace of its own in a temporary data folder. Per file, after one warm-up run each way,
``--rounds`` runs each way alternate. Prints one JSON line per file: its rows and size, the
median milliseconds through the app's path and by hand (``duckdb.sql`` on the file, DuckDB's
default threads; and a connection limited to one thread, as the app's connection is), the
ratios, where the app's time goes (the same query in this process without the sandbox, and
``SELECT 1`` through the app's path: the fixed cost of a query), the first call's seconds
(the worker's start), the sandbox workers' peak resident memory, and the load average
before and after. The issue's target: within 2x by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import workspace as ws  # noqa: E402
from engine.db import open_database  # noqa: E402
from engine.db import workspace as ws_db  # noqa: E402
from engine.paths import cache_dir  # noqa: E402

QUERY = "SELECT region, count(*) AS orders, sum(amount) AS total FROM {table} GROUP BY region"
REGIONS = "['North', 'South', 'East', 'West', 'Central']"
# the orders: an id, one of 50,000 customers, a region, an amount, a day of 2024
ROWS = f"""
SELECT i AS order_id, 'customer_' || (i * 7919 % 50000) AS customer,
       {REGIONS}[1 + i % 5] AS region, round(((i * 104729) % 100000) / 100.0, 2) AS amount,
       DATE '2024-01-01' + CAST(i % 366 AS INTEGER) AS day
FROM range({{n}}) t(i)
"""
CSV_BYTES_PER_ROW = 46  # "1234567,customer_12345,Central,123.45,2024-03-05\n", on average


def generate(folder: Path, parquet_rows: int, csv_mb: int) -> dict[str, Path]:
    """The two files, made once (a file's name says its size)."""
    import duckdb  # deferred: only generation and the hand runs need it here

    folder.mkdir(parents=True, exist_ok=True)
    csv_rows = csv_mb * 2**20 // CSV_BYTES_PER_ROW
    files = {
        "parquet": (folder / f"orders_{parquet_rows}.parquet", parquet_rows, "PARQUET"),
        "csv": (folder / f"orders_{csv_rows}.csv", csv_rows, "CSV, HEADER"),
    }
    for path, n, fmt in files.values():
        if not path.exists():
            tmp = path.with_suffix(".tmp" + path.suffix)
            duckdb.sql(f"COPY ({ROWS.format(n=n)}) TO '{tmp}' (FORMAT {fmt})")
            tmp.replace(path)
    return {kind: path for kind, (path, _, _) in files.items()}


def hand_sql(path: Path) -> str:
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
    return QUERY.format(table=f"{reader}('{path}')")


def _rounded(rows) -> list[tuple]:
    """Rows to compare: sums of floats differ in their last digits with the order of adding."""
    return sorted((r[0], r[1], round(r[2], 2)) for r in rows)


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def worker_peak_rss_mb() -> float | None:
    """The largest peak resident set (VmHWM) of this process's children: the sandbox's
    workers, which live on between calls (None where /proc cannot tell)."""
    peaks = []
    try:
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            for pid in (task / "children").read_text().split():
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return round(max(peaks), 1) if peaks else None


def bench_file(kind: str, path: Path, root: Path, rounds: int, timeout_s: float) -> dict:
    import duckdb  # deferred: only generation and the hand runs need it here

    start = time.perf_counter()
    folder = ws.create_workspace(root, f"bench_{kind}")
    ws.add_files(folder, [path], copy=False, names={path.name: "orders"})
    add_s = time.perf_counter() - start
    db = open_database(folder)
    sql = QUERY.format(table="orders")
    by_hand = hand_sql(path)
    one_thread = duckdb.connect(config={"threads": 1})

    def app():
        result = db.run_readonly(sql, timeout_s=timeout_s, max_rows=1000)
        if not result.ok:
            raise SystemExit(f"{kind}: the app's path failed: {result.error}")
        return result

    def in_process():  # the worker's part alone: manifest, catalog connection, the query
        return ws_db.run(folder, sql, timeout_s, 1000)

    def select_1():
        return db.run_readonly("SELECT 1", timeout_s=timeout_s, max_rows=1000)

    def hand():
        return duckdb.sql(by_hand).fetchall()

    def hand_1():
        return one_thread.sql(by_hand).fetchall()

    first = timed(app)
    expected = _rounded(hand())
    assert _rounded(app().rows) == expected, "the two ways disagree"
    hand_1()
    ways = {
        "app": app,
        "hand": hand,
        "hand_1": hand_1,
        "in_process": in_process,
        "select_1": select_1,
    }
    runs: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(rounds):
        for way, call in ways.items():
            runs[way].append(timed(call))
    one_thread.close()
    ms = {k: statistics.median(v) * 1000 for k, v in runs.items()}
    return {
        "file": kind,
        "rows": sum(r[1] for r in expected),
        "mb": round(path.stat().st_size / 2**20, 1),
        "add_s": round(add_s, 3),
        "first_call_s": round(first, 3),
        "app_ms_median": round(ms["app"], 1),
        "hand_ms_median": round(ms["hand"], 1),
        "hand_1_thread_ms_median": round(ms["hand_1"], 1),
        "ratio": round(ms["app"] / ms["hand"], 2),
        "ratio_1_thread": round(ms["app"] / ms["hand_1"], 2),
        "in_process_ms_median": round(ms["in_process"], 1),
        "app_select_1_ms_median": round(ms["select_1"], 1),
        "worker_peak_rss_mb": worker_peak_rss_mb(),
        "rounds": rounds,
        "cores": os.cpu_count(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="timed runs each way (default 5)")
    p.add_argument("--parquet-rows", type=int, default=1_000_000)
    p.add_argument("--csv-mb", type=int, default=200, help="about this many MB of CSV")
    p.add_argument("--timeout", type=float, default=120.0, help="the query limit, seconds")
    p.add_argument("--cache", type=Path, default=None, help="where the files are made")
    args = p.parse_args()
    files = generate(args.cache or cache_dir() / "bench-workspace", args.parquet_rows, args.csv_mb)
    with tempfile.TemporaryDirectory(prefix="bench-workspace-") as tmp:
        for kind, path in files.items():
            load_before = os.getloadavg()
            line = bench_file(kind, path, Path(tmp), args.rounds, args.timeout)
            line["load_avg_before"] = [round(x, 2) for x in load_before]
            line["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
