"""training.guard: a job of the app stops once the app is gone, even a job that prints nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import alive

REPO = Path(__file__).resolve().parent.parent

# The app's side: the job's stdout and stderr are pipes it reads (training/jobs.py start_child).
_APP = """
import os, subprocess, sys, time
job = subprocess.Popen([sys.executable, "-m", "training.guard", "silent_job"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
print(job.pid, flush=True)
time.sleep(600)
"""


def test_a_silent_job_stops_within_seconds_of_a_kill_9_of_its_app(tmp_path):
    # A job that writes nothing (a model loading, a long step): the watcher's own message
    # went to the dead app's pipe, whose BrokenPipeError ended the watcher, and the job ran
    # on until it next wrote a line (an evaluation under load: over a minute).
    (tmp_path / "silent_job.py").write_text("import time\ntime.sleep(120)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    app = subprocess.Popen([sys.executable, "-c", _APP], stdout=subprocess.PIPE, env=env, cwd=REPO)
    job = int(app.stdout.readline())
    try:
        time.sleep(2)  # the job is under way (its watcher started)
        assert alive(job)
        os.kill(app.pid, signal.SIGKILL)
        app.wait(timeout=10)
        deadline = time.monotonic() + 20  # the watcher looks once a second
        while alive(job) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(job), "the job outlived its app by 20 s"
    finally:
        if alive(job):
            os.kill(job, signal.SIGKILL)
        app.stdout.close()


def test_duckdb_quoted_table_names_that_are_paths_are_refused_others_pass():
    from engine.db import sql_guard

    for sql in (
        "SELECT * FROM '/etc/passwd'",
        'SELECT * FROM "x.parquet"',
        "SELECT * FROM 'C:\\x'",
    ):
        assert sql_guard.check(sql, "duckdb")[1] == "Refused: reading files is not allowed"
    ok = 'SELECT * FROM "Order Items" JOIN "orders" USING (id)'
    assert sql_guard.check(ok, "duckdb")[1] is None
