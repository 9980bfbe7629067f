"""engine.db on real PostgreSQL and MariaDB servers and real DuckDB files: the twin of
test_sqlite_safety.py for each engine.

Every hostile case checks: refused, a one-line error, and the database's contents unchanged
(a dump of every table, view and sequence before and after, taken over an admin connection;
for DuckDB also the file's bytes and its folder). Harmless look-alikes must still work.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from engine.db import DatabaseError, check_database, open_database, read_schema, run_readonly
from tests.db_servers import READER, READER_PASSWORD, Server, admin_sql

FAST = 1.0  # timeout for the bombs, in seconds
SETUP = [
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, update_date VARCHAR(20))",
    "CREATE TABLE big (n INTEGER)",
    "CREATE VIEW v AS SELECT id, name FROM t",
    "INSERT INTO t VALUES (1, 'ann', '2024-01-02'), (2, 'bob', NULL), (3, 'cy; DROP TABLE t', NULL)",
]
WRITE = "Refused: only read-only queries are allowed"
ONE = "Refused: only one SQL statement is allowed"

COMMON_HOSTILE = [
    ("INSERT INTO t (id, name) VALUES (9, 'x')", f"{WRITE} (INSERT)"),
    ("insert into t (id, name) values (9, 'x')", f"{WRITE} (INSERT)"),
    ("/* hi */ UPDATE t SET name = 'x'", f"{WRITE} (UPDATE)"),
    ("DELETE FROM t", f"{WRITE} (DELETE)"),
    ("DELETE FROM customers", f"{WRITE} (DELETE)"),
    ("CREATE TABLE x (a INTEGER)", f"{WRITE} (CREATE)"),
    ("CREATE TEMPORARY TABLE x (a INTEGER)", f"{WRITE} (CREATE)"),
    ("CREATE VIEW w AS SELECT 1 AS a", f"{WRITE} (CREATE)"),
    ("CREATE INDEX i ON t (name)", f"{WRITE} (CREATE)"),
    ("DROP TABLE t", f"{WRITE} (DROP)"),
    ("DROP TABLE customers", f"{WRITE} (DROP)"),
    ("DROP VIEW v", f"{WRITE} (DROP)"),
    ("ALTER TABLE t ADD COLUMN c INTEGER", f"{WRITE} (ALTER)"),
    ("TRUNCATE TABLE t", "Refused"),
    ("BEGIN", "Refused"),
    ("COMMIT", "Refused"),
    ("ROLLBACK", "Refused"),
    ("SET statement_timeout = 0", "Refused"),
    ("SELECT 1; DROP TABLE t", ONE),
    ("SELECT 1; DROP TABLE customers", ONE),
    ("SELECT 1 /* ; */; DELETE FROM t", ONE),
    ("SELECT 1 -- \n; DROP TABLE t", ONE),
    ("SELECT ';'; DELETE FROM t", ONE),
    ("SELECT 'it''s'; DELETE FROM t", ONE),
    ("SELECT 1;; DROP TABLE t", ONE),
    ("select 1 ;\ninsert into t (id, name) values (9, 'x')", ONE),
    ("SELECT 1; SELECT 2", ONE),
    ("", "Refused: the query is empty"),
    ("-- only a comment", "Refused: the query is empty"),
    ("SELECT " + "1 + " * 30_000 + "1", "longer than"),
]
HOSTILE = {
    "postgres": [
        ("SELECT pg_read_file('/etc/passwd')", "Refused: function pg_read_file() is not allowed"),
        ("SELECT pg_catalog.pg_read_file('/etc/passwd')", "pg_read_file() is not allowed"),
        ("SELECT \"pg_read_file\"('/etc/passwd')", "pg_read_file() is not allowed"),
        ("SELECT * FROM pg_read_binary_file('/etc/passwd')", "pg_read_binary_file()"),
        ("SELECT * FROM pg_ls_dir('.')", "Refused: function pg_ls_dir() is not allowed"),
        ("SELECT lo_import('/etc/passwd')", "Refused: function lo_import() is not allowed"),
        ("SELECT lo_export(1, '/tmp/x')", "Refused: function lo_export() is not allowed"),
        ("SELECT dblink('dbname=postgres', 'DROP TABLE t')", "dblink() is not allowed"),
        ("SELECT set_config('default_transaction_read_only', 'off', false)", "set_config()"),
        ("SELECT nextval('s')", "Refused: function nextval() is not allowed"),
        ("SELECT pg_terminate_backend(pg_backend_pid())", "pg_terminate_backend()"),
        ("SELECT pg_sleep(10)", "Refused: function pg_sleep() is not allowed"),
        ("SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')", "query_to_xml()"),
        ("COPY t TO PROGRAM 'touch /tmp/pwned'", "Refused"),
        ("COPY t TO '/tmp/t.csv'", "Refused"),
        ("COPY t FROM '/etc/passwd'", "Refused"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", f"{WRITE} (DELETE)"),
        ("SELECT * INTO t2 FROM t", f"{WRITE} (SELECT ... INTO)"),
        ("SELECT * FROM t FOR UPDATE", "Refused"),
        ("SET TRANSACTION READ WRITE", "Refused"),
        ("RESET ALL", "Refused"),
        ("DO $$ BEGIN DELETE FROM t; END $$", "Refused"),
        ("EXPLAIN ANALYZE DELETE FROM t", "Refused"),
        ("SELECT 1 /* /* */ ; DROP TABLE t; */; DROP TABLE t", ONE),
        ("CREATE SEQUENCE s2", f"{WRITE} (CREATE)"),
        ("GRANT ALL ON t TO PUBLIC", "Refused"),
        ("VACUUM", "Refused"),
        ("LISTEN x", "Refused"),
    ],
    "mysql": [
        ("SELECT LOAD_FILE('/etc/passwd')", "Refused: function load_file() is not allowed"),
        ("SELECT * FROM t INTO OUTFILE '/tmp/t.csv'", "Refused"),
        ("SELECT 'x' INTO DUMPFILE '/tmp/x'", "Refused"),
        ("SELECT name INTO @v FROM t LIMIT 1", "Refused"),
        ("SELECT SLEEP(10)", "Refused: function sleep() is not allowed"),
        ("SELECT BENCHMARK(100000000, MD5('x'))", "Refused: function benchmark() is not allowed"),
        ("SELECT GET_LOCK('x', 10)", "Refused: function get_lock() is not allowed"),
        ("SELECT 1 /*!, LOAD_FILE('/etc/passwd') */", "executable comments"),
        ("SELECT 1 /*M!100000 , SLEEP(5) */", "executable comments"),
        ("SELECT /*+ MAX_EXECUTION_TIME(0) */ 1", "executable comments"),
        ("LOAD DATA INFILE '/etc/passwd' INTO TABLE t", "Refused"),
        ("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t", "Refused"),
        ("REPLACE INTO t (id, name) VALUES (1, 'x')", "Refused"),
        ("HANDLER t OPEN", "Refused"),
        ("SELECT * FROM t FOR UPDATE", "Refused"),
        ("SET SESSION TRANSACTION READ WRITE", "Refused"),
        ("SET STATEMENT max_statement_time = 0 FOR SELECT 1", "Refused"),
        ("START TRANSACTION READ WRITE", "Refused"),
        ("CREATE PROCEDURE p() DELETE FROM t", "Refused"),
        ("GRANT ALL ON *.* TO 'reader'@'%'", "Refused"),
        ("USE mysql", "Refused"),
        ("SHUTDOWN", "Refused"),
    ],
    "duckdb": [
        ("SELECT * FROM read_csv('/etc/passwd')", "Refused: function read_csv() is not allowed"),
        ("SELECT * FROM read_text('/etc/passwd')", "Refused: function read_text() is not allowed"),
        ("SELECT * FROM read_parquet('x.parquet')", "read_parquet() is not allowed"),
        ("SELECT * FROM '/etc/passwd'", "Refused: reading files is not allowed"),
        ('SELECT * FROM "data.csv"', "Refused: reading files is not allowed"),
        ("SELECT * FROM glob('/*')", "Refused: function glob() is not allowed"),
        ("SELECT getenv('HOME')", "Refused: function getenv() is not allowed"),
        ("SELECT * FROM query('SELECT 1')", "Refused: function query() is not allowed"),
        ("COPY t TO 'out.csv'", "Refused"),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "Refused"),
        ("ATTACH 'other.duckdb' AS o", "Refused"),
        ("DETACH o", "Refused"),
        ("INSTALL httpfs", "Refused"),
        ("LOAD httpfs", "Refused"),
        ("SET enable_external_access = true", "Refused"),
        ("PRAGMA threads = 4", "Refused"),
        ("CHECKPOINT", "Refused"),
        ("EXPORT DATABASE 'dump'", "Refused"),
        ("CREATE MACRO m(a) AS a", "Refused"),
        ("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')", "Refused"),
        ("SELECT * FROM t, (SELECT 1); DELETE FROM t", ONE),
    ],
}
COMMON_HARMLESS = [
    ("SELECT count(*) FROM t", [(3,)]),
    ("SELECT name FROM t WHERE update_date IS NOT NULL", [("ann",)]),
    ("SELECT name FROM t WHERE name LIKE 'c%'", [("cy; DROP TABLE t",)]),
    ("SELECT 'DELETE FROM t; DROP TABLE t' AS s", [("DELETE FROM t; DROP TABLE t",)]),
    ("SELECT 'pg_read_file' AS load_file", [("pg_read_file",)]),
    ("select id from v where id = 1;", [(1,)]),
    ("SELECT 1 AS one; -- a trailing comment", [(1,)]),
    ("/* leading */ SELECT max(id) FROM t -- and ; trailing", [(3,)]),
    ("WITH c AS (SELECT id FROM t) SELECT count(*) FROM c", [(3,)]),
    ("SELECT id, row_number() OVER (ORDER BY id DESC) AS r FROM t ORDER BY id LIMIT 1", [(1, 3)]),
    ("SELECT count(*) FROM customers", [(300,)]),
    ("SELECT loyalty_tier, count(*) FROM customers GROUP BY loyalty_tier ORDER BY 1", None),
]


class Engine:
    """One database under test: URL, how to dump it, how to set it up."""

    def __init__(self, dialect: str, url: str, dump) -> None:
        self.dialect, self.url, self.dump = dialect, url, dump


def _server_dump(server: Server, database: str):
    def dump() -> dict:
        import sqlalchemy as sa

        engine = sa.create_engine(server.url(database), poolclass=sa.pool.NullPool)
        out: dict = {}
        try:
            with engine.connect() as conn:
                insp = sa.inspect(conn)
                out["tables"] = sorted(insp.get_table_names())
                out["views"] = sorted(insp.get_view_names())
                out["sequences"] = sorted(insp.get_sequence_names())
                for name in out["tables"] + out["views"]:
                    rows = conn.execute(sa.text(f"SELECT * FROM {_q(server, name)}")).fetchall()
                    out[name] = sorted(repr(tuple(r)) for r in rows)
        finally:
            engine.dispose()
        return out

    return dump


def _q(server: Server, name: str) -> str:
    return f"`{name}`" if server.kind == "mysql" else f'"{name}"'


def _safety_db(server: Server) -> str:
    """A ``safety`` database on the server: the test table plus a copy of customers."""
    admin_sql(server, "DROP DATABASE IF EXISTS safety", "CREATE DATABASE safety")
    extra = ["CREATE SEQUENCE s"] if server.kind == "postgresql" else []
    admin_sql(server, *SETUP, *extra, database="safety")
    admin_sql(server, *_customers_copy(server), database="safety")
    return server.url("safety")


def _customers_copy(server: Server) -> list[str]:
    """``customers`` with 300 rows, like the shop sample's (numbers only: quick to make)."""
    return [
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, loyalty_tier VARCHAR(10))",
        "INSERT INTO customers VALUES "
        + ", ".join(f"({i}, '{('bronze', 'silver', 'gold')[i % 3]}')" for i in range(1, 301)),
    ]


