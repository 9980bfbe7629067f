"""Solved question/SQL pairs saved for a database: a plain file each, kept in step with its index.

:class:`PairBook` keeps one JSON file per database under ``<root>/examples/`` in Spider's
shape (``[{"db_id", "question", "query"}]``), so the pairs survive a rebuilt index and can be
exported or edited by hand. ``root`` is the data folder today; one user's folder later.

:class:`SavedPairs` adds the rules: a pair is kept only once its SQL has run read-only on
the database and passed the schema check, and each change reaches the database's vector
index at once (one document added or removed, no re-index). A database without an index yet
gets its saved pairs when it is indexed (``index_database`` reads the book).

A pair's id is a hash of its question, case and spacing ignored: saving a question again
replaces its SQL. Index documents carry the id (``metadata["pair_id"]``), so a deleted pair
leaves the index whatever id its document was written under.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.db import Database, DbRef, open_database
from engine.rag.config import RagConfig
from engine.rag.documents import (
    RagInputError,
    Skipped,
    example_documents,
    question_and_sql,
    read_example_rows,
)
from engine.rag.store import StoreError, VectorStore, collection_name
from engine.schema import Schema
from engine.sql_check import validate_sql

EXPORT_SUFFIXES = (".json", ".jsonl", ".csv")


class PairError(ValueError):
    """A pair was refused; the message says why, in one line."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # a short label, for counting refused rows of an import


def pair_id(question: str) -> str:
    return hashlib.sha1(" ".join(question.casefold().split()).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Pair:
    question: str
    query: str
    db_id: str = ""

    @property
    def id(self) -> str:
        return pair_id(self.question)

    def to_row(self) -> dict[str, str]:
        return {"db_id": self.db_id, "question": self.question, "query": self.query}


class PairBook:
    """The saved pairs of each database, one JSON file per database under ``root/examples``."""

    _lock = threading.Lock()  # read-modify-write of a file, one at a time (app sessions)

    def __init__(self, root: str | Path) -> None:
        self.folder = Path(root) / "examples"

    def file(self, db: DbRef | Database) -> Path:
        return self.folder / f"{collection_name(db)}.json"

    def pairs(self, db: DbRef | Database) -> list[Pair]:
        """The database's pairs in the order they were first saved (none: an empty list)."""
        db = open_database(db)
        path = self.file(db)
        if not path.is_file():
            return []
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RagInputError(
                f"The saved examples of {db.name} ({path.name}) cannot be read: "
                f"{str(err).splitlines()[0]}"
            ) from err
        if not isinstance(rows, list):
            raise RagInputError(f"{path.name} must hold a list of question/SQL pairs")
        out = []
        for row in rows:
            question, sql = question_and_sql(row) if isinstance(row, dict) else (None, None)
            if question and sql:
                out.append(Pair(question, sql, str(row.get("db_id") or db.label)))
        return out

    def put(
        self, db: DbRef | Database, new: list[Pair], replace_id: str | None = None
    ) -> list[Pair]:
        """Save ``new``; a pair with the same question (or id ``replace_id``) is replaced in
        place. Returns the pairs that were replaced."""
        with self._lock:
            pairs = self.pairs(db)
            replaced = []
            for pair in new:
                ids = {pair.id, replace_id} if replace_id else {pair.id}
                at = [i for i, p in enumerate(pairs) if p.id in ids]
                replaced += [pairs[i] for i in at]
                if at:
                    pairs[at[0]] = pair
                    pairs = [p for i, p in enumerate(pairs) if i not in at[1:]]
                else:
                    pairs.append(pair)
            self._write(db, pairs)
            return replaced

    def remove(self, db: DbRef | Database, ids: list[str]) -> list[Pair]:
        with self._lock:
            pairs = self.pairs(db)
            gone = [p for p in pairs if p.id in ids]
            if gone:
                self._write(db, [p for p in pairs if p.id not in ids])
            return gone

    def _write(self, db: DbRef | Database, pairs: list[Pair]) -> None:
        path = self.file(db)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(dump(pairs, ".json"), encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a file


def dump(pairs: list[Pair], suffix: str = ".json") -> str:
    """Pairs as the text of a ``.json`` (Spider's shape), ``.jsonl`` or ``.csv`` file."""
    rows = [p.to_row() for p in pairs]
    if suffix == ".jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if suffix == ".csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["db_id", "question", "query"])
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"


def pair_documents(pairs: list[Pair], schema: Schema, db_name: str) -> tuple[list[Any], Skipped]:
    """Index documents of saved pairs: the same as any example's, plus their ``pair_id``."""
    rows = [{**p.to_row(), "db_id": db_name} for p in pairs]
    docs, skipped = example_documents(rows, schema, db_name, "saved")
    for doc in docs:
        doc.metadata["pair_id"] = pair_id(doc.page_content)
    return docs, skipped


@dataclass
class Saved:
    """What :meth:`SavedPairs.add` or ``edit`` did."""

    pair: Pair
    replaced: list[Pair]
    indexed: bool  # False: the database has no index yet; indexing it will include the pair
    seconds: float


@dataclass
class ImportReport:
    added: int = 0
    replaced: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    indexed: bool = False
    seconds: float = 0.0

    def summary(self, name: str) -> str:
        text = f"Imported {self.added} new and {self.replaced} updated pair(s) from {name}"
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} ({why})" for why, n in self.skipped.items())
        return text + "."


