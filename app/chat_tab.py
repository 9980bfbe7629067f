"""Chat tab: ask in plain language; see the SQL, its rows, a chart and the sources; fix the
SQL, mark answers correct (they become retrieved examples), download the rows, ask again
from the history.

Nothing shows before it has content: the SQL editor, result, chart, download and sources
appear with an answer, the transpiled SQL when asked for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from app.databases import databases_of, default_database, frame
from app.engines import EnginePool
from app.history_panel import SQL_COLUMN, HistoryPanel
from app.messages import first_line, public
from app.model_choices import model_choices, resolve
from app.results import choose_chart, csv_file, plot_update
from app.uploads import safe_name
from engine.pipeline import Request

# Every question to the model, from the chat or a program (app.api), is in this queue group:
# at most ``pool.max_batch`` run at once (decoded together); the others wait in Gradio's
# queue, which shows each waiting user their place.
ANSWER_GROUP = "answer"
DIALECTS = ["sqlite", "postgres", "mysql", "duckdb", "bigquery", "snowflake", "tsql", "oracle"]


def _status(answer: Any) -> str:
    if answer.error:
        return f"**Could not answer:** {public(answer.error)} · {answer.attempts} attempt(s)"
    more = " (row cap reached; showing the first rows)" if answer.truncated else ""
    return (
        f"{len(answer.rows)} row(s){more} · {answer.attempts} attempt(s) · "
        f"{answer.seconds:.1f} s · {answer.backend}"
    )


def sources_markdown(sources: list[Any]) -> str:
    """Retrieved sources as a compact list: kind, score, first line."""
    if not sources:
        return "No sources retrieved (whole schema in the prompt, or retrieval off)."
    lines = []
    for s in sources:
        score = f" · {s.score:.2f}" if s.score is not None else ""
        text = s.text.strip().replace("\n", " ")
        lines.append(f"- **{s.kind}**{score}: {text[:240]}{'…' if len(text) > 240 else ''}")
    return "\n".join(lines)


@dataclass
class Turn:
    """One question and what the tab shows for it."""

    chat: list[dict[str, str]]
    turns: list[tuple[str, str]]  # (question, SQL) of the answered ones, for follow-ups
    status: str
    answer: Any = None  # engine.pipeline.Answer; None when nothing was asked


def ask(
    question: str,
    db_label: str,
    model: str,
    chat: list[dict[str, str]],
    turns: list[tuple[str, str]],
    pool: EnginePool,
    history: Any = None,
    space: Any = None,
) -> Turn:
    """One chat turn; the question is recorded in ``history`` (a QuestionHistory) if given.
    ``space`` (app.users.UserSpace) is whose databases and index to use; None: the local
    user's."""
    question = (question or "").strip()
    chat, turns = list(chat or []), list(turns or [])
    dbs = databases_of(space)
    if not question:
        return Turn(chat, turns, "Please type a question.")
    if db_label not in dbs:
        return Turn(chat, turns, "Please choose a database.")
    try:
        engine = pool.get(*resolve(model))
    except Exception as err:  # a bad path or hub id: say so, keep serving
        return Turn(chat, turns, f"**Cannot load the model:** {first_line(err)}")
    context = _own_context(engine, space, question, dbs[db_label], turns[-3:])
    answer = pool.answer(engine, Request(question, dbs[db_label], turns[-3:], context))
    chat.append({"role": "user", "content": question})
    reply = (f"```sql\n{answer.sql}\n```\n" if answer.sql else "") + _status(answer)
    chat.append({"role": "assistant", "content": reply})
    if answer.ok:
        turns.append((question, answer.sql or ""))
    if history is not None:
        detail = f"{len(answer.rows)} row(s)" if answer.ok else public(answer.error)
        history.record(dbs[db_label], question, answer.sql, answer.ok, detail)
    return Turn(chat, turns, _status(answer), answer)


