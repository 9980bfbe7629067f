"""Every database the engine can read, behind four functions that take a reference to it:
a SQLite or DuckDB file path, or a SQLAlchemy URL (``postgresql+psycopg://``,
``mysql+pymysql://``, ``duckdb:///``, ``sqlite:///``); see :mod:`engine.db.url`.

- :func:`run_readonly`: one read-only query, a :class:`QueryResult`, never raises for bad SQL;
- :func:`read_schema`: the :class:`engine.schema.Schema` (its ``dialect`` says which SQL);
- :func:`check_database`: raise :class:`DatabaseError` (one line) unless it can be read;
- :func:`dialect`, :func:`label`, :func:`as_db`: what it is, what to call it, how to keep it.

SQLite goes to :mod:`engine.executor` and :mod:`engine.schema` unchanged; each other engine
has its own module with its read-only layers and their limits in the docstring
(:mod:`engine.db.postgres`, :mod:`engine.db.mysql`, :mod:`engine.db.duckdb`).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.db.url import DatabaseURLError, file_path, is_url, kind, redact
from engine.db.url import label as _label
from engine.executor import DatabaseError, QueryResult
from engine.schema import Schema

Db = str | os.PathLike[str]  # a file path or a URL

__all__ = [
    "DatabaseError",
    "Db",
    "QueryResult",
    "as_db",
    "check_database",
    "dialect",
    "display_name",
    "is_url",
    "label",
    "read_schema",
    "redact",
    "run_readonly",
]


def as_db(db: Db) -> Path | str:
    """A file stays a :class:`Path`, a URL stays a string (``Path()`` would mangle it)."""
    return db if is_url(db) else Path(db)  # type: ignore[return-value]


def dialect(db: Db) -> str:
    """sqlglot's name for the database's SQL: ``sqlite``, ``postgres``, ``mysql``, ``duckdb``."""
    try:
        return kind(db)
    except DatabaseURLError:
        return "sqlite"


def label(db: Db) -> str:
    """A short name for messages and indexes: a file's stem, a URL's database name."""
    return _label(db)


def display_name(db: Db) -> str:
    """What messages call it: a file's name (``shop.sqlite``), a URL's database name."""
    return _label(db) if is_url(db) else Path(db).name


def _sqlite_file(db: Db) -> Path | None:
    """The SQLite file ``db`` refers to, or None for any other engine."""
    if kind(db) != "sqlite":
        return None
    return file_path(db)


def run_readonly(db: Db, sql: str, *, timeout_s: float = 5.0, max_rows: int = 1000) -> QueryResult:
    """Run one read-only query on any supported database; refusals come back as ``error``."""
    import time

    from engine import executor

    if timeout_s <= 0 or max_rows < 0:
        raise ValueError("timeout_s must be > 0 and max_rows >= 0")
    try:
        which = kind(db)
        path = _sqlite_file(db) if which == "sqlite" else None
    except DatabaseURLError as err:
        return QueryResult([], [], str(err))
    if path is not None:
        return executor.run_readonly(path, sql, timeout_s=timeout_s, max_rows=max_rows)
    start = time.monotonic()
    if which == "duckdb":
        result = _run_duckdb_isolated(file_path(db) or Path(""), sql, timeout_s, max_rows)
    elif which == "postgres":
        from engine.db import postgres

        result = postgres.run(str(db), sql, timeout_s, max_rows)
    else:
        from engine.db import mysql

        result = mysql.run(str(db), sql, timeout_s, max_rows)
    result.elapsed_s = time.monotonic() - start
    return result


def _run_duckdb_isolated(path: Path, sql: str, timeout_s: float, max_rows: int) -> QueryResult:
    """DuckDB runs in this process's library: in a worker of :mod:`engine.sandbox`, as SQLite
    queries do, it is killed at the time limit even inside one long step, and its memory is
    bounded by the worker's address-space limit."""
    from engine.sandbox import Stopped, default_sandbox

    args = (path, sql, timeout_s, max_rows)
    try:
        return default_sandbox().call("engine.db.duckdb:run", args, timeout_s)
    except Stopped as err:
        return QueryResult([], [], str(err))
    except RuntimeError as err:  # the worker failed outside the query
        return QueryResult([], [], "Query failed: " + " ".join(str(err).split())[:300])


def read_schema(db: Db, *, count_rows: bool = False) -> Schema:
    """The schema of any supported database; raises :class:`DatabaseError` (one line)."""
    from engine import schema

    path = _sqlite_file(db)
    if path is not None:
        return schema.read_schema(path, count_rows=count_rows)
    from engine.db import inspect

    return inspect.read_schema(db, count_rows=count_rows)


def check_database(db: Db) -> None:
    """Raise :class:`DatabaseError` (one line, no password) unless ``db`` can be read."""
    from engine import executor

    path = _sqlite_file(db)
    if path is not None:
        executor.check_database(path)
        return
    from engine.db import inspect

    inspect.check(db)


def role_can_write(db: Db) -> bool | None:
    """Whether the account connected to a server could write (None: not a server)."""
    which = dialect(db)
    if which == "postgres":
        from engine.db import postgres

        return postgres.role_can_write(str(db))
    if which == "mysql":
        from engine.db import mysql

        return mysql.account_can_write(str(db))
    return None