DIALECTS = ["postgres", "mysql", "duckdb"]


@pytest.fixture(scope="module")
def engine(request, tmp_path_factory) -> Engine:
    dialect = request.param
    if dialect == "duckdb":
        import duckdb

        folder = tmp_path_factory.mktemp("duck-safety")
        path = folder / "safety.duckdb"
        conn = duckdb.connect(str(path))
        for stmt in [*SETUP, *_customers_copy(Server("duckdb", "", 0, folder))]:
            conn.execute(stmt)
        conn.close()

        def dump() -> dict:
            return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}

        return Engine("duckdb", f"duckdb:///{path}", dump)
    server = request.getfixturevalue("pg_server" if dialect == "postgres" else "maria_server")
    url = _safety_db(server)
    return Engine(dialect, url, _server_dump(server, "safety"))


def assert_refused(engine: Engine, sql: str, expect: str, **kw) -> None:
    before = engine.dump()
    result = run_readonly(engine.url, sql, **kw)
    assert not result.ok, f"not refused: {sql!r} -> {result.rows[:3]}"
    assert result.error and "\n" not in result.error, result.error
    assert expect in result.error, result.error
    assert result.rows == [] and result.to_dict() == {"error": result.error}
    assert engine.dump() == before, f"database changed by {sql!r}"


