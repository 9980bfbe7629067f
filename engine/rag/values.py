"""Value linking: the words of a question matched to values stored in the database, shown to
the model as the column and the stored form (``country.Continent = 'Europe'``), so that it
filters on what is there instead of guessing the spelling, the casing or the column.

Per database an index is built once (:meth:`ValueIndex.build`): up to ``PER_COLUMN``
distinct strings of every text column, in a SQLite file beside the vector store, with an
FTS5 table (Porter stems: "awards" finds 'Award') and a table of normalised values (case,
accents, spaces and punctuation folded) for exact matches. A question then costs a few
lookups of its phrases, never a scan of the database.

Phrases are the question's quoted strings, its dates (``March 3, 2010``, ``3/3/2010`` ->
``2010-03-03``, matched to stored values starting so), its numbers written with separators
(``1,000`` -> ``1000``) and its word runs of one to four words that neither start nor end
with a stop word. Longer phrases go first, and a word that is part of a linked phrase is not
linked again. A single word that names a table or column is not a value. A phrase found in
more than ``MAX_COLUMNS`` columns says little: only its first few are kept.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.db import Database
    from engine.schema import Schema

log = logging.getLogger(__name__)

PER_COLUMN = 5000  # distinct values indexed per column: big tables stay cheap to index
VALUE_CHARS = 80  # longer strings are free text, not values a question names
MAX_WORDS = 4  # longest phrase tried
MAX_COLUMNS = 3  # columns kept for one phrase
VERSION = "1"  # bump when what is indexed changes

STOP = frozenset(
    """a an the of in on at to for from by with and or not no is are was were be been be
    what which who whom whose where when how many much list show give find return tell me all
    each every any some that this these those there their them they it its his her our your
    do does did have has had than then more most less least only also as per over under
    between into about after before during both either name names number count total
    average avg sum max min maximum minimum highest lowest largest smallest top first last
    order ordered sort sorted by descending ascending id ids please i we you one two three
    different distinct same other others""".split()  # noqa: SIM905 - a paragraph reads best
)
_DATE_FORMATS = ("%B %d, %Y", "%B %d %Y", "%d %B %Y", "%b %d, %Y", "%b %d %Y", "%d %b %Y",
                 "%m/%d/%Y", "%Y-%m-%d", "%Y/%m/%d", "%B %Y", "%b %Y")  # fmt: skip
_WORD = re.compile(
    r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|[A-Za-z0-9\u00C0-\u024F][A-Za-z0-9\u00C0-\u024F'&.\-]*"
)
_QUOTED = re.compile(r"[\"“‘']([^\"”’']{2,80})[\"”’']")


@dataclass(frozen=True)
class ValueLink:
    """A stored value that a phrase of the question names."""

    table: str
    column: str
    value: str
    phrase: str
    exact: bool  # the phrase is the whole value (folded), not only a part of it

    def text(self) -> str:
        """``country.Continent = 'Europe'``; a value that only holds the phrase says which:
        ``album.Title: 'Greatest Hits II' (for "greatest hits")``."""
        literal = "'" + self.value.replace("'", "''") + "'"
        if self.exact:
            return f"{self.table}.{self.column} = {literal}"
        return f'{self.table}.{self.column}: {literal} (for "{self.phrase}")'


def fold(text: str) -> str:
    """Case, accents, punctuation and runs of spaces folded: how values are compared."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


