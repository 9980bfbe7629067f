"""The sample databases: reproducible builds, consistent keys, and question/SQL pairs that run."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from sample_dbs.build import DATABASES, build_all

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_dbs"
NAMES = list(DATABASES)
REQUIRED_TABLES = {
    "shop": {"customers", "products", "categories", "orders", "order_items", "reviews"},
    "hr": {"departments", "employees", "jobs", "salary_history", "locations"},
    "music": {
        "artists",
        "albums",
        "tracks",
        "genres",
        "venues",
        "concerts",
        "concert_performers",
    },
}


def _connect(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return [name for (name,) in rows]


def _dump(path: Path) -> list[str]:
    with _connect(path) as conn:
        return list(conn.iterdump())


def _load_pairs(name: str) -> list[dict]:
    return json.loads((SAMPLE_DIR / "pairs" / f"{name}.json").read_text(encoding="utf-8"))


def _pair_params() -> list:
    return [
        pytest.param(name, pair["query"], id=f"{name}-{i:02d}")
        for name in NAMES
        for i, pair in enumerate(_load_pairs(name))
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {path.stem: path for path in build_all(tmp_path_factory.mktemp("sample_dbs"))}


def test_two_builds_are_byte_identical(built: dict[str, Path], tmp_path: Path) -> None:
    again = {path.stem: path for path in build_all(tmp_path)}
    assert sorted(again) == sorted(built) == sorted(NAMES)
    for name, path in built.items():
        assert path.read_bytes() == again[name].read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.sqlite" for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_file_has_the_built_content(built: dict[str, Path], name: str) -> None:
    committed = SAMPLE_DIR / f"{name}.sqlite"
    assert committed.stat().st_size < 1_000_000
    assert _dump(committed) == _dump(built[name]), "stale: run python sample_dbs/build.py"


@pytest.mark.parametrize("name", NAMES)
def test_committed_file_has_the_built_bytes(built: dict[str, Path], name: str) -> None:
    committed = (SAMPLE_DIR / f"{name}.sqlite").read_bytes()
    # Header bytes 96-99 name the SQLite library that wrote the file; another version may lay
    # out pages differently, so byte equality is only promised for the same library.
    writer = int.from_bytes(committed[96:100], "big")
    major, minor, patch = sqlite3.sqlite_version_info
    if writer != major * 1_000_000 + minor * 1_000 + patch:
        pytest.skip(f"committed file written by SQLite {writer}, running {sqlite3.sqlite_version}")
    assert committed == built[name].read_bytes(), "stale: run python sample_dbs/build.py"


@pytest.mark.parametrize("name", NAMES)
def test_schema_and_keys(name: str) -> None:
    with _connect(SAMPLE_DIR / f"{name}.sqlite") as conn:
        tables = _tables(conn)
        assert REQUIRED_TABLES[name] <= set(tables)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        for table in tables:
            assert table == table.lower() and " " not in table
            columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
            assert any(col[5] for col in columns), f"{table} has no primary key"
            assert all(col[1] == col[1].lower() for col in columns), table
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert count >= 5, f"{table} is nearly empty"
        linked = set()  # tables that hold a foreign key or are the target of one
        for table in tables:
            for key in conn.execute(f"PRAGMA foreign_key_list({table})").fetchall():
                linked |= {table, key[2]}
        assert linked == set(tables), f"unlinked tables: {set(tables) - linked}"


def test_employees_have_a_manager_self_key() -> None:
    with _connect(SAMPLE_DIR / "hr.sqlite") as conn:
        keys = conn.execute("PRAGMA foreign_key_list(employees)").fetchall()
        assert ("employees", "manager_id") in {(k[2], k[3]) for k in keys}
        assert (
            conn.execute("SELECT count(*) FROM employees WHERE manager_id IS NULL").fetchone()[0]
            == 1
        )


@pytest.mark.parametrize("name", NAMES)
def test_dates_are_iso(name: str) -> None:
    with _connect(SAMPLE_DIR / f"{name}.sqlite") as conn:
        for table in _tables(conn):
            for col in conn.execute(f"PRAGMA table_info({table})").fetchall():
                if not col[1].endswith("_date"):
                    continue
                bad = conn.execute(
                    f"SELECT {col[1]} FROM {table} WHERE {col[1]} IS NOT NULL AND "
                    f"(date({col[1]}) IS NULL OR date({col[1]}) != {col[1]}) LIMIT 1"
                ).fetchall()
                assert bad == [], f"{table}.{col[1]}: {bad}"


@pytest.mark.parametrize("name", NAMES)
def test_pairs_file_shape(name: str) -> None:
    pairs = _load_pairs(name)
    assert len(pairs) >= 40
    for pair in pairs:
        assert set(pair) == {"db_id", "question", "query"}, pair
        assert pair["db_id"] == name
        assert pair["question"].strip() and pair["query"].strip()
    questions = [pair["question"] for pair in pairs]
    assert len(set(questions)) == len(questions), "duplicate questions"


@pytest.mark.parametrize(("name", "query"), _pair_params())
def test_pair_query_returns_rows(name: str, query: str) -> None:
    with _connect(SAMPLE_DIR / f"{name}.sqlite") as conn:
        rows = conn.execute(query).fetchall()
    assert rows, "no rows"
    assert any(value is not None for row in rows for value in row), "only NULLs"
