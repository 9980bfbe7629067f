"""Workspaces: data files queried in place through DuckDB as one database (engine.workspace)."""

from __future__ import annotations

from pathlib import Path

import pytest

duckdb = pytest.importorskip("duckdb")
openpyxl = pytest.importorskip("openpyxl")

from engine.db import DatabaseError, open_database  # noqa: E402
from engine.db.workspace import connect  # noqa: E402
from engine.workspace import (  # noqa: E402
    Relation,
    WorkspaceError,
    add_files,
    create_workspace,
    describe_workspace,
    list_workspaces,
    remove_table,
    rename_table,
    set_relations,
)

CUSTOMERS = "id,name,country\n1,Ann,FR\n2,Bob,DE\n3,Cy,FR\n"
ORDERS = (
    "order_id,customer_id,amount,day\n10,1,5.5,2024-01-02\n11,1,3,2024-01-03\n12,3,7,2024-02-01\n"
)


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def parquet(folder: Path, name: str, select: str) -> Path:
    path = folder / name
    conn = duckdb.connect()
    conn.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    conn.close()
    return path


def xlsx(folder: Path, name: str, sheets: dict[str, list[list]], merge: str | None = None) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        ws = book.create_sheet(title)
        for row in rows:
            ws.append(row)
        if merge:
            ws.merge_cells(merge)
    path = folder / name
    book.save(path)
    return path


