"""Loaded models shared by all browser sessions (weights are read-only; one generation at a time).

Per-session data (chat history, chosen database) lives in ``gr.State``; only the expensive,
immutable model objects are shared here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace

from engine.config import EngineConfig
from engine.pipeline import TextToSQL, engine_from_config

log = logging.getLogger(__name__)


class EnginePool:
    """Keeps the last ``max_loaded`` engines warm, keyed by (model, adapter)."""

    def __init__(self, base: EngineConfig, max_loaded: int = 2) -> None:
        self.base = base
        self.max_loaded = max_loaded
        self._engines: dict[tuple[str, str | None], TextToSQL] = {}
        self._load_lock = threading.Lock()
        self.generate_lock = threading.Lock()  # 2 CPU cores: one generation at a time

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
                self._engines[key] = engine_from_config(cfg, progress=progress)
            return self._engines[key]

    def put(self, model: str, adapter: str | None, engine: TextToSQL) -> None:
        """Register a ready engine (tests, or a model the app loaded another way)."""
        with self._load_lock:
            self._engines[(model, adapter or None)] = engine

    def is_loaded(self, model: str | None, adapter: str | None = None) -> bool:
        return (model or self.base.model, adapter or None) in self._engines
