"""Follow-up questions about the previous answer's rows: "and which of them …".

A follow-up's prompt names the previous answer's rows as a table, ``previous_result``, with
its columns. A model that selects from it does not have to restate the previous query (which
small models get wrong: they answer over the whole table instead of those rows); the engine
then puts the previous query in front of the answer as a common table expression, so the SQL
the user sees and runs is whole and self-contained:

    WITH previous_result(name, revenue) AS (SELECT p.name, … LIMIT 5) SELECT … FROM …

A model that ignores the table (a follow-up that refines the question rather than asking
about its rows) is run as it wrote it. Retrieval for a follow-up reads the previous question
with it (:func:`retrieval_query`): "what about paypal?" alone finds nothing of what it means.
"""

from __future__ import annotations

import re

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

PREVIOUS = "previous_result"
NOTE = (
    "The rows of the previous answer are the table {table}({columns}). When the task asks "
    "about those rows (them, those, these, of them), select from {table}."
)


def previous_columns(sql: str, dialect: str = "sqlite") -> list[str]:
    """Names for the columns ``sql`` returns: its own, or for an unnamed expression the
    function's (``count``) or ``column<n>``; [] when they cannot be told (``SELECT *``, SQL
    that does not parse)."""
    try:
        return _output_names(parse_one(sql, read=dialect))
    except SqlglotError:
        return []


def _output_names(tree: exp.Expression) -> list[str]:
    if not isinstance(tree, exp.Query) or not tree.selects:
        return []
    names: list[str] = []
    for i, select in enumerate(tree.selects, start=1):
        if isinstance(select, exp.Star) or (
            isinstance(select, exp.Column) and isinstance(select.this, exp.Star)
        ):
            return []
        name = select.alias_or_name
        if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            inner = select.unalias()
            name = inner.key if isinstance(inner, exp.Func) else f"column{i}"
        while name.lower() in (n.lower() for n in names):
            name = f"{name}_{i}"
        names.append(name)
    return names


def previous_note(sql: str | None, dialect: str = "sqlite") -> str:
    """The prompt's line about the previous answer's rows; "" when there is none to offer."""
    columns = previous_columns(sql, dialect) if sql else []
    if not columns:
        return ""
    return NOTE.format(table=PREVIOUS, columns=", ".join(columns))


def retrieval_query(question: str, history: list[tuple[str, str]] | None) -> str:
    """What retrieval searches with: a follow-up with the question before it."""
    return f"{history[-1][0]}\n{question}" if history else question


def attach_previous(sql: str, previous: str | None, dialect: str = "sqlite") -> str:
    """``sql`` with ``previous`` in front as ``WITH previous_result(…) AS (…)`` when it selects
    from that table and does not define it itself; otherwise ``sql`` unchanged."""
    if not previous:
        return sql
    try:
        tree = parse_one(sql, read=dialect)
        if not isinstance(tree, exp.Query):
            return sql
        named = {t.name.lower() for t in tree.find_all(exp.Table) if not t.args.get("db")}
        defined = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        if PREVIOUS not in named or PREVIOUS in defined:
            return sql
        before = parse_one(previous, read=dialect)
    except SqlglotError:
        return sql
    columns = _output_names(before)
    if not columns:
        return sql
    alias = exp.TableAlias(
        this=exp.to_identifier(PREVIOUS), columns=[exp.to_identifier(c) for c in columns]
    )
    cte = exp.CTE(this=before, alias=alias)
    key = "with_" if "with_" in tree.arg_types else "with"  # sqlglot >= 28 says with_
    with_ = tree.args.get(key)
    if with_ is None:
        tree.set(key, exp.With(expressions=[cte]))
    else:  # first, so the query's own CTEs may use it
        with_.set("expressions", [cte, *with_.expressions])
    return tree.sql(dialect=dialect)
