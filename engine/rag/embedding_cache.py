"""Document embeddings kept on disk: a text is embedded once per machine and embedder.

Indexing embeds the same texts again and again: a sample database in every data folder
(each user's, each test's), the databases of a training run's served prompts, an index
rebuilt after a crash. LangChain's ``CacheBackedEmbeddings`` looks each document up first
and embeds only the texts it has not seen; this module gives it a store that several
processes can share (the app, its training and evaluation children): one SQLite file,
written in transactions, so a process killed mid-write leaves no half-written vector.
Queries are not cached: they are embedded once and rarely repeat.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from langchain_core.stores import ByteStore

CACHE_FILE = "embeddings.sqlite"


class SqliteByteStore(ByteStore):
    """A key -> bytes store in one SQLite file (WAL: readers never wait for a writer)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB)")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction on a connection of its own (the store is used from Gradio's worker
        threads too), closed afterwards."""
        con = sqlite3.connect(self.path, timeout=30)
        try:
            with con:  # commits, or rolls back on an error
                yield con
        finally:
            con.close()

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        with self._connect() as con:
            for start in range(0, len(keys), 500):  # SQLite's bound on parameters
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, value FROM kv WHERE key IN ({marks})"
                found.update(con.execute(query, chunk).fetchall())
        return [found.get(key) for key in keys]

    def mset(self, key_value_pairs: Sequence[tuple[str, bytes]]) -> None:
        with self._connect() as con:  # one transaction: all of the pairs or none
            con.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", key_value_pairs)

    def mdelete(self, keys: Sequence[str]) -> None:
        with self._connect() as con:
            con.executemany("DELETE FROM kv WHERE key = ?", [(key,) for key in keys])

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        with self._connect() as con:
            rows = con.execute("SELECT key FROM kv").fetchall()
        yield from (key for (key,) in rows if prefix is None or key.startswith(prefix))


def cached_embeddings(embeddings: Any, namespace: str, folder: Path) -> Any:
    """``embeddings`` with its document vectors looked up in ``folder``/embeddings.sqlite
    first; ``namespace`` names the model, so two embedders never share a vector."""
    # deferred: langchain_classic adds ~650 ms to langchain_core; only embedding needs it
    from langchain_classic.embeddings import CacheBackedEmbeddings

    return CacheBackedEmbeddings.from_bytes_store(
        embeddings,
        SqliteByteStore(folder / CACHE_FILE),
        namespace=namespace,
        key_encoder="sha256",
    )
