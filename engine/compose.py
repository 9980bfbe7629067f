"""Follow-ups the engine writes itself: "how many reviews has each of them written?".

After an answer that lists things (customers, departments, circuits), a follow-up asking for
a count per thing has one right SQL, and a small model rarely writes it: it counts the wrong
table, joins the wrong way, drops the things with none, or forgets which things were meant.
:func:`compose_count` writes it from the schema instead:

    SELECT departments.name, COUNT(employees.employee_id) AS people_count
    FROM departments LEFT JOIN employees ON employees.department_id = departments.department_id
    WHERE departments.department_id IN (<the previous answer's keys>)
    GROUP BY departments.department_id, departments.name
    ORDER BY people_count DESC, departments.department_id

It accepts only a follow-up whose whole meaning is that count (:data:`COUNT_EACH`), where
the counted table is certain; anything else returns None and is left to the model. The same
holds for four more forms: an attribute of each row ("what are their job titles?",
:func:`compose_attribute`), the rows with a value stored in one column ("which of them are
in Sales?", :func:`compose_filter`), the rows in another order ("sort them by salary,
highest first", :func:`compose_sort`), and the previous question with another value ("what
about bands?", :func:`compose_swap`). :func:`compose` tries each in turn.

One more helps the model rather than replacing it: a follow-up asking for some of the
previous rows (:func:`restricts`, "which of them live in Leeds?", "only the women") is
answered by the model, and :func:`within_previous` turns its answer into the previous SQL
kept to the rows it gives (after a count of one table, to the rows it counted).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp, parse_one
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError

from engine.schema import Schema, Table
from engine.scope import (
    TEXT_TYPES,
    Entity,
    column_table,
    links_to,
    previous_entity,
    primary_key,
    reads_rows,
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The accepted sentences, case aside, with an optional leading "and"/"so" and end mark:
#   how many <noun> (has|have|does|do|did) each [one] of (them|those|these) [<verb> [<prep>]]
#       [<total>]
#   how many <noun> [are|is] <verb> [in|at|for|to|with|on|from] each [one] of (them|those|these)
#       [<total>]
#   how many <noun> (is|are|was|were) each [one] of (them|those|these) [a|an] <verb>
#       [in|at|for|to|with|on|from|of] [<total>]   ("how many teams is each of them a member of?")
# <noun>: one to three words naming a table that refers to the previous rows (or a person
# word, see _PEOPLE); <verb>: one of NEUTRAL_VERBS (they add no condition; after "is each of
# them", a participle or role of NEUTRAL_ROLES: "enrolled in", "a contact for"); <total>: "in
# total", "in all", "altogether", "overall", "so far". Nothing else may be in the sentence,
# and neither the noun nor the verb may hold a digit or one of STOP_WORDS.
_THEM = r"each(?:\s+one)?\s+of\s+(?:them|those|these)"
_PREP = r"(?:in|at|for|to|with|on|from)"
_TOTAL = r"(?:\s+(?:in\s+total|in\s+all|altogether|overall|so\s+far))?"
COUNT_EACH = re.compile(
    r"^\W*(?:(?:and|so)\s+)?how\s+many\s+(?P<noun>[a-z][\w-]*(?:\s+[a-z][\w-]*){0,2}?)\s+"
    rf"(?:(?:has|have|does|do|did)\s+{_THEM}(?:\s+(?P<verb>[a-z]+)(?:\s+{_PREP})?)?"
    rf"|(?:(?:are|is)\s+)?(?P<verb2>(?!{_PREP}\b)[a-z]+)(?:\s+{_PREP})?\s+{_THEM}"
    rf"|(?:is|are|was|were)\s+{_THEM}\s+(?:an?\s+)?(?P<role>[a-z]+)(?:\s+(?:{_PREP}|of))?)"
    rf"{_TOTAL}\s*[?.!]*\s*$",
    re.I,
)
# Verbs that only name the link between the counted rows and the previous ones; a verb
# that is a condition ("cancelled", "won", "returned") leaves the question to the model.
NEUTRAL_VERBS = _words(
    """have has had got get own owns hold holds held contain contains include includes
    employ employs host hosts hosted write writes wrote written place places placed make
    makes made receive receives received work works teach teaches taught run runs ran offer
    offers offered belong belongs there are is assigned based located listed come comes came
    live lives lived study studies studied play plays played serve serves served stop stops
    stopped attend attends attended appear appears appeared stock stocks stocked sell sells
    sold carry carries carried"""
)
# Participles and roles that only name the link ("how many courses is each of them enrolled
# in?", "how many organizations is each of them a contact for?").
NEUTRAL_ROLES = _words(
    """enrolled registered assigned involved linked associated connected attached subscribed
    signed listed contact member part customer client"""
)
# Words that, in the noun or the verb, make it more than a plain count of a table's rows:
# a condition, a distinct count, a noun that is not a table's ("of the orders").
STOP_WORDS = _words(
    """more less fewer than over above below least most before after since between last
    first only not never without new old recent active distinct different unique of the a
    an their its them those these they"""
)
# Person words, and the table names that hold people.
_PEOPLE = _words(
    "people persons person staff staffs workers worker employees employee members member"
)
_PERSON_TABLES = _words("employee staff person people member worker instructor student")
_NAMING = re.compile(r"name|title", re.I)
_DESCRIBING = re.compile(r"desc", re.I)
_CODE = re.compile(r"(?:^|_)(?:id|code)$|(?<=[a-z])(?:Id|Code)$", re.I)
_SAFE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = Dialect.get_or_raise("duckdb").generator_class.RESERVED_KEYWORDS


def compose(
    question: str, previous_sql: str, schema: Schema, dialect: str, lookup: Lookup | None = None
) -> str | None:
    """The SQL of a follow-up the engine writes itself, or None: a count for each of the
    previous rows (:func:`compose_count`), an attribute of each (:func:`compose_attribute`),
    those of them with a value (:func:`compose_filter`; ``lookup`` runs its probes),
    them in another order (:func:`compose_sort`), those of them with the most of something
    (:func:`compose_superlative`), or the previous SQL with another value
    (:func:`compose_swap`)."""
    return (
        compose_count(question, previous_sql, schema, dialect)
        or compose_attribute(question, previous_sql, schema, dialect)
        or compose_filter(question, previous_sql, schema, dialect, lookup)
        or compose_sort(question, previous_sql, schema, dialect)
        or compose_superlative(question, previous_sql, schema, dialect)
        or compose_swap(question, previous_sql, schema, dialect, lookup)
    )


def compose_count(question: str, previous_sql: str, schema: Schema, dialect: str) -> str | None:
    """The SQL counting, for each of the previous answer's rows, the rows of another table
    that refer to it; None unless ``question`` is exactly such a count (:data:`COUNT_EACH`)
    and the entity and the counted table are certain."""
    noun = counted_noun(question)
    if noun is None:
        return None
    if (rows := _previous_rows(previous_sql, schema)) is None:
        return None
    entity, table = rows
    found = counted_table(noun, table, entity.column, schema)
    if found is None:
        return None
    counted, fk, through = found
    return _count_sql(entity, table, counted, fk, noun, dialect, through)


def _previous_rows(previous_sql: str, schema: Schema) -> tuple[Entity, Table] | None:
    """What the previous answer's rows are (engine.scope.previous_entity) and their table,
    or None when that cannot be told."""
    entity = previous_entity(previous_sql, schema) if previous_sql else None
    table = schema.table(entity.table) if entity else None
    return (entity, table) if entity is not None and table is not None else None


def counted_noun(question: str) -> str | None:
    """The noun of a "how many <noun> … each of them" follow-up (lower case), or None."""
    match = COUNT_EACH.match(question.strip())
    if match is None:
        return None
    noun = " ".join(match["noun"].lower().split())
    if match["role"]:
        verb, neutral = match["role"].lower(), NEUTRAL_ROLES | NEUTRAL_VERBS
    else:
        verb, neutral = (match["verb"] or match["verb2"] or "have").lower(), NEUTRAL_VERBS
    words = {*noun.split(), verb}
    if verb not in neutral or words & STOP_WORDS or any(c.isdigit() for c in noun):
        return None
    return noun


def _singular(name: str) -> str:
    """A table name or noun, without case, spaces, underscores or a plural ending."""
    word = re.sub(r"[\s_-]+", "", name.lower())
    if word.endswith("people"):
        return word[: -len("people")] + "person"
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if re.search(r"(s|x|z|ch|sh)es$", word):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def counted_table(
    noun: str, entity: Table, key: str, schema: Schema
) -> tuple[Table, str, str | None] | None:
    """The table the noun counts, with its foreign key column to ``entity``: the one table
    referring to it (directly, by one foreign key) whose name is the noun (or ends in it:
    ``Document_Sections`` for "sections"); for a person word
    without such a table, the one referring table that holds people; else the one table
    linking it to a table named so ("how many stations does each train stop at": ``route``,
    with foreign keys to ``train`` and ``station``), with the link's column to count (the
    third item; None for a direct count). A noun of several words that names none may count
    its last word's table, when the other words are in that table's name ("office
    buildings": through ``Office_locations``). None when not exactly one fits."""
    found = _counted_table(noun, entity, key, schema)
    *qualifiers, last = noun.split()
    if found is not None or not qualifiers:
        return found
    # "office buildings": the buildings, when "office" is in the name of the table counted
    # or linked through (Office_locations); "red cars" is a condition, left to the model
    found = _counted_table(last, entity, key, schema)
    if found is None:
        return None
    names = set(_name_key(found[0].name).split("_"))
    return found if all(_singular(q) in names for q in qualifiers) else None


def _counted_table(
    noun: str, entity: Table, key: str, schema: Schema
) -> tuple[Table, str, str | None] | None:
    referring = {
        t.name: (t, links[0])
        for t in schema.tables.values()
        if t.name.lower() != entity.name.lower() and len(links := links_to(t, entity, key)) == 1
    }
    named = [v for t, v in referring.items() if _singular(t) == _singular(noun)]
    if not named and noun in _PEOPLE:
        named = [v for t, v in referring.items() if _singular(t) in _PERSON_TABLES]
    if not named:  # "sections": Document_Sections
        named = [v for t, v in referring.items() if _name_key(t).endswith("_" + _name_key(noun))]
    if named:
        return (*named[0], None) if len(named) == 1 else None
    through = [
        (
            link,
            fk,
            [f.column for f in link.foreign_keys if _singular(f.ref_table) == _singular(noun)],
        )
        for link, fk in referring.values()
    ]
    through = [(link, fk, found[0]) for link, fk, found in through if len(found) == 1]
    return through[0] if len(through) == 1 else None


def _ident(name: str, dialect: str) -> exp.Identifier:
    """A name, quoted where the dialect needs it (spaces, keywords, case that would fold)."""
    quoted = (
        not _SAFE.fullmatch(name)
        or name.lower() in _RESERVED
        or (dialect != "mysql" and Dialect.get_or_raise(dialect).case_sensitive(name))
    )
    return exp.to_identifier(name, quoted=quoted)


def _column(name: str, table: str, dialect: str) -> exp.Column:
    return exp.Column(this=_ident(name, dialect), table=_ident(table, dialect))


def _labels(entity: Entity, table: Table) -> list[str]:
    """The columns that name the previous rows: the names or titles it showed (a circuit's
    name, not its location too), else all text columns it showed, else the table's first."""
    names = [n for n in entity.labels if _NAMING.search(n)]
    if names or entity.labels:
        return names or list(entity.labels)
    if entity.via:
        return [entity.column]  # it showed their keys only
    text = [c.name for c in table.columns if TEXT_TYPES.search(c.type or "")]
    return text[:1] or [entity.column]


def _count_sql(
    entity: Entity,
    table: Table,
    counted: Table,
    fk: str,
    noun: str,
    dialect: str,
    through: str | None = None,
) -> str:
    pk = [c.name for c in counted.columns if c.primary_key]
    counted_column = through or (pk[0] if len(pk) == 1 else fk)
    alias = re.sub(r"\W+", "_", noun).strip("_") + "_count"
    key = _column(entity.column, table.name, dialect)
    labels = [_column(n, table.name, dialect) for n in _labels(entity, table)]
    count = _column(counted_column, counted.name, dialect)
    count = exp.Count(this=exp.Distinct(expressions=[count]) if through else count)
    on = exp.EQ(this=_column(fk, counted.name, dialect), expression=key.copy())
    group = [key.copy()] + [c.copy() for c in labels if c.name.lower() != entity.column.lower()]
    query = (
        exp.select(*labels, exp.alias_(count, alias))
        .from_(exp.Table(this=_ident(table.name, dialect)))
        .join(exp.Table(this=_ident(counted.name, dialect)), on=on, join_type="left")
        .where(key.copy().isin(query=entity.keys.copy()))
        .group_by(*group)
        .order_by(exp.Ordered(this=exp.column(alias), desc=True), key.copy())
    )
    return query.sql(dialect=dialect)


# --- "what are their job titles?" ------------------------------------------------------------

# The accepted sentences, case aside, with an optional leading "and"/"so"/"ok," and end mark:
#   (what|which|who) (is|are|was|were|'s) [each of] their <attr>
#   (show|list|give) [me] their <attr>
#   their <attr>                                  ("and their emails?")
#   (what|which|who) (is|are|was|were|'s) the <attr> (of|for) (each [one] [of them]|them)
#   (what|which) <attr> (is|are|was|were) (they|each of them) [in|from|at|on|part of]
#   (what|which) <attr> (do|does|did) (they|each of them) <verb> [in|at|on|…]
#                                                 ("what cities do they live in?")
# <attr>: one to three words, or two such joined by "and" or a comma, each naming a column
# of the previous rows' table, or a table it refers to by one foreign key, or one it is
# linked to by a table of pairs, or a column of that table of pairs or of the table it links
# them to (:func:`_attribute`). The verb is not read: "what cities do they live in?" and
# "what cities do they work in?" both show the city the schema links them to.
# Nothing else may be in the sentence: "show their emails too" adds to the previous answer,
# and "what are their salaries in 2024" asks more than a lookup; both go to the model.
_ATTR = r"[a-z][\w-]*(?:\s+[a-z][\w-]*){0,2}?"
_ATTRS = rf"{_ATTR}(?:\s*(?:,|\band\b)\s*{_ATTR})?"
_BE = r"(?:is|are|was|were)"
_LEAD = r"^\W*(?:(?:and|so|ok|okay)\b\W*)?"
ATTRIBUTE = re.compile(
    _LEAD
    + r"(?:"
    + rf"(?:what|which|who)(?:\s+{_BE}|'s)\s+(?:each\s+of\s+)?their\s+(?P<attr>{_ATTRS})"
    + rf"|(?:show|list|give)(?:\s+me)?\s+their\s+(?P<shown>{_ATTRS})"
    + rf"|their\s+(?P<bare>{_ATTRS})"
    + rf"|(?:what|which|who)(?:\s+{_BE}|'s)\s+the\s+(?P<of>{_ATTRS})\s+(?:of|for)\s+"
    + rf"(?:{_THEM}|each(?:\s+one)?|them|those|these)"
    + rf"|(?:what|which)\s+(?P<owner>{_ATTR})\s+{_BE}\s+(?:they|each\s+of\s+them)\s+"
    + r"(?:in|from|at|on|part\s+of)"
    + rf"|(?:what|which)\s+(?P<are>{_ATTR})\s+{_BE}\s+(?:they|those|these|each\s+of\s+them)"
    + rf"|(?:what|which)\s+(?P<does>{_ATTR})\s+(?:do|does|did)\s+(?:they|{_THEM})\s+[a-z]+"
    + r"(?:\s+(?:in|at|on|from|to|for|with|under))?"
    + r")\s*[?.!]*\s*$",
    re.I,
)


def compose_attribute(question: str, previous_sql: str, schema: Schema, dialect: str) -> str | None:
    """The SQL showing, for each of the previous answer's rows, their names and the
    attribute the follow-up asks for ("what are their job titles?": the job's title through
    the employee's foreign key); None unless ``question`` is only that (:data:`ATTRIBUTE`)
    and each attribute names exactly one column."""
    match = ATTRIBUTE.match(question.strip())
    if match is None:
        return None
    words = next((w for w in match.groups() if w), None)
    if words is None or words.lower().split()[-1] in STOP_WORDS | {"name", "names"}:
        return None
    if (rows := _previous_rows(previous_sql, schema)) is None:
        return None
    entity, table = rows
    found = [_attribute(a, table, schema) for a in re.split(r"\s*(?:,|\band\b)\s*", words)]
    if not found or any(f is None for f in found):
        return None
    return _attribute_sql(entity, table, found, dialect)


def _name_key(name: str) -> str:
    """A column, table or noun as comparable words: ``jobTitle``, "job titles" -> job_title."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ")
    return "_".join(_singular(w) for w in words.lower().split())


def _naming_columns(table: Table) -> list[str]:
    """The columns that name a table's rows: its names or titles, else its description,
    else its first text column that is not a key."""
    fks = {fk.column.lower() for fk in table.foreign_keys}
    text = [
        c.name
        for c in table.columns
        if TEXT_TYPES.search(c.type or "") and not c.primary_key and c.name.lower() not in fks
    ]
    return (
        [n for n in text if _NAMING.search(n)]
        or [n for n in text if _DESCRIBING.search(n)][:1]
        or [n for n in text if not _CODE.search(n)][:1]
        or text[:1]
    )


@dataclass(frozen=True)
class Attribute:
    """Where an attribute is found from the previous rows' table: ``columns`` of its own
    (``via`` None), or of the table ``via`` (a foreign key column) refers to, by ``ref_key``."""

    columns: tuple[str, ...]
    via: str | None = None
    ref_table: str = ""
    ref_key: str = ""
    # a table of pairs: ``via`` is then a column of it, not of theirs; without ``via``,
    # ``columns`` are its own ("what rooms are they in?": Lives_in.room_number)
    link: Link | None = None

    @property
    def own(self) -> bool:
        """A column of the previous rows' table itself, no join needed."""
        return self.via is None and self.link is None


@dataclass(frozen=True)
class Link:
    """A table of pairs between the previous rows' table and another: ``table`` holds
    ``key`` (a foreign key to theirs) and ``other`` (a foreign key to the other table)."""

    table: str
    key: str


def _attribute(words: str, table: Table, schema: Schema) -> Attribute | None:
    """Where ``words`` ("email", "job title", "department", "manager") is found from
    ``table``: a column of it that is not a foreign key; else a foreign key named so
    (``manager_id``: the manager's names); else the one table it refers to named so
    (``departments``: their names); else a column of one table it refers to. None when no
    place, or more than one, fits."""
    want = _name_key(words)
    fks = {fk.column.lower() for fk in table.foreign_keys}
    own = [c.name for c in table.columns if c.name.lower() not in fks and _name_key(c.name) == want]
    if len(own) == 1:
        return Attribute((own[0],))
    refs = []  # (foreign key, referenced table, its key)
    for fk in table.foreign_keys:
        ref = schema.table(fk.ref_table)
        if ref is not None and (key := fk.ref_column or primary_key(ref)):
            refs.append((fk, ref, key))
    named = [
        (fk, ref, key)
        for fk, ref, key in refs
        if re.sub(r"_?(?:id|code)$", "", _name_key(fk.column)) == want
        or (_name_key(ref.name) == want and sum(r is ref for _, r, _ in refs) == 1)
    ]
    if len(named) == 1 and (columns := _naming_columns(named[0][1])):
        fk, ref, key = named[0]
        return Attribute(tuple(columns), fk.column, ref.name, key)
    if named:
        return None
    columns = [(fk, ref, key, c.name) for fk, ref, key in refs for c in ref.columns]
    columns = [c for c in columns if _name_key(c[3]) == want]
    if len(columns) == 1:
        fk, ref, key, column = columns[0]
        return Attribute((column,), fk.column, ref.name, key)
    return None if columns else _linked(want, table, schema)


def _linked(want: str, table: Table, schema: Schema) -> Attribute | None:
    """The one table named ``want`` that ``table`` is linked to by a table of pairs (one
    foreign key to each: ``store_district`` for "which district is each store in"), by its
    naming columns; None when not exactly one fits."""
    pairs = _pairs(table, schema)
    found = [pair for pair in pairs if _name_key(pair[3].name) == want]
    # else the table of pairs itself named so ("who are their advisors?": ``advisor`` links
    # students to instructors): what it links them to
    found = found or [pair for pair in pairs if _name_key(pair[0].name) == want]
    if found:
        if len(found) != 1 or not (columns := _naming_columns(found[0][3])):
            return None
        link, mine, other, ref, ref_key = found[0]
        return Attribute(tuple(columns), other, ref.name, ref_key, Link(link.name, mine))
    # a column of the table of pairs itself ("what rooms are they in?": Lives_in.room_number),
    # else of the table it links them to ("what cities do they live in?": Addresses.city)
    keys = {p[1].lower() for p in pairs} | {p[2].lower() for p in pairs}
    links = {p[0].name.lower(): p for p in pairs}.values()
    own = [
        (p, c.name)
        for p in links
        for c in p[0].columns
        if c.name.lower() not in keys and _fits(c.name, want)
    ]
    if own:
        if len(own) != 1:
            return None
        (link, mine, *_), column = own[0]
        return Attribute((column,), link=Link(link.name, mine))
    other = [(p, c.name) for p in pairs for c in p[3].columns if _fits(c.name, want)]
    if len(other) != 1:
        return None
    (link, mine, via, ref, ref_key), column = other[0]
    return Attribute((column,), via, ref.name, ref_key, Link(link.name, mine))


def _fits(column: str, want: str) -> bool:
    """Whether a column is the one a noun names: by its words, or with a trailing number,
    name or code left off ("room" -> ``room_number``)."""
    key = _name_key(column)
    return want in (key, re.sub(r"_(?:number|no|num|name|code)$", "", key))


def _pairs(table: Table, schema: Schema) -> list[tuple[Table, str, str, Table, str]]:
    """The tables ``table`` is linked to by a table of pairs: (the link table, its column
    referring to ``table``, its column referring to the other, the other table, its key)."""
    key = primary_key(table)
    found = []
    for link in schema.tables.values():
        mine = links_to(link, table, key) if key and link.name.lower() != table.name.lower() else []
        if len(mine) != 1:
            continue
        for fk in link.foreign_keys:
            ref = schema.table(fk.ref_table)
            if ref is None or ref.name.lower() in (table.name.lower(), link.name.lower()):
                continue
            if ref_key := fk.ref_column or primary_key(ref):
                found.append((link, mine[0], fk.column, ref, ref_key))
    return found


def _attribute_sql(entity: Entity, table: Table, found: list[Attribute], dialect: str) -> str:
    key = _column(entity.column, table.name, dialect)
    labels = [_column(n, table.name, dialect) for n in _labels(entity, table)]
    shown = {c.name.lower() for c in labels}
    query = exp.select(*labels).from_(exp.Table(this=_ident(table.name, dialect)))
    joined: dict[tuple, str] = {}  # (link, foreign key column) -> the alias its table has
    for attribute in found:
        if attribute.own:
            new = [c for c in attribute.columns if c.lower() not in shown]
            query = query.select(*(_column(c, table.name, dialect) for c in new), copy=False)
            shown.update(c.lower() for c in new)
            continue
        if attribute.via is None:  # a column of the table of pairs itself
            pairs = joined.get((attribute.link, None))
            if pairs is None:
                pairs = joined[attribute.link, None] = f"link_{len(joined) + 1}"
                on = exp.EQ(this=_column(attribute.link.key, pairs, dialect), expression=key.copy())
                source = exp.Table(
                    this=_ident(attribute.link.table, dialect),
                    alias=exp.TableAlias(this=exp.to_identifier(pairs)),
                )
                query = query.join(source, on=on, join_type="left", copy=False)
            query = query.select(
                *(_column(c, pairs, dialect) for c in attribute.columns), copy=False
            )
            continue
        alias = joined.get((attribute.link, attribute.via))
        if alias is None:
            alias = joined[attribute.link, attribute.via] = f"ref_{len(joined) + 1}"
            via = _column(attribute.via, table.name, dialect)
            if attribute.link is not None:  # through the table of pairs first
                pairs = f"link_{len(joined)}"
                on = exp.EQ(
                    this=_column(attribute.link.key, pairs, dialect),
                    expression=key.copy(),
                )
                source = exp.Table(
                    this=_ident(attribute.link.table, dialect),
                    alias=exp.TableAlias(this=exp.to_identifier(pairs)),
                )
                query = query.join(source, on=on, join_type="left", copy=False)
                via = _column(attribute.via, pairs, dialect)
            on = exp.EQ(this=_column(attribute.ref_key, alias, dialect), expression=via)
            source = exp.Table(
                this=_ident(attribute.ref_table, dialect),
                alias=exp.TableAlias(this=exp.to_identifier(alias)),
            )
            query = query.join(source, on=on, join_type="left", copy=False)
        query = query.select(*(_column(c, alias, dialect) for c in attribute.columns), copy=False)
    return query.where(key.isin(query=entity.keys.copy()), copy=False).sql(dialect=dialect)


# --- "which of them are in Sales?" -----------------------------------------------------------

# The accepted sentences, case aside, with an optional leading "and"/"so"/"ok," and end mark:
#   (which|who) of (them|those|these) (is|are|was|were) [<verb>ed|based|located] [in|from|at|on]
#       [the] <value>
#   [only|just] (those|these|the ones) (in|from|at|on) [the] <value>
# <value>: a value stored, word for word (case aside; or with a plural "s" dropped), in
# exactly one text column of the previous rows' table or in the naming column of one table
# it refers to or is linked to by pairs (:func:`_value_column`). "which of them are not in
# Sales?", "… in Sales or Finance?", "… older than 40?" find no such value and go to the
# model.
FILTER = re.compile(
    _LEAD
    + r"(?:(?:which|who)\s+of\s+(?:them|those|these)\s+"
    + rf"{_BE}\s+(?:(?:[a-z]+ed|based|located)\s+)?(?:(?:in|from|at|on)\s+)?"
    + r"|(?:(?:only|just)\s+)?(?:those|these|the\s+ones)\s+(?:in|from|at|on)\s+)(?:the\s+)?"
    + r"(?P<value>[\w&'.-]+(?:\s+[\w&'.-]+){0,4}?)\s*[?.!]*\s*$",
    re.I,
)

# Runs one read-only query on the conversation's database: its rows ([] when it fails).
Lookup = Callable[[str], list[tuple]]


def compose_filter(
    question: str, previous_sql: str, schema: Schema, dialect: str, lookup: Lookup | None
) -> str | None:
    """The previous SQL kept to those of its rows that have the value the follow-up names
    ("which of them are German?": ``drivers.nationality = 'German'``), showing what it
    showed; None unless ``question`` is only that (:data:`FILTER`) and the value is in
    exactly one column (``lookup`` finds it in the database)."""
    match = FILTER.match(question.strip())
    if match is None or lookup is None:
        return None
    value = match["value"]
    if value.lower().split()[0] in STOP_WORDS | {"no", "any", "all", "both", "either"}:
        return None
    if (rows := _previous_rows(previous_sql, schema)) is None:
        return None
    entity, table = rows
    found = _value_column(value, table, schema, dialect, lookup)
    if found is None:
        return None
    return _filter_sql(previous_sql, entity, table, found, dialect)


@dataclass(frozen=True)
class Stored:
    """Where a value was found: ``value`` as stored in ``column`` of the previous rows'
    table, or (``ref_table`` set) in ``ref_column`` of the table that ``column``, a foreign
    key, refers to by ``ref_key``."""

    column: str
    value: str
    ref_table: str = ""
    ref_key: str = ""
    ref_column: str = ""
    link: Link | None = None  # ``column`` is then a column of the link table, not of theirs


def _value_column(
    value: str, table: Table, schema: Schema, dialect: str, lookup: Lookup
) -> Stored | None:
    """The one place ``value`` is stored (case aside, in one of its :func:`_spellings`): a
    text column of ``table``, the
    naming column of a table it refers to, or of a table it is linked to by a table of pairs
    (``store_district`` for "which of them are in Khanewal District?"); None when it is in
    none, or in more than one."""
    # (via, table, column, ref key, link)
    places: list[tuple[str, Table, str, str | None, Link | None]] = []
    fks = {fk.column.lower() for fk in table.foreign_keys}
    for column in table.columns:
        if TEXT_TYPES.search(column.type or "") and column.name.lower() not in fks:
            places.append((column.name, table, column.name, None, None))
    for fk in table.foreign_keys:
        ref = schema.table(fk.ref_table)
        key = (fk.ref_column or primary_key(ref)) if ref is not None else None
        if ref is not None and key and ref.name.lower() != table.name.lower():
            places += [(fk.column, ref, c, key, None) for c in _naming_columns(ref)]
    for link, mine, other, ref, key in _pairs(table, schema):
        places += [(other, ref, c, key, Link(link.name, mine)) for c in _naming_columns(ref)]
    hits = []
    for via, where, column, key, link in places:
        found = (stored_value(v, column, where, dialect, lookup) for v in _spellings(value, column))
        if (stored := next((v for v in found if v is not None), None)) is None:
            continue
        if key is None:
            hits.append(Stored(via, stored))
        else:
            hits.append(Stored(via, stored, where.name, key, column, link))
    return hits[0] if len(hits) == 1 else None


def _filter_sql(
    previous_sql: str, entity: Entity, table: Table, found: Stored, dialect: str
) -> str:
    tree = parse_one(previous_sql, read=dialect)
    own = _own(tree, entity, dialect)
    key = _column(entity.column, table.name, dialect)
    value = exp.Literal.string(found.value)
    if found.ref_table:
        inner = (
            exp.select(_column(found.ref_key, found.ref_table, dialect))
            .from_(exp.Table(this=_ident(found.ref_table, dialect)))
            .where(
                exp.EQ(this=_column(found.ref_column, found.ref_table, dialect), expression=value)
            )
        )
        if found.link is None:
            condition = _column(found.column, table.name, dialect).isin(query=inner)
        else:  # their keys in the table of pairs, next to the value's
            pairs = exp.select(_column(found.link.key, found.link.table, dialect))
            pairs = pairs.from_(exp.Table(this=_ident(found.link.table, dialect)))
            pairs = pairs.where(_column(found.column, found.link.table, dialect).isin(query=inner))
            own_key = primary_key(table) or entity.column  # the key the pairs refer to
            condition = _column(own_key, table.name, dialect).isin(query=pairs)
    else:
        condition = exp.EQ(this=_column(found.column, table.name, dialect), expression=value)
    with_value = exp.select(key).from_(exp.Table(this=_ident(table.name, dialect)))
    out = _unlimited(tree.copy(), own, entity)
    return out.where(own.isin(query=with_value.where(condition)), copy=False).sql(dialect=dialect)


# --- "what about bands?" ---------------------------------------------------------------------

# The accepted sentences, case aside, with an optional leading "and"/"so"/"ok," and end mark:
#   (what|how) about [the] <value> [instead]
#   [the] same (for|with) [the] <value> [instead]
#   and [for|in|with|at|from|on|of] [the] <value>       ("and travel insurance?", "and in 2004?")
# or, for <value>, (over|above|more than|under|below|less than) <number>: the bound of the one
# comparison of that direction ("what about over 100?" after "… more than 200 students").
# <value>: a value stored (case aside; or with a plural "s" dropped) in the column of exactly
# one of the previous SQL's "column = 'text'" conditions (or a whole number, of one of its
# "column = <number>" conditions): the follow-up asks the previous
# question again with that value in its place ("which solo artists are from Brazil?", "what
# about bands?": artist_type = 'band', still from Brazil). A value no condition's column
# holds ("what about Brazil?" after "which artists are solo?") is a new condition, left to
# the model.
SWAP = re.compile(
    r"^\W*(?:"
    + r"(?:(?:and|so|ok|okay)\b\W*)?(?:(?:what|how)\s+about|(?:the\s+)?same\s+(?:for|with))"
    + r"|and(?:\s+(?:for|in|with|at|from|on|of))?"
    + r")\s+"
    + r"(?P<value>[\w&'.-]+(?:\s+[\w&'.-]+){0,4}?)(?:\W+instead)?\s*[?.!]*\s*$",
    re.I,
)


def compose_swap(
    question: str, previous_sql: str, schema: Schema, dialect: str, lookup: Lookup | None
) -> str | None:
    """The previous SQL with the value the follow-up names in place of the one of its
    conditions whose column holds it ("what about bands?": ``artist_type = 'solo'`` becomes
    ``artist_type = 'band'``); None unless ``question`` is only that (:data:`SWAP`) and
    exactly one condition's column holds the value (``lookup`` finds it)."""
    match = SWAP.match(question.strip())
    if match is None or lookup is None or not previous_sql:
        return None
    value = match["value"]
    try:
        tree = parse_one(previous_sql, read=dialect)
    except SqlglotError:
        return None
    if bound := _BOUND.fullmatch(value):  # "what about over 100?" after "more than 200"
        return _swap_bound(tree, bool(bound["up"]), bound["n"], dialect)
    bare = re.sub(r"^the\s+", "", value, flags=re.I)  # "the Phantom …" may be stored so
    if bare.lower().split()[0] in STOP_WORDS | {"no", "any", "all", "both", "either"}:
        return None
    number = re.fullmatch(r"\d+", value) is not None  # "what about 2017?": year = 2017
    if not isinstance(tree, exp.Query):
        return None
    hits = []
    for condition in tree.find_all(exp.EQ):
        column, literal = condition.this, condition.expression
        if isinstance(literal, exp.Column):
            column, literal = literal, column
        if not isinstance(literal, exp.Literal):
            continue
        if _year_of(column) and number and _YEAR.fullmatch(literal.this) and literal.this != value:
            # strftime('%Y', hired) = '2017', YEAR(hired) = 2017: "what about 2015?"
            hits.append((literal, exp.Literal(this=value, is_string=literal.is_string)))
            continue
        if not isinstance(column, exp.Column):
            continue
        if (table := column_table(column, schema)) is None:
            continue
        if literal.is_string:
            spellings = _spellings(value, column.name)
            found = (stored_value(v, column.name, table, dialect, lookup) for v in spellings)
            stored = next((v for v in found if v is not None), None)
            if stored is not None and stored.lower() != literal.this.lower():
                hits.append((literal, exp.Literal.string(stored)))
        elif (
            number
            and literal.is_int
            and literal.this != value
            and stored_value(value, column.name, table, dialect, lookup, number=True) is not None
        ):
            hits.append((literal, exp.Literal.number(value)))
    if len(hits) != 1:
        return None
    hits[0][0].replace(hits[0][1])
    return tree.sql(dialect=dialect)


_BOUND = re.compile(
    r"(?:(?P<up>over|above|more\s+than|greater\s+than)|under|below|less\s+than|fewer\s+than)"
    r"\s+(?P<n>\d+(?:\.\d+)?)",
    re.I,
)


def _swap_bound(tree: exp.Query, up: bool, n: str, dialect: str) -> str | None:
    """The previous SQL with ``n`` as the bound of its one comparison of that direction
    (``capacity > 200`` becomes ``capacity > 100``), or None when not exactly one is."""
    kinds = (exp.GT, exp.GTE) if up else (exp.LT, exp.LTE)
    flipped = (exp.LT, exp.LTE) if up else (exp.GT, exp.GTE)
    hits = []
    for node in tree.find_all(*kinds, *flipped):
        left, right = node.this, node.expression
        if isinstance(left, exp.Column) and isinstance(right, exp.Literal):
            hits += [right] * (isinstance(node, kinds) and not right.is_string)
        elif isinstance(right, exp.Column) and isinstance(left, exp.Literal):
            hits += [left] * (isinstance(node, flipped) and not left.is_string)  # 200 < capacity
    if len(hits) != 1 or hits[0].this == n:
        return None
    hits[0].replace(exp.Literal.number(n))
    return tree.sql(dialect=dialect)


_YEAR = re.compile(r"(?:19|20)\d\d")


def _year_of(node: exp.Expression) -> bool:
    """Whether an expression is the year of one column: ``strftime('%Y', c)``, ``YEAR(c)``,
    ``EXTRACT(YEAR FROM c)``, ``substr(c, 1, 4)``."""
    if isinstance(node, exp.Column) or len(list(node.find_all(exp.Column))) != 1:
        return False
    text = node.sql(dialect="sqlite").lower()
    return bool(re.search(r"%y|\byear\b|substr(?:ing)?\([^,]+,\s*1,\s*4\)", text))


# A person's sex as a follow-up says it, and as a column named so stores it.
_GENDER = re.compile(r"sex|gender", re.I)
_MEN = _words("men man male males boys boy gentlemen")
_WOMEN = _words("women woman female females girls girl ladies lady")


def _spellings(value: str, column: str) -> list[str]:
    """How ``value`` may be stored in ``column``: as said, without a leading "the" (or with
    it: "the Phantom of the Opera"), without a plural "s" ("bands": band); in a column of
    people's sex, "women" as ``f`` or ``female``."""
    bare = re.sub(r"^the\s+", "", value, flags=re.I)
    found = [bare, value] if bare != value else [value]
    if " " not in bare and bare.lower().endswith("s"):
        found.append(bare[:-1])
    if _GENDER.fullmatch(column):
        if bare.lower() in _MEN:
            found += ["m", "male"]
        elif bare.lower() in _WOMEN:
            found += ["f", "female"]
    return found


def stored_value(
    value: str, column: str, table: Table, dialect: str, lookup: Lookup, number: bool = False
) -> str | None:
    """``value`` as stored in ``column`` of ``table`` (text, case aside; or ``number``), or
    None (nowhere, or in two spellings). ``lookup`` runs a query on the database."""
    col = _column(column, table.name, dialect)
    if number:
        where = exp.EQ(this=col.copy(), expression=exp.Literal.number(value))
    else:
        where = exp.EQ(
            this=exp.Lower(this=col.copy()), expression=exp.Literal.string(value.lower())
        )
    probe = exp.select(col).distinct().from_(exp.Table(this=_ident(table.name, dialect)))
    rows = lookup(probe.where(where).limit(2).sql(dialect=dialect))
    if len(rows) != 1 or rows[0][0] is None:
        return None
    return str(rows[0][0]) if number else rows[0][0] if isinstance(rows[0][0], str) else None


# --- "sort them by salary, highest first" ----------------------------------------------------

# The accepted sentences, case aside, with an optional leading "and"/"so"/"ok," and end mark:
#   (sort|order|rank) (them|those|these|it|that|the list|the results) by <attr>
#       [[,] (highest|lowest|…) first | ascending | descending | …]
# <attr>: a column the previous answer shows (its name or alias), else a column of the
# previous rows' table (shown after the others, as the order would be unclear without it).
_UP = r"lowest|smallest|least|fewest|cheapest|oldest|earliest|shortest|youngest"
_DOWN = r"highest|biggest|largest|most|greatest|newest|latest|longest|top|best|richest"
SORT = re.compile(
    _LEAD
    + r"(?:sort|order|rank)\s+(?:them|those|these|it|that|the\s+(?:list|results?|rows))\s+by\s+"
    + rf"(?P<attr>{_ATTR})"
    + rf"(?:\W+(?:(?P<down>{_DOWN}|desc(?:ending)?|in\s+descending\s+order)"
    + rf"|(?P<up>{_UP}|asc(?:ending)?|in\s+ascending\s+order))(?:\s+(?:one\s+)?first)?)?"
    + r"\s*[?.!]*\s*$",
    re.I,
)


def compose_sort(question: str, previous_sql: str, schema: Schema, dialect: str) -> str | None:
    """The previous SQL with its rows in the order the follow-up asks for ("sort them by
    salary, highest first": ``ORDER BY salary DESC``, the salary shown when it was not),
    the previous rows' key breaking ties; None unless ``question`` is only that
    (:data:`SORT`) and the column is certain."""
    match = SORT.match(question.strip())
    if match is None:
        return None
    if (rows := _previous_rows(previous_sql, schema)) is None:
        return None
    entity, table = rows
    if entity.via:
        return None  # their table is not read: their columns cannot be added
    tree = parse_one(previous_sql, read=dialect)
    want = _name_key(match["attr"])
    shown = [s for s in tree.selects if _name_key(s.alias_or_name) == want]
    own = _own(tree, entity, dialect)
    out = tree.copy()
    if len(shown) == 1:
        alias = shown[0].alias
        key: exp.Expression = exp.column(_ident(alias, dialect)) if alias else shown[0].copy()
    elif not shown and tree.args.get("group") is None and not tree.args.get("distinct"):
        found = _attribute(match["attr"], table, schema)
        if found is None or not found.own:
            return None
        key = exp.Column(this=_ident(found.columns[0], dialect), table=own.args["table"].copy())
        out = out.select(key.copy(), copy=False)
    else:
        return None
    out = _unlimited(out, own, entity)
    order = [key.sql(dialect=dialect) + (" DESC" if match["down"] else "")]
    plain = tree.args.get("group") is None and not tree.args.get("distinct")
    if (plain or _grouped_by(tree, own)) and key.sql() != own.sql():
        order.append(own.sql(dialect=dialect))  # ties in the order of the rows' key
    out = out.order_by(*order, append=False, dialect=dialect, copy=False)
    return out.sql(dialect=dialect)


# --- "who among them is the oldest?" ---------------------------------------------------------

# The accepted sentences, case aside, with an optional leading "and"/"so"/"ok," and end mark:
#   (which|who) [one] (of|among) (them|these|those) (is|was|are|were) the <superlative> [one]
#   (which|who) (is|was) the <superlative> [one] (of|among) (them|these|those)
#   (which|who) [one] (of|among) (them|these|those) (has|had|have) the (highest|lowest|…) <attr>
# <superlative>: one of :data:`SUPERLATIVES`, read as the one column of their table it is
# about (an age, else a date of birth; a price; a date; a height; …), exactly one of which
# their table must have; <attr>: a column of their table.
_AMONG = r"(?:of|among)\s+(?:them|these|those)"
_SUPER = r"(?P<super>[a-z]+(?:\s+[a-z]+)?)"
SUPERLATIVE = re.compile(
    _LEAD
    + r"(?:which|who)(?:\s+one)?\s+(?:"
    + rf"{_AMONG}\s+{_BE}\s+the\s+{_SUPER}(?:\s+one)?"
    + rf"|{_BE}\s+the\s+(?P<super2>[a-z]+(?:\s+[a-z]+)?)(?:\s+one)?\s+{_AMONG}"
    + rf"|{_AMONG}\s+(?:has|had|have)\s+the\s+(?:(?P<down>{_DOWN})|(?P<up>{_UP}))\s+"
    + rf"(?P<attr>{_ATTR})"
    + r")\s*[?.!]*\s*$",
    re.I,
)
# A superlative: (the column names it is about, a pattern of those it is the reverse of for,
# most first). "oldest": the greatest age, or the earliest date of birth.
SUPERLATIVES: dict[str, tuple[str, str, bool]] = {
    "oldest": (r"^age$|birth|^dob$|born", r"birth|^dob$|born", True),
    "youngest": (r"^age$|birth|^dob$|born", r"birth|^dob$|born", False),
    "most expensive": (r"price|cost", "", True),
    "dearest": (r"price|cost", "", True),
    "cheapest": (r"price|cost", "", False),
    "tallest": (r"height", "", True),
    "shortest": (r"height", "", False),
    "heaviest": (r"weight", "", True),
    "lightest": (r"weight", "", False),
    "richest": (r"net_?worth|wealth", "", True),
}


def compose_superlative(
    question: str, previous_sql: str, schema: Schema, dialect: str
) -> str | None:
    """The previous SQL kept to those of its rows with the greatest (or least) value of one
    column of their table ("who among these is the oldest?": the greatest age of them, every
    one of them who has it); None unless ``question`` is only that (:data:`SUPERLATIVE`) and
    the column is certain."""
    match = SUPERLATIVE.match(question.strip())
    if match is None or (rows := _previous_rows(previous_sql, schema)) is None:
        return None
    entity, table = rows
    if entity.via:
        return None  # their table is not read: their columns cannot be compared
    if match["attr"]:
        found = _attribute(match["attr"], table, schema)
        if found is None or not found.own:
            return None
        column, most = found.columns[0], bool(match["down"])
    else:
        word = " ".join((match["super"] or match["super2"]).lower().split())
        if word not in SUPERLATIVES:
            return None
        about, reverse, most = SUPERLATIVES[word]
        names = [c.name for c in table.columns if re.search(about, _name_key(c.name))]
        ages = [n for n in names if _name_key(n) == "age"]
        names = ages or names  # an age and a date of birth: the age says it plainly
        if len(names) != 1:
            return None
        column = names[0]
        if reverse and re.search(reverse, _name_key(column)):
            most = not most  # the oldest: the earliest born
    tree = parse_one(previous_sql, read=dialect)
    own = _own(tree, entity, dialect)
    mine = exp.Column(this=_ident(column, dialect), table=own.args["table"].copy())
    key = _column(entity.column, table.name, dialect)
    best = exp.select((exp.Max if most else exp.Min)(this=_column(column, table.name, dialect)))
    best = best.from_(exp.Table(this=_ident(table.name, dialect)))
    best = best.where(key.isin(query=entity.keys.copy()), copy=False)
    out = _unlimited(tree.copy(), own, entity)
    return out.where(exp.EQ(this=mine, expression=best.subquery()), copy=False).sql(dialect=dialect)


# --- "which of them live in Leeds?": some of the previous rows, shown as they were ----------

# A follow-up that asks for some of the previous rows, case aside, after an optional leading
# "and"/"so"/"ok": "which/who (of|among) them|these|those …", "which ones …", "of them,
# who …", "only/just those|these|them|the ones|the <word> ones …", "(only) those|the ones
# that|who|which|with|in|from|where …".
RESTRICT = re.compile(
    _LEAD
    + r"(?:(?:which|who)\s+(?:ones\b|(?:of|among)\s+(?:them|these|those)\b)"
    + r"|(?:of|among)\s+(?:them|these|those)\W+(?:which|who)\b"
    + r"|(?:only|just)\s+(?:those|these|them|ones|the\s+ones|the\s+\w+\s+ones)\b"
    + r"|(?:only\s+)?(?:those|the\s+ones)\s+(?:that|who|which|with|in|from|where)\b)",
    re.I,
)
# "only the women", "just the violent ones": told by the schema, for "only the names" asks
# for a column (:func:`restricts`).
ONLY = re.compile(
    _LEAD + r"(?:only|just)\s+(?:the\s+)?(?P<noun>[a-z]+(?:\s+[a-z]+)?)\s*[?.!]*\s*$", re.I
)
KEPT = "kept_key"


def restricts(question: str, previous_sql: str = "", schema: Schema | None = None) -> bool:
    """Whether a follow-up asks for some of the previous rows (:data:`RESTRICT`); with the
    previous SQL and the schema, also "only the <noun>" (:data:`ONLY`) where the noun names
    no column of the previous rows' table nor a table it refers to ("only the women", not
    "only the names" or "just the salaries")."""
    question = question.strip()
    if RESTRICT.match(question):
        return True
    if schema is None or (match := ONLY.match(question)) is None:
        return False
    noun = match["noun"].lower()
    if set(noun.split()) & (STOP_WORDS | {"name", "names", "id", "ids", "count", "total"}):
        return False
    if (rows := _previous_rows(previous_sql, schema)) is None:
        return False
    table = rows[1]
    want = _name_key(noun)
    columns = [_name_key(c.name) for c in table.columns]
    if any(c == want or c.endswith("_" + want) for c in columns):
        return False  # "just the salaries", "only the names" (Player_name)
    return _attribute(noun, table, schema) is None


def within_previous(
    sql: str, previous_sql: str, schema: Schema, dialect: str, limited: str | None = None
) -> str | None:
    """The previous SQL kept to the rows whose keys ``sql`` gives.

    ``sql`` answers a follow-up asking for some of the previous rows ("which of them live in
    Leeds?", however it was written: asked alone, as an edit, rewritten); the answer then
    shows what the previous one showed, in its order, and cannot take rows it did not have
    nor drop the previous filters. ``limited``: ``sql`` already kept to the previous rows
    (engine.scope.restrict), read instead when ``sql`` ends in a LIMIT ("which 2 of them are
    the oldest?" means the oldest of them, not of all). None when ``sql`` is not one SELECT
    of rows that reads the previous rows' table (or a table referring to it), or the
    previous rows are not known.

    After a count (a sum, an average) of one table's rows (:func:`_counted_rows`), the
    previous rows are those it counted: an answer that counts too gives the previous count
    kept to the rows it counts ("only the violent ones"); an answer listing rows is kept to
    the rows counted, showing what it shows ("which of them live in Rome?").
    """
    counted = None
    if (rows := _previous_rows(previous_sql, schema)) is None:
        rows = counted = _counted_rows(previous_sql, schema, dialect)
    if rows is None:
        return None
    entity = rows[0]
    try:
        tree = parse_one(sql, read=dialect)
        if limited and (tree.args.get("limit") or tree.args.get("offset")):
            tree = parse_one(limited, read=dialect)
    except SqlglotError:
        return None
    if not isinstance(tree, exp.Select) or (target := reads_rows(tree, entity, schema)) is None:
        return None
    aggregate = tree.args.get("group") is None and any(s.find(exp.AggFunc) for s in tree.selects)
    alias, column = target
    key = exp.column(column, table=alias)
    if counted is None and aggregate:
        return None  # one aggregate row, not some of the rows
    if counted is not None and not aggregate:
        if tree.args.get("group") is not None:
            return None  # a count per group, not the rows counted
        # "how many players are ranked 1st?", "which of them are women?": the rows asked
        # for, as the answer shows them, of those the count counted; after a count of every
        # row ("how many customers are there?") none is left out, and no condition says so
        if entity.keys.args.get("where") is not None:
            tree = tree.where(key.isin(query=entity.keys.copy()), copy=False)
        return tree.sql(dialect=dialect)
    if any(tree.args.get(k) for k in ("order", "group", "having", "distinct", "limit", "offset")):
        # its columns stay (ORDER BY, HAVING may name them), in a derived table (a LIMIT in
        # an IN subquery is refused by MySQL); only its keys are read
        inner = tree.select(exp.alias_(key, KEPT), copy=True)
        keys = exp.select(KEPT).from_(inner.subquery("kept_rows"))
    else:
        keys = tree.copy().select(key, append=False, copy=False)
    previous = parse_one(previous_sql, read=dialect)
    own = _own(previous, entity, dialect)
    out = _unlimited(previous, own, entity)
    return out.where(own.copy().isin(query=keys), copy=False).sql(dialect=dialect)


def _counted_rows(previous_sql: str, schema: Schema, dialect: str) -> tuple[Entity, Table] | None:
    """The rows an aggregate of one table counts or sums ("how many incidents started in
    2017?": ``Behavior_Incident``, by its key), as the previous rows: "only the violent
    ones" then keeps the count to those of them, "which of them were violent?" lists those
    of them; None for anything else (a grouped or limited SELECT, one reading several
    tables, a table without a one-column key)."""
    try:
        tree = parse_one(previous_sql, read=dialect) if previous_sql else None
    except SqlglotError:
        return None
    if not isinstance(tree, exp.Select) or tree.args.get("joins"):
        return None
    if any(tree.args.get(k) for k in ("group", "having", "limit", "offset")):
        return None
    if not tree.selects or not all(s.find(exp.AggFunc) for s in tree.selects):
        return None
    source = (tree.args.get("from_") or tree.args.get("from")).this
    table = schema.table(source.name) if isinstance(source, exp.Table) else None
    if table is None or (key := primary_key(table)) is None:
        return None
    keys = tree.copy().select(exp.column(key, table=source.alias_or_name), append=False)
    return Entity(table.name, key, keys, alias=source.alias_or_name.lower()), table


def _own(tree: exp.Select, entity: Entity, dialect: str) -> exp.Column:
    """The previous rows' key as the previous SQL names it (``e.employee_id``)."""
    sources = [t for t in tree.find_all(exp.Table) if t.parent_select is tree]
    source = next(t for t in sources if t.alias_or_name.lower() == entity.alias)
    qualifier = source.args["alias"].this if source.args.get("alias") else source.this
    return exp.Column(this=_ident(entity.via or entity.column, dialect), table=qualifier.copy())


def _unlimited(tree: exp.Select, own: exp.Column, entity: Entity) -> exp.Select:
    """``tree`` (changed in place) without its LIMIT and OFFSET, kept to the rows they
    picked by their keys: a filter or a new order must not pick other rows."""
    if tree.args.get("limit") is None and tree.args.get("offset") is None:
        return tree
    tree.set("limit", None)
    tree.set("offset", None)
    return tree.where(own.copy().isin(query=entity.keys.copy()), copy=False)


def _grouped_by(tree: exp.Select, own: exp.Column) -> bool:
    group = tree.args.get("group")
    return group is not None and any(
        isinstance(g, exp.Column) and g.name.lower() == own.name.lower() for g in group.expressions
    )
