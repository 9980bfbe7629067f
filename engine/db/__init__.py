"""Every database the engine can read. :func:`open_database` classifies a reference once (a
SQLite or DuckDB file path, or a SQLAlchemy URL: ``postgresql+psycopg://``,
``mysql+pymysql://``, ``duckdb:///``, ``sqlite:///``; see :mod:`engine.db.url`) into a
:class:`Database` handle that the rest of the program passes on.

One module per engine, each with its read-only layers and their limits in its docstring:
:mod:`engine.db.sqlite`, :mod:`engine.db.postgres`, :mod:`engine.db.mysql`,
:mod:`engine.db.duckdb`; the text-level guard of each dialect is :mod:`engine.db.sql_guard`.

The functions below take a handle or a reference, for callers that have only a string (a
test, a script): ``read_schema(db)`` is ``open_database(db).read_schema()``.
"""

from __future__ import annotations

from engine.db.database import Database, DbRef, open_database
from engine.db.result import DatabaseError, QueryResult
from engine.db.url import DatabaseURLError, is_url, redact
from engine.schema import Schema

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseURLError",
    "DbRef",
    "QueryResult",
    "check_database",
    "is_url",
    "open_database",
    "read_schema",
    "redact",
    "run_readonly",
]


def run_readonly(
    db: DbRef | Database, sql: str, *, timeout_s: float = 5.0, max_rows: int = 1000
) -> QueryResult:
    """One read-only query on any supported database; refusals come back as ``error``."""
    try:
        handle = open_database(db)
    except DatabaseError as err:
        return QueryResult([], [], str(err))
    return handle.run_readonly(sql, timeout_s=timeout_s, max_rows=max_rows)


def read_schema(db: DbRef | Database, *, count_rows: bool = False) -> Schema:
    """The schema of any supported database; raises :class:`DatabaseError` (one line)."""
    return open_database(db).read_schema(count_rows=count_rows)


def check_database(db: DbRef | Database) -> None:
    """Raise :class:`DatabaseError` (one line, no password) unless ``db`` can be read."""
    open_database(db).check()
