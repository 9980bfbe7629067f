"""A follow-up about the previous answer's rows, kept to those rows by the engine itself.

"Which of them live in Leeds?" after "Which 5 customers spent the most?": small models
answer such a follow-up as if it stood alone (every customer in Leeds), and fail to restate
the previous query inside the new one. The ``scope`` way (engine.conversation) lets them:
the follow-up is asked alone, and its SQL is then limited to the previous answer's rows.

:func:`previous_entity` finds what the previous answer's rows are: the key of the table
they come from (the grouped key, else the primary key of the table most of the shown
columns come from) and a subquery giving those keys. :func:`restrict` adds
``<that table>.<key> IN (<subquery>)`` to the new SQL where it reads that table (or a table
with a foreign key to it), so the SQL the user sees runs on its own and says what it did.
Both return None when they cannot tell; the SQL is then run as the model wrote it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError

from engine.schema import Schema, Table
from engine.sql_check import join_hint

# Words that point at the previous answer's rows: "which of them", "those", "their …", and
# for one row or each of them "its capacity", "in it", "his salary", "only the ones in
# Leeds", "each one", "that one", "which of the above", "for each agent shown" (not "the
# same city" or "what about the ones in York?": those ask for other rows).
SCOPE_WORDS = re.compile(
    r"\b(them|they|those|these|their|its|his|him|her|each one|that one|which ones"
    r"|(only|just|of|among|from) the ones|the ones (listed|shown|above)"
    r"|the above|(each|per|every) \w+ (shown|listed))\b"
    r"|\bit\b(?!')|\bthe same \w+s\b",  # "have the same teachers …" (not "the same city")
    re.I,
)
# A short question (nine words at most) whose "it", "his" or bare "each" can only mean the
# previous rows: "which city is it based in?", "how many sections in each?", "how many races
# has each hosted?". In a longer question they mostly point inside it ("… and how many
# cards are there of each?"), so only the short ones count as pointing back.
ONE_ROW = r"\b(it|its|he|she|his|her|him)\b(?!')"  # the one row before, not "it's"
SHORT_POINTER = re.compile(
    r"^(?=\W*(\w+\W+){0,8}\w*\W*$).*(" + ONE_ROW + r"|\b(for|in|of|by|to|from|with)\s+each\W*$"
    r"|\beach\s+(has|have|had|is|was|were|did|does|do)\b"
    r"|\b(has|have|had|did|does|do)\s+each\s+\w+(ed|en)\b)",
    re.I,
)
KEY = "scope_key"


@dataclass(frozen=True)
class Entity:
    """What the previous answer's rows are: ``table.column`` values, found by ``keys``."""

    table: str
    column: str
    keys: exp.Select
    labels: tuple[str, ...] = ()  # its text columns the previous answer showed (names)
    key_shown: bool = False  # whether the previous answer showed the key itself
    alias: str = ""  # the name the previous SQL reads its table under (lower case)
    # the previous SQL showed only a foreign key to them ("SELECT DISTINCT investor_id FROM
    # transactions"): that column's name, and ``alias`` is the table holding it, not theirs
    via: str = ""


def refers_to_rows(question: str) -> bool:
    return bool(SCOPE_WORDS.search(question) or SHORT_POINTER.search(question))


