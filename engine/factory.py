"""A ready :class:`engine.pipeline.TextToSQL` from an :class:`engine.config.EngineConfig`.

The one place that turns settings into objects: the model's backend, the retriever and the
answer loop. The CLI, the app, evaluation and the benchmarks all build their engine here.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.backends.base import Backend
from engine.backends.loader import load_backend
from engine.config import EngineConfig
from engine.context import Retriever
from engine.models import read_adapter_meta
from engine.pipeline import TextToSQL
from engine.rag.config import RagConfig
from engine.rag.retriever import RagRetriever

log = logging.getLogger(__name__)


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
        retriever = RagRetriever(cfg.rag, progress=progress)
    if backend is None:
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
    warning = adapter_retrieval_warning(cfg, retriever)
    if warning:
        log.warning(warning)
        if progress is not None:
            progress(warning)
    return TextToSQL(
        backend,
        retriever=retriever,
        generation=cfg.generation,
        max_attempts=cfg.max_attempts,
        timeout_s=cfg.timeout_s,
        max_rows=cfg.max_rows,
        followup=cfg.followup,
        relink_literals=cfg.relink_literals,
    )


def adapter_retrieval_warning(cfg: EngineConfig, retriever: Retriever | None) -> str | None:
    """What differs between the retrieval an adapter was trained with (``retrieval`` in its
    metadata, saved by training) and the retrieval it is served with; None when nothing does,
    or when the adapter or the retriever does not say."""
    meta = read_adapter_meta(cfg.adapter) if cfg.adapter else {}
    if "retrieval" not in meta:
        return None
    rag = getattr(retriever, "cfg", None)
    if retriever is not None and not isinstance(rag, RagConfig):
        return None  # another retriever: its prompts cannot be compared
    trained, served = meta["retrieval"], rag.prompt_settings() if rag else None
    if trained == served:
        return None
    if trained is None or served is None:
        changed = "retrieval " + ("on" if served else "off") + " (in training: "
        changed += ("on" if trained else "off: plain schema prompts") + ")"
    else:
        keys = sorted(k for k in trained.keys() | served.keys() if trained.get(k) != served.get(k))
        changed = ", ".join(
            f"rag.{k} {served.get(k)!r} (in training: {trained.get(k)!r})" for k in keys
        )
    return (
        f"Adapter {cfg.adapter} is served with other prompts than it was trained on: {changed}. "
        "Use the training's rag settings (its train_config.yaml) for the prompts it learned."
    )
