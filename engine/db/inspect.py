"""The schema of a PostgreSQL or MySQL/MariaDB database, read through SQLAlchemy's inspector
(tables, views, columns, types, primary and foreign keys, comments) into the engine's
:class:`engine.schema.Schema` (SQLite and DuckDB files: :mod:`engine.db.sqlite`,
:mod:`engine.db.duckdb`).

The inspector's connections are read-only too: PostgreSQL sessions start with
``default_transaction_read_only``, MySQL sessions with ``SET SESSION TRANSACTION READ ONLY``.
Only the default schema (``public``, the URL's database) is read.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from engine.db.fetch import first_line
from engine.db.result import DatabaseError
from engine.schema import Column, ForeignKey, Schema, Table
from engine.schema import quote as sqlite_quote

if TYPE_CHECKING:
    from engine.db.database import Database

INSPECT_TIMEOUT_S = 30


def sqlalchemy_engine(db: Database) -> Any:
    """A SQLAlchemy engine (no pool) whose connections cannot write."""
    # optional: sqlalchemy (the db extra) may be absent
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    url = db.connect_url()
    ms = INSPECT_TIMEOUT_S * 1000
    if db.dialect == "postgres":
        args = {
            "options": f"-c default_transaction_read_only=on -c statement_timeout={ms}",
            "connect_timeout": 10,
        }
    else:
        args = {"connect_timeout": 10, "init_command": "SET SESSION TRANSACTION READ ONLY"}
    return create_engine(url, poolclass=NullPool, connect_args=args)


def read_schema(db: Database, *, count_rows: bool = False) -> Schema:
    """Tables and views with their columns and keys; ``count_rows`` adds ``count(*)``."""
    # optional: sqlalchemy (the db extra) may be absent
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    dialect = db.dialect
    engine = sqlalchemy_engine(db)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            names = [(n, False) for n in insp.get_table_names()]
            names += [(n, True) for n in insp.get_view_names()]
            tables = {}
            for name, is_view in names:
                table = _table(insp, name, is_view, engine.dialect)
                if count_rows:
                    sql = f"SELECT count(*) FROM {quote(name, dialect)}"
                    table.row_count = conn.execute(text(sql)).scalar()
                tables[name] = table
            with contextlib.suppress(Exception):
                conn.rollback()
    except SQLAlchemyError as err:
        message = db.scrub(first_line(getattr(err, "orig", None) or err))
        raise DatabaseError(f"Cannot read {db}: {message}") from None
    finally:
        engine.dispose()
    return Schema(tables=tables, dialect=dialect)


def _table(insp: Any, name: str, is_view: bool, dialect: Any) -> Table:
    pk = set() if is_view else set(insp.get_pk_constraint(name).get("constrained_columns") or [])
    columns = []
    for c in insp.get_columns(name):
        columns.append(
            Column(
                name=c["name"],
                type=_type_name(c["type"], dialect),
                primary_key=c["name"] in pk,
                not_null=not c.get("nullable", True),
                comment=c.get("comment") or None,
            )
        )
    fks = []
    if not is_view:
        for fk in insp.get_foreign_keys(name):
            refs = fk.get("referred_columns") or []
            for i, col in enumerate(fk.get("constrained_columns") or []):
                fks.append(
                    ForeignKey(col, fk["referred_table"], refs[i] if i < len(refs) else None)
                )
    comment = None
    with contextlib.suppress(NotImplementedError, Exception):
        comment = insp.get_table_comment(name).get("text") or None
    return Table(name=name, columns=columns, foreign_keys=fks, comment=comment)


def _type_name(type_: Any, dialect: Any) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # a type the dialect cannot print (NullType, an extension's type)
        return str(getattr(type_, "__visit_name__", "") or "").upper()


def quote(name: str, dialect: str) -> str:
    """An identifier for this dialect (backticks on MySQL, double quotes elsewhere)."""
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return sqlite_quote(name) if dialect == "sqlite" else '"' + name.replace('"', '""') + '"'


def check(db: Database) -> None:
    """Raise :class:`DatabaseError` unless the server can be connected to and read."""
    # optional: sqlalchemy (the db extra) may be absent
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    engine = sqlalchemy_engine(db)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()
    except SQLAlchemyError as err:
        message = db.scrub(first_line(getattr(err, "orig", None) or err))
        raise DatabaseError(f"Cannot connect to {db}: {message}") from None
    finally:
        engine.dispose()
