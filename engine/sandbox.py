"""Bounded calls: a function run in a worker process that is killed at its time limit, under a
memory ceiling.

Why a process: SQLite checks the executor's timeout between VM steps, so one long function
call (``printf('%.*c', 2e9, 'x')``: seconds) runs past it, and only a process can be stopped
in the middle of one. Each worker is a small Python process
(``python -m engine.sandbox``) that waits for calls on its stdin and answers on its stdout;
workers are reused, so a call costs a round trip of its arguments and result, not a process
start (``bench/query_bound.py`` measures it). A worker that overruns is killed (SIGKILL) and
replaced at the next call.

Memory: each worker sets SQLite's process-wide ``hard_heap_limit`` (an allocation beyond it
fails: "out of memory") and an address-space limit (RLIMIT_AS) a little above it, which
ends a worker whose Python side grows instead. What it does not bound: CPU time below the
limit, disk used by SQLite's temporary files for big sorts, and memory of the calling
process (results are capped by the executor before they are sent back).

The function is named by ``"module:function"`` and imported in the worker, so this module
imports nothing of the engine (the engine's modules import it without a cycle).
"""

from __future__ import annotations

import importlib
import os
import pickle
import resource
import select
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

MEMORY_LIMIT_MB = 256  # SQLite's heap in each worker
_ADDRESS_SPACE_MB = 1536  # the whole worker: Python, SQLite's heap, the result
_GRACE_S = 0.3  # the in-process timeout (SQLite's progress handler) answers first when it can
_START_S = 60.0  # a worker's start (Python and the executor's imports) on a busy machine
_KEEP_IDLE = 4
_HEAD = struct.Struct("!Q")
_ROOT = Path(__file__).resolve().parent.parent


class Stopped(RuntimeError):
    """The call was stopped at a limit; the message says which, in one line."""


# --- the worker's side -------------------------------------------------------------------------


def _write(out: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEAD.pack(len(data)) + data)
    out.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve(memory_mb: int) -> None:
    """Worker loop: receive (target, args), answer ("ok", value), ("memory", None) or
    ("error", text)."""
    limit = _ADDRESS_SPACE_MB * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sqlite3.connect(":memory:").execute(f"PRAGMA hard_heap_limit = {memory_mb * 2**20}")
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers on the pipe
    _write(out, ("ready", None))
    while True:
        try:
            target, args, cwd = pickle.loads(_read_exact(inp, _HEAD.unpack(_read_exact(inp, 8))[0]))
        except EOFError:  # the caller is gone
            return
        try:
            os.chdir(cwd)  # relative paths mean what they mean to the caller
            module, name = target.split(":")
            answer = ("ok", getattr(importlib.import_module(module), name)(*args))
        except MemoryError:
            answer = ("memory", None)
        except Exception as err:
            answer = ("error", f"{type(err).__name__}: {err}")
        try:
            _write(out, answer)
        except MemoryError:
            _write(out, ("memory", None))


# --- the caller's side -------------------------------------------------------------------------


class _Worker:
    def __init__(self, memory_mb: int, preload: tuple[str, ...]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        code = "".join(f"import {m}; " for m in preload)
        code += f"from engine.sandbox import serve; serve({int(memory_mb)})"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=str(_ROOT),
        )
        kind, _ = self.receive(_START_S)
        if kind != "ready":
            raise RuntimeError("the query worker did not start")

    def send(self, message: Any) -> None:
        assert self.proc.stdin is not None
        _write(self.proc.stdin, message)

    def receive(self, timeout_s: float) -> Any:
        """The next answer; TimeoutError when none came in time, EOFError if it died."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        head = self._read(_HEAD.size, deadline)
        return pickle.loads(self._read(_HEAD.unpack(head)[0], deadline))

    def _read(self, n: int, deadline: float) -> bytes:
        assert self.proc.stdout is not None
        fd, data = self.proc.stdout.fileno(), b""
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, min(n - len(data), 1 << 20))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class Sandbox:
    """A pool of workers; :meth:`call` runs one function in one of them."""

    def __init__(self, memory_mb: int = MEMORY_LIMIT_MB, preload: tuple[str, ...] = ()) -> None:
        self.memory_mb = memory_mb
        self.preload = preload
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def call(self, target: str, args: tuple, timeout_s: float) -> Any:
        """``target(*args)`` in a worker; raises :class:`Stopped` at ``timeout_s`` (plus a
        short grace) or when the worker runs out of memory, RuntimeError if it fails."""
        worker = self._take()
        try:
            worker.send((target, args, os.getcwd()))
            kind, value = worker.receive(timeout_s + _GRACE_S)
        except TimeoutError:
            worker.kill()
            raise Stopped(f"Query stopped after {timeout_s:g} s (the time limit)") from None
        except (EOFError, OSError):  # the worker died: its address-space ceiling
            worker.kill()
            raise Stopped(self.memory_message()) from None
        except BaseException:
            worker.kill()
            raise
        self._give_back(worker)
        if kind == "memory":
            raise Stopped(self.memory_message())
        if kind == "error":
            raise RuntimeError(value)
        return value

    def memory_message(self) -> str:
        return f"Query stopped: it used more than {self.memory_mb} MB of memory"

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                worker.kill()
        return _Worker(self.memory_mb, self.preload)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if len(self._idle) < _KEEP_IDLE:
                self._idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


_default: Sandbox | None = None
_default_pid = 0
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """This process's sandbox for SQLite queries (its workers preload the executor)."""
    global _default, _default_pid
    with _default_lock:
        if _default is None or _default_pid != os.getpid():  # a forked child: its own
            _default, _default_pid = Sandbox(preload=("engine.db.sqlite",)), os.getpid()
        return _default
