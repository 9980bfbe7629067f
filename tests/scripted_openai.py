"""A scripted OpenAI-compatible server in the test's process: the app's or the engine's
``openai`` backend talks to it, and its SQL for each question is known, so a test of the
plumbing (an MCP server, the app) gets a known answer without loading a model."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.browser import free_port


def _handler(sql: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Scripted(BaseHTTPRequestHandler):
        """The two requests the backend makes: the model list, and a chat completion whose
        reply is the SQL of the prompt's question (``Task: ...``), else ``SELECT 1``."""

        def do_GET(self):  # noqa: N802 - http.server's name
            self._reply({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            asked = re.search(r"Task: (.*)\n", body["messages"][-1]["content"])
            text = sql.get(asked.group(1) if asked else "", "SELECT 1")
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


@contextmanager
def scripted_openai(sql: dict[str, str]) -> Iterator[list[str]]:
    """Serve ``sql`` (question -> SQL) while inside; yields the engine flags that use it
    (``--set backend=openai ...``, retrieval off)."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(sql))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        yield ["--set", "backend=openai", "--set", f"openai.base_url={remote}",
               "--set", "openai.model=scripted", "--set", "rag.enabled=false"]  # fmt: skip
    finally:
        server.shutdown()
