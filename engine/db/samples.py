"""A few stored values per column, and a table's first rows, read from the live database:
what the model sees so that it writes ``country = 'France'`` instead of guessing the casing.

SQLite files are read through one hardened read-only connection; other engines through
:meth:`engine.db.Database.run_readonly`, one bounded query at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.db.inspect import quote as dialect_quote
from engine.db.sqlite import open_readonly
from engine.schema import Schema, Table, quote

if TYPE_CHECKING:
    from engine.db.database import Database

log = logging.getLogger(__name__)

SAMPLE_ROWS = 10_000  # sample values come from the first rows only: big tables stay cheap
VALUE_CHARS = 40
_TEXT_TYPES = ("CHAR", "TEXT", "CLOB")
CATEGORICAL = 12  # at most this many distinct values: list them all


@dataclass
class TableSample:
    """What a table holds, in brief: its row count and a few values per column."""

    rows: int | None
    values: dict[str, tuple[list[Any], bool]]  # column -> (values, categorical)


def table_samples(db: Database, schema: Schema, n: int) -> dict[str, TableSample]:
    """Per table: its row count and (``n`` > 0) a few values per column."""
    out = {}
    with _reader(db) as conn:
        for table in schema.tables.values():
            values = _values(conn, table, n) if n else {}
            rows = conn.execute(f"SELECT count(*) FROM {conn.quote(table.name)}").fetchone()[0]
            out[table.name] = TableSample(rows, values)
    return out


def first_rows(db: Database, schema: Schema, n: int) -> dict[str, list[tuple]]:
    """Per table, its first ``n`` rows; a table that cannot be read (or is empty) is left out."""
    out = {}
    with _reader(db) as conn:
        for table in schema.tables.values():
            try:
                rows = conn.execute(f"SELECT * FROM {conn.quote(table.name)} LIMIT {n}").fetchall()
            except Exception as err:  # a damaged table: no rows shown, the DDL stays
                log.debug("no sample rows for %s: %s", table.name, err)
                continue
            if rows:
                out[table.name] = rows
    return out


def distinct_text_values(
    db: Database, schema: Schema, per_column: int
) -> Iterator[tuple[str, str, list[str]]]:
    """(table, column, up to ``per_column`` distinct stored strings) for each text column: what
    value linking (:mod:`engine.rag.values`) indexes. A column that cannot be read is skipped."""
    with _reader(db, max_rows=per_column) as conn:
        for table in schema.tables.values():
            q = conn.quote(table.name)
            for c in table.columns:
                if c.type and not any(t in c.type.upper() for t in _TEXT_TYPES):
                    continue
                col = conn.quote(c.name)
                inner = f"SELECT {col} AS v FROM {q} WHERE {col} IS NOT NULL"
                try:
                    rows = conn.execute(
                        f"SELECT DISTINCT v FROM ({inner}) s {conn.text_filter}LIMIT {per_column}"
                    ).fetchall()
                except Exception as err:  # odd types or a damaged table: no values, no failure
                    log.debug("no values for %s.%s: %s", table.name, c.name, err)
                    continue
                values = [r[0] for r in rows if isinstance(r[0], str)]
                if values:
                    yield table.name, c.name, values


def _values(conn: Any, table: Table, n: int) -> dict[str, tuple[list[Any], bool]]:
    """Per column: (values, categorical).

    Text columns with few distinct values (status, tier, country codes) get all of them,
    most frequent first, and count as categorical: those go into the prompt's notes. Other
    text columns get their ``n`` most frequent values; numeric ones their smallest and largest.
    """
    out: dict[str, tuple[list[Any], bool]] = {}
    q = conn.quote(table.name)
    for c in table.columns:
        col = conn.quote(c.name)
        sample = f"(SELECT {col} AS v FROM {q} WHERE {col} IS NOT NULL LIMIT {SAMPLE_ROWS}) s"
        try:
            if not c.type or any(t in c.type.upper() for t in _TEXT_TYPES):
                rows = conn.execute(
                    f"SELECT v FROM {sample} {conn.text_filter}"
                    f"GROUP BY v ORDER BY count(*) DESC, v LIMIT {max(n, CATEGORICAL) + 1}"
                ).fetchall()
                vals = [r[0][:VALUE_CHARS] for r in rows]
                # Few, short values: a category the model must spell exactly, not free text.
                categorical = 0 < len(vals) <= CATEGORICAL and max(map(len, vals)) <= 30
                vals = vals if categorical else vals[:n]
            else:
                lo, hi = conn.execute(f"SELECT min(v), max(v) FROM {sample}").fetchone()
                vals = [v for v in dict.fromkeys((lo, hi)) if isinstance(v, int | float)]
                categorical = False
        except Exception as err:  # odd column types or a damaged table: skip the values only
            log.debug("no sample values for %s.%s: %s", table.name, c.name, err)
            continue
        if vals:
            out[c.name] = (vals, categorical)
    return out


@contextmanager
def _reader(db: Database, max_rows: int = 100) -> Iterator[Any]:
    """Something with ``execute(sql).fetchall()/.fetchone()``, ``quote(name)`` and
    ``text_filter`` on the database, read-only (other engines: ``max_rows`` rows a query)."""
    if db.dialect != "sqlite":
        yield _Queries(db, max_rows)
        return
    conn = _SQLite(open_readonly(db.file()))
    try:
        yield conn
    finally:
        conn.conn.close()


class _SQLite:
    """A SQLite connection: its typeof() keeps text values apart in untyped columns."""

    text_filter = "WHERE typeof(v) = 'text' "

    def __init__(self, conn: Any) -> None:
        self.conn, self.quote = conn, quote

    def execute(self, sql: str) -> Any:
        return self.conn.execute(sql)


class _Queries:
    """Each query through :meth:`Database.run_readonly` (read-only, with a timeout)."""

    text_filter = ""  # typed columns: no SQLite typeof() needed

    def __init__(self, db: Database, max_rows: int = 100) -> None:
        self.db, self.max_rows = db, max_rows
        self.quote = lambda name: dialect_quote(name, db.dialect)

    def execute(self, sql: str) -> Any:
        result = self.db.run_readonly(sql, timeout_s=10.0, max_rows=self.max_rows)
        if not result.ok:
            raise ValueError(result.error)
        return _Rows(result.rows)


class _Rows:
    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows

    def fetchall(self) -> list[tuple]:
        return self.rows

    def fetchone(self) -> tuple:
        return self.rows[0]
