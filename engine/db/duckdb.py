"""Read-only queries on a DuckDB file (in-process), layer by layer:

1. Text (:mod:`engine.db.sql_guard`, sqlglot's ``duckdb`` dialect): exactly one query; no write,
   DDL, ``COPY``, ``ATTACH``, ``INSTALL``/``LOAD``, ``SET`` or ``PRAGMA`` node; file readers
   (``read_csv``, ``read_parquet``, ``FROM 'file.csv'``, ...), ``getenv`` and ``query()``
   refused by name.
2. DuckDB's own parser: :meth:`extract_statements` must find exactly one SELECT statement;
   only that statement's text is executed.
3. Connection: ``read_only=True`` (DuckDB refuses every write to the file), external access
   off (no file, network, ``COPY``, ``ATTACH``, extension install or load), extension
   autoload/autoinstall off, the configuration locked so a query cannot turn any of it back
   on; one thread and a memory limit. A workspace (:mod:`engine.db.workspace`) passes
   ``allowed``: its views may read exactly those files, and nothing else can be read.
4. Resources: a timer interrupts the query at the timeout; rows fetched in batches up to the
   cap and the result size cap.
5. Process: :func:`engine.db.run_readonly` calls :func:`run` in a worker of
   :mod:`engine.sandbox`, killed at the time limit (DuckDB checks for an interrupt only
   between steps of a query) and under its address-space limit.

What it does NOT protect against:

- A DuckDB file that another process is writing: opening it read-only fails while a writer
  holds its lock (the message says so).
- CPU up to the time limit, and memory up to ``MEMORY_LIMIT`` (and the worker's limit).
- Reading: every table of the file is readable. Only hand it files the user may see in full.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from engine.db import sql_guard
from engine.db.fetch import (
    TOO_LARGE,
    Deadline,
    ResultTooLarge,
    fetch_rows,
    first_line,
)
from engine.db.result import DatabaseError, QueryResult, timed_out
from engine.db.url import require
from engine.schema import Column, ForeignKey, Schema, Table

MEMORY_LIMIT = "1GB"
CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "threads": 1,
    "max_memory": MEMORY_LIMIT,
    "lock_configuration": True,  # last: a query cannot SET any of the above back
}


def connect(path: Path, allowed: list[str] | None = None) -> Any:
    """A read-only DuckDB connection with external access off and the settings locked.

    ``allowed``: the only files a query may read (a workspace's views read their data files).
    DuckDB takes ``allowed_paths`` only once the database is open, so those connections set
    it first, then turn external access off and lock the configuration, in that order."""
    duckdb = require("duckdb")

    if not path.is_file():
        raise DatabaseError(f"Database not found: {path}")
    config = dict(CONFIG)
    if allowed is not None:
        for late in ("enable_external_access", "lock_configuration"):
            config.pop(late)
    try:
        conn = duckdb.connect(str(path), read_only=True, config=config)
    except duckdb.Error as err:
        text = " ".join(str(err).split())
        if "lock" in text.lower():
            text = "another program has it open for writing; close it first"
        raise DatabaseError(f"Cannot open DuckDB database {path.name}: {text}") from None
    if allowed is not None:
        listed = ", ".join("'" + p.replace("'", "''") + "'" for p in allowed)
        conn.execute(f"SET allowed_paths = [{listed}]")
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
    return conn


def run(
    path: Path, sql: str, timeout_s: float, max_rows: int, allowed: list[str] | None = None
) -> QueryResult:
    statement, refused = sql_guard.check(sql, "duckdb")
    if refused:
        return QueryResult([], [], refused)
    try:
        conn = connect(path, allowed)
    except DatabaseError as err:
        return QueryResult([], [], str(err))
    import duckdb  # optional: the db extra; connect() above said how to install it

    timer = threading.Timer(timeout_s, conn.interrupt)
    deadline = time.monotonic() + timeout_s
    try:
        statements = conn.extract_statements(statement)
        if len(statements) != 1:
            return QueryResult([], [], "Refused: only one SQL statement is allowed")
        if statements[0].type != duckdb.StatementType.SELECT:
            word = str(statements[0].type).rsplit(".", 1)[-1]
            return QueryResult([], [], sql_guard.refusal(word))
        timer.start()
        cursor = conn.execute(statements[0].query)
        columns = [d[0] for d in cursor.description or ()]
        rows, truncated = fetch_rows(cursor, max_rows, deadline)
        return QueryResult(columns, rows, truncated=truncated)
    except ResultTooLarge:
        return QueryResult([], [], TOO_LARGE)
    except (Deadline, duckdb.InterruptException):
        return QueryResult([], [], timed_out(timeout_s))
    except duckdb.PermissionException as err:
        return QueryResult([], [], f"Refused: {_one_line(err)}")
    except duckdb.Error as err:
        return QueryResult([], [], f"Query failed: {_one_line(err)}")
    finally:
        timer.cancel()
        conn.close()


_HERE = "database_name = current_database() AND schema_name = current_schema()"


def read_schema(
    path: Path, *, count_rows: bool = False, allowed: list[str] | None = None
) -> Schema:
    """Tables and views of the file's default schema from DuckDB's own catalog functions
    (``duckdb_tables()``, ``duckdb_columns()``, ``duckdb_constraints()``).

    Not SQLAlchemy's inspector: duckdb-engine 0.17 reflects through PostgreSQL catalog views
    that SQLAlchemy 2.1 queries and DuckDB does not have (``pg_collation``, ``regclass``).
    """
    conn = connect(path, allowed)
    import duckdb  # optional: the db extra; connect() above said how to install it

    try:
        names = conn.execute(
            f"SELECT table_name, comment FROM duckdb_tables() WHERE {_HERE} ORDER BY table_oid"
        ).fetchall()
        names += conn.execute(
            f"SELECT view_name, comment FROM duckdb_views() WHERE NOT internal AND {_HERE} "
            "ORDER BY view_oid"
        ).fetchall()
        columns: dict[str, list[tuple]] = {}
        for row in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, comment FROM duckdb_columns() "
            f"WHERE {_HERE} ORDER BY table_oid, column_index"
        ).fetchall():
            columns.setdefault(row[0], []).append(row[1:])
        pks: dict[str, set[str]] = {}
        fks: dict[str, list[ForeignKey]] = {}
        for table, kind, cols, ref_table, ref_cols in conn.execute(
            "SELECT table_name, constraint_type, constraint_column_names, referenced_table, "
            f"referenced_column_names FROM duckdb_constraints() WHERE {_HERE}"
        ).fetchall():
            if kind == "PRIMARY KEY":
                pks.setdefault(table, set()).update(cols)
            elif kind == "FOREIGN KEY":
                for i, col in enumerate(cols):
                    ref = ref_cols[i] if i < len(ref_cols or []) else None
                    fks.setdefault(table, []).append(ForeignKey(col, ref_table, ref))
        tables = {}
        for name, comment in names:
            cols = [
                Column(c, t, c in pks.get(name, ()), not nullable, note or None)
                for c, t, nullable, note in columns.get(name, [])
            ]
            rows = None
            if count_rows:
                quoted = '"' + name.replace('"', '""') + '"'
                rows = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
            tables[name] = Table(name, cols, fks.get(name, []), rows, comment or None)
    except duckdb.Error as err:
        raise DatabaseError(f"Cannot read {path.name}: {_one_line(err)}") from None
    finally:
        conn.close()
    return Schema(tables=tables, dialect="duckdb")


def _one_line(err: BaseException) -> str:
    """DuckDB's first error line with its runs of spaces closed up."""
    return " ".join(first_line(err).split())
