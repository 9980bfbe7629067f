"""Uploads become SQLite databases in the data folder; bad ones leave nothing behind."""

import hashlib
import sqlite3

import pytest

from app.uploads import UploadError, UploadLimits, import_upload, uploaded_databases


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "uploads"


def _tables(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            r[0]: con.execute(f'SELECT count(*) FROM "{r[0]}"').fetchone()[0]
            for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    finally:
        con.close()


def test_sqlite_upload_is_copied_and_original_untouched(shop_db, dest):
    before = _digest(shop_db)
    db = import_upload([shop_db], dest).path
    assert db.parent == dest and db.name == "shop.sqlite"
    assert _tables(db)["customers"] == 300
    assert _digest(shop_db) == before
    assert import_upload([shop_db], dest).path.name == "shop_2.sqlite"  # never overwrites
    assert set(uploaded_databases(dest)) == {"shop", "shop_2"}


def test_wal_database_copy_is_readable(tmp_path, dest):
    src = tmp_path / "w.db"
    con = sqlite3.connect(src)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (a)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert _tables(import_upload([src], dest).path) == {"t": 1}


def test_sql_script_becomes_a_database(tmp_path, dest):
    script = tmp_path / "library.sql"
    script.write_text(
        "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT);\n"
        "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, author_id INTEGER REFERENCES authors(id));\n"
        "INSERT INTO authors VALUES (1, 'Ada'), (2, 'Linus');\n"
        "INSERT INTO books VALUES (1, 'Notes', 1);\n"
    )
    assert _tables(import_upload([script], dest).path) == {"authors": 2, "books": 1}


def test_csvs_become_typed_tables(tmp_path, dest):
    a = tmp_path / "cities.csv"
    a.write_text("name,population,area\nParis,2100000,105.4\nLyon,520000,47.9\n")
    b = tmp_path / "countries.csv"
    b.write_text("name,code\nFrance,FR\n")
    imported = import_upload([a, b], dest, name="geo")
    db = imported.path
    assert imported.notes == []
    assert _tables(db) == {"cities": 2, "countries": 1}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    types = {r[1]: r[2] for r in con.execute("PRAGMA table_info(cities)")}
    con.close()
    assert types == {"name": "TEXT", "population": "INTEGER", "area": "REAL"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("fake.sqlite", b"this is not a database", "Not a SQLite database"),
        ("broken.sql", b"CREATE TABLE t (a;\n", "SQL script failed"),
        ("attach.sql", b"ATTACH 'elsewhere.db' AS x; CREATE TABLE x.t (a);", "SQL script failed"),
        ("empty.csv", b"", "is empty"),
        ("header_only.csv", b"a,b\n", "no data rows"),
        ("nothing.sql", b"-- just a comment\n", "no tables"),
        ("notes.txt", b"hello", "Unsupported file type"),
        ("bin.sql", b"\xff\xfe\x00garbage", "not a UTF-8"),
        (
            "long.csv",
            b"a,b,c\n1,2,3\n4,5,6,7\n",
            "Line 3 of long.csv has 4 fields; the header has 3",
        ),
        ("twice.csv", b"a,b,A\n1,2,3\n", "Column 'A' appears twice"),
        ("latin1.csv", b"name\nZ\xfcrich\n", "latin1.csv is not UTF-8 text"),
        ("blank_header.csv", b",,\n1,2,3\n", "no header row"),
    ],
)
def test_bad_uploads_are_refused_and_leave_nothing(tmp_path, dest, name, content, message):
    src = tmp_path / name
    src.write_bytes(content)
    with pytest.raises(UploadError, match=message) as err:
        import_upload([src], dest)
    assert "\n" not in str(err.value)
    assert str(tmp_path) not in str(err.value)  # no server path, only the file's name
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not (tmp_path / "elsewhere.db").exists()


def test_size_and_table_limits(tmp_path, dest, shop_db):
    from app.uploads import import_sqlite

    with pytest.raises(UploadError, match="limit"):
        import_sqlite(shop_db, dest, UploadLimits(max_db_bytes=1000))
    with pytest.raises(UploadError, match="tables; the limit is 3"):
        import_sqlite(shop_db, dest, UploadLimits(max_tables=3))
    assert list(dest.iterdir()) == []


def test_thousand_table_schema_is_accepted(tmp_path, dest):
    script = tmp_path / "wide.sql"
    script.write_text(
        "".join(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, v TEXT);\n" for i in range(1000))
    )
    assert len(_tables(import_upload([script], dest).path)) == 1000


def test_ragged_csv_rows_are_imported_with_nulls_and_reported(tmp_path, dest):
    src = tmp_path / "sales.csv"
    src.write_text("region,month,amount\nNorth,2024-01,10\nSouth,2024-01\n\nEast\nWest,2024-02,7\n")
    imported = import_upload([src], dest)
    assert imported.notes == [
        "sales.csv: 2 row(s) had fewer fields than the header (line 3, 5); their missing "
        "values were imported as NULL."
    ]
    con = sqlite3.connect(f"file:{imported.path}?mode=ro", uri=True)
    rows = con.execute("SELECT region, month, amount FROM sales ORDER BY rowid").fetchall()
    con.close()
    assert rows == [
        ("North", "2024-01", 10), ("South", "2024-01", None), ("East", None, None),
        ("West", "2024-02", 7),
    ]  # fmt: skip


@pytest.mark.parametrize(("sep", "text"), [(";", "a;b\n1;x,y\n"), ("\t", "a\tb\n1\tx;y\n")])
def test_the_csv_delimiter_is_the_headers(tmp_path, dest, sep, text):
    src = tmp_path / "t.csv"
    src.write_text(text)
    con = sqlite3.connect(f"file:{import_upload([src], dest).path}?mode=ro", uri=True)
    assert con.execute("SELECT a, b FROM t").fetchall() == [(1, text.split(sep)[-1].strip())]
    con.close()


def test_an_unnamed_index_column_is_named_and_reported(tmp_path, dest):
    src = tmp_path / "frame.csv"
    src.write_text(",name\n0,Ann\n1,Bo\n")  # pandas' to_csv writes its index like this
    imported = import_upload([src], dest)
    assert imported.notes == ["frame.csv: unnamed header column(s) named column_1."]
    assert _tables(imported.path) == {"frame": 2}
