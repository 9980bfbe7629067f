"""Getting SQL out of model text, and checking it against the real schema with sqlglot."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, SqlglotError, TokenError

from engine.schema import Schema

_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\n?(.*?)(?:```|$)", re.IGNORECASE | re.DOTALL)
# A query starts at SELECT/WITH at a line start, else at SELECT anywhere ("Here: SELECT ...").
# WITH in mid-line is prose far more often than SQL ("departments with budgets").
_START_LINE = re.compile(r"^[ \t]*(SELECT|WITH)\b", re.IGNORECASE | re.MULTILINE)
_START_ANY = re.compile(r"\b(SELECT)\b", re.IGNORECASE)
# Statements we refuse, found only at a line start so prose ("update the table") is not SQL.
_OTHER = re.compile(
    r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|ATTACH|DETACH|VACUUM)\b",
    re.IGNORECASE | re.MULTILINE,
)


def first_statement(text: str) -> str | None:
    """The first complete statement in ``text`` (up to its top-level ``;``), else None.

    ``sqlite3.complete_statement`` knows SQLite's quoting and comments, so a ``;`` inside a
    string literal or a comment does not end the statement.
    """
    for i, ch in enumerate(text):
        if ch == ";" and sqlite3.complete_statement(text[: i + 1]):
            return text[: i + 1]
    return None


def extract_sql(text: str) -> str | None:
    """The SQL query in a model's answer, without the trailing semicolon; None if there is none.

    Handles code fences, prose before or after the query, and several statements (only the
    first query is kept).
    """
    if not text or not text.strip():
        return None
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start = _sql_start(body)
    if start is None:
        return None
    body = body[start:]
    stmt = first_statement(body)
    if stmt is None:
        # No semicolon: the query runs to the end or to the first blank line of prose after it.
        stmt = _longest_parsable_prefix(re.split(r"\n\s*\n", body, maxsplit=1)[0])
    sql = stmt.strip().rstrip(";").strip()
    return sql or None


def _longest_parsable_prefix(text: str) -> str:
    """Drop trailing lines (prose the model added) until what is left parses as SQL.

    Returns ``text`` unchanged when no shorter prefix parses, so validation can name the error.
    """
    lines = text.splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end]).strip()
        try:
            if sqlglot.parse_one(candidate, read="sqlite") is not None:
                return candidate
        except SqlglotError:  # ParseError, or TokenError (an unterminated string, say)
            continue
    return text


def _sql_start(text: str) -> int | None:
    for pattern in (_START_LINE, _START_ANY, _OTHER):
        match = pattern.search(text)
        if match:
            return match.start(1)
    return None


def is_statement_complete(generated: str) -> bool:
    """True once generated text holds a whole query, so generation can stop early."""
    fences = generated.count("```")
    if fences >= 2:
        return True
    body = generated.split("```", 1)[1] if fences == 1 else generated
    start = _sql_start(body)
    if start is None:
        return False
    rest = body[start:]
    if first_statement(rest) is not None:
        return True
    # A blank line after the query is where extract_sql ends it too (models that skip the ';');
    # not inside an open code fence, where the closing fence will come.
    return fences == 0 and re.search(r"\S\s*\n\s*\n", rest) is not None


@dataclass
class Validation:
    ok: bool
    errors: list[str] = field(default_factory=list)
    unknown_tables: list[str] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        return "; ".join(self.errors)


def validate_sql(sql: str, schema: Schema) -> Validation:
    """Parse ``sql`` in the schema's dialect (SQLite, PostgreSQL, MySQL, DuckDB) and check it
    reads only tables and columns that exist.

    Unknown names are reported by name. Columns are resolved with sqlglot's qualifier, which
    understands aliases, CTEs and subqueries.
    """
    from sqlglot.optimizer.qualify import qualify  # deferred: ~10 ms on every CLI's start-up

    try:
        statements = [s for s in sqlglot.parse(sql, read=schema.dialect) if s is not None]
    except (ParseError, TokenError) as err:
        first = str(err).splitlines()[0]
        return Validation(False, [f"SQL does not parse: {first}"])
    if len(statements) != 1:
        return Validation(False, [f"Expected one SQL statement, found {len(statements)}"])
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        return Validation(False, [f"Only SELECT queries are allowed, got {tree.key.upper()}"])

    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    unknown_tables = sorted(
        {
            t.name
            for t in tree.find_all(exp.Table)
            if t.name and t.name.lower() not in ctes and schema.table(t.name) is None
        }
    )
    if unknown_tables:
        tables = ", ".join(t.name for t in schema.tables.values())
        return Validation(
            False,
            [f"Unknown table: {', '.join(unknown_tables)}. The tables are: {tables}"],
            unknown_tables=unknown_tables,
        )

    if schema.dialect == "sqlite":
        _dequote_string_literals(tree, schema)
    mapping = {
        t.name: {c.name: (c.type or "TEXT") for c in t.columns} for t in schema.tables.values()
    }
    try:
        qualify(
            tree.copy(),
            schema=mapping,
            dialect=schema.dialect,
            validate_qualify_columns=True,
            identify=False,
            quote_identifiers=False,
        )
    except OptimizeError as err:
        name = _column_from_error(str(err))
        if name:
            message = f"Unknown column: {name}" + _column_hint(name, tree, schema)
            return Validation(False, [message], unknown_columns=[name])
        return Validation(False, [f"SQL does not check against the schema: {err}"])
    except Exception as err:  # sqlglot can trip on exotic SQL; SQLite itself decides then
        return Validation(True, [f"(not fully checked: {type(err).__name__})"])
    return Validation(True)


def _dequote_string_literals(tree: Any, schema: Schema) -> None:
    """SQLite reads ``"France"`` as a string when no column has that name; so do we.

    Spider's gold SQL and many models write string literals in double quotes.
    """
    known = {c.name.lower() for t in schema.tables.values() for c in t.columns}
    known |= {a.alias.lower() for a in tree.find_all(exp.Alias)}
    for col in list(tree.find_all(exp.Column)):
        ident = col.this
        if (
            isinstance(ident, exp.Identifier)
            and ident.quoted
            and not col.table
            and ident.name.lower() not in known
        ):
            col.replace(exp.Literal.string(ident.name))


def _column_hint(name: str, tree: Any, schema: Schema) -> str:
    """Where the model can find what it meant: the tables that do have a column of that
    name, and the real columns of the tables the query reads (repair prompts show this)."""
    bare = name.split(".")[-1].lower()
    owners = [
        t.name for t in schema.tables.values() if any(c.name.lower() == bare for c in t.columns)
    ]
    aliases = {t.name.lower(): t.alias_or_name for t in tree.find_all(exp.Table) if t.name}

    def named(owner: str) -> str:  # an owner the query reads under an alias: say which
        alias = aliases.get(owner.lower(), owner)
        return owner if alias.lower() == owner.lower() else f"{owner} (read here as {alias})"

    hint = f". {name.split('.')[-1]} is a column of {', '.join(map(named, owners))}"
    hint = hint if owners else ""
    parts = []
    for cte in tree.find_all(exp.CTE):  # e.g. a follow-up's previous_result (engine.followup)
        alias = cte.args.get("alias")
        names = [c.name for c in alias.columns] if alias is not None and alias.columns else []
        names = names or [n for n in cte.this.named_selects if n]
        if names:
            parts.append(f"{cte.alias_or_name}({', '.join(names)})")
    read = []
    for table in tree.find_all(exp.Table):
        found = schema.table(table.name) if table.name else None
        if found is not None and found not in read:
            read.append(found)
    parts += [f"{t.name}({', '.join(c.name for c in t.columns)})" for t in read[:4]]
    joins = join_hint(owners, read, schema, aliases) if read else ""
    return hint + joins + (f". Columns: {'; '.join(parts[:5])}" if parts else "")


def join_hint(owners: list[str], read: list[Any], schema: Schema, aliases: dict[str, str]) -> str:
    """How the query reaches a table holding the column when it reads none of them: the
    shortest chain of foreign keys from a table it reads (at most three joins), written as
    the JOIN clauses the model has to add (the tables the query reads by their aliases). A
    model that picked a column of the wrong table on a big schema (``emp_fname`` on
    PROFESSOR, a column of EMPLOYEE) mostly repairs by renaming it to another wrong column;
    told the join, it adds the join."""
    read_names = {t.name.lower() for t in read}
    if not owners or any(o.lower() in read_names for o in owners):
        return ""
    edges: dict[str, list[tuple[str, tuple]]] = {}  # table -> (neighbour, join columns)
    for t in schema.tables.values():
        for fk in t.foreign_keys:
            ref = schema.table(fk.ref_table)
            if ref is None:
                continue
            ref_col = fk.ref_column or next((c.name for c in ref.columns if c.primary_key), None)
            if ref_col is None:
                continue
            on = (t.name, fk.column, ref.name, ref_col)
            edges.setdefault(t.name.lower(), []).append((ref.name, on))
            edges.setdefault(ref.name.lower(), []).append((t.name, on))
    targets = {o.lower() for o in owners}
    paths: dict[str, list[tuple[str, tuple]]] = {t.name.lower(): [] for t in read}
    frontier = [t.name.lower() for t in read]
    for depth in range(4):  # breadth first: the first owner reached is the nearest
        found = [paths[n] for n in frontier if n in targets]
        if found or depth == 3:
            break
        nxt = []
        for name in frontier:
            for other, on in edges.get(name, []):
                if other.lower() not in paths:
                    paths[other.lower()] = [*paths[name], (other, on)]
                    nxt.append(other.lower())
        frontier = nxt
    if not found or not found[0]:
        return ""

    def side(table: str, column: str) -> str:
        return f"{aliases.get(table.lower(), table)}.{column}"

    steps = ", then ".join(
        f"JOIN {table} ON {side(a, col_a)} = {side(b, col_b)}"
        for table, (a, col_a, b, col_b) in found[0]
    )
    return f". To use it, add {steps}"


def _column_from_error(message: str) -> str | None:
    match = re.search(r"Column '?\"?([^'\"]+)\"?'? could not be resolved", message)
    if match:
        return match.group(1)
    match = re.search(r"Unknown column:? '?\"?([^'\"\s]+)", message)
    return match.group(1) if match else None
