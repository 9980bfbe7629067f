"""A string compared to a column that never holds it, moved to the one column that does.

A small model often puts a value in the wrong column of the right table: "how many services
are marked as unsatisfied?" becomes ``WHERE service_type_code = 'Unsatisfied'`` while the
word is stored in ``service_details``. Such a query runs and returns nothing (or counts 0),
so neither checking nor execution sees the mistake. :func:`relink_literals` looks each
``column = 'text'`` condition up in the database; where the column never holds the text (case
aside) and exactly one other text column of that table does, the condition is moved to that
column, the value spelled as stored there. A value found in no other column, or in several,
is left as written, and so is every condition whose column holds it: a query that was right
is never changed (none of Spider train's 6,904 gold queries is). On (``relink_literals``) by
default: on the held-out slices (100 questions each) it moved one answer on tune, wrong to
right, and none on world or final (README: How a question is answered).
"""

from __future__ import annotations

import time

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

from engine.compose import Lookup, stored_value
from engine.schema import Schema, Table
from engine.scope import TEXT_TYPES, column_table

# Lookups per query, and seconds for all of them: a query with more conditions, or a database
# too slow to look values up in (a large remote table), is left as written.
MAX_PROBES = 20
BUDGET_S = 3.0


def relink_literals(
    sql: str, schema: Schema, dialect: str, lookup: Lookup, budget_s: float = BUDGET_S
) -> str | None:
    """``sql`` with its misplaced string conditions moved (module doc), or None when none
    moved, it cannot be read, or its lookups would take more than ``MAX_PROBES`` or
    ``budget_s``. ``lookup`` runs a probe query and returns its rows."""
    try:
        tree = parse_one(sql, read=dialect)
    except SqlglotError:
        return None
    probes = [0]
    deadline = time.monotonic() + budget_s

    def probe(value: str, column: str, table: Table) -> str | None:
        probes[0] += 1
        if probes[0] > MAX_PROBES or time.monotonic() > deadline:
            raise _TooMany
        return stored_value(value, column, table, dialect, lookup)

    moved = False
    try:
        for eq in list(tree.find_all(exp.EQ)):
            found = _misplaced(eq, schema, probe)
            if found is not None:
                column, value = found
                eq.this.set("this", exp.to_identifier(column, quoted=eq.this.this.quoted))
                eq.set("expression", exp.Literal.string(value))
                moved = True
    except _TooMany:
        return None
    return tree.sql(dialect=dialect) if moved else None


class _TooMany(Exception):
    pass


def _misplaced(eq: exp.EQ, schema: Schema, probe) -> tuple[str, str] | None:
    """(the column that holds the value, the value as stored there) for ``column = 'text'``
    whose column never holds it, or None."""
    column, literal = eq.this, eq.expression
    if not (isinstance(column, exp.Column) and isinstance(literal, exp.Literal)):
        return None
    if not literal.is_string or not literal.this.strip():
        return None
    table = column_table(column, schema)  # in the column's own SELECT (a subquery's own)
    if table is None or not _has(table, column.name):
        return None
    value = literal.this
    if probe(value, column.name, table) is not None:
        return None
    others = [
        c.name
        for c in table.columns
        if c.name.lower() != column.name.lower() and TEXT_TYPES.search(c.type or "")
    ]
    hits = [(c, stored) for c in others if (stored := probe(value, c, table)) is not None]
    return hits[0] if len(hits) == 1 else None


def _has(table: Table, column: str) -> bool:
    return any(c.name.lower() == column.lower() for c in table.columns)
