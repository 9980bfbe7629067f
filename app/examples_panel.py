"""The examples manager (Schema tab): the solved question/SQL pairs saved for a database.

List and search them, click one to edit or delete it, add new ones, import a JSON/JSONL/CSV
file of pairs, export them. Every change is checked (the SQL must run) and reaches the
database's vector index at once (engine.rag.saved_pairs.SavedPairs). It imports gradio:
app.schema_tab imports it only while its tab is built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from app.databases import databases_of
from app.messages import first_line
from app.results import fresh_file
from app.selection import row_click
from app.uploads import safe_name
from engine.db import open_database
from engine.rag.documents import RagInputError
from engine.rag.index import default_examples
from engine.rag.saved_pairs import PairError
from engine.rag.store import StoreError

COLUMNS = ["Question", "SQL"]


def _errors() -> tuple[type[Exception], ...]:
    from engine.rag.embeddings import EmbedderError  # deferred: it loads LangChain (0.4 s)

    return PairError, RagInputError, StoreError, EmbedderError


def bundled_count(db: Path | str) -> int:
    """How many pairs a bundled sample database brings (indexed, not listed here)."""
    path = default_examples(open_database(db))
    try:
        return len(json.loads(path.read_text())) if path else 0
    except (OSError, ValueError):
        return 0


class ExamplesPanel:
    """Components and handlers; handlers return {component: update} dicts."""

    def __init__(self, examples: Any, databases: Callable[[], dict[str, Any]] | None = None):
        self.examples = examples  # engine.rag.saved_pairs.SavedPairs
        # the caller's databases by label (app.databases.databases_of their space); default:
        # the local user's
        self.databases = databases or databases_of

    def build(self, db: Any) -> None:
        """Lay out the panel in the current ``gr.Blocks``; ``db`` is the tab's dropdown."""
        self.db = db
        self.ids = gr.State([])
        self.selected = gr.State(None)  # id of the pair being edited; None: a new pair
        self.summary = gr.Markdown(elem_id="examples-summary")
        self.search = gr.Textbox(
            placeholder="Search questions and SQL", show_label=False, elem_id="examples-search"
        )
        self.table = gr.Dataframe(
            headers=COLUMNS, interactive=False, wrap=True, max_height=360, visible=False,
            column_widths=["40%", "60%"], elem_id="examples-table",
        )  # fmt: skip
        self.question = gr.Textbox(label="Question", elem_id="examples-question")
        self.sql = gr.Code(language="sql", label="SQL", interactive=True, elem_id="examples-sql")
        with gr.Row():
            self.save = gr.Button("Add pair", variant="primary", elem_id="examples-save")
            self.new = gr.Button("New pair", elem_id="examples-new")
            self.delete = gr.Button(
                "Delete pair", variant="stop", visible=False, elem_id="examples-delete"
            )
        self.status = gr.Markdown(elem_id="examples-status")
        with gr.Row():
            self.upload = gr.File(
                label="Import pairs (.json, .jsonl, .csv: question and query/sql columns)",
                file_types=[".json", ".jsonl", ".csv"],
                elem_id="examples-import-file",
            )
            with gr.Column():
                self.do_import = gr.Button("Import", elem_id="examples-import")
                self.export = gr.DownloadButton(
                    "Export (JSON)", visible=False, elem_id="examples-export"
                )

        outs = [
            self.summary, self.table, self.ids, self.selected, self.question, self.sql,
            self.save, self.delete, self.status, self.export,
        ]  # fmt: skip
        self.outputs = outs
        self.search.change(self.refresh, [db, self.search], outs)
        self.table.select(row_click(self.on_select), [self.ids, db], outs)
        self.save.click(
            self.on_save, [db, self.selected, self.question, self.sql, self.search], outs
        )
        self.new.click(self.on_new, None, outs)
        self.delete.click(self.on_delete, [db, self.selected, self.search], outs)
        self.do_import.click(self.on_import, [db, self.upload, self.search], outs)
        db.change(self.on_db_change, [db], outs)

    # --- handlers ---------------------------------------------------------------------------

    def refresh(self, label: str | None, search: str = "") -> dict:
        path = self.databases().get(label or "")
        if path is None:
            return {self.summary: "Choose a database.", self.table: gr.update(visible=False)}
        try:
            every = self.examples.list(path)
            shown = self.examples.list(path, search) if search.strip() else every
        except _errors() as err:
            return {self.summary: f"**Cannot read the saved pairs:** {first_line(err)}"}
        text = (
            f"**{len(every)} saved pair(s)** for {label}. Similar questions retrieve them "
            "(an answer's sources list the ones used)."
        )
        bundled = bundled_count(path)
        if bundled:
            text += f" The sample's {bundled} bundled pairs are indexed too (not listed)."
        if search.strip():
            text += f" {len(shown)} match “{search.strip()}”."
        export = None
        if every:
            export = fresh_file(f"{safe_name(label or 'database')}-examples.json")
            self.examples.export(path, export)
        return {
            self.summary: text,
            self.table: gr.update(
                value=pd.DataFrame([[p.question, p.query] for p in shown], columns=COLUMNS),
                visible=bool(shown),
            ),
            self.ids: [p.id for p in shown],
            self.export: gr.update(value=str(export) if export else None, visible=bool(every)),
        }

    def _form(self, pair: Any = None) -> dict:
        return {
            self.selected: pair.id if pair else None,
            self.question: pair.question if pair else "",
            self.sql: pair.query if pair else "",
            self.save: gr.update(value="Save changes" if pair else "Add pair"),
            self.delete: gr.update(visible=pair is not None),
        }

    def on_db_change(self, label: str | None) -> dict:
        return {**self.refresh(label), **self._form(), self.status: ""}

    def on_select(self, row: int, col: int, ids: list[str], label: str | None) -> dict:
        path = self.databases().get(label or "")
        pairs = {p.id: p for p in self.examples.list(path)} if path else {}
        pair = pairs.get(ids[row]) if 0 <= row < len(ids) else None
        if pair is None:
            return {self.status: "That pair is gone; the list is refreshed.", **self.refresh(label)}
        return {**self._form(pair), self.status: "Editing the selected pair."}

    def on_new(self) -> dict:
        return {**self._form(), self.status: ""}

    def on_save(
        self, label: str | None, selected: str | None, question: str, sql: str, search: str
    ) -> dict:
        path = self.databases().get(label or "")
        if path is None:
            return {self.status: "Choose a database first."}
        try:
            saved = self.examples.edit(path, selected, question, sql)
        except _errors() as err:
            return {self.status: f"**Not saved:** {first_line(err)}"}
        verb = "Updated" if selected or saved.replaced else "Added"
        where = "in the index at once" if saved.indexed else "indexed with the first question"
        return {
            **self.refresh(label, search),
            **self._form(),
            self.status: f"{verb} “{saved.pair.question}” ({where}).",
        }

    def on_delete(self, label: str | None, selected: str | None, search: str) -> dict:
        path = self.databases().get(label or "")
        if path is None or not selected:
            return {self.status: "Click a pair in the list first."}
        try:
            removed = self.examples.remove(path, [selected])
        except _errors() as err:
            return {self.status: f"**Not deleted:** {first_line(err)}"}
        what = f"“{removed[0].question}”" if removed else "the pair"
        return {
            **self.refresh(label, search),
            **self._form(),
            self.status: f"Deleted {what}: it is no longer retrieved.",
        }

    def on_import(self, label: str | None, upload: Any, search: str) -> dict:
        path = self.databases().get(label or "")
        if path is None:
            return {self.status: "Choose a database first."}
        if not upload:
            return {self.status: "Choose a .json, .jsonl or .csv file of pairs to import."}
        src = Path(getattr(upload, "name", upload))
        try:
            report = self.examples.import_file(path, src)
        except _errors() as err:
            return {self.status: f"**Import failed:** {first_line(err)}"}
        return {**self.refresh(label, search), self.status: report.summary(src.name)}