def rows_noun(table: str) -> str:
    """A table's name as a plural noun: ``Apartment_Buildings`` -> "apartment buildings",
    ``department`` -> "departments", ``constructorResults`` -> "constructor results"."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", table).replace("_", " ").lower().split()
    if not words:
        return table
    last = words[-1]
    if re.search(r"(s|x|z|ch|sh)$", last):
        plural = last if last.endswith("s") else last + "es"
    elif re.search(r"[^aeiou]y$", last):
        plural = last[:-1] + "ies"
    else:
        plural = last + "s"
    return " ".join([*words[:-1], plural])


# The pronouns that point at the previous rows, and what each becomes ({} is the rows' noun):
# "of them" but not "of those customers" (already named; "of them is" is not a plural noun).
_NAMING = (
    (
        r"\b(of|among|for|from|to|with) (them|those|these)\b"
        r"(?! (?!is\b|was\b|has\b|does\b)\w+s\b)",
        r"\1 the {}",
    ),
    (r"\btheir\b", "the {}'s"),
    (r"\b(they|them)\b", "the {}"),
    (r"\b(those|these)(?= (are|were|have|has|had|do|did|with|who|that|in|on)\b|\W*$)", "the {}"),
    (r"\bper \w+ (shown|listed)\b", "for each of the {}"),
    (r"\b(each|every) \w+ (shown|listed)\b", "each of the {}"),
    (r"\beach one\b", "each of the {}"),
    (r"\bwhich ones\b", "which of the {}"),
    (r"\bthe (ones|above)\b(?: (listed|shown)(?: above)?\b)?", "the {}"),
    (r"\bthat one\b", "the {}"),
    (r"\bthe same \w+s\b", "the {}"),
    (r"\b(for|in|of|by|to|from|with) each(?=\W*$)", r"\1 each of the {}"),
    (r"\b(has|have|had|did|does|do) each(?= \w+(ed|en)\b)", r"\1 each of the {}"),
    (r"\beach(?= (has|have|had|is|was|were|did|does|do)\b)", "each of the {}"),
    (r"\b(its|his)\b", "the {}'s"),
    (r"\bher\b(?= (?!(in|on|at|to|for|from|with|by|and|or|as)\b)[a-z])", "the {}'s"),
    (r"\b(it|him|her|he|she)\b(?!')", "the {}"),
)


def name_rows(question: str, table: str) -> str:
    """``question`` with the pronouns that point at the previous rows replaced by their
    table's name: "which of them are in Sales?" -> "which of the employees are in Sales?".
    The ``scope`` way asks this, so the model knows what "them" are; the engine then limits
    its SQL to the previous rows (:func:`restrict`)."""
    noun = rows_noun(table).replace("\\", "\\\\")  # a template of re.sub
    possessive = noun + ("'" if noun.endswith("s") else "'s")  # the employees' job titles
    for pattern, form in _NAMING:
        template = form.replace("{}'s", possessive).replace("{}", noun)
        question = re.sub(pattern, template, question, flags=re.I)
    return question


def _tables(select: exp.Select) -> dict[str, str]:
    """Alias (or name), lower-cased -> table name, for the tables a SELECT reads itself."""
    found = {}
    sources = [select.args.get("from_") or select.args.get("from")]
    sources += [j.this for j in select.args.get("joins") or []]
    for source in sources:
        table = source.this if isinstance(source, exp.From) else source
        if isinstance(table, exp.Table) and table.name:
            found[table.alias_or_name.lower()] = table.name
    return found


def _owner(column: exp.Column, tables: dict[str, str], schema: Schema) -> str | None:
    """The alias of the table a column belongs to, in this SELECT."""
    if column.table:
        return column.table.lower() if column.table.lower() in tables else None
    owners = [
        alias
        for alias, name in tables.items()
        if (t := schema.table(name))
        and any(c.name.lower() == column.name.lower() for c in t.columns)
    ]
    return owners[0] if len(owners) == 1 else None


def column_table(column: exp.Column, schema: Schema) -> Table | None:
    """The table a column comes from in its own SELECT (:func:`_owner`), or None."""
    select = column.parent_select
    if not isinstance(select, exp.Select):
        return None
    tables = _tables(select)
    alias = _owner(column, tables, schema)
    return schema.table(tables[alias]) if alias else None


def primary_key(table: Table) -> str | None:
    """A table's primary key column; None when it has none or several."""
    keys = [c.name for c in table.columns if c.primary_key]
    return keys[0] if len(keys) == 1 else None