@pytest.fixture
def files(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    write(src, "customers.csv", CUSTOMERS)
    write(src, "orders.csv", ORDERS)
    return src


@pytest.fixture
def shop(tmp_path: Path, files: Path) -> Path:
    folder = create_workspace(tmp_path / "data", "shop")
    add_files(folder, [files / "customers.csv", files / "orders.csv"])
    return folder


def test_join_across_two_files(shop: Path) -> None:
    db = open_database(shop)
    assert (db.dialect, db.label, db.name) == ("duckdb", "shop", "shop")
    result = db.run_readonly(
        "SELECT c.name, sum(o.amount) AS total FROM orders o JOIN customers c "
        "ON c.id = o.customer_id GROUP BY c.name ORDER BY c.name"
    )
    assert result.error is None
    assert result.rows == [("Ann", 8.5), ("Cy", 7.0)]


def test_schema_types_rows_and_detected_relation(shop: Path, files: Path) -> None:
    schema = open_database(shop).read_schema(count_rows=True)
    orders = schema.tables["orders"]
    assert [(c.name, c.type) for c in orders.columns] == [
        ("order_id", "BIGINT"),
        ("customer_id", "BIGINT"),
        ("amount", "DOUBLE"),
        ("day", "DATE"),
    ]
    assert orders.row_count == 3
    fk = orders.foreign_keys[0]
    assert (fk.column, fk.ref_table, fk.ref_column) == ("customer_id", "customers", "id")
    info = describe_workspace(shop)
    assert info.relations == [Relation("orders", "customer_id", "customers", "id")]
    assert [(t.name, t.file, t.rows) for t in info.tables] == [
        ("customers", "customers.csv", 3),
        ("orders", "orders.csv", 3),
    ]
    # copied: the workspace reads its own copy
    assert not any(str(files) in p for p in (shop / "workspace.json").read_text().split('"'))


def test_add_notes_relation_and_copies(tmp_path: Path, files: Path) -> None:
    folder = create_workspace(tmp_path / "data", "s2")
    notes = add_files(folder, [files / "customers.csv", files / "orders.csv"])
    assert notes == ["detected relation orders.customer_id -> customers.id"]
    assert sorted(p.name for p in (folder / "files").iterdir()) == ["customers.csv", "orders.csv"]


def test_every_format_in_one_workspace(tmp_path: Path, files: Path) -> None:
    write(files, "t.tsv", "k\tv\n1\tx\n2\ty\n")
    parquet(files, "p.parquet", "SELECT range AS n, range * 2 AS m FROM range(1000)")
    write(files, "j.json", '[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]')
    write(files, "l.jsonl", '{"a": 1}\n{"a": 5}\n')
    xlsx(
        files,
        "book.xlsx",
        {"products": [["sku", "price", "added"], ["A", 1.5, None], ["B", 2, None]]},
    )
    folder = create_workspace(tmp_path / "data", "all")
    add_files(folder, [files / n for n in ("t.tsv", "p.parquet", "j.json", "l.jsonl", "book.xlsx")])
    db = open_database(folder)
    schema = db.read_schema()
    assert sorted(schema.tables) == ["j", "l", "p", "products", "t"]
    assert [(c.name, c.type) for c in schema.tables["products"].columns][:2] == [
        ("sku", "VARCHAR"),
        ("price", "DOUBLE"),
    ]
    sql = (
        "SELECT (SELECT sum(m) FROM p), (SELECT sum(a) FROM l), (SELECT string_agg(b, '') FROM j),"
        " (SELECT sum(price) FROM products), (SELECT count(*) FROM t)"
    )
    assert db.run_readonly(sql).rows == [(999000, 6, "xy", 3.5, 2)]
    sheet = next(t for t in describe_workspace(folder).tables if t.name == "products")
    assert (sheet.file, sheet.sheet) == ("book.xlsx", "products")
    assert (folder / "sheets").is_dir() and not (folder / "files" / "book.xlsx").exists()


def test_rename_remove_and_set_relations(shop: Path) -> None:
    rename_table(shop, "customers", "clients")
    info = describe_workspace(shop)
    assert [t.name for t in info.tables] == ["clients", "orders"]
    assert info.relations == [Relation("orders", "customer_id", "clients", "id")]
    assert open_database(shop).run_readonly("SELECT count(*) FROM clients").rows == [(3,)]
    with pytest.raises(WorkspaceError, match="already has a table named orders"):
        rename_table(shop, "clients", "orders")
    with pytest.raises(WorkspaceError, match="letters, digits"):
        rename_table(shop, "clients", "bad name;")
    set_relations(shop, [])
    assert describe_workspace(shop).relations == []
    set_relations(shop, [Relation("ORDERS", "Customer_ID", "clients", "id")])
    assert describe_workspace(shop).relations == [
        Relation("orders", "customer_id", "clients", "id")
    ]
    with pytest.raises(WorkspaceError, match="no column named nope"):
        set_relations(shop, [Relation("orders", "nope", "clients", "id")])
    with pytest.raises(WorkspaceError, match="no table named ghosts"):
        set_relations(shop, [Relation("orders", "customer_id", "ghosts", "id")])
    remove_table(shop, "clients")
    info = describe_workspace(shop)
    assert [t.name for t in info.tables] == ["orders"] and info.relations == []
    assert sorted(p.name for p in (shop / "files").iterdir()) == ["orders.csv"]
    schema = open_database(shop).read_schema()
    assert sorted(schema.tables) == ["orders"]


def test_workspace_by_name_in_the_data_folder(
    tmp_path: Path, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXT2SQL_DATA", str(tmp_path / "data"))
    folder = create_workspace(tmp_path / "data", "My Files!")
    add_files(folder, [files / "customers.csv"])
    assert list_workspaces(tmp_path / "data") == {"My_Files": folder}
    db = open_database("workspace:My_Files")
    assert db.label == "My_Files" and db.workspace == folder
    assert db.run_readonly("SELECT count(*) FROM customers").rows == [(3,)]
    db.check()
    with pytest.raises(DatabaseError, match="No workspace named 'nope'"):
        open_database("workspace:nope")
    with pytest.raises(DatabaseError, match="No workspace"):
        open_database("workspace:../data")
    assert create_workspace(tmp_path / "data", "My Files!") == folder  # the existing one


# --- the sandbox: each layer alone holds ------------------------------------------------

ESCAPES = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_parquet('/etc/passwd')",
    "SELECT * FROM read_json('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "COPY (SELECT 1) TO '{tmp}/x.csv'",
    "ATTACH '{tmp}/x.db' AS x",
    "INSTALL excel",
    "LOAD excel",
    "SET allowed_paths = ['/etc/passwd']",
    "SET enable_external_access = true",
]


@pytest.mark.parametrize("sql", ESCAPES)
def test_escapes_refused_through_the_database(shop: Path, tmp_path: Path, sql: str) -> None:
    result = open_database(shop).run_readonly(sql.format(tmp=tmp_path))
    assert result.error and result.rows == []
    assert result.error.startswith("Refused")
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("sql", ESCAPES)
def test_escapes_refused_by_duckdb_itself(shop: Path, tmp_path: Path, sql: str) -> None:
    """Past the text guard: the catalog opened as queries open it refuses on its own."""
    conn = connect(shop)
    try:
        with pytest.raises(duckdb.Error) as err:
            conn.execute(sql.format(tmp=tmp_path)).fetchall()
        assert isinstance(
            err.value,
            duckdb.PermissionException | duckdb.CatalogException | duckdb.InvalidInputException,
        )
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (3,)
    finally:
        conn.close()
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.db").exists()


def test_catalog_is_read_only(shop: Path) -> None:
    conn = connect(shop)
    try:
        with pytest.raises(duckdb.Error):
            conn.execute("CREATE VIEW v AS SELECT 1")
    finally:
        conn.close()
