"""The chat's history panel: questions asked on the chosen database, newest first.

The entries live in engine.history.QuestionHistory (a SQLite file in the data folder), so
they survive a page reload and an app restart. Clicking a row is handled by the chat tab
(ask again, or load the SQL); this module lays the panel out and keeps it current. It
imports gradio, as the chat tab does: both are imported only while the app is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd

ROWS = 100
COLUMNS = ["When", "Question (click: ask again)", "Result", "SQL (click: load)"]
SQL_COLUMN = 3


def history_frame(entries: list[Any]) -> Any:
    rows = [
        [
            time.strftime("%Y-%m-%d %H:%M", time.localtime(e.asked_at)),
            e.question or "(SQL only)",
            ("✓ " if e.ok else "✗ ") + _short(e.detail) + (" · edited SQL" if e.edited else ""),
            e.sql,
        ]
        for e in entries
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _short(text: str, limit: int = 60) -> str:
    text = text.split(". ")[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


class HistoryPanel:
    """Components and handlers; handlers return {component: update} dicts."""

    def __init__(self, history: Any, databases: Callable[[], dict[str, Any]]) -> None:
        self.history = history  # engine.history.QuestionHistory
        self.databases = databases  # the caller's databases by label (app.databases)

    def build(self) -> None:
        self.ids = gr.State([])
        with gr.Accordion("History", open=True, elem_id="chat-history-box"):
            self.hint = gr.Markdown(elem_id="chat-history-hint")
            self.table = gr.Dataframe(
                headers=COLUMNS,
                interactive=False,
                wrap=True,
                max_height=360,
                column_widths=["14%", "38%", "18%", "30%"],
                visible=False,
                elem_id="chat-history",
            )
            self.clear = gr.Button(
                "Clear this database's history", size="sm", elem_id="chat-history-clear"
            )
        self.outputs = [self.hint, self.table, self.ids]

    def record(self, db_label: str, question: str, sql: str, ok: bool, detail: str) -> dict:
        """Keep an edited SQL run of ``question``; returns the refreshed panel."""
        path = self.databases().get(db_label)
        if path is not None:
            self.history.record(path, question, sql, ok, detail, edited=True)
        return self.refresh(db_label)

    def refresh(self, db_label: str) -> dict:
        path = self.databases().get(db_label)
        entries = self.history.recent(path, ROWS) if path is not None else []
        if not entries:
            return {
                self.hint: "No questions asked on this database yet.",
                self.table: gr.update(visible=False, value=None),
                self.ids: [],
            }
        return {
            self.hint: "Newest first. Click a question to ask it again, or its SQL to load "
            "and run it in the editor.",
            self.table: gr.update(value=history_frame(entries), visible=True),
            self.ids: [e.id for e in entries],
        }

    def clear_database(self, db_label: str) -> tuple[dict, int]:
        path = self.databases().get(db_label)
        n = self.history.clear(path) if path is not None else 0
        return self.refresh(db_label), n

    def entry(self, ids: list[int], row: int) -> Any:
        """The entry shown in ``row``, or None (cleared meanwhile)."""
        return self.history.get(ids[row]) if 0 <= row < len(ids) else None
