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
from engine.conversation import HistoryError, parse_history

PUBLIC = ("ask", "run_sql", "databases")


def register(pool: Any, spaces: Callable[[Any], Any]) -> None:
    """Add the public endpoints to the current ``gr.Blocks``. ``spaces(request)`` gives the
    caller's user space (app.users.UserSpace: their databases and history)."""

    def ask(
        question: str,
        database: str = DEFAULT_DB,
        history: str | list = "",
        request: gr.Request = None,
    ) -> dict:
        """Answer a question about a database as the chat does: the SQL, its result rows,
        how a follow-up was understood, what the SQL does, and the database's recent
        questions (newest first).

        Parameters:
            question: the question in plain language
            database: a label from /databases, such as "shop (sample)"
            history: the conversation so far, so the question may follow up on it: a JSON
                list of earlier turns, each {"question": ..., "sql": ...} or [question, sql]
                (as text or a list; empty: none)
        """
        space = spaces(request)
        out: dict[str, Any] = {"question": (question or "").strip(), "database": database}
        try:
            turns = parse_history(history)
        except HistoryError as err:
            return out | _refused(str(err)) | {"history": _history(space, database)}
        model = pool.base.model
        turn = chat.ask(question, database, model, [], turns, pool, space.history, space)
        out |= _answer_fields(turn)
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


def _refused(error: str) -> dict[str, Any]:
    return {"sql": None, "columns": [], "rows": [], "error": error, "understood": None,
            "explanation": ""}  # fmt: skip


def _answer_fields(turn: chat.Turn) -> dict[str, Any]:
    """What /ask returns of a chat turn's answer."""
    if turn.answer is None:
        return _refused(turn.status)
    d = turn.answer.to_dict()
    keys = ("sql", "columns", "rows", "error", "truncated", "attempts", "seconds", "backend")
    # understood: the standalone question a follow-up was rewritten into (None: not rewritten)
    return {k: d[k] for k in (*keys, "understood", "explanation")}


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
