"""Read-only queries on MySQL and MariaDB (PyMySQL), layer by layer:

1. Text (:mod:`engine.db.sql_guard`, sqlglot's ``mysql`` dialect): exactly one query; no write
   or DDL node; no ``SELECT ... INTO`` (``OUTFILE``/``DUMPFILE``/variables), no row locks;
   ``LOAD_FILE``, ``SLEEP``, ``BENCHMARK``, ``GET_LOCK`` and similar refused by name;
   executable comments (``/*! */``, ``/*M! */``) and optimizer hints (``/*+ */``) refused,
   because the server runs what a parser reads as a comment.
2. Protocol: the connection is opened without ``CLIENT_MULTI_STATEMENTS``, so the server
   itself refuses a second statement in the query text.
3. Session and transaction: ``SET SESSION TRANSACTION READ ONLY`` and then
   ``START TRANSACTION READ ONLY``, never committed (rolled back, or the connection closed);
   a server-side time limit (``max_statement_time`` on MariaDB, ``MAX_EXECUTION_TIME`` on
   MySQL) plus the client's read timeout and a wall-clock check between batches; rows read
   unbuffered, in batches, up to the cap.

What it does NOT protect against:

- The account's own rights. DDL (``DROP TABLE``) commits implicitly in MySQL and is not
  stopped by a read-only transaction on every server version: only layer 1 and the account
  stop it. Connect as an account with ``SELECT`` grants only (:func:`account_can_write`).
- Stored functions in the database run with their definer's rights.
- CPU and memory on the server up to the time limit; ``MAX_EXECUTION_TIME`` (MySQL) covers
  SELECT statements only, which is all that gets through layer 1.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from engine.db import sql_guard
from engine.db.fetch import TOO_LARGE, Deadline, ResultTooLarge, fetch_rows
from engine.db.result import DatabaseError, QueryResult, timed_out
from engine.db.url import require

if TYPE_CHECKING:
    from engine.db.database import Database

CONNECT_TIMEOUT_S = 10
_TIMEOUT_CODES = {1317, 1969, 3024}  # interrupted, max_statement_time, MAX_EXECUTION_TIME
_READ_ONLY_CODES = {1792, 1290}  # read-only transaction, --read-only server


def connect(db: Database, timeout_s: float) -> Any:
    """A PyMySQL connection in a read-only, time-limited transaction (unbuffered cursors)."""
    pymysql = require("pymysql")
    # optional: the db extra; require() above said how to install it
    from pymysql.constants import CLIENT
    from sqlalchemy import create_engine

    url = db.connect_url()
    _, kwargs = create_engine(url).dialect.create_connect_args(url)
    kwargs["client_flag"] = int(kwargs.get("client_flag", 0)) & ~CLIENT.MULTI_STATEMENTS
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    kwargs["read_timeout"] = int(timeout_s) + 5  # a backstop: the server limit comes first
    kwargs["cursorclass"] = pymysql.cursors.SSCursor
    kwargs.setdefault("charset", "utf8mb4")
    try:
        conn = pymysql.connect(autocommit=False, **kwargs)
    except pymysql.Error as err:
        raise DatabaseError(f"Cannot connect to {db}: {db.scrub(_message(err))}") from None
    try:
        with conn.cursor(pymysql.cursors.Cursor) as cur:  # buffered: setup reads no rows
            if "mariadb" in conn.get_server_info().lower():
                cur.execute(f"SET SESSION max_statement_time = {max(0.001, timeout_s):.3f}")
            else:
                cur.execute(f"SET SESSION MAX_EXECUTION_TIME = {max(1, int(timeout_s * 1000))}")
            cur.execute("SET SESSION TRANSACTION READ ONLY")
            cur.execute("START TRANSACTION READ ONLY")
    except pymysql.Error as err:
        conn.close()
        raise DatabaseError(
            f"Cannot prepare a read-only session: {db.scrub(_message(err))}"
        ) from None
    return conn


def run(db: Database, sql: str, timeout_s: float, max_rows: int) -> QueryResult:
    statement, refused = sql_guard.check(sql, "mysql")
    if refused:
        return QueryResult([], [], refused)
    try:
        conn = connect(db, timeout_s)
    except DatabaseError as err:
        return QueryResult([], [], str(err))
    import pymysql  # optional: the db extra; connect() above said how to install it

    deadline = time.monotonic() + timeout_s
    finished = False
    cursor = conn.cursor()
    try:
        cursor.execute(statement)
        columns = [d[0] for d in cursor.description or ()]
        rows, truncated = fetch_rows(cursor, max_rows, deadline)
        finished = not truncated
        return QueryResult(columns, rows, truncated=truncated)
    except ResultTooLarge:
        return QueryResult([], [], TOO_LARGE)
    except Deadline:
        return QueryResult([], [], timed_out(timeout_s))
    except pymysql.Error as err:
        code = err.args[0] if err.args and isinstance(err.args[0], int) else None
        if code in _TIMEOUT_CODES or (
            isinstance(err, pymysql.err.OperationalError) and code == 2013
        ):
            return QueryResult([], [], timed_out(timeout_s))
        if code in _READ_ONLY_CODES:
            return QueryResult([], [], sql_guard.refusal("the transaction is read-only"))
        return QueryResult([], [], db.scrub(f"Query failed: {_message(err)}"))
    finally:
        if finished:
            with contextlib.suppress(Exception):
                conn.rollback()
        else:
            _abandon_rows(cursor)
        conn.close()  # the server rolls back whatever is still open


def _abandon_rows(cursor: Any) -> None:
    """PyMySQL would read every unread row of an unbuffered result before closing it (and
    fails noisily later if the connection is gone first); the connection is closed instead,
    which makes the server stop sending."""
    result = getattr(cursor, "_result", None)
    if result is not None:
        result.unbuffered_active = False


def account_can_write(db: Database) -> bool:
    """Whether the account holds any privilege beyond reading (the app warns then)."""
    import pymysql  # optional: the db extra; connect() above said how to install it

    conn = connect(db, 10.0)
    try:
        with conn.cursor(pymysql.cursors.Cursor) as cur:
            cur.execute("SHOW GRANTS")
            grants = " ".join(str(r[0]).upper() for r in cur.fetchall())
    finally:
        conn.close()
    writes = ("ALL PRIVILEGES", "INSERT", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER", "FILE")
    return any(w in grants for w in writes)


def _message(err: BaseException) -> str:
    args = getattr(err, "args", ())
    text = str(args[1]) if len(args) > 1 else str(err)
    return " ".join(text.split()) or type(err).__name__