def _read(sql: str, schema: Schema) -> tuple[exp.Select, dict[str, str]] | None:
    """``sql`` as one SELECT and the tables it reads itself (:func:`_tables`), or None."""
    try:
        tree = parse_one(sql, read=schema.dialect)
    except SqlglotError:
        return None
    if not isinstance(tree, exp.Select) or not (tables := _tables(tree)):
        return None
    return tree, tables


def previous_entity(previous: str, schema: Schema) -> Entity | None:
    """What the rows of ``previous`` (SQL) are, or None when that cannot be told."""
    if (read := _read(previous, schema)) is None:
        return None
    tree, tables = read
    group = tree.args.get("group")
    if group is None and any(s.find(exp.AggFunc) for s in tree.selects):
        return None  # one aggregate row: a number, not rows of something
    if group is None and (found := _shown_reference(tree, tables, schema)) is not None:
        return found
    alias, column = (
        _grouped_key(tree, tables, schema) if group else _shown_table(tree, tables, schema)
    )
    if alias is None or column is None:
        return None
    inner = tree.copy()
    inner.select(exp.alias_(exp.column(column, table=alias), KEY), copy=False)
    keys = exp.select(KEY).from_(inner.subquery("scope_rows"))
    shown = any(
        isinstance(c := s.unalias(), exp.Column)
        and c.name.lower() == column.lower()
        and _owner(c, tables, schema) == alias
        for s in tree.selects
    )
    labels = _labels(tree, alias, tables, schema, column)
    return Entity(tables[alias], column, keys, labels, shown, alias)


def _shown_reference(tree: exp.Select, tables: dict[str, str], schema: Schema) -> Entity | None:
    """The rows a SELECT showing one column, a foreign key of its table, names: those of the
    table it refers to ("SELECT DISTINCT m.document_id FROM documents_mailed AS m …" lists
    documents); None for any other SELECT."""
    columns = {s.unalias().sql() for s in tree.selects}
    column = tree.selects[0].unalias() if len(columns) == 1 else None
    if not isinstance(column, exp.Column) or (alias := _owner(column, tables, schema)) is None:
        return None
    if (table := schema.table(tables[alias])) is None or primary_key(table) == column.name:
        return None
    refs = [fk for fk in table.foreign_keys if fk.column.lower() == column.name.lower()]
    their = schema.table(refs[0].ref_table) if len(refs) == 1 else None
    if their is None or their.name.lower() == table.name.lower():
        return None
    key = refs[0].ref_column or primary_key(their)
    if key is None or not any(c.name.lower() == key.lower() for c in their.columns):
        return None
    inner = tree.copy().select(exp.alias_(exp.column(column.name, table=alias), KEY), copy=False)
    keys = exp.select(KEY).from_(inner.subquery("scope_rows"))
    return Entity(their.name, key, keys, (), True, alias, via=column.name)


TEXT_TYPES = re.compile(r"char|text|string|clob|^$", re.I)  # "": SQLite's untyped column


def _labels(
    tree: exp.Select, alias: str, tables: dict[str, str], schema: Schema, key: str
) -> tuple[str, ...]:
    """The text columns of the entity's table that a SELECT shows as they are (its names)."""
    table = schema.table(tables[alias])
    types = {c.name.lower(): c.type for c in table.columns} if table else {}
    found = []
    for select in tree.selects:
        column = select.unalias()
        if (
            isinstance(column, exp.Column)
            and _owner(column, tables, schema) == alias
            and column.name.lower() != key.lower()
            and TEXT_TYPES.search(types.get(column.name.lower(), "-"))
        ):
            found.append(column.name)
    return tuple(dict.fromkeys(found))


def _grouped_key(
    tree: exp.Select, tables: dict[str, str], schema: Schema
) -> tuple[str | None, str | None]:
    """The GROUP BY column that is a primary key, else the first one of a known table."""
    found: list[tuple[str, str, bool]] = []
    for key in tree.args["group"].expressions:
        if isinstance(key, exp.Column) and (alias := _owner(key, tables, schema)):
            table = schema.table(tables[alias])
            found.append((alias, key.name, bool(table and primary_key(table) == key.name)))
    found.sort(key=lambda f: not f[2])
    return (found[0][0], found[0][1]) if found else (None, None)