HOSTILE_CASES = [
    pytest.param(d, sql, expect, id=f"{d}:{sql[:50]}")
    for d in DIALECTS
    for sql, expect in COMMON_HOSTILE + HOSTILE[d]
]
EACH = pytest.mark.parametrize("engine", DIALECTS, indirect=True)


@pytest.mark.parametrize(("engine", "sql", "expect"), HOSTILE_CASES, indirect=["engine"])
def test_hostile_statement_is_refused(engine: Engine, sql: str, expect: str) -> None:
    assert_refused(engine, sql, expect)


@pytest.mark.parametrize(
    ("engine", "sql", "rows"),
    [pytest.param(d, s, r, id=f"{d}:{s[:40]}") for d in DIALECTS for s, r in COMMON_HARMLESS],
    indirect=["engine"],
)
def test_harmless_look_alikes_still_work(engine: Engine, sql: str, rows) -> None:
    before = engine.dump()
    result = run_readonly(engine.url, sql)
    assert result.ok, result.error
    if rows is not None:
        assert result.rows == rows
    assert engine.dump() == before


@EACH
def test_long_query_times_out(engine: Engine) -> None:
    bomb = {
        "postgres": "SELECT count(*) FROM generate_series(1, 10000000000)",
        "duckdb": "SELECT sum(hash(a.range * 31 + b.range)) FROM range(100000) a, range(100000) b",
        "mysql": "SELECT count(*) FROM customers a, customers b, customers c, customers d, "
        "customers e",
    }[engine.dialect]
    started = time.perf_counter()
    result = run_readonly(engine.url, bomb, timeout_s=FAST)
    # the server's own timeout, or (DuckDB, in the query worker) the worker killed at it
    assert result.error in (
        f"Query timed out after {FAST:g} s",
        f"Query stopped after {FAST:g} s (the time limit)",
    )
    assert time.perf_counter() - started < FAST + 4


