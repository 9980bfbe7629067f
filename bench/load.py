"""Concurrent sessions through the app's public ``/ask`` endpoint, for a bounded time.

    .venv/bin/python bench/load.py --sessions 8 [--seconds 90] [--batch 1] [-- APP ARGS]
    .venv/bin/python bench/load.py --sessions 16 --url http://127.0.0.1:7860/

Without ``--url`` it starts ``launch.py`` on a free port with a fresh data folder (``--batch``
and anything after ``--`` go to it), waits until every sample database has answered one
question (indexing and the model's prompt cache are not measured), then runs the sessions.
Each session is its own ``gradio_client.Client`` (its own Gradio session), keeps to one sample
database (round robin over them) and asks that database's sample questions in turn, one at a
time, until ``--seconds`` have passed; requests still open ``--grace`` seconds later are lost.

Prints one JSON line: sessions, requests, answered (a JSON answer came back), errors (of
those, answers with an error: wrong SQL the model could not repair, as a single user would
get), lost (no answer: exception or still open), mixed (an answer to another question or
database, SQL naming a table the session's database lacks, or history holding another
database's question), p50_s/p95_s/max_s (seconds from request to answer, answered ones),
answers_per_min, and the load average before and after. The machine's other load is in the
numbers; the load averages say how much there was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.paths import sample_databases, sample_pairs_file  # noqa: E402


def questions_by_database() -> dict[str, list[str]]:
    """The sample questions of each sample database, by its app label."""
    out = {}
    for name in sample_databases():
        pairs = json.loads(sample_pairs_file(name).read_text())
        out[f"{name} (sample)"] = [p["question"] for p in pairs]
    return out


def tables_by_database() -> dict[str, set[str]]:
    import sqlite3

    out = {}
    for name, path in sample_databases().items():
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = con.execute("SELECT lower(name) FROM sqlite_master WHERE type IN ('table','view')")
        out[f"{name} (sample)"] = {r[0] for r in rows}
        con.close()
    return out


def sql_tables(sql: str) -> set[str]:
    """Tables a query reads (CTE names excluded); empty when sqlglot cannot parse it."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:
        return set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table)} - ctes


def connect(url: str, tries: int = 5) -> Any:
    """A gradio_client session; the app may be slow to hand out its config while it loads."""
    from gradio_client import Client

    for attempt in range(tries):
        try:
            return Client(url, verbose=False)
        except Exception:
            if attempt == tries - 1:
                raise
            time.sleep(2.0)


class Session(threading.Thread):
    def __init__(self, url: str, database: str, questions: list[str], offset: int,
                 deadline: float, own: dict[str, Any]) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.url, self.database, self.questions = url, database, questions
        self.offset, self.deadline, self.own = offset, deadline, own
        self.latencies: list[float] = []
        self.requests = self.answered = self.errors = self.lost = self.mixed = 0
        self.error_kinds: Counter[str] = Counter()
        self.open_since: float | None = None

    def run(self) -> None:
        try:
            client = connect(self.url)
        except Exception as err:  # never connected: its first request is lost
            self.requests, self.lost = 1, 1
            self.error_kinds[f"lost: {type(err).__name__}"] += 1
            return
        i = self.offset
        while time.time() < self.deadline:
            question = self.questions[i % len(self.questions)]
            i += 1
            self.requests += 1
            self.open_since = time.perf_counter()
            try:
                answer = client.predict(question, self.database, api_name="/ask")
            except Exception as err:  # lost: the app never answered
                self.lost += 1
                self.error_kinds[f"lost: {type(err).__name__}"] += 1
                self.open_since = None
                continue
            self.latencies.append(time.perf_counter() - self.open_since)
            self.open_since = None
            self.answered += 1
            if answer.get("error"):
                self.errors += 1
                self.error_kinds[str(answer["error"]).split(":")[0][:60]] += 1
            if self.is_mixed(question, answer):
                self.mixed += 1

    def is_mixed(self, question: str, answer: dict[str, Any]) -> bool:
        if answer.get("question") != question or answer.get("database") != self.database:
            return True
        if answer.get("sql") and not answer.get("error"):
            tables = sql_tables(answer["sql"])
            if tables and not tables <= self.own["tables"]:
                return True
        return any(h["question"] not in self.own["questions"] for h in answer.get("history", []))


def measure(url: str, sessions: int, seconds: float, grace: float) -> dict[str, Any]:
    questions = questions_by_database()
    tables = tables_by_database()
    labels = list(questions)
    deadline = time.time() + seconds
    started = time.perf_counter()
    runs = [
        Session(url, labels[k % len(labels)], questions[labels[k % len(labels)]], k,
                deadline, {"tables": tables[labels[k % len(labels)]],
                           "questions": set(questions[labels[k % len(labels)]])})
        for k in range(sessions)
    ]  # fmt: skip
    for s in runs:
        s.start()
    for s in runs:
        s.join(max(0.0, deadline + grace - time.time()))
    elapsed = time.perf_counter() - started
    lat = sorted(x for s in runs for x in s.latencies)
    still_open = sum(1 for s in runs if s.is_alive() and s.open_since is not None)
    kinds: Counter[str] = Counter()
    for s in runs:
        kinds.update(s.error_kinds)
    answered = sum(s.answered for s in runs)
    return {
        "sessions": sessions,
        "seconds": round(elapsed, 1),
        "requests": sum(s.requests for s in runs),
        "answered": answered,
        "errors": sum(s.errors for s in runs),
        "lost": sum(s.lost for s in runs) + still_open,
        "mixed": sum(s.mixed for s in runs),
        "p50_s": round(statistics.median(lat), 2) if lat else None,
        "p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 2) if lat else None,
        "max_s": round(lat[-1], 2) if lat else None,
        "answers_per_min": round(60 * answered / elapsed, 1),
        "error_kinds": dict(kinds.most_common(5)),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def launched_app(args: list[str], data: Path, ready_s: float = 600):
    port = free_port()
    env = {**os.environ, "TEXT2SQL_DATA": str(data)}
    log = open(data / "app.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "launch.py", "--port", str(port), *args],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + ready_s
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the app exited early: {(data / 'app.log').read_text()[-800:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit(f"the app did not start in {ready_s:.0f} s") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def warm(url: str) -> dict[str, float]:
    """One question per database (model load, index, prompt cache): seconds each."""
    client = connect(url)
    out = {}
    for label, qs in questions_by_database().items():
        t = time.perf_counter()
        answer = client.predict(qs[0], label, api_name="/ask")
        out[label] = round(time.perf_counter() - t, 1)
        print(f"warm-up {label}: {out[label]} s, error={answer.get('error')}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    app_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--seconds", type=float, default=90.0, help="time to keep asking")
    p.add_argument("--grace", type=float, default=300.0, help="wait for open requests")
    p.add_argument("--url", help="a running app (default: start one)")
    p.add_argument("--batch", type=int, default=1, help="the started app's --batch")
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        url = args.url
        launched = {}
        if url is None:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="load-")))
            url = stack.enter_context(launched_app(["--batch", str(args.batch), *app_args], data))
            launched = {"batch": args.batch, "app_args": app_args}
        warm_s = warm(url)
        result = measure(url, args.sessions, args.seconds, args.grace)
    result |= launched | {"warm_up_s": warm_s}
    result["load_avg_before"] = [round(x, 2) for x in load_before]
    result["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