def _shown_table(
    tree: exp.Select, tables: dict[str, str], schema: Schema
) -> tuple[str | None, str | None]:
    """The table most shown columns come from (the first read on a tie), by its key."""
    owners = Counter(
        alias
        for select in tree.selects
        for column in select.find_all(exp.Column)
        if (alias := _owner(column, tables, schema))
    )
    order = list(tables)
    alias = max(order, key=lambda a: (owners[a], -order.index(a)))
    table = schema.table(tables[alias])
    return alias, (primary_key(table) if table else None)


def restrict(
    sql: str, entity: Entity, schema: Schema, each: bool = False, whole: bool = False
) -> str | None:
    """``sql`` limited to the entity's rows, where it reads its table or one that refers to
    it by a foreign key; None when it reads neither (or is not one SELECT). ``each``: the
    follow-up asks something of each of the rows (:data:`EACH`); one aggregate over the rows
    that refer to them is then counted for each of them (:func:`per_row`). ``whole``: it
    asks about all of them, not for some of them ("what cities do they live in?", not
    "which of them live in Leeds?"); their table joined outward keeps those of them with
    nothing joined (:func:`_keep_every`)."""
    if each and (rows := per_row(sql, entity, schema)) is not None:
        return rows
    try:
        tree = parse_one(sql, read=schema.dialect)
    except SqlglotError:
        return None
    if not isinstance(tree, exp.Select) or "scope_rows" in sql:
        return None
    tables = _tables(tree)
    if (target := reads_rows(tree, entity, schema)) is None:
        return None
    alias, column = target
    if whole and tables[alias].lower() == entity.table.lower():
        _keep_every(tree, alias, tables, schema)
    condition = exp.column(column, table=alias).isin(query=entity.keys.copy())
    tree = tree.where(condition, copy=False)
    if tables[alias].lower() == entity.table.lower():
        _show_labels(tree, alias, entity, tables, schema)
    else:
        _name_keys(tree, alias, column, entity, tables, schema)
        _name_referring(tree, alias, column, entity, tables, schema)
    _hide_keys(tree, entity, tables, schema)
    return tree.sql(dialect=schema.dialect)


def _keep_every(tree: exp.Select, alias: str, tables: dict[str, str], schema: Schema) -> None:
    """A SELECT of their table (``alias``, read first) joined outward to what it shows of
    them ("what cities do they live in?": ``teachers JOIN addresses``), with conditions on
    their table only: its inner joins become LEFT JOINs (changed in place), so that one of
    them with no address keeps a row, as a question about all of them asks. Anything else
    (a grouping, an aggregate, a LIMIT, another kind of join, a condition on a joined
    table, which makes it a question of some of them) is left as it is."""
    joins = tree.args.get("joins") or []
    source = (tree.args.get("from_") or tree.args.get("from")).this
    if not joins or not isinstance(source, exp.Table) or source.alias_or_name.lower() != alias:
        return
    if any(tree.args.get(k) for k in ("group", "having", "limit", "offset")):
        return
    if any(s.find(exp.AggFunc) for s in tree.selects):
        return
    for join in joins:
        kind = (join.args.get("kind") or "").upper()
        if join.args.get("side") or kind not in ("", "INNER") or not join.args.get("on"):
            return
    where = tree.args.get("where")
    columns = list(where.find_all(exp.Column)) if where is not None else []
    if any(_owner(c, tables, schema) != alias for c in columns):
        return
    for join in joins:
        join.set("kind", None)
        join.set("side", "LEFT")


# A follow-up that asks something of each of the previous rows, one answer per row, or of
# the one row before ("how many students attended it?", "how many of its services …").
EACH = re.compile(r"\beach\b|\bapiece\b|\bthat one\b|" + ONE_ROW, re.I)
PER_ROW = "per_row"  # the alias of the aggregate of each row, joined to their table


