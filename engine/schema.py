"""The schema object: tables, columns, keys, and the DDL text put in prompts. Every engine's
reader fills it (:meth:`engine.db.Database.read_schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
            text = f"{quote(c.name)} {c.type}".rstrip()
            if c.primary_key and len(pk) == 1:
                text += " PRIMARY KEY"
            if c.comment:
                text += f" /* {_comment(c.comment)} */"
            parts.append(text)
        if len(pk) > 1:
            parts.append(f"PRIMARY KEY ({', '.join(quote(n) for n in pk)})")
        for fk in self.foreign_keys:
            ref = (
                f"{quote(fk.ref_table)}({quote(fk.ref_column)})"
                if fk.ref_column
                else quote(fk.ref_table)
            )
            parts.append(f"FOREIGN KEY ({quote(fk.column)}) REFERENCES {ref}")
        head = f"-- {_comment(self.comment)}\n" if self.comment else ""
        return head + f"CREATE TABLE {quote(self.name)} (\n  " + ",\n  ".join(parts) + "\n);"


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


def quote(name: str) -> str:
    if name.replace("_", "").isalnum() and not name[0].isdigit():
        return name
    return '"' + name.replace('"', '""') + '"'
