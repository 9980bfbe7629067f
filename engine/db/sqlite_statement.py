"""The text layer for SQLite: exactly one statement, whose first keyword is SELECT, WITH,
VALUES, PRAGMA or EXPLAIN (what EXPLAIN explains is judged the same way); only that
statement's text reaches SQLite, whose authorizer (:mod:`engine.db.sqlite`) judges the rest.

A few lines mirroring SQLite's tokenizer, enough to find top-level semicolons and the first
keyword: quotes and comments are respected. SQLite itself stays the judge: Python's sqlite3
refuses any leftover statement.
"""

from __future__ import annotations

import re

MAX_SQL_CHARS = 100_000
_FIRST_WORDS = frozenset({"SELECT", "WITH", "VALUES", "PRAGMA", "EXPLAIN"})
TRANSACTION_WORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})
_WORD = re.compile(r"[A-Za-z_]+")
_BLANK = " \t\n\f\r"


def refusal(what: str) -> str:
    if what in ("ATTACH", "DETACH"):
        return f"Refused: {what} is not allowed"
    if what in TRANSACTION_WORDS:
        return f"Refused: transaction control is not allowed ({what})"
    return f"Refused: only read-only queries are allowed ({what})"


def _skip_token(sql: str, i: int) -> int | None:
    """Index just past the quoted string/identifier or comment starting at ``i``, or None."""
    ch = sql[i]
    if ch in "'\"`[":  # a doubled quote reads as two adjacent strings: same boundaries
        j = sql.find("]" if ch == "[" else ch, i + 1)
    elif sql.startswith("--", i):
        j = sql.find("\n", i)
    elif sql.startswith("/*", i):
        j = sql.find("*/", i + 2)
        j = j + 1 if j >= 0 else j
    else:
        return None
    return len(sql) if j < 0 else j + 1


def _skip_blanks(sql: str, i: int = 0, *, semicolons: bool = False) -> int:
    while i < len(sql):
        if sql[i] in _BLANK or (semicolons and sql[i] == ";"):
            i += 1
        elif sql.startswith(("--", "/*"), i):
            i = _skip_token(sql, i) or len(sql)
        else:
            break
    return i


def _first_statement(sql: str) -> tuple[str, bool]:
    """(text of the first statement, whether another statement follows it)."""
    i = 0
    while i < len(sql):
        end = _skip_token(sql, i)
        if end is not None:
            i = end
        elif sql[i] == ";":
            return sql[: i + 1], _skip_blanks(sql, i + 1, semicolons=True) < len(sql)
        else:
            i += 1
    return sql, False


def _leading_words(sql: str, count: int) -> list[str]:
    """Up to ``count`` leading keywords, upper-cased; a non-word token ends the list."""
    words: list[str] = []
    i = _skip_blanks(sql, semicolons=True)
    while i < len(sql) and len(words) < count:
        match = _WORD.match(sql, i)
        words.append(match.group().upper() if match else sql[i])
        if not match:
            break
        i = _skip_blanks(sql, match.end())
    return words


def precheck(sql: str) -> tuple[str, str | None]:
    """(statement to run, refusal or None)."""
    if len(sql) > MAX_SQL_CHARS:
        return sql, f"Refused: the query is longer than {MAX_SQL_CHARS} characters"
    statement, more = _first_statement(sql)
    if more:
        return statement, "Refused: only one SQL statement is allowed"
    words = _leading_words(statement, 4)
    if not words:
        return statement, "Refused: the query is empty"
    if words[0] == "EXPLAIN":  # judge what is explained
        words = words[3:] if words[1:3] == ["QUERY", "PLAN"] else words[1:]
    if words and words[0] not in _FIRST_WORDS:
        return statement, refusal(words[0])
    return statement, None