@EACH
def test_row_cap_truncates_in_batches(engine: Engine) -> None:
    result = run_readonly(engine.url, "SELECT customer_id FROM customers ORDER BY 1", max_rows=7)
    assert result.ok and result.truncated and [r[0] for r in result.rows] == list(range(1, 8))
    result = run_readonly(engine.url, "SELECT customer_id FROM customers", max_rows=300)
    assert result.ok and not result.truncated and len(result.rows) == 300


@EACH
def test_schema_names_the_dialect(engine: Engine) -> None:
    schema = read_schema(engine.url, count_rows=True)
    assert schema.dialect == engine.dialect
    assert {"t", "big", "v", "customers"} <= set(schema.tables)
    t = schema.tables["t"]
    assert [c.name for c in t.columns] == ["id", "name", "update_date"]
    assert t.columns[0].primary_key and t.row_count == 3
    title = {"postgres": "PostgreSQL", "mysql": "MySQL/MariaDB", "duckdb": "DuckDB"}
    assert schema.ddl().startswith(f"-- Database: {title[engine.dialect]}\n")


@EACH
def test_the_connection_refuses_on_its_own(engine: Engine) -> None:
    """Without the text checks, each engine's connection still refuses writes."""
    before = engine.dump()
    if engine.dialect == "duckdb":
        from engine.db import duckdb as mod

        conn = mod.connect(Path(engine.url[len("duckdb:///") :]))
        run = conn.execute
    elif engine.dialect == "postgres":
        from engine.db import postgres as mod

        conn = mod.connect(open_database(engine.url), 5.0)
        run = conn.execute
    else:
        from engine.db import mysql as mod

        conn = mod.connect(open_database(engine.url), 5.0)

        def run(sql):
            with conn.cursor() as cur:
                cur.execute(sql)

    refused = 0
    for sql in [
        "DELETE FROM t",
        "DROP TABLE t",
        "CREATE TABLE z (a INTEGER)",
        "UPDATE t SET id = 5",
    ]:
        try:
            run(sql)
        except Exception:
            refused += 1
        if engine.dialect == "postgres":
            conn.rollback()
    conn.close()
    assert refused == 4
    assert engine.dump() == before


