"""The schema object (tables, columns, keys, the DDL text put in prompts) and its reader for
SQLite files; :mod:`engine.db.inspect` reads the other engines into the same object."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    primary_key: bool = False
    not_null: bool = False
    comment: str | None = None


@dataclass(frozen=True)
class ForeignKey:
    column: str
    ref_table: str
    ref_column: str | None


@dataclass
class Table:
    name: str
    columns: list[Column]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    row_count: int | None = None
    comment: str | None = None

    def ddl(self) -> str:
        """A compact, canonical CREATE TABLE statement (cheaper in tokens than the original)."""
        parts = []
        pk = [c.name for c in self.columns if c.primary_key]
        for c in self.columns:
            text = f"{_quote(c.name)} {c.type}".rstrip()
            if c.primary_key and len(pk) == 1:
                text += " PRIMARY KEY"
            if c.comment:
                text += f" /* {_comment(c.comment)} */"
            parts.append(text)
        if len(pk) > 1:
            parts.append(f"PRIMARY KEY ({', '.join(_quote(n) for n in pk)})")
        for fk in self.foreign_keys:
            ref = (
                f"{_quote(fk.ref_table)}({_quote(fk.ref_column)})"
                if fk.ref_column
                else _quote(fk.ref_table)
            )
            parts.append(f"FOREIGN KEY ({_quote(fk.column)}) REFERENCES {ref}")
        head = f"-- {_comment(self.comment)}\n" if self.comment else ""
        return head + f"CREATE TABLE {_quote(self.name)} (\n  " + ",\n  ".join(parts) + "\n);"


@dataclass
class Schema:
    tables: dict[str, Table]
    dialect: str = "sqlite"  # sqlglot's name: sqlite, postgres, mysql, duckdb

    def table(self, name: str) -> Table | None:
        """Case-insensitive lookup, as SQLite resolves names."""
        return self.tables.get(name) or next(
            (t for k, t in self.tables.items() if k.lower() == name.lower()), None
        )

    def ddl(self, only: list[str] | None = None, after: dict[str, str] | None = None) -> str:
        """The tables' CREATE TABLE statements (``only`` these, in that order); ``after``
        maps a table name to text placed right under its statement (sample rows)."""
        names = only if only is not None else list(self.tables)
        after = after or {}
        text = "\n".join(
            t.ddl() + (f"\n{after[t.name]}" if after.get(t.name) else "")
            for n in names
            if (t := self.table(n)) is not None
        )
        if self.dialect == "sqlite" or not text:
            return text
        # The prompt's schema slot names the dialect the query must be written in.
        return f"-- Database: {DIALECT_TITLES.get(self.dialect, self.dialect)}\n{text}"

    def neighbours(self, name: str) -> set[str]:
        """Tables joined to ``name`` by a foreign key, in either direction."""
        out = set()
        for t in self.tables.values():
            for fk in t.foreign_keys:
                if t.name.lower() == name.lower():
                    out.add(fk.ref_table)
                elif fk.ref_table.lower() == name.lower():
                    out.add(t.name)
        return out


DIALECT_TITLES = {"postgres": "PostgreSQL", "mysql": "MySQL/MariaDB", "duckdb": "DuckDB"}


def _comment(text: str) -> str:
    return " ".join(text.replace("*/", "* /").split())


def _quote(name: str) -> str:
    if name.replace("_", "").isalnum() and not name[0].isdigit():
        return name
    return '"' + name.replace('"', '""') + '"'


def read_schema(db_path: str | Path, *, count_rows: bool = False) -> Schema:
    """Read tables, columns and foreign keys from the SQLite file (read-only)."""
    from engine.executor import open_readonly

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
            q = _quote(name)
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


def schema_text(db_path: str | Path) -> str:
    """The DDL text for a database, as it goes into the prompt's ``SQL table:`` slot."""
    return read_schema(db_path).ddl()
