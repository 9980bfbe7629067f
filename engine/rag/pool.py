"""Solved questions from other databases, chosen for a new question in the DAIL-SQL manner.

A database the user just connected has no solved examples of its own, but its questions
look like those of other databases once the names are taken out: "How many *heads* of
*departments* are older than 56?" and "How many *singers* are older than 30?" are the same
question about different tables. So questions are compared with their schema words and
values masked (:func:`mask_question`), each side with its own schema, and the closest solved
questions of *other* databases are shown with their SQL, marked as coming from elsewhere.
DAIL-SQL's second stage is :meth:`ExamplePool.select`'s ``draft``: given a first answer to
the question, the closest questions whose SQL has the draft's shape (:func:`skeleton`) come
first.

The shipped pool (``engine/rag/pool/examples.jsonl``) holds Spider-train pairs (Yu et al.,
EMNLP 2018, CC BY-SA 4.0; see the README beside it) and the sample databases' pairs;
``scripts/build_example_pool.py`` rebuilds it. Leakage rule, enforced in :meth:`select`: a
database's own pairs are never chosen for it, whether it is recognised by name or by its
schema's fingerprint.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import numpy as np
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Tokenizer, TokenType

from engine.paths import cache_dir
from engine.rag.index import schema_fingerprint
from engine.rag.saved_pairs import pair_id
from engine.schema import Schema

log = logging.getLogger(__name__)
POOL_FILE = Path(__file__).resolve().parent / "pool" / "examples.jsonl"
MASK, VALUE = "<mask>", "<unk>"
# Draft re-ranking: the closest questions by masked question are re-ordered, those whose SQL
# skeleton is at least this similar to the draft's first (DAIL-SQL's rule; its tau).
DRAFT_CANDIDATES = 20
SKELETON_SIMILARITY = 0.85
# Short words that name parts of columns (``participates_in``) but carry no schema meaning.
_STOPWORDS = {"a", "an", "and", "as", "at", "by", "for", "in", "is", "of", "on", "or", "the", "to"}
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\"|\S")


@dataclass(frozen=True)
class PoolExample:
    db_id: str
    question: str
    sql: str
    masked: str  # the question with its schema words and values masked
    schema_sha: str  # fingerprint of its database's schema (engine.rag.index)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def schema_words(schema: Schema) -> set[str]:
    """Lower-case words that name a table or column (``order_items`` -> order, items, ...)."""
    words: set[str] = set()
    for table in schema.tables.values():
        for name in [table.name, *(c.name for c in table.columns)]:
            parts = re.findall(r"[A-Za-z][a-z0-9]*|[A-Z]+(?![a-z])", name.replace("_", " "))
            words.update(p.lower() for p in parts if len(p) > 1)
            words.add(name.lower())
    return words - _STOPWORDS


def mask_question(question: str, words: set[str]) -> str:
    """The question with schema words (and their plurals) as <mask>, values as <unk>."""
    out = []
    for token in _WORD.findall(question):
        low = token.lower()
        if token[0] in "'\"" or token[0].isdigit():
            out.append(VALUE)
        elif low in words or (low.endswith("s") and low[:-1] in words) or low + "s" in words:
            out.append(MASK)
        else:
            out.append(token)
    return " ".join(out)


def skeleton(sql: str) -> tuple[str, ...]:
    """The SQL's keywords, functions and operators with every name and value as ``_``:
    ``SELECT count(*) FROM singer WHERE age > 30`` -> select count ( * ) from _ where _ > _.
    Names joined by dots (``t1.name``) are one ``_``; [] for SQL that does not tokenize."""
    try:
        tokens = Tokenizer().tokenize(sql)
    except SqlglotError:
        return ()
    out: list[str] = []
    names = {TokenType.VAR, TokenType.STRING, TokenType.NUMBER, TokenType.IDENTIFIER}
    for token, after in zip(tokens, [*tokens[1:], None], strict=True):
        called = after is not None and after.token_type == TokenType.L_PAREN
        if token.token_type in names and not called:  # count( is a function: kept
            if out and out[-1] in ("_", "."):
                out[-1] = "_"  # t1 . name and t1.name are one name
                continue
            out.append("_")
        elif token.token_type == TokenType.DOT and out and out[-1] == "_":
            out[-1] = "."
        else:
            out.append(token.text.lower())
    return tuple(out)


def skeleton_similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """0..1: how alike two skeletons are, token order included."""
    return SequenceMatcher(None, a, b, autojunk=False).ratio() if a and b else 0.0


def read_pool(path: Path = POOL_FILE) -> list[PoolExample]:
    with open(path, encoding="utf-8") as f:
        return [PoolExample(**json.loads(line)) for line in f if line.strip()]


def write_pool(examples: Iterable[PoolExample], path: Path = POOL_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")


class ExamplePool:
    """The pool with its masked questions embedded (once; cached beside the model cache)."""

    def __init__(self, embedder: str, path: Path = POOL_FILE) -> None:
        self.embedder = embedder
        self.path = path
        self._examples: list[PoolExample] | None = None
        self._vectors: Any = None
        self._ids: Any = None  # engine.rag.saved_pairs.pair_id of each question, see select
        self._skeletons: dict[int, tuple[str, ...]] = {}  # by index, made when first needed
        self._lock = threading.Lock()

    def _load(self) -> tuple[list[PoolExample], Any]:
        with self._lock:
            if self._examples is None:
                self._examples = read_pool(self.path)
                self._vectors = self._embed_all(self._examples)
            return self._examples, self._vectors

    def _embed_all(self, examples: list[PoolExample]) -> Any:
        digest = hashlib.sha1(self.path.read_bytes() + self.embedder.encode()).hexdigest()[:16]
        cached = cache_dir() / "example-pool" / f"{digest}.npy"
        if cached.is_file():
            return np.load(cached)
        cached.parent.mkdir(parents=True, exist_ok=True)
        # Embedding the whole pool takes one to three minutes of CPU on a fresh machine, and
        # the app and its evaluation child (or two apps) often need it at the same moment:
        # the second waits for the first one's file instead of embedding it again. The kernel
        # releases an flock when its process ends, however it ends.
        with open(cached.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if cached.is_file():
                return np.load(cached)
            # deferred: the embedder's modules (langchain_core: ~400 ms) load only to embed
            from engine.rag.embeddings import get_embeddings

            log.info("Embedding the example pool (%d questions, once)", len(examples))
            vectors = np.asarray(
                get_embeddings(self.embedder).embed_documents([e.masked for e in examples]),
                dtype=np.float32,
            )
            tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(cached)
            return vectors

    def select(
        self,
        question: str,
        schema: Schema,
        db_id: str,
        k: int,
        leave_out: str | None = None,
        draft: str | None = None,
    ) -> list[PoolExample]:
        """The ``k`` pool questions closest to ``question`` once both are masked, from other
        databases than this one (``db_id``, or the same schema under another name).

        ``leave_out``: a question never chosen, from any database (training leaves a row's
        own question out of its prompt). ``draft``: a first answer's SQL; of the
        ``DRAFT_CANDIDATES`` closest questions, those whose SQL has the draft's shape come
        first (see :func:`skeleton`)."""
        if k <= 0:
            return []
        # deferred: the embedder's modules (langchain_core: ~400 ms) load only to embed
        from engine.rag.embeddings import get_embeddings

        examples, vectors = self._load()
        own_sha = schema_fingerprint(schema)
        allowed = np.array(
            [e.db_id.lower() != db_id.lower() and e.schema_sha != own_sha for e in examples]
        )
        if leave_out is not None:
            if self._ids is None:
                self._ids = np.array([pair_id(e.question) for e in examples])
            allowed &= self._ids != pair_id(leave_out)
        masked = mask_question(question, schema_words(schema))
        query = np.asarray(get_embeddings(self.embedder).embed_query(masked), dtype=np.float32)
        scores = np.where(allowed, vectors @ query, -np.inf)
        order = [int(i) for i in np.argsort(-scores)[: max(k, DRAFT_CANDIDATES)]]
        order = [i for i in order if np.isfinite(scores[i])]
        shape = skeleton(draft) if draft else ()
        if shape:
            alike = {i: self._shape_of(i, examples) for i in order}
            near = [i for i in order if skeleton_similarity(shape, alike[i]) >= SKELETON_SIMILARITY]
            order = near + [i for i in order if i not in near]
        return [examples[i] for i in order[:k]]

    def _shape_of(self, i: int, examples: list[PoolExample]) -> tuple[str, ...]:
        if i not in self._skeletons:
            self._skeletons[i] = skeleton(examples[i].sql)
        return self._skeletons[i]


@functools.lru_cache(maxsize=4)
def example_pool(embedder: str) -> ExamplePool:
    """The shipped pool for an embedder, shared by every retriever of the process."""
    return ExamplePool(embedder)
