"""A scripted OpenAI-compatible server in the test's process: the app's or the engine's
``openai`` backend talks to it, and its SQL for each question is known, so a test of the
plumbing (an MCP server, the app) gets a known answer without loading a model."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.browser import free_port


def _handler(reply: Callable[[list[dict]], str]) -> type[BaseHTTPRequestHandler]:
    class Scripted(BaseHTTPRequestHandler):
        """The two requests the backend makes: the model list, and a chat completion whose
        reply is ``reply(messages)``."""

        def do_GET(self):  # noqa: N802 - http.server's name
            self._reply({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = reply(body["messages"])
            self._reply(
                {
                    "id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                }
            )  # fmt: skip

        def _reply(self, body):
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Scripted


def sql_by_task(sql: dict[str, str], messages: list[dict]) -> str:
    """The SQL of the prompt's question (``Task: ...``), else ``SELECT 1``."""
    asked = re.search(r"Task: (.*)\n", messages[-1]["content"])
    return sql.get(asked.group(1) if asked else "", "SELECT 1")


@contextmanager
def scripted_server(reply: Callable[[list[dict]], str]) -> Iterator[str]:
    """An OpenAI-compatible server answering each chat with ``reply(messages)`` while
    inside; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(reply))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()


def engine_flags(base_url: str) -> list[str]:
    """The engine flags that use the scripted server (retrieval off)."""
    return ["--set", "backend=openai", "--set", f"openai.base_url={base_url}",
            "--set", "openai.model=scripted", "--set", "rag.enabled=false"]  # fmt: skip


@contextmanager
def scripted_openai(sql: dict[str, str]) -> Iterator[list[str]]:
    """Serve ``sql`` (question -> SQL) while inside; yields the engine flags that use it
    (``--set backend=openai ...``, retrieval off)."""
    with scripted_server(lambda messages: sql_by_task(sql, messages)) as url:
        yield engine_flags(url)
