"""Run a module as a job of the app that ends when the app ends: ``python -m training.guard
MODULE [ARGS...]`` runs ``python -m MODULE ARGS...`` plus a watcher thread.

A job whose app was killed (``kill -9``: no chance to stop its children) would otherwise go
on alone, holding the CPU and the run folder that the restarted app offers to resume. The
watcher compares the parent process id with the app's (``TEXT2SQL_APP_PID``, set by the app)
every second and exits the job once the app is gone; a training run then resumes from its
last complete checkpoint, an evaluation from its last recorded answer.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import threading
import time

APP_PID_ENV = "TEXT2SQL_APP_PID"


def _watch(app_pid: int, interval: float = 1.0) -> None:
    while os.getppid() == app_pid:
        time.sleep(interval)
    # stderr is often a pipe the killed app read: writing to it raises BrokenPipeError, which
    # ended this thread before the exit and left the job running on
    with contextlib.suppress(OSError):
        print("The app that started this job has stopped: stopping too.", file=sys.stderr)
    os._exit(3)  # no cleanup: what is on disk is what a resume starts from


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m training.guard MODULE [ARGS...]")
    app_pid = int(os.environ.get(APP_PID_ENV) or os.getppid())
    threading.Thread(target=_watch, args=(app_pid,), name="app-watcher", daemon=True).start()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
