"""``python -m engine mcp`` as an MCP client sees it: the server runs as a subprocess and the
official SDK's own stdio client talks to it. The model is a scripted OpenAI-compatible server
(tests/scripted_openai.py), so the answers are known and nothing loads a model; one slow test
asks the smallest bundled model itself."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.helpers import run_async
from tests.scripted_openai import scripted_openai

REPO = Path(__file__).resolve().parent.parent
SHOP = "shop (sample)"
COUNT = "SELECT count(*) FROM customers"
READS = {"list_databases", "describe_database", "ask", "run_sql"}
SMOL = "smollm2-135m-instruct"  # the smallest bundled preset


@asynccontextmanager
async def mcp_session(data: Path, *args: str, env: dict[str, str] | None = None):
    """An initialised ClientSession of ``python -m engine mcp ARGS`` with data folder ``data``
    (the server's stderr goes to ``data/server.log``), ``env`` added to its environment."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "engine", "mcp", "--no-warm-up", *args],
        env={**os.environ, "TEXT2SQL_DATA": str(data), **(env or {})},
        cwd=str(REPO),
    )
    with open(data / "server.log", "w") as log:
        async with (
            stdio_client(params, errlog=log) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def _text(result) -> str:
    return " ".join(c.text for c in result.content if c.type == "text")


def test_tools_answer_and_refuse(tmp_path):
    with scripted_openai({"How many customers are there?": COUNT}) as flags:
        out = run_async(_tools_answer_and_refuse, tmp_path, flags)
    tools, databases, described, answer, refusals, follow_up = out
    assert tools == READS  # no save_example without --allow-save
    assert {SHOP, "hr (sample)", "music (sample)"} <= set(databases)
    assert all("/" not in name for name in databases)  # names, never paths
    customers = next(t for t in described["tables"] if t["name"] == "customers")
    assert customers["rows"] == 300 and any(c["primary_key"] for c in customers["columns"])
    assert any(c["sample_values"] for c in customers["columns"])
    assert answer["error"] is None and answer["sql"] == COUNT and answer["rows"] == [[300]]
    assert answer["truncated"] is False and answer["attempts"] == 1 and answer["explanation"]
    for name, result in refusals.items():
        assert result.isError, name
        assert "\n" not in _text(result), name
    assert "only read-only queries are allowed (DELETE)" in _text(refusals["delete"])
    for name in ("etc_passwd", "relative_path", "unlisted_ask", "sql_url"):
        assert "Unknown database" in _text(refusals[name]) and "never a file path" in _text(
            refusals[name]
        ), name
    assert "history is not JSON" in _text(refusals["bad_history"])
    assert "history turn 1 is 1" in _text(refusals["history_of_numbers"])
    assert follow_up["error"] is None and follow_up["rows"] == [[300]]
    with sqlite3.connect(REPO / "sample_dbs" / "shop.sqlite") as conn:  # the table is unchanged
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (300,)
    log = (tmp_path / "server.log").read_text()  # the server's log went to stderr
    assert "Backend: openai:scripted" in log and "Traceback" not in log


async def _tools_answer_and_refuse(data: Path, flags: list[str]):
    async with mcp_session(data, *flags) as s:
        tools = {t.name for t in (await s.list_tools()).tools}
        databases = (await s.call_tool("list_databases", {})).structuredContent["result"]
        described = (await s.call_tool("describe_database", {"database": "shop"})).structuredContent
        asked = await s.call_tool(
            "ask", {"question": "How many customers are there?", "database": SHOP}
        )
        assert not asked.isError, _text(asked)
        refusals = {
            "delete": await s.call_tool("run_sql", {"sql": "DELETE FROM customers", "database": SHOP}),
            "etc_passwd": await s.call_tool("run_sql", {"sql": "SELECT 1", "database": "/etc/passwd"}),
            "relative_path": await s.call_tool("describe_database", {"database": "../x.sqlite"}),
            "unlisted_ask": await s.call_tool(
                "ask", {"question": "How many?", "database": str(REPO / "sample_dbs" / "shop.sqlite")}
            ),
            "sql_url": await s.call_tool("run_sql", {"sql": "SELECT 1", "database": "sqlite:///x.db"}),
            "bad_history": await s.call_tool(
                "ask", {"question": "And?", "database": SHOP, "history": "[{'q': 1}]"}
            ),
            "history_of_numbers": await s.call_tool(
                "ask", {"question": "And?", "database": SHOP, "history": [1]}
            ),
        }  # fmt: skip
        history = [{"question": "How many customers?", "sql": COUNT}]
        follow_up = await s.call_tool(
            "ask", {"question": "How many customers are there?", "database": SHOP, "history": history}
        )  # fmt: skip
        return (tools, databases, described, asked.structuredContent, refusals,
                follow_up.structuredContent)  # fmt: skip


def test_save_example_only_with_allow_save(tmp_path):
    pair = {"question": "How many customers live in Rome?", "database": SHOP,
            "sql": "SELECT count(*) FROM customers WHERE city = 'Rome'"}  # fmt: skip

    async def main():
        async with mcp_session(tmp_path, "--allow-save", "--no-rag") as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            saved = await s.call_tool("save_example", pair)
            broken = await s.call_tool(
                "save_example", {**pair, "sql": "SELECT nope FROM customers"}
            )
            return tools, saved, broken

    tools, saved, broken = run_async(main)
    assert tools == READS | {"save_example"}
    assert not saved.isError, _text(saved)
    assert saved.structuredContent["question"] == pair["question"]
    assert broken.isError and "Not saved" in _text(broken) and "\n" not in _text(broken)
    files = list((tmp_path / "examples").glob("shop-*.json"))  # the user's example file
    assert len(files) == 1
    kept = json.loads(files[0].read_text())
    assert [(p["question"], p["query"]) for p in kept] == [(pair["question"], pair["sql"])]


@pytest.mark.slow
def test_ask_with_the_smallest_bundled_model(tmp_path):
    """``ask`` answered by a real model: SmolLM2-135M, the smallest bundled preset, with the
    whole schema in the prompt (as ``text2sql ask --no-rag`` and tests/test_packaging.py)."""

    # its own cache folder: a prompt state an earlier run left in the machine's cache is
    # restored in place of evaluating the prompt, and the 135M model's greedy answer can then
    # differ (a restored state is not bit for bit the evaluated one)
    cache = {"TEXT2SQL_CACHE": str(tmp_path / "cache")}

    async def main():
        async with mcp_session(tmp_path, "--model", SMOL, "--no-rag", env=cache) as s:
            question = {"question": "How many customers are there?", "database": SHOP}
            return await s.call_tool("ask", question)

    asked = run_async(main)
    assert not asked.isError, _text(asked)
    assert asked.structuredContent["error"] is None
    assert asked.structuredContent["rows"] == [[300]], asked.structuredContent["sql"]
    log = (tmp_path / "server.log").read_text()  # the server loaded the model it was named
    assert "Backend: " in log and f":{SMOL}" in log and "Traceback" not in log


@pytest.mark.parametrize("command", [["-m", "engine"], ["-m", "text2sql"]])
def test_mcp_subcommand_is_wired(command):
    import subprocess

    out = subprocess.run([sys.executable, *command, "mcp", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0 and "--allow-save" in out.stdout


def test_only_the_protocol_reaches_stdout():
    """Once the server has its protocol stream, a print or a C library's write to fd 1 goes
    to stderr."""
    import subprocess

    code = ("import os; from engine.mcp_server import _protocol_stdout\n"
            "protocol = _protocol_stdout()\n"
            "print('a stray print'); os.write(1, b'a C library writes\\n')\n"
            "protocol.write('{\"jsonrpc\": \"2.0\"}\\n'); protocol.flush()\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == '{"jsonrpc": "2.0"}\n'
    assert "a stray print" in out.stderr and "a C library writes" in out.stderr
