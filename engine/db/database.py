"""One database, classified once.

:func:`open_database` turns a reference (a SQLite or DuckDB file path, a SQLAlchemy URL (see
:mod:`engine.db.url`), or a workspace of data files: its folder, ``workspace:NAME`` or a
plain folder of files (see :mod:`engine.workspace`)) into a :class:`Database`: what it is
(``dialect``), what to call it (``label``, ``name``, ``shown``: never a password) and what
can be done with it, on every engine alike (``read_schema``, ``run_readonly``, ``check``,
``check_sql``, ``sample_values``).
The edges (the CLI, the app, evaluation, ``TextToSQL.ask``) open a reference once; everything
below them passes the handle and never asks again what kind of database it holds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.db import url as urls
from engine.db.result import DatabaseError, QueryResult, one_line
from engine.schema import DIALECT_TITLES, Schema

if TYPE_CHECKING:
    from engine.db.samples import TableSample

DbRef = str | os.PathLike[str]  # a file path or a URL, as a person writes it
SERVERS = ("postgres", "mysql")
WORKSPACE_PREFIX = "workspace:"  # workspace:NAME, a workspace in the user's data folder


@dataclass(frozen=True)
class Database:
    """A database reference, classified. Two handles are equal when their references are."""

    ref: str = field(repr=False)  # as given (a literal password in a URL stays out of messages)
    dialect: str = field(compare=False)  # sqlglot's name: sqlite, postgres, mysql, duckdb
    label: str = field(compare=False)  # short name: the file's stem, the URL's database
    name: str = field(compare=False)  # for messages: the file's name, the URL's database
    shown: str = field(compare=False)  # the reference with any literal password as ***
    public: str = field(compare=False)  # the reference without a literal password (storable)
    path: Path | None = field(default=None, compare=False)  # SQLite/DuckDB: the file
    url: Any = field(default=None, compare=False, repr=False)  # a URL, parsed (sqlalchemy.URL)
    workspace: Path | None = field(default=None, compare=False)  # a workspace: its folder

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:
        return f"Database({self.shown!r})"

    @property
    def is_server(self) -> bool:
        return self.dialect in SERVERS

    # --- reading -------------------------------------------------------------------------

    def read_schema(self, *, count_rows: bool = False) -> Schema:
        """Tables, columns, keys (``count_rows``: and row counts); raises
        :class:`DatabaseError` (one line)."""
        if self.dialect == "sqlite":
            from engine.db import sqlite  # deferred: off every CLI's start-up path

            return sqlite.read_schema(self.file(), count_rows=count_rows)
        if self.workspace is not None:
            from engine.db import workspace  # deferred: off every CLI's start-up path

            return workspace.read_schema(self.workspace, count_rows=count_rows)
        if self.dialect == "duckdb":
            from engine.db import duckdb  # deferred: off every CLI's start-up path

            return duckdb.read_schema(self.file(), count_rows=count_rows)
        from engine.db import inspect  # deferred: off every CLI's start-up path

        return inspect.read_schema(self, count_rows=count_rows)

    def run_readonly(
        self, sql: str, *, timeout_s: float = 5.0, max_rows: int = 1000
    ) -> QueryResult:
        """One read-only query; refusals and failures come back as ``error``, never raised."""
        if timeout_s <= 0 or max_rows < 0:
            raise ValueError("timeout_s must be > 0 and max_rows >= 0")
        if self.path is None and not self.is_server:
            return QueryResult([], [], self._no_file())
        if self.dialect == "sqlite":
            from engine.db import sqlite  # deferred: off every CLI's start-up path

            return sqlite.run_readonly(self.path, sql, timeout_s=timeout_s, max_rows=max_rows)
        start = time.monotonic()
        if self.dialect == "duckdb":
            result = _run_duckdb_isolated(self, sql, timeout_s, max_rows)
        elif self.dialect == "postgres":
            from engine.db import postgres  # deferred: off every CLI's start-up path

            result = postgres.run(self, sql, timeout_s, max_rows)
        else:
            from engine.db import mysql  # deferred: off every CLI's start-up path

            result = mysql.run(self, sql, timeout_s, max_rows)
        result.elapsed_s = time.monotonic() - start
        return result

    def check(self) -> None:
        """Raise :class:`DatabaseError` (one line, no password) unless it can be read."""
        if self.dialect == "sqlite":
            from engine.db import sqlite  # deferred: off every CLI's start-up path

            sqlite.check(self.file())
            return
        if self.workspace is not None:
            from engine.db import workspace  # deferred: off every CLI's start-up path

            workspace.check(self.workspace)
            return
        if self.dialect == "duckdb":
            from engine.db.duckdb import connect  # deferred: off every CLI's start-up path

            connect(self.file()).close()
            return
        from engine.db import inspect  # deferred: off every CLI's start-up path

        inspect.check(self)

    def check_sql(self, sql: str) -> tuple[str, str | None]:
        """The text layer of this dialect's guard: (statement to run, refusal or None)."""
        from engine.db import sql_guard  # deferred: off every CLI's start-up path

        return sql_guard.check(sql, self.dialect)

    def sample_values(self, schema: Schema, n: int) -> dict[str, TableSample]:
        """Per table: its row count and, per column, a few stored values (all of them for a
        short category list); see :mod:`engine.db.samples`."""
        from engine.db import samples  # deferred: off every CLI's start-up path

        return samples.table_samples(self, schema, n)

    def first_rows(self, schema: Schema, n: int) -> dict[str, list[tuple]]:
        """Per table, its first ``n`` rows (tables that cannot be read are left out)."""
        from engine.db import samples  # deferred: off every CLI's start-up path

        return samples.first_rows(self, schema, n)

    def role_can_write(self) -> bool | None:
        """Whether the account connected to a server could write (None: not a server)."""
        if self.dialect == "postgres":
            from engine.db import postgres  # deferred: off every CLI's start-up path

            return postgres.role_can_write(self)
        if self.dialect == "mysql":
            from engine.db import mysql  # deferred: off every CLI's start-up path

            return mysql.account_can_write(self)
        return None

    # --- for the engines' modules ------------------------------------------------------

    def file(self) -> Path:
        """The SQLite/DuckDB file; raises :class:`DatabaseError` for a URL that names none."""
        if self.path is None:
            raise DatabaseError(self._no_file())
        return self.path

    def _no_file(self) -> str:
        example = "duckdb:///path/to/file.duckdb" if self.dialect == "duckdb" else "a file path"
        return (
            f"{self.shown} names no {DIALECT_TITLES.get(self.dialect, 'SQLite')} file ({example})"
        )

    def connect_url(self) -> Any:
        """The parsed URL to connect with, its password filled in (memory or environment)."""
        return urls.fill_password(self.url, self.public)

    def scrub(self, message: str) -> str:
        """``message`` on one line, with this database's password (if any) as ``***``."""
        text = one_line(message)
        if self.url is None:
            return text
        try:
            password = self.connect_url().password
        except DatabaseError:
            return text
        return text.replace(str(password), "***") if password else text


