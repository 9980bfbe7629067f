"""SQLite: the schema of a file (:func:`read_schema`) and safe execution of model-generated SQL
on it, a sibling of :mod:`engine.db.postgres`, :mod:`engine.db.mysql` and :mod:`engine.db.duckdb`.

``run_readonly(path, sql)`` runs ONE read-only statement and returns a :class:`QueryResult`;
it never raises for bad SQL. Layers, each of which stops most attacks on its own:

1. Text (:mod:`engine.db.sqlite_statement`): exactly one statement (quotes and comments
   respected), whose first keyword is SELECT, WITH, VALUES, PRAGMA or EXPLAIN. Only that
   statement's text reaches SQLite.
2. Connection: URI ``mode=ro&immutable=1`` (SQLite never writes or locks the file and never
   creates -journal/-wal/-shm files), ``PRAGMA query_only``, extension loading off,
   ``SQLITE_LIMIT_ATTACHED=0`` (this also stops VACUUM and VACUUM INTO, which the
   authorizer is never asked about).
3. Authorizer: allows SELECT, READ, RECURSIVE, functions outside a denylist and a few
   introspection PRAGMAs; denies writes, DDL (temp objects too), ATTACH/DETACH,
   transactions and savepoints, every other PRAGMA, REINDEX, ANALYZE, virtual-table DDL.
4. Resources: wall-clock timeout (progress handler), row cap, caps on each string/blob
   (randomblob, zeroblob, replace, printf, group_concat), on the fetched result, on the SQL
   text and on LIKE/GLOB patterns.
5. Process (``isolated=True``, the default): the query runs in a worker process of
   :mod:`engine.sandbox`, killed at the time limit even inside one long function call
   (printf('%.*c', 2e9, 'x'): seconds in one VM step, which the progress handler never
   interrupts), with SQLite's heap capped (``sandbox.MEMORY_LIMIT_MB``) and an address-space
   limit on the worker: "Query stopped after 10 s", "it used more than 256 MB of memory".

What it does NOT protect against:

- CPU use up to the timeout (and, with ``isolated=False``, past it: one function call runs
  to its end, and instr/replace/LIKE/GLOB on values near the caps are quadratic).
- Disk used by SQLite's temporary files for big sorts within the time limit.
- Reading: every table of the given database is readable (also sqlite_master and dbstat).
  Only hand it databases the user may see in full.
- Timing and other side channels, and bugs in SQLite or Python's sqlite3 module.
- A database that another process changes while it is read: ``immutable=1`` assumes it
  does not, so results may be wrong or report corruption. A WAL database whose -wal file
  still holds changes, or one with a hot journal, is refused rather than read stale.
- Existing values larger than ``MAX_VALUE_BYTES`` cannot be selected at all.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

from engine.db.result import (
    MAX_RESULT_BYTES,
    MAX_VALUE_BYTES,
    DatabaseError,
    QueryResult,
    one_line,
    timed_out,
)
from engine.db.sqlite_statement import MAX_SQL_CHARS, precheck, refusal
from engine.sandbox import Stopped, default_sandbox
from engine.schema import Column, ForeignKey, Schema, Table, quote

MAX_LIKE_PATTERN = 1_000  # LIKE/GLOB cost grows with value length x pattern length
_PROGRESS_OPCODES = 1_000  # how often (in VM steps) the timeout is checked

_HEADER = b"SQLite format 3\x00"
_JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")
# fmt: off
READONLY_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
    "foreign_key_list",
})
# fmt: on
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master"})
# What a denied authorizer action is called in messages; the first-keyword check already
# names DDL, so anything else is just "a schema change".
_ACTIONS = {
    sqlite3.SQLITE_INSERT: "INSERT",
    sqlite3.SQLITE_UPDATE: "UPDATE",
    sqlite3.SQLITE_DELETE: "DELETE",
    sqlite3.SQLITE_ATTACH: "ATTACH",
    sqlite3.SQLITE_DETACH: "DETACH",
}


# --- connection ----------------------------------------------------------------------------


class _Authorizer:
    """Allow-list authorizer; remembers why it first said no, for a one-line message."""

    def __init__(self) -> None:
        self.refusal: str | None = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, *_: str | None) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in _DENIED_FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READONLY_PRAGMAS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 in _SCHEMA_TABLES:
            # SQLite asks this while setting up eponymous virtual tables (json_each,
            # pragma_table_info). IGNORE makes such a column write a no-op; a real
            # UPDATE of the schema is still refused by SQLite and by the read-only file.
            return sqlite3.SQLITE_IGNORE
        if self.refusal is None:
            self.refusal = self._describe(action, arg1, arg2)
        return sqlite3.SQLITE_DENY

    @staticmethod
    def _describe(action: int, arg1: str | None, arg2: str | None) -> str:
        if action == sqlite3.SQLITE_FUNCTION:
            return f"Refused: function {arg2}() is not allowed"
        if action == sqlite3.SQLITE_PRAGMA:
            allowed = ", ".join(sorted(READONLY_PRAGMAS))
            return f"Refused: PRAGMA {arg1} is not allowed (read-only PRAGMAs: {allowed})"
        if action == sqlite3.SQLITE_TRANSACTION:
            return refusal(arg1 or "BEGIN")
        if action == sqlite3.SQLITE_SAVEPOINT:
            return refusal("SAVEPOINT")
        return refusal(_ACTIONS.get(action, "a schema change"))


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


def _validate_file(db_path: str | os.PathLike[str]) -> Path:
    path = Path(db_path)
    wal, journal = Path(f"{path}-wal"), Path(f"{path}-journal")
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DatabaseError(f"Not a regular file: {path}")
        header = _head(path, 100)
        wal_size = wal.stat().st_size if wal.is_file() else 0
        hot_journal = journal.is_file() and _head(journal, 8) == _JOURNAL_MAGIC
    except FileNotFoundError:
        raise DatabaseError(f"Database not found: {path}") from None
    except OSError as exc:
        raise DatabaseError(f"Cannot read database {path}: {exc.strerror}") from None
    if not header.startswith(_HEADER):
        raise DatabaseError(f"Not a SQLite database: {path} (no 'SQLite format 3' header)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = len(header) == 100 and header[24:28] == header[92:96] and pages > 0
    expected = pages * page_size if valid else page_size
    if info.st_size < expected:
        raise DatabaseError(
            f"Truncated SQLite database: {path} ({info.st_size} of {expected} bytes)"
        )
    # immutable=1 would silently skip these instead of applying or rolling them back.
    if wal_size:
        raise DatabaseError(
            f"Database {path} has changes not yet checkpointed in {wal.name}: close the program "
            "writing it, or run PRAGMA wal_checkpoint(TRUNCATE) on it"
        )
    if hot_journal:
        raise DatabaseError(
            f"Database {path} has an unfinished transaction in {journal.name}: "
            "open it once with a normal SQLite client to recover it"
        )
    return path


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _connect(
    db_path: str | os.PathLike[str], timeout_s: float | None
) -> tuple[sqlite3.Connection, _Authorizer]:
    path = _validate_file(db_path)
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, timeout=5.0 if timeout_s is None else timeout_s
        )
    except sqlite3.Error as exc:
        raise DatabaseError(f"Cannot open database {path}: {exc}") from None
    try:
        if hasattr(conn, "enable_load_extension"):
            conn.enable_load_extension(False)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_LIKE_PATTERN)
        conn.setlimit(sqlite3.SQLITE_LIMIT_WORKER_THREADS, 0)
        # trusted_schema stays ON: OFF breaks views that call JSON functions (SQLite 3.40),
        # the authorizer already vets every function a view calls, and load_extension and
        # fts3_tokenizer are direct-only.
        conn.execute("PRAGMA query_only = ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # parses the schema
    except sqlite3.Error as exc:
        conn.close()
        raise DatabaseError(f"Unreadable SQLite database {path}: {exc}") from None
    conn.text_factory = _decode
    authorizer = _Authorizer()
    conn.set_authorizer(authorizer)
    return conn, authorizer


def open_readonly(
    db_path: str | os.PathLike[str], *, timeout_s: float | None = None
) -> sqlite3.Connection:
    """A hardened read-only connection (layers 2 and 3 above); raises :class:`DatabaseError`."""
    return _connect(db_path, timeout_s)[0]


def check(db_path: str | os.PathLike[str]) -> None:
    """Raise :class:`DatabaseError` (one line) unless ``db_path`` is a readable SQLite file."""
    _connect(db_path, None)[0].close()


# --- running -------------------------------------------------------------------------------


class _ResultTooLarge(Exception):
    pass


def _fetch(cursor: sqlite3.Cursor, max_rows: int) -> tuple[list[tuple], bool]:
    rows: list[tuple] = []
    size = 0
    for row in cursor:  # one step at a time, so the timeout covers fetching too
        if len(rows) >= max_rows:
            return rows, True
        size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)
        if size > MAX_RESULT_BYTES:
            raise _ResultTooLarge
        rows.append(row)
    return rows, False


def _explain(exc: Exception, refusal: str | None, late: bool, timeout_s: float) -> str:
    message = str(exc)
    if refusal:
        return refusal
    if late and "interrupted" in message:
        return timed_out(timeout_s)
    if "one statement at a time" in message:
        return "Refused: only one SQL statement is allowed"
    if "too many attached databases" in message:
        return refusal("ATTACH")
    if "string or blob too big" in message:
        return f"Refused: a string or blob value exceeded {MAX_VALUE_BYTES:,} bytes"
    return one_line(f"Query failed: {message}")


def run_readonly(
    db_path: str | os.PathLike[str],
    sql: str,
    *,
    timeout_s: float = 5.0,
    max_rows: int = 1000,
    isolated: bool = True,
) -> QueryResult:
    """Run one read-only statement; refusals and failures come back as ``error``.

    ``isolated`` (the default): in a worker process of :mod:`engine.sandbox`, killed at the
    time limit even inside one long function call, under a memory ceiling."""
    if timeout_s <= 0 or max_rows < 0:
        raise ValueError("timeout_s must be > 0 and max_rows >= 0")
    start = time.monotonic()
    if isolated:
        result = _run_isolated(db_path, sql, timeout_s, max_rows)
    else:
        result = _run(db_path, sql, timeout_s, max_rows)
    result.elapsed_s = time.monotonic() - start
    return result


def _run_isolated(
    db_path: str | os.PathLike[str], sql: str, timeout_s: float, max_rows: int
) -> QueryResult:
    sandbox = default_sandbox()
    args = (os.fspath(db_path), sql, timeout_s, max_rows)
    try:
        result = sandbox.call("engine.db.sqlite:_run", args, timeout_s)
    except Stopped as stop:
        return QueryResult([], [], str(stop))
    if result.error and "out of memory" in result.error:
        result.error = sandbox.memory_message()
    return result


def _run(db_path: str | os.PathLike[str], sql: str, timeout_s: float, max_rows: int) -> QueryResult:
    statement, refusal = precheck(sql)
    if refusal:
        return QueryResult([], [], refusal)
    try:
        conn, authorizer = _connect(db_path, timeout_s)
    except DatabaseError as exc:
        return QueryResult([], [], str(exc))
    deadline = time.monotonic() + timeout_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_OPCODES)
    try:
        cursor = conn.execute(statement)
        columns = [d[0] for d in cursor.description or ()]
        rows, truncated = _fetch(cursor, max_rows)
        return QueryResult(columns, rows, truncated=truncated)
    except _ResultTooLarge:
        mb = MAX_RESULT_BYTES // 1_000_000
        return QueryResult(
            [], [], f"Refused: the result is larger than {mb} MB; select fewer rows or columns"
        )
    except (sqlite3.Error, ValueError) as exc:
        late = time.monotonic() > deadline
        return QueryResult([], [], _explain(exc, authorizer.refusal, late, timeout_s))
    finally:
        conn.close()


# --- schema --------------------------------------------------------------------------------


def read_schema(db_path: str | os.PathLike[str], *, count_rows: bool = False) -> Schema:
    """Tables, columns and foreign keys of the SQLite file (read-only)."""
    conn = open_readonly(db_path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            )
        ]
        tables = {}
        for name in names:
            q = quote(name)
            cols = [
                Column(name=r[1], type=r[2] or "", primary_key=bool(r[5]), not_null=bool(r[3]))
                for r in conn.execute(f"PRAGMA table_info({q})")
            ]
            fks = [
                ForeignKey(column=r[3], ref_table=r[2], ref_column=r[4])
                for r in conn.execute(f"PRAGMA foreign_key_list({q})")
            ]
            rows = conn.execute(f"SELECT count(*) FROM {q}").fetchone()[0] if count_rows else None
            tables[name] = Table(name=name, columns=cols, foreign_keys=fks, row_count=rows)
        return Schema(tables=tables)
    finally:
        conn.close()
