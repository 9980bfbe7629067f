"""Loaded models shared by all browser sessions (weights are read-only; one generation at a time).

Per-session data (chat history, chosen database) lives in ``gr.State``; only the expensive,
immutable model objects are shared here.

Questions asked at the same time by several sessions are answered together
(:meth:`EnginePool.answer`): whoever gets the model next takes every waiting question for it,
up to ``max_batch``, and one ``TextToSQL.ask_batch`` call decodes them side by side (the
weights are read once per token for all of them). Each caller gets back its own answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.recovery import REBUILD_THREAD
from engine.config import EngineConfig
from engine.factory import engine_from_config
from engine.pipeline import Answer, Request, TextToSQL

log = logging.getLogger(__name__)

WARM_UP_THREAD, PRIME_THREAD = "model-warm-up", "prime-database"
# Threads whose work ends with a new model status line.
BACKGROUND_WORK = (WARM_UP_THREAD, PRIME_THREAD, REBUILD_THREAD)


class EnginePool:
    """Keeps the last ``max_loaded`` engines warm, keyed by (model, adapter)."""

    def __init__(self, base: EngineConfig, max_loaded: int = 2, max_batch: int = 1) -> None:
        self.base = base
        self.max_loaded = max_loaded
        self.max_batch = max(1, max_batch)
        self._engines: dict[tuple[str, str | None], TextToSQL] = {}
        self._load_lock = threading.Lock()
        self.generate_lock = threading.Lock()  # 2 CPU cores: one generation at a time
        self._waiting: list[_Waiting] = []  # questions not yet taken into a batch, oldest first
        self._waiting_lock = threading.Lock()
        self.status = "Model not loaded yet; it loads with the first question."
        self._loading = 0  # models being loaded now (each under _load_lock)

    def answer(self, engine: TextToSQL, request: Request) -> Answer:
        """``engine.ask_batch([request])[0]``, answered together with the questions other
        sessions are asking the same engine meanwhile (up to ``max_batch``)."""
        mine = _Waiting(engine, request)
        with self._waiting_lock:
            self._waiting.append(mine)
        while not mine.done.is_set():
            with self.generate_lock:
                if mine.done.is_set():  # answered in another caller's batch
                    break
                with self._waiting_lock:
                    # Same engine and database: their prompts share the schema part, which
                    # the prompt cache then evaluates once (bench/load.py: mixed databases
                    # in one batch cost more than they save).
                    others = [
                        w
                        for w in self._waiting
                        if w.engine is engine
                        and w is not mine
                        and w.request.db_path == request.db_path
                    ]
                    batch = [mine, *others[: self.max_batch - 1]]
                    self._waiting = [w for w in self._waiting if w not in batch]
                _run_batch(engine, batch)
        if mine.error is not None:
            raise mine.error
        assert mine.answer is not None
        return mine.answer

    def _say(self, message: str) -> None:
        self.status = message

    @property
    def busy(self) -> bool:
        """True while :attr:`status` may still change by itself: a model is loading, or a
        background thread (warm-up, priming a database, rebuilding an index) is at work."""
        return self._loading > 0 or any(
            t.name in BACKGROUND_WORK and t.is_alive() for t in threading.enumerate()
        )

    def get(
        self,
        model: str | None,
        adapter: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> TextToSQL:
        key = (model or self.base.model, adapter or None)
        with self._load_lock:
            if key not in self._engines:
                cfg = replace(self.base, model=key[0], adapter=key[1])
                if len(self._engines) >= self.max_loaded:
                    self._engines.pop(next(iter(self._engines)))

                def say(message: str) -> None:
                    self._say(message)
                    if progress is not None:
                        progress(message)

                self._loading += 1
                try:
                    self._engines[key] = engine_from_config(cfg, progress=say)
                    self._say(f"Model ready: {self._engines[key].backend.name}")
                except Exception as err:
                    self._say(
                        f"Loading {key[0]} failed: {str(err).splitlines()[0] if str(err) else err!r}"
                    )
                    raise
                finally:
                    self._loading -= 1
            return self._engines[key]

    def warm_up(self, db_path: Path | None = None) -> threading.Thread:
        """Load (and on first use, convert) the default model in the background, then get
        ``db_path`` ready for its first question (see :meth:`prime`)."""

        def work() -> None:
            try:
                engine = self.get(None)
            except Exception:  # reported through self.status; the first question retries
                log.exception("warm-up failed")
                return
            if db_path is not None:
                self._prime(engine, db_path)

        thread = threading.Thread(target=work, name=WARM_UP_THREAD, daemon=True)
        thread.start()
        return thread

    def prime(
        self, model: str | None, adapter: str | None, db_path: Path, retriever: Any = None
    ) -> threading.Thread | None:
        """In the background, index ``db_path`` if needed and put the prompt part that every
        question on it shares into the model's prompt cache, so the first answer comes as
        fast as the next ones. Only for a model already loaded (a choice in a dropdown does
        not start a download); None when nothing was started. ``retriever``: the caller's
        own (a signed-in user's index), instead of the engine's."""
        if not self.is_loaded(model, adapter):
            return None
        engine = self.get(model, adapter)
        thread = threading.Thread(
            target=self._prime,
            args=(engine, db_path, retriever),
            name=PRIME_THREAD,
            daemon=True,
        )
        thread.start()
        return thread

    def _prime(self, engine: TextToSQL, db_path: Path, retriever: Any = None) -> None:
        with self.generate_lock:
            try:
                cached = engine.prime(db_path, retriever)
            except Exception as err:  # the question itself will report a real problem
                log.warning("Could not prepare %s: %s", Path(db_path).name, err)
                return
        log.info("Primed %s: %d prompt tokens cached", Path(db_path).name, cached)
        self._say(f"Model ready: {engine.backend.name} · {Path(db_path).name} ready")

    def unload_all(self) -> None:
        """Forget every loaded engine (after the bundled models were installed, a model
        loaded before on a fallback backend loads again on the best one)."""
        with self._load_lock:
            self._engines.clear()

    def put(self, model: str, adapter: str | None, engine: TextToSQL) -> None:
        """Register a ready engine (tests, or a model the app loaded another way)."""
        with self._load_lock:
            self._engines[(model, adapter or None)] = engine

    def is_loaded(self, model: str | None, adapter: str | None = None) -> bool:
        return (model or self.base.model, adapter or None) in self._engines


class _Waiting:
    """A question waiting for its batch, and then its answer."""

    def __init__(self, engine: TextToSQL, request: Request) -> None:
        self.engine, self.request = engine, request
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


def _run_batch(engine: TextToSQL, batch: list[_Waiting]) -> None:
    try:
        answers = engine.ask_batch([w.request for w in batch])
    except BaseException as err:  # every caller of the batch hears of it
        for w in batch:
            w.error = err
    else:
        for w, a in zip(batch, answers, strict=True):
            w.answer = a
    for w in batch:
        w.done.set()
