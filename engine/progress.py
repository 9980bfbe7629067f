"""How long work tells its caller what it is doing: a :data:`Progress` callback takes one
line (the app shows it in its status line, the CLI prints it), and :func:`say` also logs
it under the caller's logger."""

from __future__ import annotations

import logging
from collections.abc import Callable

Progress = Callable[[str], None]


def say(progress: Progress | None, message: str, log: logging.Logger) -> None:
    """Log ``message`` at INFO on ``log`` and hand it to ``progress`` when there is one."""
    log.info(message)
    if progress is not None:
        progress(message)
