"""Workspaces everywhere a database goes: the CLI on a folder of files (run, and ask with
retrieval through a scripted OpenAI-compatible server), ``--db workspace:NAME``, the catalog
and the MCP tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scripted_openai import scripted_server, sql_by_task
from tests.test_workspace import CUSTOMERS, ORDERS, write, xlsx

pytest.importorskip("duckdb")

from engine.catalog import database_choices, resolve_database  # noqa: E402
from engine.workspace import add_files, create_workspace  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
JOIN = (
    "SELECT c.name, sum(o.amount) AS total FROM orders o JOIN customers c "
    "ON c.id = o.customer_id GROUP BY c.name ORDER BY total DESC"
)


@pytest.fixture
def myfiles(tmp_path: Path) -> Path:
    folder = tmp_path / "myfiles"
    folder.mkdir()
    write(folder, "customers.csv", CUSTOMERS)
    write(folder, "orders.csv", ORDERS)
    xlsx(folder, "book.xlsx", {"products": [["sku", "price"], ["A", 1.5]]})
    return folder


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TEXT2SQL_DATA": str(tmp_path / "data")}
    env["TEXT2SQL_CACHE"] = str(tmp_path / "cache")
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def test_run_on_a_folder_of_files_writes_nothing_into_it(tmp_path: Path, myfiles: Path) -> None:
    before = sorted(p.name for p in myfiles.iterdir())
    out = cli(tmp_path, "run-sql", "--db", str(myfiles), "--json", JOIN)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["rows"] == [["Ann", 8.5], ["Cy", 7.0]]
    assert sorted(p.name for p in myfiles.iterdir()) == before
    made = list((tmp_path / "cache" / "workspaces").glob("*/workspace.json"))
    assert len(made) == 1
    out = cli(tmp_path, "run-sql", "--db", str(myfiles), "SELECT sum(price) FROM products")
    assert out.returncode == 0 and "1.5" in out.stdout
    refused = cli(
        tmp_path, "run-sql", "--db", str(myfiles), "SELECT * FROM read_csv('/etc/passwd')"
    )
    assert refused.returncode == 1 and "Refused" in refused.stderr


def test_a_folder_is_read_again_when_its_files_change(tmp_path: Path, myfiles: Path) -> None:
    assert cli(tmp_path, "run-sql", "--db", str(myfiles), "SELECT 1").returncode == 0
    write(myfiles, "extra.csv", "k,v\n1,2\n")
    out = cli(tmp_path, "run-sql", "--db", str(myfiles), "--json", "SELECT sum(v) FROM extra")
    assert out.returncode == 0 and json.loads(out.stdout)["rows"] == [[2]]
    write(myfiles, "bad.csv", "a,b\n1,2,3\n")
    out = cli(tmp_path, "run-sql", "--db", str(myfiles), "SELECT 1")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        "Error: bad.csv: line 2 has more fields than the header's 2: fix that row (a missing "
        "quote?) and add the file again"
    )


def test_an_empty_folder_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = cli(tmp_path, "run-sql", "--db", str(empty), "SELECT 1")
    assert out.returncode == 1 and "empty holds no data files" in out.stderr


def test_ask_with_retrieval_on_a_workspace_by_name(tmp_path: Path, myfiles: Path) -> None:
    """The whole answer loop on ``--db workspace:NAME``: the index is built (tables of the
    workspace, the bundled embedder), retrieval picks tables, the scripted model answers."""
    folder = create_workspace(tmp_path / "data", "shop")
    add_files(folder, [myfiles / "customers.csv", myfiles / "orders.csv"])
    question = "Which customers spent the most?"
    prompts: list[str] = []

    def reply(messages: list[dict]) -> str:
        prompts.append(messages[-1]["content"])
        return sql_by_task({question: JOIN}, messages)

    with scripted_server(reply) as url:
        out = cli(
            tmp_path,
            "ask", "--db", "workspace:shop", "--json",
            "--set", "backend=openai", "--set", f"openai.base_url={url}",
            "--set", "openai.model=scripted", "--set", f"rag.store_dir={tmp_path / 'store'}",
            question,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["error"] is None and answer["rows"] == [["Ann", 8.5], ["Cy", 7.0]]
    assert answer["sources"], "retrieval ran on the workspace's index"
    assert any("REFERENCES customers" in p or "customer_id" in p for p in prompts)


def test_catalog_and_mcp_tools_list_workspaces(tmp_path: Path, myfiles: Path) -> None:
    from engine.config import EngineConfig
    from engine.mcp_tools import ToolRefused, Workbench

    root = tmp_path / "data"
    folder = create_workspace(root, "shop")
    add_files(folder, [myfiles / "customers.csv", myfiles / "orders.csv"])
    assert database_choices(root)["shop (workspace)"] == folder
    assert resolve_database("shop (workspace)", root) == ("shop (workspace)", folder)
    tools = Workbench(EngineConfig(), root)
    assert "shop (workspace)" in tools.list_databases()
    described = tools.describe_database("shop (workspace)")
    orders = next(t for t in described["tables"] if t["name"] == "orders")
    assert orders["rows"] == 3 and orders["foreign_keys"]
    assert tools.run_sql(JOIN, "shop (workspace)")["rows"] == [["Ann", 8.5], ["Cy", 7.0]]
    with pytest.raises(ToolRefused, match="Refused"):
        tools.run_sql("SELECT * FROM read_csv('/etc/passwd')", "shop (workspace)")
    with pytest.raises(ToolRefused, match="Unknown database"):
        tools.run_sql("SELECT 1", str(folder))


def test_evaluation_scores_a_workspace_of_the_shop_samples_files(tmp_path: Path) -> None:
    """The shop sample's tables exported as CSV files, made a workspace and evaluated with the
    sample questions (db_urls: db_id -> the workspace's folder): gold SQL runs on the files."""
    import csv
    import sqlite3

    from engine.db import open_database
    from engine.paths import sample_databases
    from tests.helpers import OracleBackend, eval_config
    from training.data import load_examples
    from training.eval_loop import transpile_gold
    from training.evaluate import run

    files = tmp_path / "files"
    files.mkdir()
    con = sqlite3.connect(sample_databases()["shop"])
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        cursor = con.execute(f'SELECT * FROM "{table}"')
        with open(files / f"{table}.csv", "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow([d[0] for d in cursor.description])
            out.writerows(cursor)
    con.close()
    folder = create_workspace(tmp_path / "data", "shop")
    add_files(folder, sorted(files.glob("*.csv")), copy=False)
    examples = [e for e in load_examples("samples").examples if e.db_id == "shop"]
    answers = {e.question: transpile_gold(e.sql, "duckdb") for e in examples}
    wrong = examples[0].question
    answers[wrong] = "SELECT 1 FROM customers WHERE 1 = 0"
    cfg = eval_config(
        data="samples", db_ids="shop", out=str(tmp_path / "run"), db_urls={"shop": str(folder)}
    )
    metrics = run(cfg, backend=OracleBackend(answers))
    records = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").open()]
    assert metrics["n"] == len(examples) == len(records)
    assert open_database(folder).label == "shop"
    scored = [r for r in records if r["correct"] is not None]
    assert len(scored) >= 0.8 * len(records)  # a gold query in SQLite's ways may fail here
    assert [r["question"] for r in scored if not r["correct"]] == [wrong]
