"""Training jobs for the app: one run at a time, in a child process, with live progress.

Why a child process and not a thread: a training loop holds the GIL for much of each step
(data collation, the Trainer's Python code), which would make the Gradio UI stutter; a thread
cannot be stopped while it is inside a long step or dataset preparation, whereas a process can
always be terminated; a crash (out of memory, a native error in bitsandbytes or DeepSpeed) or
process-wide state (torch threads, DeepSpeed's distributed environment) stays out of the UI;
and the model's memory is returned when the process exits. The child runs the very CLI a user
runs (``python -m training.train --events-json``), reporting one JSON event per line.

Cancelling is cooperative first (a flag file checked after every step: the run saves a
checkpoint, so ``resume`` continues from it), then forced (terminate, then kill) after a grace
period. Use one :class:`JobManager` per machine (the app keeps one): it refuses a second job.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import yaml

from engine.paths import REPO_ROOT
from training.config import TrainConfig
from training.guard import APP_PID_ENV
from training.progress import ProgressEvent, format_seconds

CANCEL_FILE = "CANCEL"
JOB_CONFIG_FILE = "job_config.yaml"


class JobBusy(RuntimeError):
    """A training job is already running on this machine."""


@dataclass
class JobStatus:
    state: str = "starting"  # starting | running | done | failed | cancelled
    step: int = 0
    total: int = 0
    loss: float | None = None
    eta_s: float | None = None
    logs: list[str] = field(default_factory=list)  # the last lines, newest last
    adapter_dir: str | None = None
    error: str | None = None
    output_dir: str = ""

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def describe(self) -> str:
        text = f"{self.state}: step {self.step}/{self.total or '?'}"
        if self.loss is not None:
            text += f", loss {self.loss:.4f}"
        if self.eta_s is not None and not self.finished:
            text += f", ETA {format_seconds(self.eta_s)}"
        return text


class TrainingJob:
    """One ``python -m training.train`` child process and what it has reported so far."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, max_log_lines: int = 200) -> None:
        out = cfg.resolved_output_dir.resolve()
        self.cfg = replace(cfg, output_dir=str(out))
        self.resume = resume
        self.output_dir = out
        self._status = JobStatus(output_dir=str(out))
        self._logs: collections.deque[str] = collections.deque(maxlen=max_log_lines)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []
        self._cancel_requested = False

    def start(self) -> TrainingJob:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / CANCEL_FILE).unlink(missing_ok=True)
        config_path = self.output_dir / JOB_CONFIG_FILE
        config_path.write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        # training.guard: the run stops when the app does, even after a kill -9 of the app
        cmd = [sys.executable, "-m", "training.guard", "training.train", "--config",
               str(config_path)]  # fmt: skip
        cmd += ["--events-json", "--cancel-file", str(self.output_dir / CANCEL_FILE)]
        if self.resume:
            cmd.append("--resume")
        self._proc, self._readers = start_child(cmd, self._read_events, self._read_stderr)
        for t in self._readers:
            t.start()
        return self

    # --- reading the child ------------------------------------------------------------------

    def _read_events(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = ProgressEvent(**json.loads(line))
            except (ValueError, TypeError):
                self._log(line.rstrip())
                continue
            self._apply(event)
        code = self._proc.wait()
        with self._lock:
            if not self._status.finished:
                if self._cancel_requested:
                    self._status.state = "cancelled"
                else:
                    self._status.state = "failed"
                    self._status.error = self._status.error or _exit_reason(code)

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            if line.strip():
                self._log(line.rstrip())

    def _apply(self, event: ProgressEvent) -> None:
        with self._lock:
            s = self._status
            if event.kind == "step":
                s.state, s.step, s.total, s.eta_s = "running", event.step, event.total, event.eta_s
                s.loss = event.loss if event.loss is not None else s.loss
            elif event.kind == "done":
                s.state, s.adapter_dir, s.eta_s = "done", event.message, 0.0
            elif event.kind == "cancelled":
                s.state = "cancelled"
            elif event.kind == "error":
                s.state, s.error = "failed", event.message
            if event.message and event.kind not in ("step", "info"):  # info: also on stderr
                self._logs.append(event.message)

    def _log(self, line: str) -> None:
        with self._lock:
            self._logs.append(line)

    # --- the app's side ---------------------------------------------------------------------

    def status(self) -> JobStatus:
        with self._lock:
            return replace(self._status, logs=list(self._logs))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the child exits (or ``timeout``); returns the status."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return self.status()
            for t in self._readers:
                t.join(5)
        return self.status()

    def follow(self, interval: float = 1.0) -> Iterator[JobStatus]:
        """Statuses every ``interval`` seconds until the job ends (for a Gradio generator)."""
        while True:
            status = self.status()
            yield status
            if status.finished or not self.running:
                yield self.wait(timeout=10)
                return
            time.sleep(interval)

    def cancel(self, grace_s: float = 60.0) -> JobStatus:
        """Ask the run to stop after its current step (it saves a checkpoint); force it after
        ``grace_s`` seconds."""
        self._cancel_requested = True
        if not self.running:
            return self.status()
        (self.output_dir / CANCEL_FILE).touch()
        assert self._proc is not None
        try:
            self._proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self._log(f"Training did not stop within {grace_s:.0f} s: terminating it")
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return self.wait(timeout=10)


def _exit_reason(code: int) -> str:
    """Why the training process ended without saying so itself, in words."""
    return exit_reason(code, "training", "Resume continues from its last checkpoint.")


def start_child(
    cmd: list[str], read_stdout: Callable[[], None], read_stderr: Callable[[], None]
) -> tuple[subprocess.Popen[str], list[threading.Thread]]:
    """Start a child of the app (run under training.guard, it stops when the app does) with
    line-buffered text pipes; returns it and two reader threads, not yet started (they read
    the returned process: store it first)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env[APP_PID_ENV] = str(os.getpid())
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # keeps the log readable
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1, env=env)  # fmt: skip
    readers = [
        threading.Thread(target=read_stdout, daemon=True),
        threading.Thread(target=read_stderr, daemon=True),
    ]
    return proc, readers


def exit_reason(code: int, job: str, resume: str, detail: str = "see the log above") -> str:
    """Why a ``job`` ("training", "evaluation") process ended without saying so itself, in
    one line; ``resume`` says how to go on after a kill, ``detail`` where to look otherwise."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = f"{name}: killed, or out of memory"
        return f"The {job} process was stopped from outside ({why}). {resume}"
    return f"The {job} process ended with exit code {code}; {detail}."


class JobManager:
    """Holds the one training job of this machine (the app shares one instance)."""

    def __init__(self) -> None:
        self._job: TrainingJob | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> TrainingJob | None:
        return self._job

    def start(self, cfg: TrainConfig, resume: bool = False) -> TrainingJob:
        with self._lock:
            job = self._job
            if job is not None and job.running:
                raise JobBusy(
                    f"A training job is already running ({job.status().describe()}, output "
                    f"{job.output_dir}). Wait for it to finish or cancel it first."
                )
            self._job = TrainingJob(cfg, resume=resume).start()
            return self._job

    def resume(self, cfg: TrainConfig) -> TrainingJob:
        return self.start(cfg, resume=True)

    def cancel(self, grace_s: float = 60.0) -> JobStatus | None:
        job = self._job
        return job.cancel(grace_s) if job is not None else None
