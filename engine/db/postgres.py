"""Read-only queries on PostgreSQL (psycopg 3), layer by layer:

1. Text (:mod:`engine.db.sql_guard`, sqlglot's ``postgres`` dialect): exactly one query; no
   write or DDL node anywhere in it; no ``SELECT ... INTO``, no ``FOR UPDATE``; functions with
   effects outside the transaction or that run SQL given as text refused by name
   (``pg_*`` except ``pg_typeof``/``pg_size_pretty``, ``lo_*``, ``dblink*``, ``set_config``,
   ``nextval``/``setval``, ``query_to_xml`` and friends, ``ts_stat``, ...).
2. Protocol: the query runs as ``DECLARE ... CURSOR FOR <query>`` sent with the extended
   query protocol, which carries one statement per message, and ``DECLARE`` accepts only a
   SELECT or VALUES (no data-modifying ``WITH`` either). Rows come in batches up to the cap.
3. Transaction: the session starts with ``default_transaction_read_only=on``, the query runs
   in a transaction opened ``READ ONLY`` with ``statement_timeout``, ``lock_timeout`` and
   ``idle_in_transaction_session_timeout`` set locally, and that transaction is always rolled
   back.

What it does NOT protect against:

- The role's own rights. A read-only transaction stops writes to tables, sequences and large
  objects, but functions defined in the database run with their owner's rights (a
  ``SECURITY DEFINER`` function can do what its owner can, dblink included), and every table
  the role can read is readable. Connect as a role that may only read what the user may see:
  ``GRANT pg_read_all_data`` or per-table ``SELECT`` grants, nothing more
  (:func:`role_can_write` tells the app whether it can write).
- CPU and memory up to the timeout on the server; the timeout is per statement (each fetch of
  a batch counts as one) plus a wall-clock check between batches.
- Extensions' functions beyond the named ones: a function an extension adds that writes
  files or reaches the network is only stopped by the read-only transaction and the role.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from engine.db.database import Database

CONNECT_TIMEOUT_S = 10


def connect(db: Database, timeout_s: float) -> Any:
    """A psycopg connection whose every transaction is read-only and time-limited."""
    psycopg = require("psycopg")
    from sqlalchemy import create_engine  # optional: the db extra, as psycopg above

    url = db.connect_url()
    _, kwargs = create_engine(url).dialect.create_connect_args(url)
    kwargs.pop("context", None)  # SQLAlchemy's own type adapters: not wanted here
    ms = max(1, int(timeout_s * 1000))
    kwargs["options"] = (
        f"-c default_transaction_read_only=on -c statement_timeout={ms} "
        f"-c lock_timeout={ms} -c idle_in_transaction_session_timeout={ms + 5000}"
    )
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    kwargs["application_name"] = "text2sql-workbench"
    try:
        conn = psycopg.connect(autocommit=False, **kwargs)
    except psycopg.Error as err:
        raise DatabaseError(f"Cannot connect to {db}: {db.scrub(first_line(err))}") from None
    conn.read_only = True  # psycopg opens each transaction with BEGIN READ ONLY
    return conn


def run(db: Database, sql: str, timeout_s: float, max_rows: int) -> QueryResult:
    statement, refused = sql_guard.check(sql, "postgres")
    if refused:
        return QueryResult([], [], refused)
    try:
        conn = connect(db, timeout_s)
    except DatabaseError as err:
        return QueryResult([], [], str(err))
    # optional: the db extra; connect() above said how to install it
    import psycopg
    from psycopg import errors

    deadline = time.monotonic() + timeout_s
    try:
        ms = max(1, int(timeout_s * 1000))
        conn.execute(f"SET LOCAL statement_timeout = {ms}")
        conn.execute(f"SET LOCAL lock_timeout = {ms}")
        with conn.cursor(name="text2sql_query") as cursor:
            cursor.execute(statement)
            columns = [d.name for d in cursor.description or ()]
            rows, truncated = fetch_rows(cursor, max_rows, deadline)
        return QueryResult(columns, rows, truncated=truncated)
    except ResultTooLarge:
        return QueryResult([], [], TOO_LARGE)
    except (Deadline, errors.QueryCanceled):
        return QueryResult([], [], timed_out(timeout_s))
    except errors.ReadOnlySqlTransaction:
        return QueryResult([], [], sql_guard.refusal("the transaction is read-only"))
    except psycopg.Error as err:
        return QueryResult([], [], db.scrub(f"Query failed: {first_line(err)}"))
    finally:
        _close(conn)


def role_can_write(db: Database) -> bool:
    """Whether the connected role could write somewhere (superuser, or INSERT/UPDATE/DELETE
    on some table of the database): the app warns then."""
    conn = connect(db, 10.0)
    try:
        row = conn.execute(
            "SELECT rolsuper OR EXISTS (SELECT 1 FROM information_schema.table_privileges "
            "WHERE grantee IN (SELECT current_user UNION SELECT 'PUBLIC') AND privilege_type "
            "IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE') "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')) "
            "OR pg_has_role(current_user, 'pg_write_all_data', 'member') FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
        return bool(row and row[0])
    finally:
        _close(conn)


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.rollback()
    conn.close()
