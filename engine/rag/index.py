"""``python -m engine index``: build (or rebuild) the index of one database.

Everything is read and checked first (schema, docs, examples); only then is the store
touched, so a bad docs folder or examples file never costs the existing index.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.db import Database, DatabaseError, DbRef, open_database
from engine.paths import SAMPLE_DBS_DIR, data_dir, sample_pairs_file
from engine.progress import Progress, say
from engine.rag.config import RagConfig
from engine.rag.documents import (
    RagInputError,
    Skipped,
    doc_documents,
    example_documents,
    question_and_sql,
    read_example_rows,
    table_documents,
)
from engine.rag.saved_pairs import PairBook, pair_documents, pair_id
from engine.rag.store import VectorStore, collection_name

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    db: str
    collection: str
    store: str
    tables: int = 0
    doc_files: int = 0
    doc_chunks: int = 0
    examples: int = 0
    saved_examples: int = 0  # of ``examples``, those saved by the user (engine.rag.saved_pairs)
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        text = (
            f"Indexed {Path(self.db).name}: {self.tables} tables, {self.doc_chunks} doc chunks "
            f"from {self.doc_files} files, {self.examples} examples "
            f"({self.saved_examples} saved) in {self.seconds:.1f} s "
            f"(collection {self.collection} in {self.store})"
        )
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} {why}" for why, n in self.skipped.items())
        return text


def schema_fingerprint(schema: Any) -> str:
    return hashlib.sha1(schema.ddl().encode()).hexdigest()[:16]


def default_examples(db: Database) -> Path | None:
    """The bundled question/SQL pairs of a sample database, if ``db`` is one."""
    if db.path is None or db.url is not None:
        return None
    path = db.path.resolve()
    if path.parent != SAMPLE_DBS_DIR.resolve():
        return None
    pairs = sample_pairs_file(path.stem)
    return pairs if pairs.is_file() else None


def index_database(
    cfg: RagConfig,
    db: DbRef | Database,
    docs_dir: str | Path | None = None,
    examples: str | Path | None = None,
    *,
    rebuild: bool = False,
    store: Any = None,
    progress: Progress | None = None,
    show_bar: bool = False,
    examples_root: str | Path | None = None,
) -> IndexReport:
    """Index ``db``'s tables, the docs under ``docs_dir`` and the ``examples`` pairs.

    Without ``examples``, a bundled sample database gets its own pairs. The pairs saved for
    the database (:class:`engine.rag.saved_pairs.PairBook` under ``examples_root``, the data
    folder by default) are always indexed, and win over a pair of the same question. Raises
    ``DatabaseError``, ``RagInputError``, ``StoreError`` or ``EmbedderError`` with a one-line
    message; a store is changed only once everything else has been read.
    """
    # deferred: the embedder's modules (langchain_core: ~400 ms) load when an index is built
    from engine.rag.embeddings import embedder_tokenizer, get_embeddings

    started = time.perf_counter()
    db = open_database(db)
    name, stem = db.name, db.label
    schema = db.read_schema()
    if not schema.tables:
        raise DatabaseError(f"{name} has no tables to index")
    report = IndexReport(db.shown, collection_name(db), cfg.location())
    skipped = Skipped()
    # Inputs first: a bad file must fail before anything is loaded or replaced.
    example_file = Path(examples) if examples else default_examples(db)
    rows = read_example_rows(example_file) if example_file else []
    saved = PairBook(examples_root or data_dir()).pairs(db)
    taken = {p.id for p in saved}
    rows = [r for r in rows if not (isinstance(r, dict) and _question_id(r) in taken)]
    if docs_dir is not None and not Path(docs_dir).is_dir():
        raise RagInputError(f"Docs folder {docs_dir} does not exist or is not a folder")

    say(progress, f"Reading {name}: {len(schema.tables)} tables", log)
    docs = table_documents(db, schema, cfg.sample_values)
    report.tables = len(docs)
    embeddings = get_embeddings(cfg.embedder)
    if docs_dir is not None:
        chunks, report.doc_files, doc_skips = doc_documents(
            Path(docs_dir), embedder_tokenizer(embeddings), cfg.chunk_tokens, cfg.chunk_overlap
        )
        skipped.reasons.update(doc_skips.reasons)
        report.doc_chunks = len(chunks)
        docs += chunks
    if saved:
        saved_docs, saved_skips = pair_documents(saved, schema, stem)
        skipped.reasons.update(saved_skips.reasons)
        report.examples = report.saved_examples = len(saved_docs)
        docs += saved_docs
    if rows:
        ex_docs, ex_skips = example_documents(rows, schema, stem, example_file.name)
        skipped.reasons.update(ex_skips.reasons)
        report.examples += len(ex_docs)
        docs += ex_docs
    report.skipped = dict(skipped.reasons)

    store = store or VectorStore(cfg, rebuild=rebuild)
    meta = {
        "embedder": cfg.embedder,
        "schema_sha": schema_fingerprint(schema),
        "indexed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "tables": report.tables,
        "doc_chunks": report.doc_chunks,
        "examples": report.examples,
    }
    say(progress, f"Embedding {len(docs)} documents for {name}", log)
    bar = _bar(len(docs), name) if show_bar else None
    try:
        store.replace(db, docs, embeddings, meta, _progress_fn(bar))
    finally:
        if bar is not None:
            bar.close()
    report.seconds = round(time.perf_counter() - started, 2)
    say(progress, report.summary(), log)
    return report


def _question_id(row: dict[str, Any]) -> str | None:
    question = question_and_sql(row)[0]
    return pair_id(question) if question else None


def _bar(total: int, name: str) -> Any:
    return tqdm(total=total, desc=f"Indexing {name}", unit="doc", file=sys.stderr)


def _progress_fn(bar: Any) -> Callable[[int, int], None] | None:
    if bar is None:
        return None

    def update(done: int, total: int) -> None:
        bar.update(done - bar.n)

    return update
