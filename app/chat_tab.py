"""Chat tab: ask in plain language; see the SQL, its rows, a chart and the sources; fix the
SQL, mark answers correct (they become retrieved examples), download the rows, ask again
from the history.

Nothing shows before it has content: the SQL editor, result, chart, download and sources
appear with an answer, the transpiled SQL when asked for. The answering itself is app.chat,
which runs without Gradio; this module is the tab, imported only while the app is built.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from app.chat import (
    ANSWER_GROUP,
    DIALECTS,
    Turn,
    ask,
    prime,
    run_edited_sql,
    save_example,
    sources_markdown,
    transpile,
    understood_as,
)
from app.databases import databases_of, default_database, frame
from app.engines import EnginePool
from app.history_panel import SQL_COLUMN, HistoryPanel
from app.messages import public
from app.model_choices import model_choices
from app.results import choose_chart, csv_file, plot_update
from app.selection import row_click
from app.uploads import safe_name
from app.users import root_of
from engine.db import open_database


class ChatTab:
    """The tab's components and handlers (handlers return {component: update} dicts)."""

    def __init__(self, pool: EnginePool, examples: Any, history: Any, spaces: Any = None) -> None:
        self.pool, self.examples, self.history = pool, examples, history
        self.spaces = spaces  # app.users.Spaces: whose index answers (None: the local user)
        self.past = HistoryPanel(history, self.databases)

    def build(self) -> tuple[Any, Any]:
        """Lay out the tab in the current ``gr.Blocks``; returns its database and model
        dropdowns."""
        dbs = list(self.databases())
        self.turns = gr.State([])
        self.last_question = gr.State("")
        self.answered = gr.State(None)  # {"db", "question", "sql"} of the last good answer
        self.ran = gr.State(None)  # {"db", "sql"} of the last edited SQL that ran
        with gr.Row():
            self.db = gr.Dropdown(
                dbs, value=default_database(dbs), label="Database", elem_id="chat-db"
            )
            self.model = gr.Dropdown(
                model_choices(root_of(self._space())),
                value=self.pool.base.model,
                label="Model",
                allow_custom_value=True,
                elem_id="chat-model",
            )
        self.chatbot = gr.Chatbot(label="Conversation", height=480, elem_id="chat-log")
        # how the last follow-up was understood: edit it and ask it as a question of its own
        with gr.Row(visible=False, elem_id="chat-understood-row") as self.understood_row:
            self.understood = gr.Textbox(
                label="Understood as (edit and ask again)", scale=5, elem_id="chat-understood"
            )
            self.ask_instead = gr.Button("Ask this instead", scale=1, elem_id="chat-understood-ask")
        with gr.Row():
            self.question = gr.Textbox(
                placeholder="e.g. How many customers are there?",
                show_label=False,
                scale=5,
                elem_id="chat-question",
            )
            self.send = gr.Button("Ask", variant="primary", scale=1, elem_id="chat-ask")
            self.clear = gr.Button("Clear", scale=1, elem_id="chat-clear")
        self.status = gr.Markdown(elem_id="chat-status")
        self.write = gr.Button("Write SQL yourself", size="sm", elem_id="chat-write-sql")
        self.sql = gr.Code(
            language="sql",
            label="SQL (edit and run again)",
            interactive=True,
            visible=False,
            elem_id="chat-sql",
        )
        with gr.Row(visible=False, elem_id="chat-sql-actions") as self.actions:
            self.rerun = gr.Button("Run edited SQL", elem_id="chat-rerun")
            self.correct = gr.Button(
                "✓ Correct", variant="primary", visible=False, elem_id="chat-correct"
            )
            self.dialect = gr.Dropdown(DIALECTS, value="postgres", label="Show in dialect")
            self.show_dialect = gr.Button("Transpile", elem_id="chat-transpile")
        with gr.Row(visible=False, elem_id="chat-save-row") as self.save_row:
            self.save_question = gr.Textbox(
                label="Question this SQL answers", scale=4, elem_id="chat-save-question"
            )
            self.save = gr.Button("Save as correct", variant="primary", elem_id="chat-save")
        self.feedback = gr.Markdown(elem_id="chat-feedback")
        self.transpiled = gr.Code(
            language="sql", label="Transpiled SQL", interactive=False, visible=False,
            elem_id="chat-transpiled",
        )  # fmt: skip
        with gr.Column(visible=False, elem_id="chat-result-box") as self.result_box:
            self.table = gr.Dataframe(
                label="Result", interactive=False, elem_id="chat-result", wrap=True
            )
            self.bar = gr.BarPlot(
                label="Chart", visible=False, x_label_angle=-30, height=320, elem_id="chat-bar"
            )
            self.line = gr.LinePlot(label="Chart", visible=False, height=320, elem_id="chat-line")
            self.download = gr.DownloadButton(
                "Download CSV", size="sm", visible=False, elem_id="chat-download"
            )
        with gr.Accordion(
            "Retrieved sources", open=False, visible=False, elem_id="chat-sources-box"
        ) as self.sources_box:
            self.sources = gr.Markdown(elem_id="chat-sources")
        self.past.build()
        self._wire()
        return self.db, self.model

    # --- wiring ---------------------------------------------------------------------------

    def _wire(self) -> None:
        outs = [
            self.chatbot, self.turns, self.last_question, self.answered, self.ran,
            *self.past.outputs, self.question, self.status, self.write, self.sql, self.actions,
            self.correct, self.save_row, self.save_question, self.feedback, self.transpiled,
            self.result_box, self.table, self.bar, self.line, self.download, self.sources_box,
            self.sources, self.understood_row, self.understood,
        ]  # fmt: skip
        asking = [self.question, self.db, self.model, self.chatbot, self.turns]
        queued = {"concurrency_limit": self.pool.max_batch, "concurrency_id": ANSWER_GROUP}
        # the events after which the model may have loaded or a database been primed
        instead = [self.understood, self.db, self.model, self.chatbot, self.turns]
        self.loads_models = [
            self.send.click(self.on_ask, asking, outs, **queued),
            self.question.submit(self.on_ask, asking, outs, **queued),
            self.ask_instead.click(self.on_ask_instead, instead, outs, **queued),
        ]
        self.clear.click(self.on_clear, None, outs)
        self.write.click(self.on_write, None, outs)
        self.rerun.click(self.on_rerun, [self.sql, self.db, self.last_question], outs)
        self.correct.click(self.on_correct, self.answered, outs)
        self.save.click(self.on_save, [self.ran, self.save_question], outs)
        self.show_dialect.click(self.on_transpile, [self.sql, self.dialect, self.db], outs)
        self.loads_models.append(self.db.change(self.on_db_change, [self.db, self.model], outs))
        self.past.clear.click(self.on_history_clear, self.db, outs)
        self.past.table.select(
            row_click(self.on_history_click),
            [self.past.ids, self.db, self.model, self.chatbot, self.turns],
            outs,
            **queued,
        )

    # --- handlers -------------------------------------------------------------------------

    def _space(self) -> Any:
        """The caller's app.users.UserSpace; None: the local user (no Spaces given)."""
        return self.spaces.current() if self.spaces is not None else None

    def databases(self) -> dict[str, Any]:
        """The caller's databases by label."""
        return databases_of(self._space())

    def on_ask(
        self, q: str, d: str, m: str, chat: list, turns: list, standalone: bool = False
    ) -> Any:
        loading = not self.pool.is_loaded(m)
        busy = "Loading the model (first use can take a minute)…" if loading else "Working…"
        yield {self.status: busy, self.feedback: ""}
        turn = ask(q, d, m, chat, turns, self.pool, self.history, self._space(), standalone)
        yield {**self._answer(turn, d), self.question: "", **self.past.refresh(d)}

    def on_ask_instead(self, q: str, d: str, m: str, chat: list, turns: list) -> Any:
        """The edited understood question, asked alone in place of the follow-up."""
        yield from self.on_ask(q, d, m, chat, turns, standalone=True)

    def _answer(self, turn: Turn, d: str) -> dict:
        out = {self.chatbot: turn.chat, self.turns: turn.turns, self.status: turn.status}
        a = turn.answer
        if a is None:
            return out
        sql = a.sql or ""
        out |= {
            self.last_question: a.question,
            self.answered: {"db": d, "question": a.question, "sql": sql} if a.ok else None,
            self.ran: None,
            **self._editor(sql, bool(sql)),
            self.correct: gr.update(visible=a.ok),
            self.save_row: gr.update(visible=False),
            self.feedback: "",
            self.transpiled: gr.update(visible=False, value=""),
            self.sources_box: gr.update(visible=True),
            self.sources: sources_markdown(a.sources),
            **self._understood(understood_as(a)),
        }
        return out | self._result(a.columns, a.rows, d, a.ok)

    def _understood(self, text: str | None) -> dict:
        return {
            self.understood_row: gr.update(visible=bool(text)),
            self.understood: text or "",
        }

    def _editor(self, sql: str, visible: bool) -> dict:
        return {
            self.sql: gr.update(value=sql, visible=visible),
            self.actions: gr.update(visible=visible),
            self.write: gr.update(visible=not visible),
        }

    def _result(self, columns: list[str], rows: list[Any], d: str, ok: bool) -> dict:
        if not ok or not rows:
            return {
                self.result_box: gr.update(visible=False),
                self.table: None,
                self.bar: gr.update(visible=False, value=None),
                self.line: gr.update(visible=False, value=None),
                self.download: gr.update(visible=False, value=None),
            }
        rows = [list(r) for r in rows]
        chart = choose_chart(columns, rows)
        path = csv_file(columns, rows, f"{safe_name(d)}-result")
        return {
            self.result_box: gr.update(visible=True),
            self.table: frame(columns, rows),
            self.bar: plot_update(chart, "bar"),
            self.line: plot_update(chart, "line"),
            self.download: gr.update(value=str(path), visible=True),
        }

    def on_clear(self) -> dict:
        return {
            self.chatbot: [], self.turns: [], self.last_question: "", self.answered: None,
            self.ran: None, self.status: "", self.feedback: "", **self._editor("", False),
            self.correct: gr.update(visible=False), self.save_row: gr.update(visible=False),
            self.transpiled: gr.update(visible=False, value=""),
            self.sources_box: gr.update(visible=False), self.sources: "",
            **self._understood(None), **self._result([], [], "", False),
        }  # fmt: skip

    def on_write(self) -> dict:
        return self._editor("", True)

    def on_rerun(self, sql: str, d: str, question: str) -> dict:
        return self._run(sql, d, question, record=True)

    def _run(self, sql: str, d: str, question: str, record: bool) -> dict:
        """Run SQL from the editor: its result, and "Save as correct" when it ran."""
        result, status = run_edited_sql(sql, d, self.pool, self._space())
        ok = result is not None and result.ok
        out = {
            self.status: status,
            self.feedback: "",
            self.correct: gr.update(visible=False),
            self.ran: {"db": d, "sql": sql.strip()} if ok else None,
            self.save_row: gr.update(visible=ok),
            self.save_question: question or "",
        }
        out |= self._result(result.columns if ok else [], result.rows if ok else [], d, ok)
        if record and result is not None and question:
            detail = f"{len(result.rows)} row(s)" if ok else public(result.error)
            out |= self.past.record(d, question, sql.strip(), ok, detail)
        return out

    def on_correct(self, answered: dict | None) -> dict:
        if not answered:
            return {self.feedback: "There is no answer to mark as correct."}
        saved, message = save_example(
            self.examples, answered["db"], answered["question"], answered["sql"], self._space()
        )
        return {self.feedback: message, self.correct: gr.update(visible=not saved)}

    def on_save(self, ran: dict | None, question: str) -> dict:
        if not ran:
            return {self.feedback: "Run the SQL first; only SQL that runs can be saved."}
        if not (question or "").strip():
            return {self.feedback: "Type the question this SQL answers, then save."}
        saved, message = save_example(self.examples, ran["db"], question, ran["sql"], self._space())
        return {self.feedback: message, self.save_row: gr.update(visible=not saved)}

    def on_transpile(self, sql: str, dialect: str, db_label: str | None = None) -> dict:
        db = self.databases().get(db_label or "")
        text = transpile(sql, dialect, open_database(db).dialect if db is not None else "sqlite")
        return {self.transpiled: gr.update(value=text, visible=bool(text))}

    def on_db_change(self, d: str, m: str) -> dict:
        prime(d, m, self.pool, self._space())
        return self.past.refresh(d)

    def on_history_clear(self, d: str) -> dict:
        panel, n = self.past.clear_database(d)
        return {**panel, self.feedback: f"Cleared {n} question(s) of **{d}**."}

    def on_history_click(
        self, row: int, col: int, ids: list[int], d: str, m: str, chat: list, turns: list
    ) -> Any:
        entry = self.past.entry(ids, row)
        if entry is None:
            yield self.past.refresh(d)
            return
        if col != SQL_COLUMN and entry.question:
            yield from self.on_ask(entry.question, d, m, chat, turns)
            return
        out = {**self._editor(entry.sql, True), self.last_question: entry.question}
        out |= self._run(entry.sql, d, entry.question, record=False)
        out[self.status] = f"Loaded the SQL of “{entry.question or 'SQL only'}”: {out[self.status]}"
        yield out