def _own_context(engine: Any, space: Any, question: str, db_path: Any, turns: list) -> Any:
    """Retrieval from a signed-in user's own index (their saved pairs); None: the engine
    retrieves from the shared one."""
    from engine.db import DatabaseError, read_schema
    from engine.followup import retrieval_query

    if space is None or space.retriever is None or engine.retriever is None:
        return None
    try:
        schema = read_schema(db_path)
    except DatabaseError:
        return None  # the engine reports it
    return engine.context(retrieval_query(question, turns), db_path, schema, space.retriever)


def prime(
    db_label: str, model: str, pool: EnginePool, space: Any = None
) -> threading.Thread | None:
    """A database was chosen: get it ready in the background (see EnginePool.prime)."""
    path = databases_of(space).get(db_label)
    if path is None:
        return None
    # a signed-in user's database is indexed into their own store (their saved pairs)
    retriever = getattr(space, "retriever", None)
    return pool.prime(*_safe_resolve(model), path, retriever)


def run_edited_sql(sql: str, db_label: str, pool: EnginePool, space: Any = None) -> tuple[Any, str]:
    """Run the (possibly hand-edited) SQL with the same read-only rules: (QueryResult or
    None, status line)."""
    from engine.db import run_readonly

    dbs = databases_of(space)
    if db_label not in dbs:
        return None, "Please choose a database."
    if not (sql or "").strip():
        return None, "There is no SQL to run."
    result = run_readonly(
        dbs[db_label], sql, timeout_s=pool.base.timeout_s, max_rows=pool.base.max_rows
    )
    if not result.ok:
        return result, f"**Could not run:** {public(result.error)}"
    more = " (row cap reached)" if result.truncated else ""
    return result, f"{len(result.rows)} row(s){more}"


def transpile(sql: str, dialect: str, source: str = "sqlite") -> str:
    """The SQL rewritten from the database's own dialect (``source``) into another (sqlglot)."""
    import sqlglot
    from sqlglot.errors import ParseError

    if not (sql or "").strip():
        return ""
    try:
        return ";\n".join(sqlglot.transpile(sql, read=source, write=dialect, pretty=True))
    except ParseError as err:
        return f"-- cannot transpile: {str(err).splitlines()[0]}"


def save_example(
    examples: Any, db_label: str, question: str, sql: str, space: Any = None
) -> tuple[bool, str]:
    """Keep a question and its SQL as a solved example of the database: (saved, message).
    ``space`` (app.users.UserSpace): whose databases; None: the local user's."""
    from engine.rag.documents import RagInputError
    from engine.rag.embeddings import EmbedderError
    from engine.rag.examples import ExampleError
    from engine.rag.store import StoreError

    path = databases_of(space).get(db_label)
    if path is None:
        return False, "Please choose a database."
    try:
        saved = examples.add(path, question, sql)
    except (ExampleError, RagInputError, StoreError, EmbedderError) as err:
        return False, f"**Not saved:** {first_line(err)}"
    verb = "Updated the saved SQL of" if saved.replaced else "Saved"
    when = (
        f"similar questions retrieve it from now on (indexed in {saved.seconds:.2f} s)"
        if saved.indexed
        else "it is indexed with the database's first question"
    )
    return True, f"{verb} “{saved.pair.question}” as an example for **{db_label}**: {when}."


def _safe_resolve(choice: str) -> tuple[str | None, str | None]:
    try:
        return resolve(choice)
    except ValueError:
        return choice, None


