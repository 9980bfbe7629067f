"""The Chroma store: embedded (a folder) or a Chroma server, one collection per database.

A collection's name is the database file's stem plus a hash of its absolute path, so two
databases never share one, and re-indexing a database replaces its collection: documents
are written to a fresh collection that takes the old one's place only once complete, so an
interrupted index leaves the previous one intact.

An embedded store folder carries a format marker. A folder without one (another program's,
or an older layout), of another format, or that Chroma cannot open is reported with a clear
message and left alone; ``rebuild=True`` (``--rebuild``) moves it aside, never deletes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.db import Database, DbRef, open_database
from engine.rag.config import RagConfig

log = logging.getLogger(__name__)

FORMAT = 1
MARKER = "text2sql-store.json"
_HNSW = {"hnsw": {"space": "cosine"}}  # relevance = 1 - cosine distance = cosine similarity
_BATCH = 64
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


_OPENING = threading.Lock()  # see VectorStore._open_folder


class StoreError(RuntimeError):
    """The vector store cannot be used; the message says why and what to do."""


def collection_name(db: DbRef | Database) -> str:
    """``<stem>-<10 hex of the absolute path's sha1>``: valid for Chroma, unique per file
    (a database URL: its database name and the URL without a password)."""
    db = open_database(db)
    key, stem = _db_key(db)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:40] or "db"
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return f"{stem}-{digest}"


def _db_key(db: Database) -> tuple[str, str]:
    if db.url is not None:
        return db.public, db.label
    path = db.file().expanduser().resolve()
    return str(path), db.label if db.workspace is not None else path.stem


def _settings() -> Any:
    from chromadb.config import Settings  # deferred: chromadb takes 1-2 s to import

    return Settings(anonymized_telemetry=False)


class VectorStore:
    """A Chroma client plus the per-database collection rules of this project."""

    def __init__(self, cfg: RagConfig, *, rebuild: bool = False) -> None:
        self.cfg = cfg
        self.location = cfg.location()
        self.client = self._connect_server() if cfg.chroma_host else self._open_folder(rebuild)

    # --- opening ----------------------------------------------------------------------------

    def _connect_server(self) -> Any:
        import chromadb  # deferred: chromadb takes 1-2 s to import

        try:
            client = chromadb.HttpClient(
                host=self.cfg.chroma_host, port=self.cfg.chroma_port, settings=_settings()
            )
            client.heartbeat()
        except Exception as err:
            raise StoreError(f"Cannot reach the {self.location}: {_first_line(err)}") from err
        return client

    def _open_folder(self, rebuild: bool) -> Any:
        import chromadb  # deferred: chromadb takes 1-2 s to import

        # chromadb shares one started system per folder between its clients, and a fresh
        # folder gets its marker: two threads opening one folder at once saw a half-written
        # marker ("damaged") or a half-started system ("'RustBindingsAPI' object has no
        # attribute 'bindings'": the app's page load beside a save of a pair).
        with _OPENING:
            path = self.cfg.store_path()
            if rebuild:
                self._move_aside(path)
            else:
                self._check_folder(path)
            fresh = not path.exists() or not any(path.iterdir())
            try:
                path.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(path=str(path), settings=_settings())
                client.list_collections()
            except Exception as err:
                raise StoreError(
                    f"The vector store at {path} cannot be opened ({_first_line(err)}). "
                    "Rebuild it with: python -m engine index --db DB --rebuild "
                    "(the old folder is moved aside, not deleted)"
                ) from err
            if fresh:  # written aside, then renamed: a reader never sees it half-written
                marker = path / f".{MARKER}.{os.getpid()}.tmp"
                marker.write_text(json.dumps({"format": FORMAT, "chromadb": _chroma_v()}))
                marker.replace(path / MARKER)
            return client

    @staticmethod
    def _check_folder(path: Path) -> None:
        if path.exists() and not path.is_dir():
            raise StoreError(f"Vector store path {path} is a file, not a folder")
        if not path.is_dir() or not any(path.iterdir()):
            return
        marker = path / MARKER
        hint = "Rebuild it with --rebuild (the old folder is moved aside, not deleted)"
        if not marker.is_file():
            raise StoreError(
                f"{path} is not a text2sql vector store (no {MARKER}): it is another "
                f"program's folder or from an older version. {hint}"
            )
        try:
            found = json.loads(marker.read_text()).get("format")
        except (OSError, ValueError, AttributeError) as err:
            raise StoreError(f"The marker {marker} is damaged. {hint}") from err
        if found != FORMAT:
            raise StoreError(
                f"The vector store at {path} has format {found}; this version reads format "
                f"{FORMAT}. {hint}"
            )

    @staticmethod
    def _move_aside(path: Path) -> None:
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            return
        # deferred: chromadb takes 1-2 s to import
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient.clear_system_cache()  # forget clients open on the old folder
        backup = path.with_name(f"{path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        path.rename(backup)
        log.warning("Moved the old vector store to %s; building a new one at %s", backup, path)

    # --- collections ------------------------------------------------------------------------

    def info(self, db: DbRef | Database) -> dict[str, Any] | None:
        """The collection's metadata, or None when the database has no index yet."""
        name = collection_name(db)
        try:
            # embedding_function=None: never Chroma's default one (it downloads a model)
            collection = self.client.get_collection(name, embedding_function=None)
            return dict(collection.metadata or {})
        except Exception as err:
            if "does not exist" in str(err) or type(err).__name__ == "NotFoundError":
                return None
            raise StoreError(f"Cannot read index {name} in {self.location}: {err}") from err

    def open(self, db: DbRef | Database, embeddings: Any) -> Any:
        """The LangChain ``Chroma`` vector store over an existing collection."""
        db = open_database(db)
        from langchain_chroma import Chroma  # deferred: chromadb takes 1-2 s to import

        meta = self.info(db)
        if meta is None:
            raise StoreError(f"{db.name} has no index in {self.location}")
        if meta.get("text2sql_format") != FORMAT:
            raise StoreError(
                f"The index of {db.name} has another format; run "
                f"python -m engine index --db {db} to rebuild it"
            )
        return Chroma(
            client=self.client,
            collection_name=collection_name(db),
            embedding_function=embeddings,
            create_collection_if_not_exists=False,
        )

    def replace(
        self,
        db: DbRef | Database,
        docs: list[Any],
        embeddings: Any,
        metadata: dict[str, Any],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Write ``docs`` as the database's whole index, replacing any previous one."""
        db = open_database(db)
        from langchain_chroma import Chroma  # deferred: chromadb takes 1-2 s to import

        name = collection_name(db)
        staging = f"{name}-new"
        self._drop(staging)  # left over from an interrupted run
        meta = {**metadata, "text2sql_format": FORMAT, "db_path": _db_key(db)[0]}
        vs = Chroma(
            client=self.client,
            collection_name=staging,
            embedding_function=embeddings,
            collection_metadata=meta,
            collection_configuration=_HNSW,  # type: ignore[arg-type]
        )
        add_in_batches(vs, docs, progress)
        self._drop(name)
        vs._collection.modify(name=name)
        self._sweep_orphan_segments()

    def replace_kind(
        self, db: DbRef | Database, kind: str, docs: list[Any], embeddings: Any, **meta: Any
    ) -> None:
        """Swap one kind of document in place (used to refresh tables after a schema change)."""
        vs = self.open(db, embeddings)
        vs._collection.delete(where={"kind": kind})
        add_in_batches(vs, docs, None, prefix=f"{kind}-{int(time.time())}")
        collection = vs._collection
        collection.modify(metadata={**(collection.metadata or {}), **meta})

    def add(self, db: DbRef | Database, docs: list[Any], ids: list[str], embeddings: Any) -> None:
        """Embed and add ``docs`` to the database's existing index, no re-index; a document
        whose id is already there is replaced."""
        vs = self.open(db, embeddings)
        vs._collection.delete(ids=ids)
        vs.add_documents(docs, ids=ids)

    def remove(self, db: DbRef | Database, where: dict[str, Any]) -> None:
        """Delete the documents of the database's index whose metadata match ``where``
        (a no-op when the database has no index)."""
        if self.info(db) is None:
            return
        name = collection_name(db)
        self.client.get_collection(name, embedding_function=None).delete(where=where)

    def delete(self, db: DbRef | Database) -> None:
        self._drop(collection_name(db))

    def _sweep_orphan_segments(self) -> None:
        """Remove vector folders of collections we deleted.

        Chroma 1.5 deletes a collection's rows but leaves its HNSW folder behind
        (chroma-core/chroma#5520), so every re-index would grow the store. Only folders
        named by a segment id that Chroma's own catalogue no longer lists are removed.
        """
        if self.cfg.chroma_host:
            return  # the server manages its own disk
        path = self.cfg.store_path()
        try:
            con = sqlite3.connect(f"file:{path / 'chroma.sqlite3'}?mode=ro", uri=True)
            try:
                live = {row[0] for row in con.execute("SELECT id FROM segments")}
            finally:
                con.close()
        except sqlite3.Error as err:
            log.debug("not sweeping %s: %s", path, err)
            return
        for child in path.iterdir():
            if child.is_dir() and _UUID.fullmatch(child.name) and child.name not in live:
                shutil.rmtree(child, ignore_errors=True)

    def _drop(self, name: str) -> None:
        try:
            self.client.delete_collection(name)
        except Exception as err:
            if "does not exist" not in str(err) and type(err).__name__ != "NotFoundError":
                raise


def add_in_batches(
    vs: Any,
    docs: list[Any],
    progress: Callable[[int, int], None] | None,
    prefix: str = "d",
) -> None:
    """Embed and add documents, ``_BATCH`` at a time, reporting (done, total)."""
    total = len(docs)
    for start in range(0, total, _BATCH):
        batch = docs[start : start + _BATCH]
        vs.add_documents(batch, ids=[f"{prefix}{start + i}" for i in range(len(batch))])
        if progress is not None:
            progress(start + len(batch), total)


def _chroma_v() -> str:
    import chromadb  # deferred: chromadb takes 1-2 s to import

    return chromadb.__version__


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
