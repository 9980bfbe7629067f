"""The follow-up conversation set ``bench/followups.json``: loading and checks.

    PYTHONPATH=. .venv/bin/python bench/followups_set.py [--file bench/followups.json]

Each item is a two-turn conversation: a first question with its gold SQL (treated as
answered right), then a follow-up scored by execution against ``followup_sql``. Kinds:
``refers_back`` ("which of them…", with ``standalone_sql``, the follow-up read on its own),
``refines`` ("only for 2024") and ``unrelated`` (a new question that must not inherit the
first one's filters). ``part`` (``tune`` / ``final``) is assigned by database; ``source``
says where the database lives: ``sample`` -> ``sample_dbs/<db>.sqlite``, ``spider`` ->
``../shared/data/spider_train/database/<db>/<db>.sqlite`` (held-out databases of
``bench/ablation.py``'s slices, and, for 40 tune conversations, Spider-train databases outside
every slice: the example pool never shows a database's own pairs, ``engine.rag.pool``).

Golds follow one convention, so an answer is not judged on a column choice the question
leaves open: a first question shows names (and at most one attribute it asks for); "which of
them …" keeps exactly the first answer's columns, fewer rows; "what are their X" / "how many
X does each of them have" shows the first answer's name columns and the asked value, one row
per previous row (none dropped: ``LEFT JOIN`` and ``COUNT(column)``), unordered unless the
follow-up asks for an order. The first 69 conversations were written case by case; 12 of
their golds were re-written by the convention on 2026-12-07 (a helper that saw no answer).

The parts: ``final`` is 40 conversations written on 2026-12-07 by helpers that read neither
the engine nor the other conversations, on 17 databases of ``training.slices.WORLD`` that no
other conversation uses (``music_2`` of that list has no rows); the 99 written before are
all ``tune`` (the earlier final part's failures had been read, so it could no longer give a
held-out figure). 40 more tune conversations (26 about the previous rows, 8 refinements, 6
unrelated), written on 2026-12-07 the same way on 16 mid-sized Spider-train databases that no
slice holds, gave the tune part fresh failures to learn from without reading the final part.
40 more (28 about the previous rows, 8 refinements, 4 unrelated), written the same way on
2026-12-07 (session 25) on the 12 tune databases whose schemas come nearest the final part's
(the largest by ``training.slices.WORLD``'s rule), make the tune part look more like the final.
32 more (26 about the previous rows, 6 refinements), written the same way on 2026-12-07
(session 27) on 16 of those tune databases, refer back without them/they/those/these/their
("what's its price?", "how many sections in each?", "among the ones listed, …", "for each
agent shown"): the wordings the scope of a follow-up (``engine.scope.refers_to_rows``) did
not know.

The Spider-derived conversations are written on the Spider databases, licensed CC BY-SA 4.0:
Yu et al., "Spider: A Large-Scale Human-Labeled Dataset for Complex and Cross-Domain
Semantic Parsing and Text-to-SQL Task", EMNLP 2018. They carry the same license.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import sqlite3
import sys
from pathlib import Path
from typing import Any

from sqlglot import exp, parse_one

ROOT = Path(__file__).resolve().parent.parent
FILE = Path(__file__).resolve().parent / "followups.json"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
KINDS = ("refers_back", "refines", "unrelated")
PARTS = ("tune", "final")
SOURCES = ("sample", "spider")
FIELDS = ("db", "first", "first_sql", "followup", "followup_sql", "kind", "part", "source")

log = logging.getLogger(__name__)


def db_file(item: dict[str, Any], data: Path = DEFAULT_DATA) -> Path:
    """The SQLite file a conversation runs on."""
    db = item["db"]
    if item.get("source") == "spider":
        return Path(data) / "spider_train" / "database" / db / f"{db}.sqlite"
    return ROOT / "sample_dbs" / f"{db}.sqlite"


def load_conversations(
    path: Path = FILE, part: str | None = None, data: Path = DEFAULT_DATA
) -> list[dict[str, Any]]:
    """The conversations (of one ``part``, or all), each with ``db_path`` added.

    Spider items are left out, with one warning, when ``data/spider_train`` is absent.
    """
    if part not in (None, *PARTS):
        raise ValueError(f"part must be one of {PARTS} or None, got {part!r}")
    spider = Path(data) / "spider_train"
    items, skipped = [], 0
    for item in json.loads(Path(path).read_text(encoding="utf-8")):
        if part is not None and item.get("part") != part:
            continue
        if item.get("source") == "spider" and not spider.is_dir():
            skipped += 1
            continue
        items.append({**item, "db_path": db_file(item, data)})
    if skipped:
        log.warning("%d Spider conversations skipped: %s is absent", skipped, spider)
    return items


def run_sql(path: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` on a read-only connection to ``path``."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _ordered(sql: str) -> bool:
    try:
        return parse_one(sql, read="sqlite").args.get("order") is not None
    except Exception:  # noqa: BLE001 - an unparsable query compares as unordered
        return False


def same_result(path: Path, sql_a: str, sql_b: str) -> bool:
    """Whether two queries give the same rows: as multisets, in order when both ORDER BY."""
    a, b = run_sql(path, sql_a), run_sql(path, sql_b)
    if _ordered(sql_a) and _ordered(sql_b):
        return a == b
    return collections.Counter(a) == collections.Counter(b)


def _int(node: exp.Expression | None) -> int | None:
    value = node.args.get("expression") if node is not None else None
    if isinstance(value, exp.Literal) and value.is_int:
        return int(value.name)
    return None


def _tie_probe(select: exp.Select, root: exp.Expression) -> tuple[str, int, int] | None:
    """(SQL without the LIMIT that also selects the ORDER BY keys, key count, n) or None."""
    order, n = select.args.get("order"), _int(select.args.get("limit"))
    if order is None or n is None:
        return None
    offset = _int(select.args.get("offset")) or 0
    aliases = {e.alias: e.this for e in select.expressions if isinstance(e, exp.Alias)}

    def unalias(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in aliases:
            return aliases[node.name].copy()
        return node

    keys = []
    for ordered in order.expressions:
        key = ordered.this
        if isinstance(key, exp.Literal) and key.is_int:  # ORDER BY 2
            key = select.expressions[int(key.name) - 1]
            key = key.this if isinstance(key, exp.Alias) else key
        keys.append(key.copy().transform(unalias))
    probe = select.copy()
    probe.set("limit", None)
    probe.set("offset", None)
    probe.set(
        "expressions",
        probe.expressions + [exp.alias_(k, f"tie_key_{i}") for i, k in enumerate(keys)],
    )
    if select is not root and root.args.get("with_") is not None and not probe.args.get("with_"):
        probe.set("with_", root.args["with_"].copy())
    return probe.sql(dialect="sqlite"), len(keys), offset + n


def limit_ties(path: Path, sql: str) -> list[str]:
    """Problems where rows n and n+1 of an ``ORDER BY … LIMIT n`` share their sort key.

    Every SELECT is probed (the query, its CTEs, its subqueries); those that cannot run on
    their own (correlated subqueries) are skipped.
    """
    root = parse_one(sql, read="sqlite")
    problems = []
    for select in root.find_all(exp.Select):
        probe = _tie_probe(select, root)
        if probe is None:
            continue
        text, width, n = probe
        try:
            rows = run_sql(path, text)
        except sqlite3.Error:
            continue  # correlated, or otherwise not runnable alone
        if len(rows) > n and rows[n - 1][-width:] == rows[n][-width:]:
            where = "query" if select is root else "subquery"
            problems.append(
                f"tie at LIMIT in {where} ({select.sql(dialect='sqlite')[:80]}…): rows {n} "
                f"and {n + 1} share the sort key {rows[n][-width:]}"
            )
    return problems


def check_conversations(items: list[dict[str, Any]]) -> list[str]:
    """Problems with the conversations, one readable line each; [] when all are good."""
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for i, item in enumerate(items):
        name = f"#{i} {item.get('db')}: {item.get('followup')!r}"
        missing = [f for f in FIELDS if not item.get(f)]
        if item.get("kind") == "refers_back" and not item.get("standalone_sql"):
            missing.append("standalone_sql")
        if missing:
            problems.append(f"{name}: missing {', '.join(missing)}")
            continue
        for field, allowed in (("kind", KINDS), ("part", PARTS), ("source", SOURCES)):
            if item[field] not in allowed:
                problems.append(f"{name}: {field} {item[field]!r} not in {allowed}")
        key = (item["db"], item["first"], item["followup"])
        if key in seen:
            problems.append(f"{name}: duplicate conversation")
        seen.add(key)
        path = Path(item.get("db_path") or db_file(item))
        if not path.is_file():
            problems.append(f"{name}: database {path} not found")
            continue
        fields = ["first_sql", "followup_sql"] + ["standalone_sql"] * ("standalone_sql" in item)
        broken = False
        for field in fields:
            try:
                if not run_sql(path, item[field]):
                    problems.append(f"{name}: {field} returns no rows")
                problems += [f"{name}: {field}: {p}" for p in limit_ties(path, item[field])]
            except (sqlite3.Error, ValueError) as err:
                problems.append(f"{name}: {field} fails: {err}")
                broken = True
            except Exception as err:  # noqa: BLE001 - sqlglot parse errors
                problems.append(f"{name}: {field} cannot be parsed: {err}")
                broken = True
        if broken:
            continue
        if item["kind"] == "refers_back" and same_result(
            path, item["followup_sql"], item["standalone_sql"]
        ):
            problems.append(f"{name}: gold gives the same rows as the standalone reading")
        if item["kind"] == "refines" and same_result(path, item["followup_sql"], item["first_sql"]):
            problems.append(f"{name}: gold gives the same rows as the first turn")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=FILE)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    items = load_conversations(args.file, data=args.data)
    counts = collections.Counter((it["part"], it["kind"]) for it in items)
    print(f"{len(items)} conversations")
    for part in PARTS:
        row = ", ".join(f"{kind} {counts[part, kind]}" for kind in KINDS)
        dbs = sorted({it["db"] for it in items if it["part"] == part})
        print(f"  {part}: {sum(counts[part, k] for k in KINDS)} ({row}); {len(dbs)} databases")
        print(f"    {', '.join(dbs)}")
    problems = check_conversations(items)
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
