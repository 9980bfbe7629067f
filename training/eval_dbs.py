"""Databases for execution accuracy when the data has none.

Seed-format rows carry only ``CREATE TABLE`` text. :class:`SyntheticDatabases` builds one
small SQLite file per (DDL, gold SQL) in a temporary folder and fills it with generated rows:

- every table gets ``rows`` rows (default 12) drawn from a ``random.Random`` seeded with the
  run's seed and a hash of the DDL and gold SQL, so the same example always gets the same data;
- the literals the gold query compares columns with (``WHERE city = 'Paris'``,
  ``age > 56``, ``name LIKE '%son%'``) are planted in those columns: in every column of the
  first row, and in about 40% of the other rows, moved past the bound for ``<``/``>`` (57 for
  ``> 56``) and stripped of wildcards for LIKE; so the gold query returns rows and a
  prediction with the wrong filter usually does not;
- a column compared with a number gets other numbers near it (also in a text column, where
  SQLite compares them as text); other values are small integers for INT/NUMBER columns (ids
  1..rows, so joins match),
  one-decimal floats for REAL/FLOAT/DOUBLE, and for text a few words plus the gold query's
  literals (repeats make GROUP BY and DISTINCT matter).

This is weaker than execution on real data: a dozen random rows cannot tell apart every pair
of different queries (a wrong query can return the gold result by chance, and two empty
results match), the planted values come from the gold query itself, and numbers stored in
text columns compare as text. Treat it as a check that the query runs and picks the same
rows, not as a Spider-grade score.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from training.metrics import dequote_string_operands

_WORDS = ("alpha", "beta", "gamma", "delta", "omega")
_CREATE = re.compile(r"(?=\bCREATE\s+TABLE\b)", re.IGNORECASE)


class SyntheticDBError(Exception):
    """The DDL did not yield any table."""


def planted_values(gold_sql: str) -> dict[str, list[Any]]:
    """Column name (lower case) -> values that make the gold query's filters true."""
    try:
        tree = sqlglot.parse_one(gold_sql, read="sqlite")
    except SqlglotError:
        return {}
    if tree is None:
        return {}
    dequote_string_operands(tree)
    out: dict[str, list[Any]] = {}
    ops = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.Glob)
    pairs: list[tuple[Any, Any, Any]] = [(n, n.this, n.expression) for n in tree.find_all(*ops)]
    pairs += [(n, n.this, e) for n in tree.find_all(exp.In) for e in n.expressions]
    for node, left, right in pairs:
        step = 1 if isinstance(node, exp.GT) else -1 if isinstance(node, exp.LT) else 0
        if isinstance(right, exp.Column) and isinstance(left, exp.Literal):
            left, right, step = right, left, -step  # 56 < age
        if not (isinstance(left, exp.Column) and isinstance(right, exp.Literal)):
            continue
        value = _literal_value(right)
        if step and _number(value) is not None:
            value = _number(value) + step  # type: ignore[operator]
        elif isinstance(node, exp.Like | exp.Glob) and isinstance(value, str):
            value = value.replace("%", "").replace("*", "").replace("_", " ").strip() or value
        values = out.setdefault(left.name.lower(), [])
        if value not in values:
            values.append(value)
    return out


def _literal_value(lit: Any) -> Any:
    if lit.is_string:
        return lit.this
    try:
        number = float(lit.this)
    except ValueError:
        return lit.this
    return int(number) if number.is_integer() and "." not in lit.this else number


def _number(value: Any) -> int | float | None:
    if isinstance(value, int | float):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else number


def _affinity(decl: str) -> str:
    """SQLite's column affinity rules (section 3.1 of the datatype docs), plus NUMBER."""
    t = decl.upper()
    if "INT" in t:
        return "int"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return "real"
    if any(k in t for k in ("NUM", "DEC", "BOOL", "DATE")):
        return "int"
    return "text"


def _random_value(
    rng: random.Random, name: str, decl: str, rows: int, words: list[Any], planted: list[Any]
) -> Any:
    numbers = [n for n in map(_number, planted) if n is not None]
    if numbers:  # numbers near the filter's bound, even in a text column ('1985' < '1990')
        return rng.randint(int(min(numbers)) - 10, int(max(numbers)) + 10)
    kind = _affinity(decl)
    if kind == "int":
        return rng.randint(1, rows) if name.lower().endswith("id") else rng.randint(0, 100)
    if kind == "real":
        return round(rng.uniform(0, 100), 1)
    return rng.choice(words)


def build_database(path: Path, ddl: str, gold_sql: str, rows: int = 12, seed: int = 0) -> None:
    """Create ``path`` from ``ddl`` and fill it as the module docstring describes."""
    digest = hashlib.sha256(f"{seed}\0{ddl}\0{gold_sql}".encode()).hexdigest()
    rng = random.Random(digest)
    planted = planted_values(gold_sql)
    words: list[Any] = list(_WORDS) + [v for vs in planted.values() for v in vs]
    conn = sqlite3.connect(path)
    try:
        for statement in _CREATE.split(ddl):
            statement = statement.strip().rstrip(";")
            if statement:
                try:
                    conn.execute(statement)
                except sqlite3.Error:
                    continue  # one bad table should not lose the others
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if not tables:
            raise SyntheticDBError("the DDL creates no table SQLite accepts")
        for table in tables:
            q = '"' + table.replace('"', '""') + '"'
            cols = [(r[1], r[2] or "") for r in conn.execute(f"PRAGMA table_info({q})")]
            data = []
            for i in range(rows):
                row = []
                for name, decl in cols:
                    options = planted.get(name.lower())
                    if options and (i == 0 or rng.random() < 0.4):
                        row.append(options[0] if i == 0 else rng.choice(options))
                    else:
                        row.append(_random_value(rng, name, decl, rows, words, options or []))
                data.append(row)
            marks = ", ".join("?" * len(cols))
            conn.executemany(f"INSERT INTO {q} VALUES ({marks})", data)
        conn.commit()
    finally:
        conn.close()


class SyntheticDatabases:
    """A temporary folder of generated databases, one per (DDL, gold SQL); delete with close()."""

    def __init__(self, rows: int = 12, seed: int = 0) -> None:
        self.rows = rows
        self.seed = seed
        self._folder: Path | None = None
        self._errors: dict[str, str] = {}

    def path_for(self, ddl: str, gold_sql: str) -> tuple[Path | None, str | None]:
        """(database file, None) or (None, why it could not be built)."""
        key = hashlib.sha256(f"{ddl}\0{gold_sql}".encode()).hexdigest()[:24]
        if key in self._errors:
            return None, self._errors[key]
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="text2sql-eval-"))
        path = self._folder / f"{key}.sqlite"
        if not path.is_file():
            try:
                build_database(path, ddl, gold_sql, self.rows, self.seed)
            except (SyntheticDBError, sqlite3.Error) as err:
                path.unlink(missing_ok=True)
                self._errors[key] = f"No database could be built from the DDL: {err}"
                return None, self._errors[key]
        return path, None

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> SyntheticDatabases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