def per_row(sql: str, entity: Entity, schema: Schema) -> str | None:
    """One row per previous row for an aggregate over the rows that refer to them, asked of
    each of them ("how many concerts has each of them headlined?" answered with one ``COUNT``
    over ``concert_performers``, or with counts grouped by the foreign key to them, which
    leave out those with none): their names (else their key) and the aggregate of each one's
    rows, grouped by the foreign key to them and joined to their table (none dropped: a count
    of none is 0). Their table joined to that one (``instructor JOIN teaches … GROUP BY
    instructor.name``, which leaves out those with none too) is read as that table's
    aggregate, and its conditions on their table are kept (:func:`_their_join`). None for any
    other SQL: grouped by anything else, not only aggregates, or reading their table with
    more than that (what it counts of them is the model's to say)."""
    if (read := _read(sql, schema)) is None or KEY in sql:
        return None
    tree, tables = read
    if tree.args.get("having") or tree.args.get("distinct"):
        return None
    theirs: list[exp.Expression] = []  # conditions on their table, kept on their rows
    if any(n.lower() == entity.table.lower() for n in tables.values()):
        if (joined := _their_join(tree, tables, entity, schema)) is None:
            return None
        tree, theirs = joined
        tables = _tables(tree)
    if (found := _referring(tables, entity, schema)) is None:
        return None
    alias, fk = found

    def is_link(node: exp.Expression) -> bool:
        return (
            isinstance(node, exp.Column)
            and node.name.lower() == fk.lower()
            and _owner(node, tables, schema) == alias
        )

    group = tree.args.get("group")
    if group is not None and not (len(group.expressions) == 1 and is_link(group.expressions[0])):
        return None
    values = [s for s in tree.selects if group is None or not is_link(s.unalias())]
    if not values or not all(s.find(exp.AggFunc) for s in values):
        return None
    link = exp.column(fk, table=alias)
    inner = tree.copy()
    inner.set("group", None)
    shown = []  # (its name in the subquery, its name shown, a count)
    columns: list[exp.Expression] = [exp.alias_(link, KEY)]
    for i, select in enumerate(values, 1):
        value = select.unalias()
        label = select.alias or (value.key if isinstance(value, exp.AggFunc) else f"value_{i}")
        shown.append((f"value_{i}", label, isinstance(value, exp.Count)))
        columns.append(exp.alias_(value.copy(), f"value_{i}"))
    inner.set("expressions", columns)
    for key in ("order", "limit", "offset"):
        inner.set(key, None)
    inner = inner.group_by(link.copy(), copy=False)
    key = exp.column(entity.column, table=NAMES)
    outer = exp.select(*(exp.column(n, table=NAMES) for n in entity.labels or (entity.column,)))
    for name, label, count in shown:
        value: exp.Expression = exp.column(name, table=PER_ROW)
        if count:  # no row refers to it: none counted
            value = exp.func("COALESCE", value, exp.Literal.number(0))
        outer = outer.select(exp.alias_(value, label), copy=False)
    their = exp.Table(this=exp.to_identifier(entity.table))
    outer = outer.from_(exp.alias_(their, NAMES, table=True), copy=False)
    on = exp.column(KEY, table=PER_ROW).eq(key.copy())
    outer = outer.join(inner.subquery(PER_ROW), on=on, join_type="left", copy=False)
    outer = outer.where(key.isin(query=entity.keys.copy()), *theirs, copy=False)
    return outer.sql(dialect=schema.dialect)


