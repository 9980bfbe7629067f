"""Trainer callbacks: progress events with an ETA, the loss-curve PNG, and a cancel flag."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from training.progress import ProgressEvent, ProgressFn

log = logging.getLogger(__name__)
LOSS_PLOT = "loss_curve.png"


class ProgressCallback(TrainerCallback):
    """Sends a :class:`ProgressEvent` per optimizer step (loss as last logged)."""

    def __init__(self, emit: ProgressFn) -> None:
        self.emit = emit
        self.started = 0.0
        self.first_step = 0
        self.loss: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()
        self.first_step = state.global_step  # > 0 after a resume: ETA from this run's pace

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
            self.emit(
                ProgressEvent(
                    "log", state.global_step, state.max_steps, self.loss, None, _fmt(logs)
                )
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        done = state.global_step - self.first_step
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (state.max_steps - state.global_step) if done > 0 else None
        self.emit(ProgressEvent("step", state.global_step, state.max_steps, self.loss, eta))


class LossCurveCallback(TrainerCallback):
    """Redraws ``loss_curve.png`` (train and eval loss) at every save and at the end."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOSS_PLOT

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        plot_loss_curve(state.log_history, self.path)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        plot_loss_curve(state.log_history, self.path)


class CancelCallback(TrainerCallback):
    """Stops training cleanly (after saving a checkpoint) once ``should_cancel()`` is true."""

    def __init__(self, should_cancel: Callable[[], bool]) -> None:
        self.should_cancel = should_cancel
        self.cancelled = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.should_cancel():
            self.cancelled = True
            control.should_save = True  # so the run can be resumed from here
            control.should_training_stop = True


def plot_loss_curve(log_history: list[dict[str, Any]], path: Path) -> Path:
    """Train and eval loss against the step, as a PNG (matplotlib's Agg backend, no display)."""
    import matplotlib  # deferred: matplotlib takes ~300 ms, for the end of a run only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: after choosing the Agg backend above

    train = [(h["step"], h["loss"]) for h in log_history if _finite(h.get("loss"))]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if _finite(h.get("eval_loss"))]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        if train:
            ax.plot(
                *zip(*train, strict=True),
                label="train loss",
                marker="." if len(train) < 30 else None,
            )
        if evals:
            ax.plot(*zip(*evals, strict=True), label="eval loss", marker="o")
        if not train and not evals:
            ax.text(
                0.5, 0.5, "no loss logged yet", ha="center", va="center", transform=ax.transAxes
            )
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("Training loss")
        ax.grid(alpha=0.3)
        if train or evals:
            ax.legend()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _fmt(logs: dict[str, Any]) -> str:
    parts = []
    for key in ("epoch", "loss", "eval_loss", "learning_rate", "grad_norm"):
        if key in logs:
            value = logs[key]
            parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)
