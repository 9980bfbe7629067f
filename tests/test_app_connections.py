"""The Schema tab's Connect form on a real PostgreSQL server and a DuckDB file: the connection
joins every database list, reads work, writes are refused, and no password is ever saved."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.db_servers import READER, READER_PASSWORD, admin_sql


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TEXT2SQL_DATA", str(tmp_path))
    return tmp_path


def _all_files_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_connect_with_a_password_saves_none(pg_server, data):
    from app.chat import run_edited_sql, transpile
    from app.databases import databases_of
    from app.schema_tab import connect_database, describe, preview

    admin_sql(
        pg_server, f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}", database="shop"
    )
    url = pg_server.url("shop", READER)  # the password comes from the form
    status, label = connect_database(url, "wrong-pw-123", "Shop on PG")
    assert label is None and "wrong-pw-123" not in status and status.startswith("**Cannot")

    status, label = connect_database(url, READER_PASSWORD, "Shop on PG")
    assert label == "Shop on PG (connection)" and "⚠" not in status, status  # a reader
    assert databases_of()[label] == url
    saved = json.loads((data / "connections.json").read_text())
    assert saved == [{"name": "Shop on PG", "url": url}]
    assert READER_PASSWORD not in _all_files_text(data)

    overview, tables = describe(label)
    assert "customers" in tables and "| customers | 300 |" in overview
    assert len(preview(label, "customers")) == 20
    pool = SimpleNamespace(base=SimpleNamespace(timeout_s=5.0, max_rows=100))
    result, line = run_edited_sql("DELETE FROM customers", label, pool)
    assert line.startswith("**Could not run:**") and "Refused" in line
    result, line = run_edited_sql("SELECT count(*) FROM customers", label, pool)
    assert result.rows == [(300,)]
    # a wrong password for the same URL fails and does not replace the right one
    assert connect_database(url, "wrong-again", "other")[1] is None
    assert run_edited_sql("SELECT 1", label, pool)[0].rows == [(1,)]
    assert transpile("SELECT name::text FROM t", "sqlite", "postgres").startswith("SELECT")


def test_admin_account_gets_a_warning_and_a_literal_password_is_dropped(pg_server, data):
    from app.schema_tab import connect_database

    status, label = connect_database(pg_server.url("shop", "text2sql", "typed-in-url"), "", "")
    assert label == "shop (connection)" and "⚠" in status and "can change data" in status
    assert "typed-in-url" not in _all_files_text(data)


def test_duckdb_file_connects(duck_samples, data):
    from app.schema_tab import connect_database, describe

    status, label = connect_database(duck_samples["music"], "", "")
    assert label == "music (connection)", status
    assert "tracks" in describe(label)[1]


@pytest.mark.parametrize("url", ["", "shop.sqlite", "sqlite:///x.sqlite", "oracle://u@h/x"])
def test_bad_urls_are_refused_in_one_line(url, data):
    from app.schema_tab import connect_database

    status, label = connect_database(url, "", "")
    assert label is None and "\n" not in status and status.startswith("**Cannot connect:**")