def _their_join(
    tree: exp.Select, tables: dict[str, str], entity: Entity, schema: Schema
) -> tuple[exp.Select, list[exp.Expression]] | None:
    """A SELECT of their table joined by their key to one table referring to them, showing
    their columns beside aggregates of the other table's, grouped by their columns: the same
    aggregates over the other table alone, and the conditions on their table (read under
    :data:`NAMES`); None for anything else (a condition on both, another join, an aggregate
    of their columns other than their key)."""
    joins = tree.args.get("joins") or []
    mine = [a for a, n in tables.items() if n.lower() == entity.table.lower()]
    if len(tables) != 2 or len(mine) != 1 or len(joins) != 1 or joins[0].args.get("using"):
        return None
    other = next(a for a in tables if a != mine[0])
    if (found := _referring({other: tables[other]}, entity, schema)) is None:
        return None
    fk = found[1]

    def owner(column: exp.Column) -> str | None:
        return _owner(column, tables, schema)

    def is_(column: exp.Expression, alias: str, name: str) -> bool:
        return (
            isinstance(column, exp.Column)
            and column.name.lower() == name.lower()
            and owner(column) == alias
        )

    on = joins[0].args.get("on")
    if not isinstance(on, exp.EQ) or not (
        (is_(on.this, mine[0], entity.column) and is_(on.expression, other, fk))
        or (is_(on.expression, mine[0], entity.column) and is_(on.this, other, fk))
    ):
        return None
    group = tree.args.get("group")
    if group is not None and any(
        not isinstance(g, exp.Column) or owner(g) != mine[0] for g in group.expressions
    ):
        return None
    values = []
    for select in tree.selects:
        value = select.unalias()
        if isinstance(value, exp.Column) and owner(value) == mine[0]:
            continue  # their names or key: shown as the previous answer showed them
        if not value.find(exp.AggFunc):
            return None
        for column in list(value.find_all(exp.Column)):
            if owner(column) == mine[0] and column.name.lower() != entity.column.lower():
                return None
        values.append(select.copy())
    if not values:
        return None
    inner_where, theirs = [], []
    where = tree.args.get("where")
    conditions = [] if where is None else [where.this]
    if isinstance(where and where.this, exp.And):
        conditions = list(where.this.flatten())
    for condition in conditions:
        owners = {owner(c) for c in condition.find_all(exp.Column)}
        if owners == {other}:
            inner_where.append(condition.copy())
        elif owners == {mine[0]}:
            theirs.append(condition.copy())
        else:
            return None
    for value in values:  # their key counted: the other table's column that refers to it
        for column in list(value.find_all(exp.Column)):
            if owner(column) == mine[0]:
                column.replace(exp.column(fk, table=other))
    for condition in theirs:
        for column in condition.find_all(exp.Column):
            column.set("table", exp.to_identifier(NAMES))
    source = next(t for t in tree.find_all(exp.Table) if t.alias_or_name.lower() == other).copy()
    alone = exp.select(*values).from_(source)
    if inner_where:
        alone = alone.where(*inner_where, copy=False)
    if group is not None:
        alone = alone.group_by(exp.column(fk, table=other), copy=False)
    return alone, theirs


def reads_rows(select: exp.Select, entity: Entity, schema: Schema) -> tuple[str, str] | None:
    """Where a SELECT reads the entity's keys: (alias, column) of the entity's own table,
    else of a table with a foreign key to it; None when it reads neither."""
    tables = _tables(select)
    own = next((a for a, n in tables.items() if n.lower() == entity.table.lower()), None)
    return (own, entity.column) if own is not None else _referring(tables, entity, schema)


def misses(sql: str, entity: Entity, schema: Schema) -> str | None:
    """Why ``sql``, asked about the previous rows, cannot be about them (one line): it reads
    tables, but neither theirs nor one that refers to it ("what are the employees' job
    titles?" answered from jobs alone); with the joins that reach their table. None when it
    reads them, or when that cannot be told."""
    if (read := _read(sql, schema)) is None:
        return None
    tables = read[1]
    if any(n.lower() == entity.table.lower() for n in tables.values()):
        return None
    if _referring(tables, entity, schema) is not None:
        return None
    known = [t for n in tables.values() if (t := schema.table(n)) is not None]
    if len(known) < len(tables):
        return None  # a table the schema does not know: checking will say so
    aliases = {n.lower(): a for a, n in tables.items()}
    hint = join_hint([entity.table], known, schema, aliases)
    return (
        f"The question is about the previous answer's rows, which are rows of {entity.table}, "
        f"but the query does not read {entity.table}{hint}"
    )