@pytest.mark.parametrize("dialect", ["postgres", "mysql"])
def test_passwords_never_show(dialect, request, monkeypatch) -> None:
    server = request.getfixturevalue("pg_server" if dialect == "postgres" else "maria_server")
    admin_sql(server, *_grant_reader(server), database="shop")
    wrong = server.url("shop", READER, "s3cret-wrong")
    result = run_readonly(wrong, "SELECT 1")
    assert not result.ok and "s3cret-wrong" not in result.error and "***" in result.error
    with pytest.raises(DatabaseError) as err:
        check_database(wrong)
    assert "s3cret-wrong" not in str(err.value)
    # a password from the environment, named in the URL
    monkeypatch.setenv("T2S_TEST_PW", READER_PASSWORD)
    by_env = server.url("shop", READER, "${T2S_TEST_PW}")
    assert run_readonly(by_env, "SELECT count(*) FROM customers").rows == [(300,)]
    assert open_database(by_env).role_can_write() is False
    assert open_database(server.url("shop")).role_can_write() is True  # the admin account
    monkeypatch.delenv("T2S_TEST_PW")
    result = run_readonly(by_env, "SELECT 1")
    assert result.error == "The URL names the environment variable T2S_TEST_PW: it is not set"


def _grant_reader(server: Server) -> list[str]:
    if server.kind == "postgresql":
        return [f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}"]
    return [f"GRANT SELECT ON shop.* TO '{READER}'@'%'"]


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_duckdb_memory_is_bounded(engine: Engine) -> None:
    """DuckDB runs in a sandbox worker with its own memory limit: a huge string fails in one
    line (DuckDB's limit, or the worker's), the caller keeps running."""
    before = engine.dump()
    result = run_readonly(
        engine.url, "SELECT string_agg(repeat('x', 1000), '') FROM range(3000000)"
    )
    assert not result.ok and "\n" not in result.error
    assert "Out of Memory" in result.error or "Query stopped" in result.error, result.error
    assert run_readonly(engine.url, "SELECT count(*) FROM t").rows == [(3,)]
    assert engine.dump() == before
