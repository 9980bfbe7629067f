"""``launch.py --mcp``: the sign-in in front of Gradio's own MCP server.

Gradio 6.31 mounts its MCP server (``/gradio_api/mcp/``: streamable HTTP, and SSE at
``/gradio_api/mcp/sse``) beside the app without asking who calls it. With ``--auth`` this
middleware lets an MCP request through only when it carries the app's sign-in: the session
cookie a browser or ``gradio_client`` gets from ``/login``, or the same name and password as
HTTP Basic credentials (``Authorization: Basic ...``, what MCP clients can send as a header).
Basic credentials are swapped for a session of that user, so the tool calls run as that user
(their uploads, history and index: app.users), exactly as the same call through ``/ask``.

Gradio's MCP server answers a tool call through a ``gradio_client`` of the app itself, made
without credentials (it could not read the app's config under ``--auth``); each call forwards
the caller's headers, session cookie included. :func:`sign_in_loopback` gives that client a
session of the signed-out nobody (app.users.SIGNED_OUT, whose folders stay empty) for its own
requests, so a call is only ever served as the user whose cookie it carries.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from typing import Any

from app.users import SIGNED_OUT

MCP_PATH = "/gradio_api/mcp"


def sign_in_loopback(demo: Any) -> None:
    """Give Gradio's MCP loopback client (see above) a session of its own; call after
    ``launch``."""
    from gradio_client import Client  # deferred: with gradio, only for --mcp

    server = demo.mcp_server_obj
    if server is None:
        return
    app = demo.server_app
    token = secrets.token_urlsafe(16)
    app.tokens[token] = SIGNED_OUT
    name = f"access-token-{app.cookie_id}"
    client = Client(  # as gradio.mcp.GradioMCPServer makes it, but able to read the config
        demo.local_url,
        download_files=False,
        verbose=False,
        analytics_enabled=False,
        ssl_verify=False,
        _skip_components=False,
        headers={"x-gradio-user": "mcp", "cookie": f"{name}={token}"},
    )
    # From now on its session is a cookie (httpx sends it only where a request has no Cookie
    # header of its own): a tool call's forwarded Cookie header, the caller's, wins.
    client.headers.pop("cookie")
    client.cookies[name] = token
    server._client_instance = client


def mcp_sign_in(auth: list[tuple[str, str]] | None) -> dict[str, Any]:
    """``app_kwargs`` for ``demo.launch``: the sign-in middleware (none without ``auth``)."""
    if not auth:
        return {}
    from starlette.middleware import Middleware  # deferred: with gradio, only for --mcp

    return {"middleware": [Middleware(McpSignIn, accounts=dict(auth))]}


class McpSignIn:
    """ASGI middleware: MCP requests without the app's sign-in get 401."""

    def __init__(self, app: Any, accounts: dict[str, str]) -> None:
        self.app = app
        self.accounts = accounts
        self._sessions: dict[str, str] = {}  # user -> the session token minted for Basic

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(MCP_PATH):
            await self.app(scope, receive, send)
            return
        gradio_app = scope["app"]  # Starlette puts the application itself in the scope
        headers = dict(scope["headers"])
        cookie = _cookies(headers.get(b"cookie", b""))
        names = (f"access-token-{gradio_app.cookie_id}",
                 f"access-token-unsecure-{gradio_app.cookie_id}")  # fmt: skip
        if any(gradio_app.tokens.get(cookie.get(n, "")) for n in names):
            await self.app(scope, receive, send)
            return
        user = self._basic_user(headers.get(b"authorization", b""))
        if user is None:
            await _refuse(send)
            return
        token = self._sessions.get(user)
        if token is None or gradio_app.tokens.get(token) != user:
            token = self._sessions[user] = secrets.token_urlsafe(16)
            gradio_app.tokens[token] = user
        # Gradio's MCP server forwards these headers to the app's own queue: a signed-in call
        extra = f"{names[0]}={token}".encode()
        joined = headers.get(b"cookie", b"") + (b"; " if headers.get(b"cookie") else b"") + extra
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"cookie"]
                 + [(b"cookie", joined)]}  # fmt: skip
        await self.app(scope, receive, send)

    def _basic_user(self, header: bytes) -> str | None:
        scheme, _, value = header.decode("latin-1").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            name, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = self.accounts.get(name)
        if expected is None or not hmac.compare_digest(password.encode(), expected.encode()):
            return None
        return name


def _cookies(raw: bytes) -> dict[str, str]:
    out = {}
    for part in raw.decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name] = value
    return out


async def _refuse(send: Any) -> None:
    body = b"Sign in first: the app's session cookie, or HTTP Basic with your name and password."
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"www-authenticate", b'Basic realm="text2sql"'),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