def _star(select: exp.Expression) -> bool:
    """A ``*`` or ``t.*`` column (not the one inside ``COUNT(*)``)."""
    return any(not star.find_ancestor(exp.AggFunc) for star in select.find_all(exp.Star))


def _show_labels(
    tree: exp.Select, alias: str, entity: Entity, tables: dict[str, str], schema: Schema
) -> None:
    """Put the previous answer's names in front of a follow-up's columns that show none of
    them ("what are their job titles?" shows whose), where each row is one of its rows: an
    ungrouped query, or one grouped by the entity's key or names; never a count of them."""
    labels = {n.lower() for n in entity.labels}
    if not labels or _star_in(tree):
        return
    group = tree.args.get("group")
    if group is None and any(s.find(exp.AggFunc) for s in tree.selects):
        return
    if group is not None:
        keys = {
            k.name.lower()
            for k in group.expressions
            if isinstance(k, exp.Column) and _owner(k, tables, schema) == alias
        }
        if not keys & (labels | {entity.column.lower()}):
            return
    shown = {
        c.name.lower()
        for s in tree.selects
        for c in s.find_all(exp.Column)
        if _owner(c, tables, schema) == alias
    }
    if shown & labels:
        return
    names = [exp.column(n, table=alias) for n in entity.labels]
    tree.set("expressions", [*names, *tree.expressions])


def _referring(tables: dict[str, str], entity: Entity, schema: Schema) -> tuple[str, str] | None:
    """A table of the query with a foreign key to the entity's key (:func:`links_to`)."""
    if (their := schema.table(entity.table)) is None:
        return None
    for alias, name in tables.items():
        table = schema.table(name)
        other = table is not None and table.name.lower() != their.name.lower()
        if other and (links := links_to(table, their, entity.column)):
            return alias, links[0]
    return None


def links_to(referring: Table, entity: Table, key: str) -> list[str]:
    """The columns of ``referring`` that are foreign keys to ``entity``'s ``key``; where it
    declares none to ``entity``, its column named as the key when that name is the key's
    own (``Musical_ID``, not ``id``) and the column is declared to refer nowhere else but
    back to ``referring`` (Spider's ``actor.Musical_ID`` is declared to refer to ``actor``)."""
    pk = [c.name.lower() for c in entity.columns if c.primary_key]
    declared = [
        fk.column
        for fk in referring.foreign_keys
        if fk.ref_table.lower() == entity.name.lower()
        and (fk.ref_column.lower() if fk.ref_column else (pk[0] if len(pk) == 1 else ""))
        == key.lower()
    ]
    if declared or any(
        fk.ref_table.lower() == entity.name.lower() for fk in referring.foreign_keys
    ):
        return declared
    elsewhere = {
        fk.column.lower()
        for fk in referring.foreign_keys
        if fk.ref_table.lower() != referring.name.lower()
    }
    own_key = [c.name.lower() for c in referring.columns if c.primary_key] == [key.lower()]
    if key.lower().strip("_") == "id" or own_key or key.lower() in elsewhere:
        return []
    return [c.name for c in referring.columns if c.name.lower() == key.lower()]


def _is_key(column: exp.Expression, entity: Entity, tables: dict[str, str], schema: Schema) -> bool:
    """Whether a shown column is the entity's key: its own, or a foreign key to it."""
    if not isinstance(column, exp.Column) or not (alias := _owner(column, tables, schema)):
        return False
    name, table = column.name.lower(), tables[alias]
    if table.lower() == entity.table.lower():
        return name == entity.column.lower()
    found, their = schema.table(table), schema.table(entity.table)
    if found is None or their is None:
        return False
    return name in {c.lower() for c in links_to(found, their, entity.column)}


