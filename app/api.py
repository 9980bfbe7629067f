"""The endpoints offered to programs (``gradio_client``, plain HTTP) and nothing else.

``/ask`` answers a question about a database as the chat does (same engine, same history),
``/run_sql`` runs SQL under the same read-only rules, ``/databases`` lists the labels they
take. Every other event of the UI is internal and hidden from the API
(:func:`hide_internal`): the Gradio client refuses to call it and "Use via API" does not
list it.

    from gradio_client import Client
    Client("http://127.0.0.1:7860/").predict("How many customers are there?",
                                             "shop (sample)", api_name="/ask")

Gradio reads the endpoints' parameters from the type hints, so this module keeps real
annotations (no ``from __future__ import annotations``); it is imported only while the app
is built.
"""

from collections.abc import Callable
from typing import Any

import gradio as gr

from app import chat
from app.chat import ANSWER_GROUP
from app.databases import DEFAULT_DB, databases_of

PUBLIC = ("ask", "run_sql", "databases")


def register(pool: Any, spaces: Callable[[Any], Any]) -> None:
    """Add the public endpoints to the current ``gr.Blocks``. ``spaces(request)`` gives the
    caller's user space (app.users.UserSpace: their databases and history)."""

    def ask(question: str, database: str = DEFAULT_DB, request: gr.Request = None) -> dict:
        """Answer a question about a database as the chat does: the SQL, its result rows
        and the database's recent questions (newest first).

        Parameters:
            question: the question in plain language
            database: a label from /databases, such as "shop (sample)"
        """
        space = spaces(request)
        model = pool.base.model
        turn = chat.ask(question, database, model, [], [], pool, space.history, space)
        answer = turn.answer
        out: dict[str, Any] = {"question": (question or "").strip(), "database": database}
        if answer is None:
            out |= {"sql": None, "columns": [], "rows": [], "error": turn.status}
        else:
            d = answer.to_dict()
            out |= {k: d[k] for k in ("sql", "columns", "rows", "error", "truncated")}
            out |= {k: d[k] for k in ("attempts", "seconds", "backend")}
        out["history"] = _history(space, database)
        return out

    def run_sql(sql: str, database: str = DEFAULT_DB, request: gr.Request = None) -> dict:
        """Run SQL read-only on a database (one statement, time limit, row cap).

        Parameters:
            sql: one SELECT statement (SQLite dialect)
            database: a label from /databases, such as "shop (sample)"
        """
        space = spaces(request)
        result, status = chat.run_edited_sql(sql, database, pool, space)
        if result is None:
            return {"sql": sql, "columns": [], "rows": [], "error": status, "truncated": False}
        d = result.to_dict()
        return {
            "sql": sql,
            "columns": d.get("columns", []),
            "rows": d.get("rows", []),
            "error": None if result.ok else status,
            "truncated": bool(result.truncated),
        }

    def databases(request: gr.Request = None) -> list[str]:
        """The database labels /ask and /run_sql accept: the samples and your uploads."""
        return list(databases_of(spaces(request)))

    gr.api(ask, api_name="ask", concurrency_limit=pool.max_batch, concurrency_id=ANSWER_GROUP)
    gr.api(run_sql, api_name="run_sql", concurrency_limit=4)
    gr.api(databases, api_name="databases", concurrency_limit=None)


def _history(space: Any, database: str, limit: int = 20) -> list[dict[str, Any]]:
    path = databases_of(space).get(database)
    if path is None:
        return []
    return [
        {"question": e.question, "sql": e.sql, "ok": e.ok}
        for e in space.history.recent(path, limit)
    ]


def hide_internal(demo: gr.Blocks, public: tuple[str, ...] = PUBLIC) -> None:
    """Every event but the ``public`` endpoints: off the API page, refused to API clients
    (the page itself still calls them)."""
    for fn in demo.fns.values():
        if fn.api_name not in public:
            fn.api_visibility = "private"