class ChatTab:
    """The tab's components and handlers (handlers return {component: update} dicts)."""

    def __init__(self, pool: EnginePool, examples: Any, history: Any, spaces: Any = None) -> None:
        self.pool, self.examples, self.history = pool, examples, history
        self.spaces = spaces  # app.users.Spaces: whose index answers (None: the local user)
        self.past = HistoryPanel(history)

    def build(self) -> tuple[Any, Any]:
        """Lay out the tab in the current ``gr.Blocks``; returns its database and model
        dropdowns."""
        import gradio as gr

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
                model_choices(),
                value=self.pool.base.model,
                label="Model",
                allow_custom_value=True,
                elem_id="chat-model",
            )
        self.chatbot = gr.Chatbot(label="Conversation", height=320, elem_id="chat-log")
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
        from app.selection import row_click

        outs = [
            self.chatbot, self.turns, self.last_question, self.answered, self.ran,
            *self.past.outputs, self.question, self.status, self.write, self.sql, self.actions,
            self.correct, self.save_row, self.save_question, self.feedback, self.transpiled,
            self.result_box, self.table, self.bar, self.line, self.download, self.sources_box,
            self.sources,
        ]  # fmt: skip
        asking = [self.question, self.db, self.model, self.chatbot, self.turns]
        queued = {"concurrency_limit": self.pool.max_batch, "concurrency_id": ANSWER_GROUP}
        # the events after which the model may have loaded or a database been primed
        self.loads_models = [
            self.send.click(self.on_ask, asking, outs, **queued),
            self.question.submit(self.on_ask, asking, outs, **queued),
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

    def on_ask(self, q: str, d: str, m: str, chat: list, turns: list) -> Any:
        loading = not self.pool.is_loaded(m)
        busy = "Loading the model (first use can take a minute)…" if loading else "Working…"
        yield {self.status: busy, self.feedback: ""}
        turn = ask(q, d, m, chat, turns, self.pool, self.history, self._space())
        yield {**self._answer(turn, d), self.question: "", **self.past.refresh(d)}

    def _answer(self, turn: Turn, d: str) -> dict:
        import gradio as gr

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
        }
        return out | self._result(a.columns, a.rows, d, a.ok)

    def _editor(self, sql: str, visible: bool) -> dict:
        import gradio as gr

        return {
            self.sql: gr.update(value=sql, visible=visible),
            self.actions: gr.update(visible=visible),
            self.write: gr.update(visible=not visible),
        }

    def _result(self, columns: list[str], rows: list[Any], d: str, ok: bool) -> dict:
        import gradio as gr

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
        import gradio as gr

        return {
            self.chatbot: [], self.turns: [], self.last_question: "", self.answered: None,
            self.ran: None, self.status: "", self.feedback: "", **self._editor("", False),
            self.correct: gr.update(visible=False), self.save_row: gr.update(visible=False),
            self.transpiled: gr.update(visible=False, value=""),
            self.sources_box: gr.update(visible=False), self.sources: "",
            **self._result([], [], "", False),
        }  # fmt: skip

    def on_write(self) -> dict:
        return self._editor("", True)

    def on_rerun(self, sql: str, d: str, question: str) -> dict:
        return self._run(sql, d, question, record=True)

    def _run(self, sql: str, d: str, question: str, record: bool) -> dict:
        """Run SQL from the editor: its result, and "Save as correct" when it ran."""
        import gradio as gr

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
        import gradio as gr

        if not answered:
            return {self.feedback: "There is no answer to mark as correct."}
        saved, message = save_example(
            self.examples, answered["db"], answered["question"], answered["sql"], self._space()
        )
        return {self.feedback: message, self.correct: gr.update(visible=not saved)}

    def on_save(self, ran: dict | None, question: str) -> dict:
        import gradio as gr

        if not ran:
            return {self.feedback: "Run the SQL first; only SQL that runs can be saved."}
        if not (question or "").strip():
            return {self.feedback: "Type the question this SQL answers, then save."}
        saved, message = save_example(self.examples, ran["db"], question, ran["sql"], self._space())
        return {self.feedback: message, self.save_row: gr.update(visible=not saved)}

    def on_transpile(self, sql: str, dialect: str, db_label: str | None = None) -> dict:
        import gradio as gr

        from engine.db import dialect as dialect_of

        db = self.databases().get(db_label or "")
        text = transpile(sql, dialect, dialect_of(db) if db is not None else "sqlite")
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
