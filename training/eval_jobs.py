"""Evaluations for the app in a child process, as training runs are (training.jobs).

The child runs the very CLI a user runs, ``python -m training.evaluate --config
OUT/eval_config.yaml --events-json``, under training.guard (it stops when the app does, even
after a ``kill -9`` of the app), and reports one JSON line per batch. Why a process and not a
thread: the model, its memory and its threads stay out of the app, which keeps serving while
the evaluation runs; a crash or a kill of the evaluation alone is reported in one line; and
the answers it recorded (``OUT/predictions.jsonl``) are where a resume starts from.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from training.jobs import exit_reason, start_child

if TYPE_CHECKING:
    from training.eval_config import EvalConfig

CONFIG_FILE = "eval_config.yaml"
RESUME_HINT = "Resume it from the Evaluation tab: it continues from its last recorded answer."
_running: set[Path] = set()  # output folders of this process's live evaluations
_running_lock = threading.Lock()


def running_outputs() -> set[Path]:
    """Output folders of the evaluations this app is running now (not interrupted ones)."""
    with _running_lock:
        return set(_running)


class EvalProcess:
    """One ``python -m training.evaluate`` child: ``start()``, ``snapshot()``, ``running``,
    ``wait()``; ``error`` holds a one-line failure (as training.evaluate.EvalJob,
    which runs in a thread)."""

    def __init__(self, cfg: EvalConfig, max_log_lines: int = 50) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out).expanduser().resolve()
        self.error: str | None = None
        self.done_event: dict[str, Any] | None = None
        self._progress: dict[str, Any] = {"done": 0, "total": 0, "message": "Starting"}
        self._logs: collections.deque[str] = collections.deque(maxlen=max_log_lines)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []

    def start(self) -> EvalProcess:
        self.out.mkdir(parents=True, exist_ok=True)
        config = self.out / CONFIG_FILE
        config.write_text(yaml.safe_dump(self.cfg.settings(), sort_keys=False))
        cmd = [sys.executable, "-m", "training.guard", "training.evaluate", "--config",
               str(config), "--events-json"]  # fmt: skip
        self._proc, self._readers = start_child(cmd, self._read_events, self._read_stderr)
        with _running_lock:
            _running.add(self.out)
        for t in self._readers:
            t.start()
        return self

    def _read_events(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = json.loads(line)
                kind = event.pop("kind")
            except (ValueError, TypeError, KeyError, AttributeError):
                self._log(line.rstrip())
                continue
            with self._lock:
                if kind == "progress":
                    self._progress = event
                elif kind == "error":
                    self.error = event.get("message") or "the evaluation failed"
                elif kind == "done":
                    self.done_event = event
        code = self._proc.wait()
        for t in self._readers[1:]:
            t.join(5)  # the last stderr line names a crash
        with self._lock:
            if code != 0 and self.error is None:
                last = self._logs[-1] if self._logs else "no message"
                self.error = exit_reason(code, "evaluation", RESUME_HINT, detail=last)
        with _running_lock:
            _running.discard(self.out)

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            if line.strip():
                self._log(line.rstrip())

    def _log(self, line: str) -> None:
        with self._lock:
            self._logs.append(line)

    def snapshot(self) -> dict[str, Any]:
        """The last progress the child reported (training.eval_config.EvalProgress as a dict)."""
        with self._lock:
            snap = dict(self._progress)
            snap["error"] = self.error
        snap["running"] = self.running
        return snap

    @property
    def running(self) -> bool:
        """True until the child has exited and its output has been read."""
        return self._proc is not None and (
            self._proc.poll() is None or any(t.is_alive() for t in self._readers)
        )

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block until the child exits and is read; returns its "done" event or None."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            for t in self._readers:
                t.join(10)
        return self.done_event
