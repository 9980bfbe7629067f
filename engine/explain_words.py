"""The words for one piece of a query: a value, a condition, a function, a window.

:func:`say` turns an expression of sqlglot's tree into a phrase for someone who does not read
SQL; :mod:`engine.explain` puts the phrases in the order the query works. A subquery met
inside an expression is not described here: it is queued on the :class:`Scope` and stands in
the phrase as a placeholder, which the caller replaces with "the nested step below" and
explains under the line. Anything without words of its own is shown as its SQL in backticks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp

PREVIOUS_NAME = "previous_result"  # engine.followup.PREVIOUS
PLACEHOLDER = "\x00{}\x00"  # a queued subquery; engine.explain writes its reference

# The dialect quirks a query relies on, said once in the closing "Note:" line. "*": any dialect.
NOTES: dict[tuple[str, str], str] = {
    ("sqlite", "dates"): "SQLite stores dates as text (YYYY-MM-DD), so they are compared "
    "and matched as text; that works because this form sorts like the dates themselves.",
    ("sqlite", "strftime"): "strftime(…) reads a part such as the year out of that date text.",
    ("sqlite", "now"): "date('now') is today's date by the database's clock (UTC).",
    ("sqlite", "julianday"): "julianday(…) turns a date into a count of days, so subtracting "
    "two gives the days between them.",
    ("sqlite", "intdiv"): "SQLite divides two whole numbers without the fraction (7 / 2 is 3).",
    ("postgres", "intdiv"): "PostgreSQL divides two whole numbers without the fraction "
    "(7 / 2 is 3).",
    ("sqlite", "like"): "SQLite's LIKE ignores upper/lower case for the letters A–Z.",
    ("postgres", "like"): "In PostgreSQL, LIKE tells upper from lower case; ILIKE ignores it.",
    ("mysql", "like"): "In MySQL, LIKE usually ignores upper/lower case (the column's "
    "collation decides).",
    ("*", "concat"): "|| joins pieces of text into one.",
}
COMPARE = {  # (usual words, words for dates)
    exp.EQ: ("is", "is"),
    exp.NEQ: ("is not", "is not"),
    exp.GT: ("is more than", "is after"),
    exp.GTE: ("is at least", "is on or after"),
    exp.LT: ("is less than", "is before"),
    exp.LTE: ("is at most", "is on or before"),
}
ARITHMETIC = {exp.Add: "+", exp.Sub: "-", exp.Mul: "×", exp.Div: "÷", exp.Mod: "modulo"}
AGGREGATES = {exp.Sum: "the sum of", exp.Avg: "the average of", exp.Min: "the minimum of"}
AGGREGATES |= {exp.Max: "the maximum of"}
SIMPLE = {  # one-argument functions: {} is the argument
    exp.Upper: "{} in capitals",
    exp.Lower: "{} in lowercase",
    exp.Length: "the length of {}",
    exp.Abs: "the absolute value of {}",
    exp.Trim: "{} without surrounding spaces",
    exp.Year: "the year of {}",
    exp.Month: "the month of {}",
    exp.Day: "the day of the month of {}",
    exp.Typeof: "the storage type of {}",
    exp.TsOrDsToTimestamp: "{}",  # sqlglot's own wrapper around a date argument
    exp.TsOrDsToDate: "{}",
}
FORMATS = {  # strftime formats: what they take out of a date
    "%Y": "the year of {}",
    "%m": "the month number (01–12) of {}",
    "%d": "the day of the month of {}",
    "%Y-%m": "the year and month of {}",
    "%Y-%m-%d": "the date of {}",
    "%H": "the hour of {}",
    "%w": "the weekday number (0 = Sunday) of {}",
    "%j": "the day of the year of {}",
    "%W": "the week of the year of {}",
}
DATE_NAME = re.compile(r"(^|_)(date|day|time)$|_at$", re.I)
DATE_TEXT = re.compile(r"^\d{4}-\d{2}(-\d{2})?( .*)?$")
MODIFIER = re.compile(r"^([+-]?)(\d+(?:\.\d+)?) (day|month|year|hour|minute|second)s?$", re.I)


@dataclass
class Scope:
    """What a query level can name: its sources (alias → the name to show), and the levels
    around it, for a correlated subquery's columns."""

    dialect: str
    notes: dict[str, None]  # shared by all levels, in order of first mention
    sources: dict[str, str] = field(default_factory=dict)
    optional: dict[str, str] = field(default_factory=dict)  # left-joined alias → table
    self_joined: set[str] = field(default_factory=set)  # aliases of a table read twice
    outer: Scope | None = None
    nested: list[exp.Expression] = field(default_factory=list)

    def note(self, key: str) -> None:
        text = NOTES.get((self.dialect, key)) or NOTES.get(("*", key))
        if text:
            self.notes[text] = None

    def nest(self, query: exp.Expression) -> str:
        self.nested.append(query)
        return PLACEHOLDER.format(len(self.nested) - 1)