def _hide_keys(tree: exp.Select, entity: Entity, tables: dict[str, str], schema: Schema) -> None:
    """Drop the key of the previous rows from a follow-up's columns where the previous answer
    showed them by their names, not by it, and the follow-up shows those names too: "which
    of them paid by card?" lists the customers as the answer before did, without their ids."""
    if entity.key_shown or not entity.labels:
        return
    labels = {n.lower() for n in entity.labels}
    named = any(
        isinstance(c := s.unalias(), exp.Column)
        and c.name.lower() in labels
        and (a := _owner(c, tables, schema)) is not None
        and tables[a].lower() == entity.table.lower()
        for s in tree.selects
    )
    kept = [s for s in tree.selects if not _is_key(s, entity, tables, schema)]
    if named and kept and len(kept) < len(tree.selects):
        tree.set("expressions", kept)


NAMES = "scope_names"  # the alias the previous rows' table is joined under to show names


def _name_keys(
    tree: exp.Select,
    alias: str,
    column: str,
    entity: Entity,
    tables: dict[str, str],
    schema: Schema,
) -> None:
    """A follow-up that shows the previous rows only by a foreign key to them ("how many
    people work in each of them?" grouped by ``employees.department_id``) shows their names
    instead, as the previous answer did: their table joined, the key replaced by the names."""
    if entity.key_shown or not entity.labels or _star_in(tree):
        return
    keys = [s for s in tree.selects if _is_key(s, entity, tables, schema)]
    if not keys:
        return
    names = _join_names(tree, alias, column, entity, tables, schema)
    shown = []
    for s in tree.selects:
        shown += [n.copy() for n in names] if any(s is k for k in keys) else [s]
    tree.set("expressions", shown)
    if (group := tree.args.get("group")) is not None:
        group.set("expressions", [*group.expressions, *(n.copy() for n in names)])


def _name_referring(
    tree: exp.Select,
    alias: str,
    column: str,
    entity: Entity,
    tables: dict[str, str],
    schema: Schema,
) -> None:
    """A follow-up answered from a table that refers to the previous rows, one row of it per
    row shown, and showing nothing of them ("what types of policy did we sell her?" as
    ``SELECT policy_type FROM policies``): their names put in front, their table joined by
    the foreign key (every shown row refers to one of them, so none is lost), as the previous
    answer showed them. Not for a count or other aggregate, nor where it shows them already."""
    if not entity.labels or _star_in(tree) or NAMES in _tables(tree):
        return
    if tree.args.get("group") is not None or any(s.find(exp.AggFunc) for s in tree.selects):
        return
    if any(_is_key(s.unalias(), entity, tables, schema) for s in tree.selects):
        return
    names = _join_names(tree, alias, column, entity, tables, schema)
    tree.set("expressions", [*names, *tree.expressions])


def _join_names(
    tree: exp.Select,
    alias: str,
    column: str,
    entity: Entity,
    tables: dict[str, str],
    schema: Schema,
) -> list[exp.Column]:
    """Their table joined (as :data:`NAMES`) by ``alias.column``, the foreign key to them;
    the columns of their names, to show. The query's bare columns are qualified first: the
    join could make one ambiguous."""
    for col in _own_columns(tree):
        if not col.table and (owner := _owner(col, tables, schema)):
            col.set("table", exp.to_identifier(owner))
    on = exp.column(entity.column, table=NAMES).eq(exp.column(column, table=alias))
    tree.join(exp.to_table(entity.table).as_(NAMES), on=on, copy=False)
    return [exp.column(n, table=NAMES) for n in entity.labels]


def _star_in(tree: exp.Select) -> bool:
    return any(_star(s) for s in tree.selects)


def _own_columns(tree: exp.Select) -> list[exp.Column]:
    """The columns of this SELECT itself, not of a query nested in it."""

    def prune(node: exp.Expression) -> bool:
        return node is not tree and isinstance(node, exp.Query | exp.Subquery)

    return [c for c in tree.walk(prune=prune) if isinstance(c, exp.Column)]
