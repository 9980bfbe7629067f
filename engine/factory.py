"""A ready :class:`engine.pipeline.TextToSQL` from an :class:`engine.config.EngineConfig`.

The one place that turns settings into objects: the model's backend, the retriever and the
answer loop. The CLI, the app, evaluation and the benchmarks all build their engine here.
"""

from __future__ import annotations

from typing import Any

from engine.backends.base import Backend
from engine.config import EngineConfig
from engine.pipeline import TextToSQL
from engine.retrieval import Retriever


def engine_from_config(
    cfg: EngineConfig,
    retriever: Retriever | None = None,
    progress: Any = None,
    backend: Backend | None = None,
) -> TextToSQL:
    """Without an explicit ``retriever``, ``cfg.rag.enabled`` (the default) gives the
    Chroma-backed :class:`engine.rag.retriever.RagRetriever`. Without an explicit ``backend``
    (a benchmark passes its own), the config's model is loaded."""
    if retriever is None and cfg.rag.enabled:
        from engine.rag.retriever import RagRetriever

        retriever = RagRetriever(cfg.rag, progress=progress)
    if backend is None:
        from engine.backends.loader import load_backend

        backend = load_backend(
            cfg.model,
            cfg.adapter,
            load_in_4bit=cfg.load_in_4bit,
            kind=cfg.backend,
            threads=cfg.threads,
            # questions answered together, each with its candidate answers
            batch_size=cfg.batch_size * cfg.generation.most_candidates(),
            progress=progress,
            remote=cfg.openai,
        )
    return TextToSQL(
        backend,
        retriever=retriever,
        generation=cfg.generation,
        max_attempts=cfg.max_attempts,
        timeout_s=cfg.timeout_s,
        max_rows=cfg.max_rows,
    )
