"""What a SELECT query does, in plain words, for someone who does not read SQL.

:func:`explain` walks sqlglot's syntax tree of the query and writes a few Markdown bullet
lines in the order the query works: the tables it reads and how they are matched, the rows
it keeps, the groups it forms, what it shows, how it sorts and how many rows it returns,
then one closing "Note:" line for the dialect's quirks the query relies on (SQLite's dates
stored as text, its whole-number division, LIKE ignoring case, …). Subqueries, CTEs and the
parts of a UNION are explained as nested steps, indented.

It is built from the tree, not asked of a model, so it can only say what the SQL says: a
wrong query gets an accurate account of its wrongness, never a plausible story. A piece
without words of its own is shown as its SQL in backticks. It never raises: SQL that does not
parse, or is not one SELECT, gets "" (no explanation).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from engine.explain_words import PLACEHOLDER, PREVIOUS_NAME, Scope, ordered, position, say

INDENT = "  "
JOINS = {  # join kind → (words before the tables, words after them)
    "inner": ("matched with", ""),
    "left": ("with any matching", ", keeping rows that have no match"),
    "right": ("with all rows of", ", even those without a match"),
    "full": ("with", ", keeping unmatched rows from both sides"),
    "cross": ("with every combination of", ""),
    "comma": ("together with", " (every combination; the filter below links them)"),
}
SET_WORDS = {
    "union": "Combines the rows of these queries, dropping repeated rows:",
    "union all": "Combines all the rows of these queries, repeats included:",
    "intersect": "Keeps only the rows that every one of these queries returns:",
    "except": "Takes the rows of the first query and removes any that the others return:",
}


def explain(sql: str, dialect: str = "sqlite") -> str:
    """Markdown bullet lines saying what ``sql`` does; "" when it is not one SELECT query."""
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect) if t is not None]
    except (SqlglotError, ValueError):
        return ""
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        return ""
    notes: dict[str, None] = {}
    try:
        lines = _query(trees[0], Scope(dialect=dialect, notes=notes))
    except Exception:  # an explanation is an extra: an odd tree must never break an answer
        return ""
    if notes:
        lines.append("- Note: " + " ".join(notes))
    return "\n".join(lines)


def _query(node: exp.Expression, outer: Scope) -> list[str]:
    """The lines for a query (a SELECT, a set operation, a parenthesised query)."""
    while isinstance(node, exp.Subquery):
        node = node.this
    lines = _ctes(node, outer)
    if isinstance(node, exp.SetOperation):
        return lines + _set_operation(node, outer)
    if isinstance(node, exp.Select):
        return lines + _select(node, outer)
    return [f"- Runs `{node.sql(dialect=outer.dialect)}`."]


def _ctes(node: exp.Expression, outer: Scope) -> list[str]:
    with_ = node.args.get("with_" if "with_" in node.arg_types else "with")  # sqlglot >= 28
    lines: list[str] = []
    for cte in with_.expressions if with_ else []:
        if cte.alias_or_name.lower() == PREVIOUS_NAME:
            continue  # said where it is read: "the rows of the previous answer"
        first = "First" if not lines else "Next"
        lines.append(f"- {first}, builds **{cte.alias_or_name}**:")
        lines += _indent(_query(cte.this, outer))
    return lines


def _set_operation(node: exp.SetOperation, outer: Scope) -> list[str]:
    kind = node.key + (" all" if node.key == "union" and not node.args.get("distinct") else "")
    parts: list[exp.Expression] = [node.this, node.expression]
    while any(_same_set(p, node) for p in parts):  # a UNION b UNION c: three parts, one line
        i = next(i for i, p in enumerate(parts) if _same_set(p, node))
        parts[i : i + 1] = [parts[i].this, parts[i].expression]
    lines = [f"- {SET_WORDS[kind]}"]
    for i, part in enumerate(parts, start=1):
        lines.append(f"{INDENT}- Query {i}:")
        lines += _indent(_query(part, outer), 2)
    scope = Scope(dialect=outer.dialect, notes=outer.notes, outer=outer)
    return lines + _order_limit(node, scope, aggregated=False)


def _same_set(part: exp.Expression, top: exp.SetOperation) -> bool:
    same = type(part) is type(top) and part.args.get("distinct") == top.args.get("distinct")
    bare = not any(part.args.get(k) for k in ("order", "limit", "offset"))
    return same and bare and top.key != "except"


def _select(node: exp.Select, outer: Scope) -> list[str]:
    scope = _scope(node, outer)
    lines = _line(_reads(node, scope), scope)
    where = node.args.get("where")
    if where is not None:
        lines += _line(f"Keeps only the rows where {say(where.this, scope)}.", scope)
    group = node.args.get("group")
    if group is not None:
        keys = _join(position(k, scope) for k in group.expressions)
        lines += _line(f"Groups the rows by {keys} (one result row per group).", scope)
    having = node.args.get("having")
    if having is not None:
        lines += _line(f"Keeps only the groups where {say(having.this, scope)}.", scope)
    lines += _line(_shows(node, scope, grouped=group is not None), scope)
    aggregated = group is None and any(s.find(exp.AggFunc) for s in node.selects)
    return [line for line in lines if line] + _order_limit(node, scope, aggregated)


def _scope(node: exp.Select, outer: Scope) -> Scope:
    """The sources a SELECT reads: alias → the name its columns are shown with."""
    from_ = node.args.get("from_" if "from_" in node.arg_types else "from")
    sources = [from_.this] if from_ else []
    sources += [j.this for j in node.args.get("joins") or []]
    names = [s.name.lower() for s in sources if isinstance(s, exp.Table)]
    scope = Scope(dialect=outer.dialect, notes=outer.notes, outer=outer)
    for source in sources:
        alias = source.alias_or_name
        twice = isinstance(source, exp.Table) and names.count(source.name.lower()) > 1
        scope.sources[alias.lower()] = alias if twice or not source.name else source.name
        if twice:
            scope.self_joined.add(alias.lower())
    for join in node.args.get("joins") or []:
        if join.side in ("LEFT", "FULL"):
            scope.optional[join.this.alias_or_name.lower()] = _table_name(join.this)
    return scope


def _table_name(source: exp.Expression) -> str:
    return source.name if isinstance(source, exp.Table) else source.alias_or_name


def _reads(node: exp.Select, scope: Scope) -> str:
    from_ = node.args.get("from_" if "from_" in node.arg_types else "from")
    if from_ is None:
        return "Computes values without reading any table."
    text = f"Reads {_source(from_.this, scope)}"
    groups: list[tuple[str, list[str]]] = []
    for join in node.args.get("joins") or []:
        kind = _join_kind(join)
        piece = _source(join.this, scope) + _on(join, scope, first=not groups)
        if groups and groups[-1][0] == kind:
            groups[-1][1].append(piece)
        else:
            groups.append((kind, [piece]))
    for kind, pieces in groups:
        before, after = JOINS[kind]
        if kind == "comma" and node.args.get("where") is None:
            after = " (every combination)"
        text += f", {before} {_join(pieces)}{after}"
    return text + "."


def _join_kind(join: exp.Join) -> str:
    side, kind = (join.side or "").lower(), (join.kind or "").lower()
    if side in JOINS:
        return side
    if kind == "cross":  # sqlite's parser writes "FROM a, b" as a CROSS JOIN without pivots
        return "cross" if "pivots" in join.args else "comma"
    if not kind and not join.args.get("on") and not join.args.get("using"):
        return "comma"
    return "inner"


def _source(source: exp.Expression, scope: Scope) -> str:
    alias = source.alias_or_name
    if isinstance(source, exp.Table):
        shown = f"**{source.name}**"
        if source.name.lower() == PREVIOUS_NAME:
            shown += " (the rows of the previous answer)"
        if alias.lower() in scope.self_joined:
            shown += f" as {alias}"
        return shown
    if isinstance(source, exp.Subquery):
        called = f" (called {alias})" if alias else ""
        return f"the rows found by {scope.nest(source)}{called}"
    return f"`{source.sql(dialect=scope.dialect)}`"


def _on(join: exp.Join, scope: Scope, first: bool) -> str:
    using = join.args.get("using")
    if using:
        return f" (same {_join(i.name for i in using)})"
    on = join.args.get("on")
    if on is None:
        return ""
    if isinstance(on, exp.EQ) and all(isinstance(c, exp.Column) for c in on.flatten()):
        left, right = on.this, on.expression
        mine = join.this.alias_or_name.lower()
        other = right if left.table.lower() == mine else left
        if left.name.lower() == right.name.lower() and other.table.lower() != mine:
            if first:
                return f" (same {left.name})"
            return f" (same {left.name} as {scope.sources.get(other.table.lower(), other.table)})"
    return f" (where {say(on, scope)})"


def _shows(node: exp.Select, scope: Scope, grouped: bool) -> str:
    names = [s.name.lower() for s in node.selects if isinstance(s, exp.Column)]
    items = []
    for select in node.selects:
        self_joined = isinstance(select, exp.Column) and select.table.lower() in scope.self_joined
        if (
            isinstance(select, exp.Column)
            and names.count(select.name.lower()) == 1
            and not self_joined
        ):
            items.append(select.name if not isinstance(select.this, exp.Star) else "all columns")
        elif isinstance(select, exp.Alias):
            inner = select.this
            text = say(inner, scope)
            plain = isinstance(inner, exp.Column) and text.split(".")[-1] == select.alias
            items.append(text if plain else f"{text} (as {select.alias})")
        else:
            items.append(say(select, scope))
    shown = _join(items, "; " if any(", " in i for i in items) else ", ")
    distinct = ", without repeated rows" if node.args.get("distinct") else ""
    return f"Shows {'for each group: ' if grouped else ''}{shown}{distinct}."


def _order_limit(node: exp.Query, scope: Scope, aggregated: bool) -> list[str]:
    lines = []
    order = node.args.get("order")
    if order is not None:
        keys = [ordered(o, scope) for o in order.expressions]
        lines += _line(f"Sorts by {', then by '.join(keys)}.", scope)
    limit, offset = node.args.get("limit"), node.args.get("offset")
    count = say(limit.expression, scope) if limit is not None else ""
    skip = say(offset.expression, scope) if offset is not None else ""
    if not count and not skip:
        return lines
    arbitrary = order is None and not aggregated
    if count and skip:
        text = f"Skips the first {skip} rows and returns the next {count}"
    elif count:
        text = "Returns only the first row" if count == "1" else f"Returns the first {count} rows"
        if arbitrary:
            text = "Returns one row" if count == "1" else f"Returns {count} rows"
    else:
        text = f"Skips the first {skip} rows"
    if arbitrary:
        text += "; with no sort order, which rows come back is arbitrary"
    return lines + _line(text + ".", scope)


def _line(text: str, scope: Scope) -> list[str]:
    """A bullet line, with the subqueries its words queued explained under it."""
    nested, scope.nested = scope.nested, []
    many = len(nested) > 1
    for i in range(len(nested)):
        ref = f"step {chr(65 + i)} below" if many else "the nested step below"
        text = text.replace(PLACEHOLDER.format(i), ref)
    lines = [f"- {text}"]
    for i, query in enumerate(nested):
        if many:
            lines.append(f"{INDENT}- Step {chr(65 + i)}:")
        lines += _indent(_query(query, scope), 2 if many else 1)
    return lines


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    return [INDENT * levels + line for line in lines]


def _join(items, separator: str = ", ") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{separator.join(items[:-1])} and {items[-1]}"