def sql(node: exp.Expression, scope: Scope) -> str:
    """The fallback: the piece's own SQL, in backticks."""
    return f"`{node.sql(dialect=scope.dialect)}`"


def column(node: exp.Column, scope: Scope) -> str:
    if isinstance(node.this, exp.Star):
        return f"all columns of {node.table}"
    name, table = node.name, node.table.lower()
    if not table:
        return name
    level, outer = scope, False
    while level is not None and table not in level.sources:
        level, outer = level.outer, True
    if level is None:
        return f"{node.table}.{name}"
    if outer:
        return f"{level.sources[table]}.{name} of the outer row"
    return f"{level.sources[table]}.{name}" if len(level.sources) > 1 else name


def literal(node: exp.Literal) -> str:
    return f"'{node.this}'" if node.is_string else str(node.this)


def is_date(node: exp.Expression) -> bool:
    """Whether a value reads as a date: a date-like literal, column name or function."""
    if isinstance(node, exp.Literal):
        return node.is_string and bool(DATE_TEXT.match(node.this))
    if isinstance(node, exp.Column):
        return bool(DATE_NAME.search(node.name))
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in ("date", "datetime", "julianday")
    if isinstance(node, exp.Add | exp.Sub | exp.DateAdd | exp.DateSub):
        return is_date(node.this)
    return isinstance(node, exp.Date | exp.CurrentDate | exp.CurrentTimestamp | exp.TimeToStr)


def _text_date(a: exp.Expression, b: exp.Expression, scope: Scope) -> bool:
    """A date compared as text (a column against a date literal): SQLite's way."""
    dated = any(isinstance(x, exp.Literal) and is_date(x) for x in (a, b))
    if dated and any(isinstance(x, exp.Column) for x in (a, b)):
        scope.note("dates")
    return dated


def say(node: exp.Expression | None, scope: Scope) -> str:
    """A phrase for ``node``; its subqueries are queued on ``scope``."""
    if node is None:
        return ""
    for kind, write in WRITERS:
        if isinstance(node, kind):
            return write(node, scope)
    if isinstance(node, exp.Func) and type(node) in SIMPLE:
        return SIMPLE[type(node)].format(say(node.this, scope))
    return sql(node, scope)


def _connective(node: exp.Connector, scope: Scope) -> str:
    word, other = ("and", exp.Or) if isinstance(node, exp.And) else ("or", exp.And)
    parts = []
    for part in node.flatten():
        inner = part.unnest() if isinstance(part, exp.Paren) else part
        text = say(inner, scope)
        parts.append(f"({text})" if isinstance(inner, other) else text)
    return f" {word} ".join(parts)


def _compare(node: exp.Binary, scope: Scope) -> str:
    a, b = node.this, node.expression
    dated = _text_date(a, b, scope) or is_date(a) and is_date(b)
    verb = COMPARE[type(node)][1 if dated else 0]
    if isinstance(node, exp.EQ) and isinstance(a, exp.Column) and isinstance(b, exp.Column):
        verb = "is the same as"
    return f"{say(a, scope)} {verb} {say(b, scope)}"


def _in(node: exp.In, scope: Scope, negated: bool = False) -> str:
    subject = say(node.this, scope)
    query = node.args.get("query")
    if query is not None:
        found = f"the values found by {scope.nest(query)}"
        return f"{subject} is {'not among' if negated else 'among'} {found}"
    values = ", ".join(say(v, scope) for v in node.expressions)
    return f"{subject} is {'none' if negated else 'one'} of {values}"


