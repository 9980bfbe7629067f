"""The follow-up conversation set (bench/followups.json) and its checks (bench/followups_set.py)."""

from __future__ import annotations

import collections
import json
import sqlite3
from pathlib import Path

import pytest

from bench.followups_set import FILE, check_conversations, limit_ties, load_conversations
from training.slices import WORLD

SPIDER = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def test_sample_conversations_pass_the_checks() -> None:
    items = [it for it in load_conversations() if it["source"] == "sample"]
    assert items
    assert all(it["db_path"].is_file() for it in items)
    assert check_conversations(items) == []


def test_spider_conversations_pass_the_checks() -> None:
    if not (SPIDER / "spider_train").is_dir():
        pytest.skip(f"shared data folder {SPIDER / 'spider_train'} is absent (see README: Data)")
    items = [it for it in load_conversations(data=SPIDER) if it["source"] == "spider"]
    assert len({it["db"] for it in items}) >= 10
    # at most 4 a database per round of writing (2 in the round on wordings without
    # them/those/their); the largest tune schemas had three rounds
    assert max(collections.Counter(it["db"] for it in items).values()) <= 10
    assert all(it["db_path"].is_file() for it in items)
    assert check_conversations(items) == []


def test_counts_per_part_and_kind() -> None:
    items = json.loads(FILE.read_text(encoding="utf-8"))  # all of them, no data needed
    assert len(items) >= 139
    counts = collections.Counter((it["part"], it["kind"]) for it in items)
    for part in ("tune", "final"):
        assert sum(n for (p, _), n in counts.items() if p == part) >= 40
        assert counts[part, "refers_back"] >= 26
        assert counts[part, "refines"] >= 6
        assert counts[part, "unrelated"] >= 6
    parts = collections.defaultdict(set)
    for it in items:
        parts[it["db"]].add(it["part"])
    assert all(len(p) == 1 for p in parts.values())  # a database is in one part only
    assert {db for db, p in parts.items() if "final" in p} <= set(WORLD)  # written blind
    assert {p for db in ("shop", "hr", "music") for p in parts[db]} == {"tune"}


def test_part_filter_and_missing_data(tmp_path: Path) -> None:
    tune = load_conversations(part="tune", data=tmp_path)  # no spider_train there
    assert tune and all(it["part"] == "tune" and it["source"] == "sample" for it in tune)
    with pytest.raises(ValueError):
        load_conversations(part="dev")


@pytest.fixture
def tiny_db(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, city TEXT, age INT)")
    conn.executemany(
        "INSERT INTO people VALUES (?, ?, ?, ?)",
        [
            (1, "Ann", "Leeds", 30),
            (2, "Bob", "York", 40),
            (3, "Cy", "Leeds", 40),
            (4, "Di", "Hull", 50),
        ],
    )
    conn.commit()
    conn.close()
    return path


def conversation(db: Path, **fields: str) -> dict:
    item = {
        "db": "tiny",
        "part": "tune",
        "source": "sample",
        "kind": "refers_back",
        "db_path": db,
        "first": "who is older than 35?",
        "first_sql": "SELECT name FROM people WHERE age > 35",
        "followup": "which of them live in Leeds?",
        "followup_sql": "SELECT name FROM people WHERE age > 35 AND city = 'Leeds'",
        "standalone_sql": "SELECT name FROM people WHERE city = 'Leeds'",
    }
    return {**item, **fields}


def test_tie_at_limit_is_reported(tiny_db: Path) -> None:
    tied = "SELECT name FROM people ORDER BY age DESC LIMIT 2"  # Bob and Cy are both 40
    assert limit_ties(tiny_db, tied)
    assert limit_ties(tiny_db, "SELECT name, age AS a FROM people ORDER BY a DESC LIMIT 2")
    assert limit_ties(tiny_db, "SELECT name, age FROM people ORDER BY 2 DESC LIMIT 2")
    inner = f"SELECT city FROM people WHERE id IN ({tied})"
    assert limit_ties(tiny_db, inner)
    assert limit_ties(tiny_db, f"WITH t AS ({tied}) SELECT * FROM t")
    problems = check_conversations([conversation(tiny_db, first_sql=tied)])
    assert len(problems) == 1 and "tie at LIMIT" in problems[0]


def test_no_tie_passes(tiny_db: Path) -> None:
    assert limit_ties(tiny_db, "SELECT name FROM people ORDER BY age DESC LIMIT 1") == []
    assert limit_ties(tiny_db, "SELECT name FROM people ORDER BY age DESC, id LIMIT 2") == []
    assert limit_ties(tiny_db, "SELECT name FROM people ORDER BY age DESC LIMIT 3") == []
    correlated = (
        "SELECT name FROM people p WHERE id = "
        "(SELECT q.id FROM people q WHERE q.city = p.city ORDER BY q.age LIMIT 1)"
    )
    assert limit_ties(tiny_db, correlated) == []  # skipped: cannot run alone
    assert check_conversations([conversation(tiny_db)]) == []


def test_standalone_reading_must_differ(tiny_db: Path) -> None:
    same = conversation(
        tiny_db,
        first_sql="SELECT name FROM people WHERE city = 'Leeds'",
        followup_sql="SELECT name FROM people WHERE city = 'Leeds' AND age > 0",
    )
    problems = check_conversations([same])
    assert len(problems) == 1 and "standalone" in problems[0]


def test_other_problems_are_reported(tiny_db: Path) -> None:
    good = conversation(tiny_db)
    refines = conversation(
        tiny_db, kind="refines", followup_sql="SELECT name FROM people WHERE age > 35"
    )
    empty = conversation(
        tiny_db, followup="x", followup_sql="SELECT name FROM people WHERE age > 99"
    )
    broken = conversation(tiny_db, followup="y", followup_sql="SELECT nope FROM people")
    bad_kind = conversation(tiny_db, followup="z", kind="other", part="dev")
    problems = check_conversations([good, good, refines, empty, broken, bad_kind])
    text = "\n".join(problems)
    for needle in ("duplicate", "same rows as the first turn", "no rows", "fails", "kind", "part"):
        assert needle in text, needle
