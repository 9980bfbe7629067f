"""``python -m engine mcp`` (and ``text2sql mcp``): the workbench as a Model Context Protocol
server over stdio, on the official ``mcp`` SDK, for Claude Desktop, VS Code, Cursor and other
MCP clients.

Tools (:class:`engine.mcp_tools.Workbench` does the work): ``list_databases``,
``describe_database``, ``ask``, ``run_sql``, and ``save_example`` only with ``--allow-save``.
A refusal is an MCP tool error with one readable line. stdout is the protocol: before the
server starts, file descriptor 1 is pointed at stderr, so whatever else writes there (a
library's print, llama.cpp's C code) lands in the log, never in the protocol stream.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from io import TextIOWrapper
from typing import Any

from engine.config import EngineConfig, add_setting_flags, flag_overrides, load_config

INSTRUCTIONS = (
    "Text-to-SQL over the user's local databases. Call list_databases for the names, "
    "describe_database for tables and columns, ask for a question in plain language (the "
    "local model writes, checks and runs the SQL), run_sql for your own read-only SQL. Only "
    "listed databases can be used; SQL is read-only with a time limit and a row cap."
)

# The settings the command has a flag for; --set KEY=VALUE reaches every other one.
_FLAGS = [
    "model",
    "adapter",
    "max_attempts",
    ("timeout_s", "--timeout"),
    "max_rows",
    ("rag.store_dir", "--store"),
    ("rag.enabled", "--rag"),
]


def add_parser(sub: Any) -> None:
    """The ``mcp`` subcommand of ``python -m engine``."""
    mcp = sub.add_parser(
        "mcp",
        help="serve the databases and the model to MCP clients (Claude Desktop, VS Code) on stdio",
        description=__doc__.split("\n\n")[0],
    )
    mcp.add_argument("--config", help="engine YAML config (python -m engine config lists all)")
    mcp.add_argument(
        "--allow-save",
        action="store_true",
        help="offer save_example: clients may add solved question/SQL pairs to your examples",
    )
    mcp.add_argument(
        "--no-warm-up", action="store_true", help="load the model at the first question"
    )
    add_setting_flags(mcp, EngineConfig, _FLAGS)
    mcp.set_defaults(func=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    from engine.mcp_tools import Workbench  # deferred: only this command needs it

    overrides = flag_overrides(args)
    if overrides.get("adapter") and "model" not in overrides:
        overrides["model"] = None  # the adapter's recorded base model
    cfg = load_config(EngineConfig, args.config, overrides)
    bench = Workbench(cfg, allow_save=args.allow_save)
    protocol = _protocol_stdout()
    if not args.no_warm_up:
        bench.warm_up()
    serve(bench, protocol)
    return 0


def build_server(bench: Any) -> Any:
    """A FastMCP server whose tools call ``bench`` (a Workbench) in worker threads, so the
    protocol keeps answering (pings, the tool list) while a question is being answered."""
    # deferred: the mcp SDK and anyio load only for this command (engine.cli imports us)
    import anyio
    from mcp.server.fastmcp import FastMCP
    from mcp.server.fastmcp.exceptions import ToolError
    from mcp.types import ToolAnnotations

    class OneLineErrors(FastMCP):
        async def call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
            try:
                return await super().call_tool(name, arguments)
            except ToolError as err:  # e.g. pydantic's several lines for a wrong argument
                raise ToolError(one_line(str(err))) from None

    server = OneLineErrors("text2sql-workbench", instructions=INSTRUCTIONS)
    reads = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

    async def call(fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(partial(fn, *args))

    @server.tool(annotations=reads)
    async def list_databases() -> list[str]:
        """The databases the other tools accept, by name: the bundled samples ("shop
        (sample)"), your uploads ("x (uploaded)") and saved connections ("x (connection)")."""
        return await call(bench.list_databases)

    @server.tool(annotations=reads)
    async def describe_database(database: str) -> dict[str, Any]:
        """A database's tables: columns with types, primary and foreign keys, row counts and
        a few stored values per column. ``database``: a name from list_databases."""
        return await call(bench.describe_database, database)

    @server.tool(annotations=reads)
    async def ask(
        question: str, database: str, history: list[Any] | str | None = None
    ) -> dict[str, Any]:
        """Answer a question about a database in plain language: the local model writes the
        SQL, which is checked and run read-only. Returns sql, columns, rows (capped; see
        truncated), error (null when it ran), attempts, understood (how a follow-up was read)
        and explanation (what the SQL does). ``history``: the conversation so far, a list of
        {"question", "sql"} turns, so the question may follow up on it."""
        return await call(bench.ask, question, database, history)

    @server.tool(annotations=reads)
    async def run_sql(sql: str, database: str) -> dict[str, Any]:
        """Run one read-only SQL statement (the database's dialect) with a time limit and a
        row cap: columns, rows, truncated. Writes, DDL and more than one statement are
        refused."""
        return await call(bench.run_sql, sql, database)

    if bench.allow_save:

        @server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False))
        async def save_example(question: str, sql: str, database: str) -> dict[str, Any]:
            """Keep a question and its (correct) SQL as a solved example of the database, in
            the user's example file; similar questions retrieve it from then on. The SQL must
            run; the database itself is never changed."""
            return await call(bench.save_example, question, sql, database)

    return server


def one_line(message: str) -> str:
    """A tool error's message on one line (pydantic's links to its docs left out)."""
    lines = [line.strip() for line in message.splitlines()]
    return "; ".join(x for x in lines if x and not x.startswith("For further information"))


def _protocol_stdout() -> TextIOWrapper:
    """The protocol's own stream on the real stdout; fd 1 and ``sys.stdout`` then go to
    stderr, so nothing else can write into the protocol."""
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return TextIOWrapper(protocol, encoding="utf-8")


def serve(bench: Any, protocol: TextIOWrapper) -> None:
    """Serve ``bench``'s tools on stdin and ``protocol`` until the client hangs up."""
    # deferred: the mcp SDK and anyio load only for this command (engine.cli imports us)
    import anyio
    from mcp.server.stdio import stdio_server

    server = build_server(bench)

    async def run() -> None:
        async with stdio_server(stdout=anyio.wrap_file(protocol)) as (read, write):
            low = server._mcp_server  # FastMCP's run_stdio_async, on our stdout
            await low.run(read, write, low.create_initialization_options())

    anyio.run(run)
