"""Copy the bundled sample databases (sample_dbs/*.sqlite) into PostgreSQL, MySQL/MariaDB or
DuckDB, so the sample questions can be asked and evaluated on each engine.

    python scripts/load_sample_dbs.py postgresql+psycopg://USER@HOST:PORT
    python scripts/load_sample_dbs.py mysql+pymysql://USER@HOST:PORT
    python scripts/load_sample_dbs.py duckdb:///FOLDER        # FOLDER/shop.duckdb, ...

One database per sample (``shop``, ``hr``, ``music``), created by this script; an existing
one is left alone unless ``--replace`` is given. Tables, primary, unique and foreign keys and
NOT NULL come from SQLAlchemy's reflection of the SQLite file; CHECK constraints are left out
(SQLite's syntax) and the data already satisfies them. TEXT becomes VARCHAR(255) on MySQL
where the values fit (MySQL cannot index TEXT), REAL becomes a double everywhere.

Prints one JSON line per database: its name, URL (no password) and row counts. This script
writes, so give it an account that may create databases; the workbench itself should connect
with a read-only one (see the README).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def reflect(sqlite_path: Path) -> tuple[Any, dict[str, list[dict]]]:
    """SQLAlchemy metadata and rows of a sample database (opened read-only)."""
    import sqlite3

    from sqlalchemy import CheckConstraint, MetaData, create_engine, select
    from sqlalchemy.pool import NullPool

    uri = sqlite_path.resolve().as_uri() + "?mode=ro"  # our own sample files: read-only is enough
    src = create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True), poolclass=NullPool
    )
    meta = MetaData()
    with src.connect() as conn:
        meta.reflect(conn)
        rows = {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in meta.tables.values()}  # fmt: skip
    for table in meta.tables.values():
        for c in [c for c in table.constraints if isinstance(c, CheckConstraint)]:
            table.constraints.discard(c)
    src.dispose()
    return meta, rows


def map_types(meta: Any, rows: dict[str, list[dict]], backend: str) -> None:
    from sqlalchemy import Double, Integer, String, Text

    for table in meta.tables.values():
        for col in table.columns:
            col.autoincrement = False  # the ids come with the data; no SERIAL, no sequences
            name = type(col.type).__name__.upper()
            if name in ("REAL", "FLOAT", "NUMERIC") or "DOUBLE" in name:
                col.type = Double()
            elif name in ("INTEGER", "BIGINT", "SMALLINT"):
                col.type = Integer()
            elif isinstance(col.type, String | Text) or name in ("TEXT", "VARCHAR", "CHAR"):
                longest = max((len(str(r[col.name] or "")) for r in rows[table.name]), default=0)
                col.type = String(255) if backend == "mysql" and longest <= 255 else Text()


def load_server(server_url: str, name: str, meta: Any, rows: dict, replace: bool) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = make_url(server_url)
    backend = url.get_backend_name()
    admin_db = "postgres" if backend == "postgresql" else None
    admin = create_engine(
        url.set(database=admin_db), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    quote = '"' if backend == "postgresql" else "`"
    with admin.connect() as conn:
        if backend == "postgresql":
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()  # fmt: skip
        else:
            exists = conn.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :n"), {"n": name}).scalar()  # fmt: skip
        if exists and not replace:
            raise SystemExit(f"Database {name} exists already: give --replace to load it again")
        if exists:
            conn.execute(text(f"DROP DATABASE {quote}{name}{quote}"))
        charset = "" if backend == "postgresql" else " CHARACTER SET utf8mb4"
        conn.execute(text(f"CREATE DATABASE {quote}{name}{quote}{charset}"))
    admin.dispose()
    target = create_engine(url.set(database=name), poolclass=NullPool)
    meta.create_all(target)
    with target.begin() as conn:
        if backend != "postgresql":
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))  # self-references load in any order
        for table in meta.sorted_tables:
            if rows[table.name]:
                conn.execute(table.insert(), rows[table.name])
    target.dispose()
    return url.set(database=name).render_as_string(hide_password=True).replace(":***@", "@")


def load_duckdb(folder: Path, name: str, meta: Any, rows: dict, replace: bool) -> str:
    import duckdb
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.duckdb"
    if path.exists() and not replace:
        raise SystemExit(f"{path} exists already: give --replace to load it again")
    path.unlink(missing_ok=True)
    conn = duckdb.connect(str(path))
    try:
        for table in meta.sorted_tables:
            # DuckDB reads PostgreSQL's DDL; it checks foreign keys against what earlier
            # statements inserted, so a table that references itself loads level by level.
            conn.execute(str(CreateTable(table).compile(dialect=postgresql.dialect())))
            cols = [c.name for c in table.columns]
            names = ", ".join(f'"{c}"' for c in cols)
            row = "(" + ", ".join("?" for _ in cols) + ")"
            # many rows per statement: executemany is slow
            chunks = [lv[i : i + 200] for lv in _levels(table, rows[table.name]) for i in range(0, len(lv), 200)]  # fmt: skip
            for chunk in chunks:
                conn.execute(
                    f'INSERT INTO "{table.name}" ({names}) VALUES ' + ", ".join([row] * len(chunk)),
                    [r[c] for r in chunk for c in cols],
                )
    finally:
        conn.close()
    return f"duckdb:///{path}"


def _levels(table: Any, data: list[dict]) -> list[list[dict]]:
    """Rows in groups that can each go in one statement: a table that references itself
    (employees.manager_id) goes level by level, managers before their reports."""
    selfrefs = [
        (fk.parent.name, fk.column.name)
        for fk in table.foreign_keys
        if fk.column.table.name == table.name
    ]
    if not selfrefs:
        return [data]
    child, parent = selfrefs[0]
    done: set[Any] = set()
    levels: list[list[dict]] = []
    pending = list(data)
    while pending:
        ready = [r for r in pending if r[child] is None or r[child] in done] or pending
        levels.append(ready)
        done |= {r[parent] for r in ready}
        pending = [r for r in pending if r not in ready]
    return levels


def main(argv: list[str] | None = None) -> int:
    from engine.paths import sample_databases

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="server URL without a database, or duckdb:///FOLDER")
    parser.add_argument("--only", action="append", help="one sample (repeatable): shop, hr, music")
    parser.add_argument("--replace", action="store_true", help="drop and reload existing ones")
    args = parser.parse_args(argv)
    samples = sample_databases()
    names = args.only or list(samples)
    unknown = sorted(set(names) - set(samples))
    if unknown:
        parser.error(f"unknown sample(s): {', '.join(unknown)}; choose from {', '.join(samples)}")
    duck = args.target.startswith("duckdb:///")
    backend = "duckdb" if duck else args.target.split("+", 1)[0].split(":", 1)[0]
    if backend not in ("duckdb", "postgresql", "mysql", "mariadb"):
        parser.error("target: postgresql+psycopg://..., mysql+pymysql://... or duckdb:///FOLDER")
    for name in names:
        meta, rows = reflect(samples[name])
        map_types(meta, rows, "mysql" if backend in ("mysql", "mariadb") else backend)
        if duck:
            url = load_duckdb(
                Path(args.target[len("duckdb:///") :]), name, meta, rows, args.replace
            )
        else:
            url = load_server(args.target, name, meta, rows, args.replace)
        counts = {t: len(r) for t, r in rows.items()}
        print(json.dumps({"db_id": name, "url": url, "rows": counts}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