class SavedPairs:
    """Check, save, edit, delete, import and export a database's solved pairs.

    Every change goes to the book file and, when the database is indexed, to its vector
    index at once. Raises :class:`PairError` for a refused pair, ``RagInputError`` for an
    unusable file, ``StoreError``/``EmbedderError`` when the index cannot be updated.
    """

    def __init__(
        self,
        cfg: RagConfig,
        root: str | Path,
        *,
        timeout_s: float = 10.0,
        store: Any = None,
    ) -> None:
        self.cfg = cfg
        self.book = PairBook(root)
        self.timeout_s = timeout_s
        self._store = store

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = VectorStore(self.cfg)
        return self._store

    def list(self, db: DbRef | Database, search: str = "") -> list[Pair]:
        """The saved pairs whose question or SQL contains every word of ``search``."""
        words = (search or "").casefold().split()
        return [
            p
            for p in self.book.pairs(db)
            if all(w in f"{p.question}\n{p.query}".casefold() for w in words)
        ]

    def check(self, db: DbRef | Database, question: str, sql: str) -> Pair:
        """The pair as it would be saved, or :class:`PairError` saying why not."""
        db = open_database(db)
        question = " ".join((question or "").split())
        sql = (sql or "").strip().rstrip(";").strip()
        if not question or not sql:
            raise PairError("A pair needs a question and its SQL.", "missing question or SQL")
        result = db.run_readonly(sql, timeout_s=self.timeout_s, max_rows=1)
        if not result.ok:
            raise PairError(f"The SQL does not run: {result.error}", "SQL does not run")
        check = validate_sql(sql, db.read_schema())
        if not check.ok:
            raise PairError(f"The SQL fails the schema check: {check.message}", "schema check")
        return Pair(question, sql, db.label)

    def add(self, db: DbRef | Database, question: str, sql: str) -> Saved:
        return self.edit(db, None, question, sql)

    def edit(self, db: DbRef | Database, old_id: str | None, question: str, sql: str) -> Saved:
        """Save the pair (replacing pair ``old_id`` when given) and index it at once."""
        started = time.perf_counter()
        db = open_database(db)
        pair = self.check(db, question, sql)
        replaced = self.book.put(db, [pair], replace_id=old_id)
        gone = [old_id] if old_id else []
        indexed = self._index(db, [pair], gone)
        return Saved(pair, replaced, indexed, time.perf_counter() - started)

    def remove(self, db: DbRef | Database, ids: list[str]) -> list[Pair]:
        """Delete pairs from the file and from the index; returns those that were saved."""
        db = open_database(db)
        removed = self.book.remove(db, ids)
        if ids:
            self.store.remove(db, {"pair_id": {"$in": list(ids)}})
        return removed

    def import_file(self, db: DbRef | Database, path: str | Path) -> ImportReport:
        """Save every usable pair of a ``.json``/``.jsonl``/``.csv`` file; rows of another
        database (Spider's ``db_id``) are left out, bad rows skipped and counted."""
        db = open_database(db)
        started = time.perf_counter()
        rows = read_example_rows(Path(path))
        name = db.label
        if any(isinstance(r, dict) and r.get("db_id") == name for r in rows):
            rows = [r for r in rows if isinstance(r, dict) and r.get("db_id") == name]
        report, skipped, pairs = ImportReport(), Counter(), {}
        for row in rows:
            try:
                q, s = question_and_sql(row) if isinstance(row, dict) else (None, None)
                pair = self.check(db, q or "", s or "")
            except PairError as err:
                skipped[err.reason] += 1
                continue
            if pair.id in pairs:
                skipped["duplicate question"] += 1
            pairs[pair.id] = pair
        replaced = self.book.put(db, list(pairs.values())) if pairs else []
        report.replaced = len({p.id for p in replaced})
        report.added = len(pairs) - report.replaced
        report.skipped = dict(skipped)
        report.indexed = bool(pairs) and self._index(db, list(pairs.values()), [])
        report.seconds = time.perf_counter() - started
        return report

    def export(self, db: DbRef | Database, dest: str | Path) -> int:
        """Write the database's pairs to ``dest`` (``.json``, ``.jsonl`` or ``.csv``)."""
        dest = Path(dest)
        suffix = dest.suffix.lower()
        if suffix not in EXPORT_SUFFIXES:
            raise RagInputError(f"Export to .json, .jsonl or .csv, not {suffix or 'no suffix'}")
        pairs = self.book.pairs(db)
        dest.write_text(dump(pairs, suffix), encoding="utf-8")
        return len(pairs)

    def _index(self, db: DbRef | Database, pairs: list[Pair], gone: list[str]) -> bool:
        """Replace the pairs' documents in the database's index; False when it has none."""
        db = open_database(db)
        # deferred: the embedder's modules (langchain_core: ~400 ms) load only to embed
        from engine.rag.embeddings import get_embeddings

        meta = self.store.info(db)
        if meta is None:
            return False
        if meta.get("embedder") != self.cfg.embedder:
            raise StoreError(f"{db.name} was indexed with another embedder; index it again")
        docs, _ = pair_documents(pairs, db.read_schema(), db.label)
        ids = [d.metadata["pair_id"] for d in docs]
        if not docs and not gone:
            return True
        self.store.remove(db, {"pair_id": {"$in": [*gone, *ids]}})
        if docs:
            embeddings = get_embeddings(self.cfg.embedder)
            self.store.add(db, docs, [f"pair-{i}" for i in ids], embeddings)
        return True
