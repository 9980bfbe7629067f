"""The questions asked on each database, with their SQL, status and time.

One small SQLite file, ``<root>/history.sqlite``; ``root`` is the data folder today and can be
one user's folder later. Newest first; each database keeps its last :data:`KEEP` entries.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

KEEP = 500  # entries per database; older ones are dropped as new ones come
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    db TEXT NOT NULL,          -- the database file's absolute path
    question TEXT NOT NULL,
    sql TEXT NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,      -- "12 row(s)" or the error
    edited INTEGER NOT NULL,   -- 1: SQL the user edited and ran, not the model's answer
    asked_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_db ON entries (db, id);
"""


@dataclass(frozen=True)
class Entry:
    id: int
    question: str
    sql: str
    ok: bool
    detail: str
    edited: bool
    asked_at: float


class QuestionHistory:
    """Questions asked on each database, in ``root/history.sqlite``."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / "history.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=10)
        con.executescript(_SCHEMA)
        return con

    def record(
        self,
        db_path: str | Path,
        question: str,
        sql: str | None,
        ok: bool,
        detail: str,
        *,
        edited: bool = False,
    ) -> int:
        """Add an entry; returns its id."""
        db = _key(db_path)
        with closing(self._connect()) as con, con:
            cur = con.execute(
                "INSERT INTO entries (db, question, sql, ok, detail, edited, asked_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (db, question, sql or "", int(ok), detail, int(edited), time.time()),
            )
            con.execute(
                "DELETE FROM entries WHERE db = ? AND id NOT IN "
                "(SELECT id FROM entries WHERE db = ? ORDER BY id DESC LIMIT ?)",
                (db, db, KEEP),
            )
            return int(cur.lastrowid or 0)

    def recent(self, db_path: str | Path, limit: int = 100) -> list[Entry]:
        """The database's entries, newest first."""
        if not self.path.is_file():
            return []
        with closing(self._connect()) as con:
            rows = con.execute(
                "SELECT id, question, sql, ok, detail, edited, asked_at FROM entries "
                "WHERE db = ? ORDER BY id DESC LIMIT ?",
                (_key(db_path), limit),
            ).fetchall()
        return [Entry(r[0], r[1], r[2], bool(r[3]), r[4], bool(r[5]), r[6]) for r in rows]

    def get(self, entry_id: int) -> Entry | None:
        if not self.path.is_file():
            return None
        with closing(self._connect()) as con:
            r = con.execute(
                "SELECT id, question, sql, ok, detail, edited, asked_at FROM entries WHERE id = ?",
                (entry_id,),
            ).fetchone()
        return Entry(r[0], r[1], r[2], bool(r[3]), r[4], bool(r[5]), r[6]) if r else None

    def clear(self, db_path: str | Path) -> int:
        """Forget the database's entries; returns how many there were."""
        if not self.path.is_file():
            return 0
        with closing(self._connect()) as con, con:
            return con.execute("DELETE FROM entries WHERE db = ?", (_key(db_path),)).rowcount


def _key(db_path: str | Path) -> str:
    return str(Path(db_path).expanduser().resolve())