def _like(node: exp.Like | exp.ILike, scope: Scope, negated: bool = False) -> str:
    negated = negated or bool(node.args.get("negate"))
    subject, pattern = say(node.this, scope), node.expression
    scope.note("like")
    if isinstance(node.this, exp.Column) and is_date(node.this):
        scope.note("dates")
    case = " (ignoring upper/lower case)" if isinstance(node, exp.ILike) else ""
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return f"{subject} {'does not match' if negated else 'matches'} {say(pattern, scope)}"
    text = pattern.this
    core = text.strip("%")
    if "_" in text or "%" in core or node.args.get("escape"):
        verb, shown = "matches the pattern", text
    elif text.startswith("%") and text.endswith("%") and core:
        verb, shown = "contains", core
    elif text.endswith("%") and core:
        verb, shown = "starts with", core
    elif text.startswith("%") and core:
        verb, shown = "ends with", core
    else:
        verb, shown = "is exactly", text
    if negated:
        verb = _negate(text, core)
    pattern_help = " (% is any text, _ any one character)" if "pattern" in verb else ""
    return f"{subject} {verb} '{shown}'{case}{pattern_help}"


def _negate(text: str, core: str) -> str:
    if "_" in text or "%" in core:
        return "does not match the pattern"
    if text.startswith("%") and text.endswith("%") and core:
        return "does not contain"
    if text.endswith("%") and core:
        return "does not start with"
    if text.startswith("%") and core:
        return "does not end with"
    return "is not exactly"


def _is(node: exp.Is, scope: Scope, negated: bool = False) -> str:
    subject = say(node.this, scope)
    if not isinstance(node.expression, exp.Null):
        return f"{subject} is{' not' if negated else ''} {say(node.expression, scope)}"
    if negated:
        return f"{subject} has a value"
    table = (
        scope.optional.get(node.this.table.lower()) if isinstance(node.this, exp.Column) else None
    )
    missing = f" (so there is no matching **{table}** row)" if table else ""
    return f"{subject} is empty{missing}"


def _not(node: exp.Not, scope: Scope) -> str:
    inner = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
    if isinstance(inner, exp.In):
        return _in(inner, scope, negated=True)
    if isinstance(inner, exp.Like | exp.ILike):
        return _like(inner, scope, negated=True)
    if isinstance(inner, exp.Is):
        return _is(inner, scope, negated=True)
    if isinstance(inner, exp.Exists):
        return f"{scope.nest(inner.this)} finds no row"
    if isinstance(inner, exp.Between):
        return _between(inner, scope).replace(" is between ", " is not between ", 1)
    return f"it is not true that {say(inner, scope)}"


def _between(node: exp.Between, scope: Scope) -> str:
    low, high = node.args["low"], node.args["high"]
    dated = _text_date(node.this, low, scope)
    words = "is from {} to {}" if dated else "is between {} and {}"
    subject = say(node.this, scope)
    return f"{subject} {words.format(say(low, scope), say(high, scope))} (both included)"


def _arithmetic(node: exp.Binary, scope: Scope) -> str:
    a, b = node.this, node.expression
    if isinstance(node, exp.Sub) and all(_julian(x) for x in (a, b)):
        scope.note("julianday")
        start, end = (_moment(x.expressions[0], scope) for x in (b, a))
        return f"the number of days from {start} to {end}"
    if isinstance(node, exp.Div) and not (_decimal(a) or _decimal(b)):
        scope.note("intdiv")
    return f"{say(a, scope)} {ARITHMETIC[type(node)]} {say(b, scope)}"


def _moment(node: exp.Expression, scope: Scope) -> str:
    if isinstance(node, exp.Literal) and node.this.lower() == "now":
        return "now"
    return say(node, scope)


def _julian(node: exp.Expression) -> bool:
    return isinstance(node, exp.Anonymous) and node.name.lower() == "julianday"


def _decimal(node: exp.Expression) -> bool:
    """Whether a division's side surely carries a fraction (so the division keeps it)."""
    if node.find(exp.Cast, exp.Avg):
        return True
    numbers = [n for n in node.find_all(exp.Literal) if not n.is_string]
    return any("." in n.this or "e" in n.this.lower() for n in numbers)


def _aggregate(node: exp.AggFunc, scope: Scope) -> str:
    arg = node.this
    distinct = isinstance(arg, exp.Distinct)
    inner = ", ".join(say(e, scope) for e in arg.expressions) if distinct else say(arg, scope)
    if isinstance(node, exp.Count):
        if isinstance(arg, exp.Star) or arg is None:
            return "the number of rows"
        return f"the number of different {inner}" if distinct else f"the number of {inner} values"
    if isinstance(node, exp.GroupConcat):
        return f"the {inner} values joined into one text"
    words = AGGREGATES.get(type(node))
    if words is None:
        return sql(node, scope)
    return f"{words} the different {inner}" if distinct else f"{words} {inner}"


