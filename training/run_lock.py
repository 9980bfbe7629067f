"""One process at a time in a run folder.

An evaluation resumed while the process it resumes is still alive writes beside it: the app
that started the first was killed, and its child has not noticed yet (``training.guard``
looks every second, and later on a loaded machine). Measured in the crash test on a busy
2-core machine: the resumed run rewrote predictions.jsonl, then the old process appended
three answers that the new one answered again. The lock is an ``flock`` on ``FOLDER/.lock``;
the kernel releases it when its process ends, however it ends, so no stale lock survives a
kill.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".lock"
WAIT_S = 120.0  # how long a run waits for an earlier process of the same folder to stop


class RunBusy(RuntimeError):
    """Another process still holds the run folder."""


@contextmanager
def run_lock(
    folder: Path, say: Callable[[str], None] | None = None, wait_s: float | None = None
) -> Iterator[None]:
    """Hold ``folder`` for the body; wait up to ``wait_s`` (default :data:`WAIT_S`) for a
    process that holds it, then raise :class:`RunBusy`."""
    folder.mkdir(parents=True, exist_ok=True)
    wait_s = WAIT_S if wait_s is None else wait_s
    with open(folder / LOCK_FILE, "a") as handle:
        deadline = time.monotonic() + wait_s
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RunBusy(
                        f"{folder} is in use by another process (still running after "
                        f"{wait_s:.0f} s): stop it, or use another output folder"
                    ) from None
                if not waiting and say is not None:
                    say("Waiting for an earlier process of this run to stop")
                waiting = True
                time.sleep(0.2)
        yield  # closing the file releases the lock
