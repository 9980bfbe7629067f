"""The Schema tab's files workspace, its handlers without a browser: files added all or
nothing, tables renamed and removed, relations edited, each refusal one line."""

import hashlib

import pytest

from app import workspace_panel as panel
from app.databases import databases_of
from engine.db import open_database

CUSTOMERS = "customer_id,name,city\n1,Ann,Leeds\n2,Bob,York\n3,Cat,Leeds\n4,Dan,Hull\n"
ORDERS = (
    "order_id,customer_id,product_id,quantity,amount\n"
    "100,1,10,1,20.0\n101,1,11,4,22.0\n102,2,12,1,35.0\n"
    "103,3,11,2,11.0\n104,3,12,1,35.0\n105,4,10,2,40.0\n"
)
PRODUCTS = [("product_id", "name", "price"), (10, "Teapot", 20.0), (11, "Mug", 5.5),
            (12, "Kettle", 35.0)]  # fmt: skip


def write_files(folder):
    """customers.csv, orders.csv and shop.xlsx (its sheet: products) in ``folder``."""
    from openpyxl import Workbook

    customers, orders = folder / "customers.csv", folder / "orders.csv"
    customers.write_text(CUSTOMERS)
    orders.write_text(ORDERS)
    book = Workbook()
    sheet = book.active
    sheet.title = "products"
    for row in PRODUCTS:
        sheet.append(row)
    xlsx = folder / "shop.xlsx"
    book.save(xlsx)
    return [customers, orders, xlsx]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXT2SQL_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    return write_files(folder)


def _digests(paths):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _names(name):
    return panel.view(name)[2]


def test_files_become_one_database_offered_everywhere(data_dir, files):
    before = _digests(files)
    status, name = panel.add(files, None, "shop files")
    assert name is not None, status
    assert status.startswith("Added customers.csv, orders.csv, shop.xlsx")
    assert panel.workspace_names() == [name]
    label = panel.label_of(name)
    assert label in databases_of() and label.endswith("(workspace)")
    tables, relations, names = panel.view(name)
    assert sorted(names) == ["customers", "orders", "products"]
    assert list(tables.columns) == panel.TABLE_HEADERS[:-1]  # no problem: no such column
    rows = dict(zip(tables["table"], tables["rows"], strict=True))
    assert rows == {"customers": 4, "orders": 6, "products": 3}
    assert tables.set_index("table").loc["products", "sheet"] == "products"
    assert list(relations.columns) == panel.RELATION_HEADERS
    db = open_database(databases_of()[label])
    result = db.run_readonly(
        "SELECT p.name, sum(o.amount) FROM orders o JOIN customers c USING (customer_id) "
        "JOIN products p USING (product_id) WHERE c.city = 'Leeds' GROUP BY p.name "
        "ORDER BY 2 DESC"
    )
    assert result.ok, result.error
    assert [tuple(r) for r in result.rows] == [("Kettle", 35.0), ("Mug", 33.0), ("Teapot", 20.0)]
    assert _digests(files) == before  # read, never changed


def test_more_files_join_the_chosen_workspace(data_dir, files):
    _, name = panel.add(files[:1], None, "shop")
    status, again = panel.add(files[1:], name, "")
    assert again == name, status
    assert sorted(_names(name)) == ["customers", "orders", "products"]


def test_a_bad_file_is_one_line_and_changes_nothing(data_dir, files, tmp_path):
    _, name = panel.add(files, None, "shop")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    good = tmp_path / "regions.csv"
    good.write_text("region,city\nNorth,Leeds\n")
    status, refused = panel.add([good, ragged], name, "")  # all or nothing
    assert refused is None and status.startswith("**Not added:**"), status
    assert "\n" not in status and str(tmp_path) not in status
    assert sorted(_names(name)) == ["customers", "orders", "products"]
    # a workspace made for a refused file is not kept
    status, refused = panel.add([ragged], None, "only ragged")
    assert refused is None and panel.workspace_names() == [name]
    assert panel.add([], name, "")[0].startswith("**Not added:**")


def test_rename_and_remove_tables(data_dir, files):
    _, name = panel.add(files, None, "shop")
    assert panel.rename(name, "customers", "clients").startswith("Renamed")
    assert sorted(_names(name)) == ["clients", "orders", "products"]
    refused = panel.rename(name, "orders", "clients")  # taken
    assert refused.startswith("**Not renamed:**") and "\n" not in refused
    assert panel.rename(name, None, "x").startswith("**Not renamed:**")
    assert panel.rename("nowhere", "orders", "x").startswith("**Not renamed:**")
    assert panel.remove(name, "products").startswith("Removed")
    assert sorted(_names(name)) == ["clients", "orders"]
    assert files[2].exists()  # the user's file stays
    assert panel.remove(name, None).startswith("**Not removed:**")


def test_relations_are_edited_and_checked(data_dir, files):
    pd = pytest.importorskip("pandas")
    _, name = panel.add(files, None, "shop")
    frame = pd.DataFrame(
        [["orders", "customer_id", "customers", "customer_id"], [None, None, None, None]],
        columns=panel.RELATION_HEADERS,
    )
    assert panel.save_relations(name, frame) == "Saved 1 relation(s)."
    relations = panel.view(name)[1]
    assert relations.values.tolist() == [["orders", "customer_id", "customers", "customer_id"]]
    half = [["orders", "product_id", "", ""]]
    status = panel.save_relations(name, half)
    assert status.startswith("**Relations not saved:** Relation 1:")
    wrong = [["orders", "no_such_column", "customers", "customer_id"]]
    status = panel.save_relations(name, wrong)
    assert status.startswith("**Relations not saved:**") and "\n" not in status
    assert panel.view(name)[1].values.tolist() == relations.values.tolist()  # unchanged
    assert panel.save_relations(name, []) == "Saved 0 relation(s)."
    assert panel.view(name)[1].empty


def test_an_unknown_workspace_shows_nothing(data_dir):
    tables, relations, names = panel.view("nowhere")
    assert tables.empty and relations.empty and names == []


def test_a_table_whose_file_went_says_so(data_dir, files):
    _, name = panel.add(files, None, "shop")
    folder = panel.ws.list_workspaces(data_dir)[name]
    next((folder / "files").glob("customers*.csv")).unlink()  # the workspace's copy
    tables = panel.view(name)[0].set_index("table")
    assert tables.loc["customers", "problem"] and not tables.loc["orders", "problem"]
    assert "\n" not in tables.loc["customers", "problem"]