def _function(node: exp.Expression, scope: Scope) -> str:
    name = node.name.lower() if isinstance(node, exp.Anonymous) else ""
    args = node.expressions if isinstance(node, exp.Anonymous) else [node.this]
    if isinstance(node, exp.Date) or name in ("date", "datetime"):
        return _date(args, scope, "today's date" if name != "datetime" else "the current time")
    if name == "julianday" and args:
        scope.note("julianday")
        return f"the day count (julianday) of {say(args[0], scope)}"
    if name == "total" and args:
        return f"the sum of {say(args[0], scope)}"
    return sql(node, scope)


def _date(args: list[exp.Expression], scope: Scope, now_words: str) -> str:
    first, *modifiers = args
    if isinstance(first, exp.Literal) and first.this.lower() == "now":
        scope.note("now")
        text = now_words
    else:
        text = f"the date of {say(first, scope)}" if "date" in now_words else say(first, scope)
    for modifier in modifiers:
        if not isinstance(modifier, exp.Literal):
            return sql(modifier.parent, scope)
        step = MODIFIER.match(modifier.this.strip())
        if step:
            sign, amount, unit = step.groups()
            plural = "" if amount == "1" else "s"
            text = f"{amount} {unit.lower()}{plural} {'before' if sign == '-' else 'after'} {text}"
        elif modifier.this.lower().startswith("start of "):
            text = f"the {modifier.this.lower()} of {text}"
        else:
            text = f"{text} changed by '{modifier.this}'"
    return text


def _time_to_str(node: exp.TimeToStr, scope: Scope) -> str:
    fmt = node.args.get("format")
    if scope.dialect == "sqlite":
        scope.note("dates")
        scope.note("strftime")
    subject = node.this
    if isinstance(subject, exp.TsOrDsToTimestamp):
        subject = subject.this
    shown = "now" if isinstance(subject, exp.Literal) and subject.this == "now" else None
    words = FORMATS.get(fmt.this) if isinstance(fmt, exp.Literal) else None
    if words is None:
        return f"{say(subject, scope)} written as {say(fmt, scope)}"
    return words.format(shown or say(subject, scope)).replace("of now", "of today")


def _unit(node: exp.Expression, scope: Scope) -> str:
    unit = node.args.get("unit") if not isinstance(node, exp.Extract) else node.this
    return unit.name.lower() if unit is not None else ""


def _case(node: exp.Case | exp.If, scope: Scope) -> str:
    if isinstance(node, exp.If):
        ifs, default, operand = [node], node.args.get("false"), None
    else:
        ifs, default, operand = node.args["ifs"], node.args.get("default"), node.this
    parts = []
    for branch in ifs:
        test = branch.this
        when = f"{say(operand, scope)} is {say(test, scope)}" if operand else say(test, scope)
        parts.append(f"{say(branch.args['true'], scope)} when {when}")
    otherwise = say(default, scope) if default is not None else "empty"
    return f"{', '.join(parts)}, otherwise {otherwise}"


def position(key: exp.Expression, scope: Scope) -> str:
    """A GROUP BY or ORDER BY key: a number there means a shown column."""
    if isinstance(key, exp.Literal) and not key.is_string:
        return f"shown column {key.this}"
    return say(key, scope)


def ordered(node: exp.Ordered, scope: Scope, brackets: bool = True) -> str:
    key, desc = node.this, node.args.get("desc")
    if is_date(key):
        way = "latest first" if desc else "earliest first"
    else:
        way = "highest first" if desc else "lowest first"
    return f"{position(key, scope)} ({way})" if brackets else f"{position(key, scope)}, {way}"


