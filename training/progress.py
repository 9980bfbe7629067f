"""Progress events sent by a training run to a progress bar, a log or the app (no heavy imports)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class ProgressEvent:
    """One update: a training step, a log line, or the end of the run."""

    kind: str  # "step" | "log" | "done" | "cancelled" | "error"
    step: int = 0
    total: int = 0
    loss: float | None = None
    eta_s: float | None = None
    message: str = ""

    def describe(self) -> str:
        if self.kind != "step":
            return self.message
        text = f"step {self.step}/{self.total}"
        if self.loss is not None:
            text += f" loss {self.loss:.4f}"
        if self.eta_s is not None:
            text += f" ETA {format_seconds(self.eta_s)}"
        return text


ProgressFn = Callable[[ProgressEvent], None]


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
