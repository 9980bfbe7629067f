"""Workspaces and bad files: each refused (or read with a note) in one line, the workspace
left exactly as it was, the user's files never modified."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_workspace import CUSTOMERS, ORDERS, parquet, write, xlsx

duckdb = pytest.importorskip("duckdb")

from engine.db import DatabaseError, open_database  # noqa: E402
from engine.workspace import (  # noqa: E402
    WorkspaceError,
    WorkspaceLimits,
    add_files,
    create_workspace,
    describe_workspace,
)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    write(folder, "customers.csv", CUSTOMERS)
    return folder


@pytest.fixture
def ws(tmp_path: Path, src: Path) -> Path:
    folder = create_workspace(tmp_path / "data", "w")
    add_files(folder, [src / "customers.csv"])
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def refused(ws: Path, files: list[Path], match: str, **kw) -> str:
    """Adding ``files`` raises one line matching ``match``; the workspace is unchanged."""
    before = snapshot(ws)
    with pytest.raises(WorkspaceError, match=match) as err:
        add_files(ws, files, **kw)
    message = str(err.value)
    assert "\n" not in message and str(ws) not in message and "/src/" not in message
    assert snapshot(ws) == before
    return message


def test_wrong_encoding(ws: Path, src: Path) -> None:
    bad = write(src, "latin.csv", "id,name\n1,Caf\xe9\n2,Cr\xeape\n".encode("latin-1"))
    refused(ws, [bad], r"latin\.csv is not UTF-8 text")


def test_a_row_with_too_many_fields_is_refused_with_its_line(ws: Path, src: Path) -> None:
    bad = write(src, "ragged.csv", "id,name,amount\n1,a,2.5\n2,b,3.5\n3,c,4,5\n4,d,1.0\n")
    refused(ws, [bad], r"ragged\.csv: line 4 has more fields than the header's 3")


def test_rows_with_too_few_fields_are_read_with_nulls_and_noted(ws: Path, src: Path) -> None:
    short = write(src, "short.csv", "id,name,amount\n1,a,2.5\n2,b\n3,c\n4,d,1.0\n")
    notes = add_files(ws, [short])
    assert notes == [
        "short.csv: 2 rows have fewer fields than the header (first: line 3); "
        "the missing values are empty (NULL)"
    ]
    rows = open_database(ws).run_readonly("SELECT * FROM short ORDER BY id").rows
    assert rows == [(1, "a", 2.5), (2, "b", None), (3, "c", None), (4, "d", 1.0)]


def test_a_value_past_the_sniffers_sample_widens_the_type(ws: Path, src: Path) -> None:
    lines = ["id,v"] + [f"{i},{i}" for i in range(30_000)] + ["x,1"]
    big = write(src, "late.csv", "\n".join(lines) + "\n")
    add_files(ws, [big])
    late = next(t for t in describe_workspace(ws).tables if t.name == "late")
    assert late.columns[0] == ("id", "VARCHAR") and late.rows == 30_001


def test_duplicate_column_names(ws: Path, src: Path) -> None:
    refused(ws, [write(src, "dup.csv", "id,name,ID\n1,a,2\n")], r"'ID' appears twice")
    book = xlsx(src, "dup.xlsx", {"people": [["name", "name"], ["a", "b"]]})
    refused(ws, [book], r"dup\.xlsx \(sheet people\): the column name 'name' appears twice")


def test_merged_header_cells_in_a_sheet(ws: Path, src: Path) -> None:
    rows = [["Sales", None, "region"], [1, 2, "north"], [3, 4, "south"]]
    book = xlsx(src, "merged.xlsx", {"q1": rows}, merge="A1:B1")
    refused(ws, [book], r"merged\.xlsx \(sheet q1\): the header row has merged cells \(A1:B1\)")


def test_files_over_the_stated_limits(ws: Path, src: Path) -> None:
    small = WorkspaceLimits(max_copy_bytes=50, max_xlsx_bytes=1000)
    orders = write(src, "orders.csv", ORDERS)
    message = refused(ws, [orders], r"orders\.csv is larger than the limit", limits=small)
    assert "files copied into a workspace up to 50 bytes" in message
    book = xlsx(src, "big.xlsx", {"s": [["a"]] + [[i] for i in range(2000)]})
    refused(ws, [book], r"big\.xlsx is larger than 1000 bytes, the limit for Excel", limits=small)
    # A sparse 3 GB file: refused by its size before a byte of it is read or copied.
    huge = src / "huge.csv"
    with open(huge, "wb") as f:
        f.truncate(3 * 2**30)
    refused(ws, [huge], r"huge\.csv is larger than the limit")
    # Used in place (no copy), a file is streamed by DuckDB: no size limit applies.
    assert add_files(ws, [orders], copy=False, limits=small) == [
        "detected relation orders.customer_id -> customers.id"
    ]


def test_nested_parquet_columns_are_left_out_with_a_note(ws: Path, src: Path) -> None:
    nested = parquet(src, "events.parquet", "SELECT 1 AS id, {'x': 1} AS payload, [1, 2] AS tags")
    assert add_files(ws, [nested]) == [
        "events.parquet: left out nested column(s) payload, tags "
        "(STRUCT, LIST and MAP values cannot be queried here)"
    ]
    assert open_database(ws).run_readonly("SELECT * FROM events").rows == [(1,)]
    only = parquet(src, "only.parquet", "SELECT map {'k': 1} AS m")
    refused(ws, [only], r"only\.parquet: every column is nested")


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("one.json", '{"a": [1, 2], "b": 3}', r"one\.json is one JSON object, not a list"),
        ("nums.json", "[1, 2, 3]", r"nums\.json is not a list of records"),
        ("text.json", "hello", r"text\.json is not a list of records"),
        ("lines.jsonl", "[1]\n[2]\n", r"lines\.jsonl is not a list of records: .*one JSON object"),
        ("broken.json", '[{"a": 1}, {"a": ', r"broken\.json is not a list of records"),
    ],
)
def test_json_that_is_not_a_list_of_records(
    ws: Path, src: Path, name: str, text: str, match: str
) -> None:
    refused(ws, [write(src, name, text)], match)


def test_all_or_nothing(ws: Path, src: Path) -> None:
    good = write(src, "orders.csv", ORDERS)
    book = xlsx(src, "ok.xlsx", {"items": [["sku"], ["A"]]})
    bad = write(src, "ragged.csv", "a,b\n1,2,3\n")
    refused(ws, [good, book, bad], r"ragged\.csv")
    assert not (ws / "files" / "orders.csv").exists()
    assert not any((ws / "sheets").glob("*")) if (ws / "sheets").exists() else True


def test_unsupported_and_missing_files(ws: Path, src: Path) -> None:
    refused(ws, [write(src, "notes.md", "# hi")], r"notes\.md: not a supported file")
    refused(ws, [src / "gone.csv"], r"gone\.csv: no such file")


def test_a_file_that_changes_or_disappears_after_it_was_added(tmp_path: Path, src: Path) -> None:
    folder = create_workspace(tmp_path / "data", "live")
    orders = write(src, "orders.csv", ORDERS)
    add_files(folder, [src / "customers.csv", orders], copy=False)
    db = open_database(folder)
    assert db.run_readonly("SELECT count(*) FROM orders").rows == [(3,)]
    write(src, "orders.csv", "a,b\n1,2\n")  # other columns
    result = db.run_readonly("SELECT sum(amount) FROM orders")
    assert result.error == (
        "orders.csv of table orders changed since it was added (its header is not the one "
        "it had): add it to the workspace again"
    )
    with pytest.raises(DatabaseError, match=r"^orders\.csv of table orders changed"):
        db.read_schema()
    assert describe_workspace(folder).tables[1].problem.startswith("orders.csv of table orders")
    assert db.run_readonly("SELECT count(*) FROM customers").rows == [(3,)]  # the others work
    orders.unlink()
    result = db.run_readonly("SELECT * FROM orders")
    assert result.error == (
        "orders.csv of table orders is gone: put it back, or remove the table from the workspace"
    )
    assert str(src) not in result.error
    with pytest.raises(DatabaseError, match=r"orders\.csv of table orders is gone"):
        db.read_schema(count_rows=True)


def test_appended_rows_are_seen_in_place(tmp_path: Path, src: Path) -> None:
    folder = create_workspace(tmp_path / "data", "grow")
    orders = write(src, "orders.csv", ORDERS)
    add_files(folder, [orders], copy=False)
    with open(orders, "a") as f:
        f.write("13,2,1.5,2024-03-01\n")
    db = open_database(folder)
    assert db.run_readonly("SELECT count(*) FROM orders").rows == [(4,)]
    assert "orders" in db.read_schema().tables


def test_the_users_files_are_never_modified(tmp_path: Path, src: Path) -> None:
    orders = write(src, "orders.csv", ORDERS)
    book = xlsx(src, "book.xlsx", {"items": [["sku", "n"], ["A", 1]]})
    nested = parquet(src, "p.parquet", "SELECT 1 AS id")
    given = [src / "customers.csv", orders, book, nested]
    before = {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in given}
    for copy in (True, False):
        folder = create_workspace(tmp_path / "data", f"w{copy}")
        add_files(folder, given, copy=copy)
        db = open_database(folder)
        db.read_schema(count_rows=True)
        assert db.run_readonly("SELECT count(*) FROM items").rows == [(1,)]
    assert {p: (p.read_bytes(), os.stat(p).st_mtime_ns) for p in given} == before