class ValueIndex:
    """The stored values of one database, in a SQLite file (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def key(self) -> str | None:
        """What the index was built from (None: not built, or unreadable)."""
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                return con.execute("SELECT key FROM meta").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return None

    def build(self, db: Database, schema: Schema, key: str) -> int:
        """Index ``db``'s text values (written to a temporary file, renamed when complete);
        returns how many values were indexed."""
        from engine.db.samples import distinct_text_values  # deferred: off the import path

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{uuid.uuid4().hex}.tmp")
        con = sqlite3.connect(tmp)
        try:
            con.executescript(
                "CREATE TABLE meta(key TEXT);"
                "CREATE TABLE exact(norm TEXT, tbl TEXT, col TEXT, value TEXT);"
                "CREATE VIRTUAL TABLE words USING fts5(value, tbl UNINDEXED, col UNINDEXED, "
                "tokenize = 'porter unicode61 remove_diacritics 2');"
            )
            n = 0
            for table, column, values in distinct_text_values(db, schema, PER_COLUMN):
                rows = [(fold(v), table, column, v) for v in values if 0 < len(v) <= VALUE_CHARS]
                rows = [r for r in rows if r[0]]
                con.executemany("INSERT INTO exact VALUES (?, ?, ?, ?)", rows)
                con.executemany(
                    "INSERT INTO words VALUES (?, ?, ?)", [(r[3], r[1], r[2]) for r in rows]
                )
                n += len(rows)
            con.execute("CREATE INDEX exact_norm ON exact(norm)")
            con.execute("INSERT INTO meta VALUES (?)", (f"{VERSION}:{key}",))
            con.commit()
            con.close()
            tmp.replace(self.path)
        finally:
            con.close()
            tmp.unlink(missing_ok=True)
        return n

    def is_current(self, key: str) -> bool:
        return self.key() == f"{VERSION}:{key}"

    def links(self, question: str, schema: Schema, limit: int) -> list[ValueLink]:
        """Up to ``limit`` stored values the question names, the surest first."""
        if limit <= 0:
            return []
        names = _schema_words(schema)
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            out: list[ValueLink] = []
            taken: set[int] = set()  # word positions already linked
            for phrase, span, kind in _phrases(question):
                if span & taken or (len(span) == 1 and fold(phrase) in names):
                    continue
                found = _lookup(con, phrase, kind, _named(question, phrase, span))
                if found:
                    out.extend(found[:MAX_COLUMNS])
                    taken |= span
            out.sort(key=lambda link: not link.exact)  # stable: longer phrases first within
            return _unique(out)[:limit]
        finally:
            con.close()


def _named(question: str, phrase: str, span: set[int]) -> bool:
    """Whether a phrase looks like a name (several words, or capitalised inside the sentence):
    only such a phrase may link to a value that merely holds it ("live" is no album)."""
    return len(span) > 1 or (phrase[:1].isupper() and not question.startswith(phrase))


def _lookup(
    con: sqlite3.Connection, phrase: str, kind: str, partial: bool = True
) -> list[ValueLink]:
    """The values ``phrase`` names: whole values first, then (word runs that may be names,
    ``partial``) values holding it."""
    if kind == "date":
        rows = con.execute(
            "SELECT tbl, col, value FROM exact WHERE norm >= ? AND norm < ? LIMIT 8",
            (fold(phrase), fold(phrase) + "\uffff"),
        ).fetchall()
        return [ValueLink(t, c, v, phrase, False) for t, c, v in _by_column(rows)]
    rows = con.execute(
        "SELECT tbl, col, value FROM exact WHERE norm = ? LIMIT 8", (fold(phrase),)
    ).fetchall()
    if rows:
        return [ValueLink(t, c, v, phrase, True) for t, c, v in _by_column(rows)]
    if kind != "words" or not partial:
        return []
    words = fold(phrase).split()
    match = " ".join(f'"{w}"' for w in words)
    try:
        rows = con.execute(
            "SELECT tbl, col, value FROM words WHERE words MATCH ? ORDER BY rank LIMIT 20",
            (match,),
        ).fetchall()
    except sqlite3.OperationalError:  # a phrase FTS5 cannot parse: no link
        return []
    # a value much longer than the phrase is text that mentions it, not the value named
    near = [r for r in rows if len(fold(r[2]).split()) <= len(words) + 1]
    return [ValueLink(t, c, v, phrase, False) for t, c, v in _by_column(near)]


def _by_column(rows: list[tuple]) -> list[tuple]:
    """One value per column (the first), columns in the order found."""
    seen: dict[tuple[str, str], tuple] = {}
    for t, c, v in rows:
        seen.setdefault((t, c), (t, c, v))
    return list(seen.values())


def _unique(links: list[ValueLink]) -> list[ValueLink]:
    seen, out = set(), []
    for link in links:
        key = (link.table, link.column, link.value)
        if key not in seen:
            seen.add(key)
            out.append(link)
    return out


def _phrases(question: str) -> Iterator[tuple[str, set[int], str]]:
    """(phrase, word positions, kind) of the question, the most specific first: quoted
    strings, dates, numbers, then word runs from the longest down."""
    words = [(m.group().strip(".'-"), m.start()) for m in _WORD.finditer(question)]
    words = [(w, i) for w, i in words if w]
    for m in _QUOTED.finditer(question):
        yield m.group(1).strip(), _positions(words, m.start(1), m.end(1)), "quoted"
    for n in (3, 2):
        for i in range(len(words) - n + 1):
            text = " ".join(w for w, _ in words[i : i + n])
            date = _date(text)
            if date:
                yield date, set(range(i, i + n)), "date"
    for i, (w, _) in enumerate(words):
        if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", w):
            yield w.replace(",", ""), {i}, "number"
        elif _date(w):
            yield _date(w), {i}, "date"
    for n in range(MAX_WORDS, 0, -1):
        for i in range(len(words) - n + 1):
            run = [w for w, _ in words[i : i + n]]
            if run[0].lower() in STOP or run[-1].lower() in STOP:
                continue
            if n == 1 and (len(run[0]) < 2 or run[0].isdigit()):
                continue
            yield " ".join(run), set(range(i, i + n)), "words"


def _positions(words: list[tuple[str, int]], start: int, end: int) -> set[int]:
    return {k for k, (_, i) in enumerate(words) if start <= i < end}


def _date(text: str) -> str | None:
    """``text`` as an ISO date (a month: ``YYYY-MM``), if it is one."""
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed.strftime("%Y-%m" if "%d" not in fmt else "%Y-%m-%d")
    return None


def _schema_words(schema: Schema) -> set[str]:
    """Table and column names, folded, with their words and a plural/singular of each."""
    out: set[str] = set()
    for table in schema.tables.values():
        for name in (table.name, *(c.name for c in table.columns)):
            for form in {fold(name), fold(name.replace("_", " ")), *fold(name).split("_")}:
                for word in (form, *form.split()):
                    out |= {word, word.rstrip("s"), word + "s"}
    return {w for w in out if w}