def open_database(db: DbRef | Database) -> Database:
    """The handle of ``db``; a handle is returned as it is. Raises
    :class:`engine.db.url.DatabaseURLError` (a :class:`DatabaseError`) for a URL that cannot
    be used; a file is not opened here (:meth:`Database.check` does that)."""
    if isinstance(db, Database):
        return db
    ref = os.fspath(db)
    if ref.startswith(WORKSPACE_PREFIX) or (not urls.is_url(ref) and Path(ref).is_dir()):
        return _open_workspace(ref)
    if not urls.is_url(ref):
        path = Path(ref)
        dialect = "duckdb" if ref.lower().endswith(urls.DUCKDB_SUFFIXES) else "sqlite"
        return Database(ref, dialect, path.stem, path.name, ref, ref, path)
    url = urls.parse(ref)
    backend = url.get_backend_name()
    dialect = "sqlite" if backend == "sqlite" else urls.DIALECTS[backend]
    path = None
    if dialect in ("sqlite", "duckdb") and url.database not in (None, "", ":memory:"):
        path = Path(url.database)
    label = path.stem if path is not None else (url.database or "database")
    return Database(
        ref, dialect, label, label, urls.redact(ref), urls.storable(ref, url), path, url
    )


def _open_workspace(ref: str) -> Database:
    """``workspace:NAME`` (in the local user's data folder), a workspace's folder, or a
    folder of data files (made a workspace under the cache, read in place)."""
    # deferred: the workspace modules load only for a workspace
    from engine.db.workspace import WorkspaceError, is_workspace, load
    from engine.db.workspace_edit import folder_workspace, workspaces_dir
    from engine.paths import cache_dir, data_dir

    if ref.startswith(WORKSPACE_PREFIX):
        name = ref[len(WORKSPACE_PREFIX) :].strip()
        folder = workspaces_dir(data_dir()) / name
        if not name or "/" in name or "\\" in name or not is_workspace(folder):
            raise DatabaseError(f"No workspace named {name!r}")
    elif is_workspace(Path(ref)):
        folder = Path(ref)
    else:
        try:
            folder = folder_workspace(Path(ref), cache_dir())
        except WorkspaceError as err:
            raise DatabaseError(str(err)) from None
    name = load(folder).name
    return Database(ref, "duckdb", name, name, ref, ref, folder / "catalog.duckdb", None, folder)


def _run_duckdb_isolated(db: Database, sql: str, timeout_s: float, max_rows: int) -> QueryResult:
    """DuckDB runs in this process's library: in a worker of :mod:`engine.sandbox`, as SQLite
    queries do, it is killed at the time limit even inside one long step, and its memory is
    bounded by the worker's address-space limit."""
    # deferred: the worker pool (subprocess, pickle) stays off every CLI's start-up path
    from engine.sandbox import Stopped, default_sandbox

    if db.workspace is not None:
        target, args = "engine.db.workspace:run", (db.workspace, sql, timeout_s, max_rows)
    else:
        target, args = "engine.db.duckdb:run", (db.path, sql, timeout_s, max_rows)
    try:
        return default_sandbox().call(target, args, timeout_s)
    except Stopped as err:
        return QueryResult([], [], str(err))
    except RuntimeError as err:  # the worker failed outside the query
        return QueryResult([], [], "Query failed: " + one_line(str(err))[:300])