def _window(node: exp.Window, scope: Scope) -> str:
    func, order = node.this, node.args.get("order")
    by = (
        ", then ".join(ordered(o, scope, brackets=False) for o in order.expressions)
        if order
        else ""
    )
    parts = node.args.get("partition_by") or []
    within = f" within each {', '.join(say(p, scope) for p in parts)}" if parts else ""
    if isinstance(func, exp.RowNumber):
        text = f"the row's position (1, 2, 3, …) by {by}"
    elif isinstance(func, exp.Rank | exp.DenseRank):
        gaps = "ties share a place" + (", no gaps" if isinstance(func, exp.DenseRank) else "")
        text = f"the rank by {by} ({gaps})"
    elif isinstance(func, exp.Lag | exp.Lead):
        side = "previous" if isinstance(func, exp.Lag) else "next"
        text = f"the {side} row's {say(func.this, scope)} by {by}"
    elif isinstance(func, exp.AggFunc) and order:
        text = f"the running {_aggregate(func, scope).removeprefix('the ')} by {by}"
    elif isinstance(func, exp.AggFunc):
        text = _aggregate(func, scope) + ("" if parts else " over all rows")
    else:
        return sql(node, scope)
    frame = f" (frame: {sql(node.args['spec'], scope)})" if node.args.get("spec") else ""
    return f"{text}{within}{frame}"


WRITERS: list[tuple[type | tuple[type, ...], object]] = [
    (exp.Column, column),
    (exp.Literal, lambda n, s: literal(n)),
    (exp.Null, lambda n, s: "empty (NULL)"),
    (exp.Boolean, lambda n, s: "true" if n.this else "false"),
    (exp.Star, lambda n, s: "all columns"),
    (exp.Paren, lambda n, s: f"({say(n.this, s)})"),
    (exp.Alias, lambda n, s: f"{say(n.this, s)} (shown as {n.alias})"),
    (exp.Connector, _connective),
    (tuple(COMPARE), _compare),
    (exp.In, _in),
    (exp.Like | exp.ILike, _like),
    (exp.Is, _is),
    (exp.Not, _not),
    (exp.Between, _between),
    (exp.Exists, lambda n, s: f"{s.nest(n.this)} finds at least one row"),
    (exp.Subquery, lambda n, s: f"the value found by {s.nest(n)}"),
    (tuple(ARITHMETIC), _arithmetic),
    (exp.Neg, lambda n, s: f"minus {say(n.this, s)}"),
    (exp.DPipe | exp.Concat, lambda n, s: _concat(n, s)),
    (exp.Window, _window),
    (exp.AggFunc, _aggregate),
    (exp.Case | exp.If, _case),
    (exp.TimeToStr, _time_to_str),
    (exp.Extract, lambda n, s: f"the {_unit(n, s)} of {say(n.expression, s)}"),
    (exp.TimestampTrunc | exp.DateTrunc, lambda n, s: _trunc(n, s)),
    (exp.CurrentDate, lambda n, s: "today's date"),
    (exp.CurrentTimestamp, lambda n, s: "the current date and time"),
    (exp.Interval, lambda n, s: f"{say(n.this, s).strip(chr(39))} {_unit(n, s)}".strip()),
    (exp.Coalesce, lambda n, s: " or else ".join(say(x, s) for x in [n.this, *n.expressions])),
    (exp.Round, lambda n, s: _round(n, s)),
    (exp.Substring, lambda n, s: _substring(n, s)),
    (exp.Cast, lambda n, s: f"{say(n.this, s)} as {n.to.sql(dialect=s.dialect).lower()}"),
    (exp.Date | exp.Anonymous, _function),
]


def _concat(node: exp.Expression, scope: Scope) -> str:
    if isinstance(node, exp.DPipe):
        scope.note("concat")
        pieces = [node.this, node.expression]
        while isinstance(pieces[0], exp.DPipe):
            pieces[:1] = [pieces[0].this, pieces[0].expression]
    else:
        pieces = node.expressions
    return f"the text {' followed by '.join(say(p, scope) for p in pieces)}"


def _trunc(node: exp.Expression, scope: Scope) -> str:
    return f"{say(node.this, scope)} cut back to the start of its {_unit(node, scope)}"


def _round(node: exp.Round, scope: Scope) -> str:
    decimals = node.args.get("decimals")
    places = say(decimals, scope) if decimals is not None else "0"
    return f"{say(node.this, scope)} rounded to {places} decimals"


def _substring(node: exp.Substring, scope: Scope) -> str:
    start, length = node.args.get("start"), node.args.get("length")
    text = f"part of {say(node.this, scope)} from character {say(start, scope) or 1}"
    return text + (f", {say(length, scope)} characters long" if length is not None else "")
