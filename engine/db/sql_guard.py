"""The text layer, each dialect's: one read-only query, checked before any connection is
opened. SQLite's is :mod:`engine.db.sqlite_statement` (SQLite's authorizer judges the rest);
the servers' and DuckDB's is sqlglot's parse in the database's own dialect, here.

:func:`check` returns the statement to run, or a one-line refusal. It refuses:

- anything sqlglot cannot parse in that dialect (what is not understood is not run);
- more or fewer than one statement, and any statement but a query (SELECT, WITH ... SELECT,
  VALUES, set operations);
- write or DDL nodes anywhere in the tree (``WITH d AS (DELETE ... RETURNING *) SELECT``),
  ``SELECT ... INTO``, row locks (``FOR UPDATE``);
- functions by name, per dialect: file and network access, functions that run SQL given as
  text, sequence and setting changes, sleeps and locks (:data:`DENIED_FUNCTIONS`);
- MySQL's executable comments (``/*! ... */``, ``/*M! ... */``) and optimizer hints
  (``/*+ ... */``): MySQL runs what sqlglot reads as a comment;
- DuckDB's file scans by string (``FROM 'data.csv'``).

The database is still the judge of everything else; each engine's module adds its own layers
(read-only transaction, timeouts, one statement per protocol message).
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from engine.db import sqlite_statement
from engine.db.sqlite_statement import MAX_SQL_CHARS

_PG_ALLOWED = frozenset({"pg_typeof", "pg_size_pretty"})
# fmt: off
DENIED_FUNCTIONS: dict[str, frozenset[str]] = {
    "postgres": frozenset({
        "set_config", "nextval", "setval", "currval", "lastval", "txid_current",
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml",
        "cursor_to_xmlschema", "table_to_xml", "table_to_xmlschema", "schema_to_xml",
        "database_to_xml", "database_to_xmlschema", "database_to_xml_and_xmlschema",
        "ts_stat", "ts_rewrite", "dblink", "dblink_exec", "dblink_connect", "dblink_open",
        "dblink_send_query", "make_tsvector",
    }),
    "mysql": frozenset({
        "load_file", "sleep", "benchmark", "get_lock", "release_lock", "release_all_locks",
        "is_free_lock", "is_used_lock", "master_pos_wait", "source_pos_wait",
        "master_gtid_wait", "wait_for_executed_gtid_set", "wait_until_sql_thread_after_gtids",
        "sys_exec", "sys_eval", "sys_get", "sys_set", "last_insert_id", "nextval", "setval",
        "lastval",
    }),
    "duckdb": frozenset({
        "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "parquet_metadata",
        "parquet_schema", "read_json", "read_json_auto", "read_json_objects", "read_ndjson",
        "read_ndjson_auto", "read_ndjson_objects", "read_text", "read_blob", "read_xlsx",
        "glob", "sniff_csv", "getenv", "query", "query_table", "sqlite_scan", "sqlite_attach",
        "postgres_scan", "postgres_attach", "mysql_scan", "iceberg_scan", "delta_scan",
        "nextval", "currval", "setseed", "checkpoint", "force_checkpoint",
    }),
}
# fmt: on
# Names starting with these are refused too (pg_read_file, pg_sleep, lo_import, dblink_...).
DENIED_PREFIXES = {"postgres": ("pg_", "lo_", "dblink"), "mysql": (), "duckdb": ()}
_MYSQL_COMMENTS = re.compile(r"/\*\s*(?:!|M!|\+)")
_WRITE_NODES = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Set",
    "Transaction", "Commit", "Rollback", "Copy", "LoadData", "Install", "Attach", "Detach",
    "Use", "Pragma", "TruncateTable", "Grant", "Revoke", "Analyze", "Refresh", "Export",
)  # fmt: skip


def refusal(what: str) -> str:
    return f"Refused: only read-only queries are allowed ({what})"


def check(sql: str, dialect: str) -> tuple[str, str | None]:
    """(statement to run, refusal or None) for ``sql`` in sqlglot's ``dialect``."""
    if dialect == "sqlite":
        return sqlite_statement.precheck(sql)
    if len(sql) > MAX_SQL_CHARS:
        return sql, f"Refused: the query is longer than {MAX_SQL_CHARS} characters"
    if dialect == "mysql" and _MYSQL_COMMENTS.search(sql):
        return sql, "Refused: MySQL executable comments and hints (/*! */, /*+ */) are not allowed"
    try:
        trees = [
            t
            for t in sqlglot.parse(sql, read=dialect)
            if t is not None and not isinstance(t, exp.Semicolon)  # a trailing comment
        ]
    except SqlglotError as err:
        first = " ".join(str(err).split())[:200]
        return sql, f"Refused: the query could not be checked ({first})"
    except RecursionError:
        return sql, "Refused: the query is nested too deeply to check"
    if not trees:
        return sql, "Refused: the query is empty"
    if len(trees) > 1:
        return sql, "Refused: only one SQL statement is allowed"
    tree = trees[0]
    if not isinstance(tree, exp.Query | exp.Values):
        return sql, refusal(_statement_word(tree, sql))
    for node in tree.walk():
        name = type(node).__name__
        if name in _WRITE_NODES:
            return sql, refusal(_statement_word(node, sql))
        if isinstance(node, exp.Into):
            return sql, refusal("SELECT ... INTO")
        if isinstance(node, exp.Lock):
            return sql, refusal("row locks: FOR UPDATE/SHARE")
        if isinstance(node, exp.Func):
            denied = _denied_function(node, dialect)
            if denied:
                return sql, f"Refused: function {denied}() is not allowed"
        if dialect == "duckdb" and isinstance(node, exp.Table) and _file_like(node.this):
            return sql, "Refused: reading files is not allowed"
    return _strip_semicolons(sql), None


# DuckDB reads ``FROM 'x.csv'`` (and ``FROM "x.csv"``) as a file when no table has that
# name; sqlglot parses both as a quoted table name, so a path-like one is refused here.
_FILE_SUFFIX = re.compile(
    r"\.(csv|tsv|txt|parquet|json|jsonl|ndjson|xlsx|db|duckdb|sqlite|gz|zst)$", re.IGNORECASE
)


def _file_like(name: object) -> bool:
    if isinstance(name, exp.Literal):
        return True
    if not isinstance(name, exp.Identifier) or not name.args.get("quoted"):
        return False
    text = str(name.this)
    return any(c in text for c in "/\\:") or bool(_FILE_SUFFIX.search(text))


def function_name(node: object) -> str:
    if isinstance(node, exp.Anonymous):
        this = node.this
        return (this.name if isinstance(this, exp.Expression) else str(this)).lower()
    return node.sql_name().lower()  # type: ignore[attr-defined]


def _denied_function(node: object, dialect: str) -> str | None:
    name = function_name(node)
    if name in DENIED_FUNCTIONS.get(dialect, ()):
        return name
    if name.startswith(DENIED_PREFIXES.get(dialect, ())) and name not in _PG_ALLOWED:
        return name
    return None


def _statement_word(node: object, sql: str) -> str:
    """What to call a refused statement: the Command's own word, else the first keyword."""
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    if isinstance(node, exp.Query | exp.Values):
        return "SELECT"
    name = type(node).__name__.upper()
    words = {"TRUNCATETABLE": "TRUNCATE", "LOADDATA": "LOAD DATA", "TRANSACTION": "BEGIN"}
    return words.get(name, name)


def _strip_semicolons(sql: str) -> str:
    """Trailing ``;`` go: drivers that send one statement per message do not want them."""
    text = sql.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text
