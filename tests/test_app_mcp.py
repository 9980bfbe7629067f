"""``launch.py --mcp``: Gradio's own MCP server for /databases, /ask and /run_sql, reached with
the official SDK's streamable HTTP client, behind the app's sign-in. The model is a scripted
OpenAI-compatible server (tests/scripted_openai.py): the answer is known, no model loads."""

from __future__ import annotations

import base64

import pytest

from tests.browser import running_app
from tests.helpers import run_async
from tests.scripted_openai import scripted_openai

pytestmark = [pytest.mark.slow]
SHOP = "shop (sample)"
PASSWORD = "mcp-test-password"


async def _tools_and_ask(url: str, headers: dict[str, str]):
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx.AsyncClient(headers=headers, timeout=120) as http,
        streamable_http_client(f"{url}gradio_api/mcp/", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = {t.name for t in (await session.list_tools()).tools}
        asked = await session.call_tool(
            "ask", {"question": "How many customers are there?", "database": SHOP}
        )
        return tools, asked


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status of a bare MCP tools/list request."""
    import httpx

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream", **(headers or {})}
    return httpx.post(f"{url}gradio_api/mcp/", json=body, headers=headers, timeout=30).status_code


def test_mcp_clients_ask_through_the_app_after_signing_in(tmp_path):
    with scripted_openai(
        {"How many customers are there?": "SELECT count(*) FROM customers"}
    ) as flags:
        args = ("--mcp", "--auth", "ann", "--no-warm-up", *flags)
        env = {"TEXT2SQL_PASSWORD": PASSWORD}
        with running_app(*args, data_dir=tmp_path, env=env) as url:
            assert _status(url) == 401  # no sign-in, no tools
            basic = base64.b64encode(f"ann:{PASSWORD}".encode()).decode()
            tools, asked = run_async(_tools_and_ask, url, {"Authorization": f"Basic {basic}"})
            wrong = base64.b64encode(b"ann:wrong").decode()
            assert _status(url, {"Authorization": f"Basic {wrong}"}) == 401
    assert tools == {"ask", "run_sql", "databases"}
    assert not asked.isError, asked.content
    text = asked.content[0].text  # Gradio's MCP server sends the endpoint's dict as text
    assert "'rows': [[300]]" in text and "'error': None" in text
    # asked as the signed-in user: the question is in ann's own history, nobody else's
    assert [p.parent.name.split("-")[0] for p in tmp_path.glob("users/*/history.sqlite")] == ["ann"]


def test_the_app_serves_no_mcp_unless_asked(tmp_path):
    with running_app("--no-warm-up", data_dir=tmp_path) as url:
        assert _status(url) == 404
