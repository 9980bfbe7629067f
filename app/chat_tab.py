"""Chat tab: pick a database and a model, ask in plain language, see SQL and rows."""

from __future__ import annotations

import threading
from typing import Any

from app.databases import database_choices, default_database, frame
from app.engines import EnginePool
from app.model_choices import model_choices, resolve

DIALECTS = ["sqlite", "postgres", "mysql", "duckdb", "bigquery", "snowflake", "tsql", "oracle"]


def _status(answer: Any) -> str:
    if answer.error:
        return f"**Could not answer:** {answer.error} · {answer.attempts} attempt(s)"
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


def ask(
    question: str,
    db_label: str,
    model: str,
    chat: list[dict[str, str]],
    history: list[tuple[str, str]],
    pool: EnginePool,
) -> tuple[list[dict[str, str]], list[tuple[str, str]], str, Any, str, str]:
    """One chat turn -> (chat messages, follow-up history, SQL, result table, status, sources)."""
    question = (question or "").strip()
    chat = list(chat or [])
    history = list(history or [])
    dbs = database_choices()
    if not question:
        return chat, history, "", None, "Please type a question.", ""
    if db_label not in dbs:
        return chat, history, "", None, "Please choose a database.", ""
    try:
        engine = pool.get(*resolve(model))
    except Exception as err:  # a bad path or hub id: say so, keep serving
        return chat, history, "", None, f"**Cannot load the model:** {str(err).splitlines()[0]}", ""
    with pool.generate_lock:
        answer = engine.ask(question, dbs[db_label], history=history[-3:])
    chat.append({"role": "user", "content": question})
    if answer.ok:
        reply = f"```sql\n{answer.sql}\n```\n{_status(answer)}"
        history.append((question, answer.sql or ""))
    else:
        reply = (f"```sql\n{answer.sql}\n```\n" if answer.sql else "") + _status(answer)
    chat.append({"role": "assistant", "content": reply})
    table = frame(answer.columns, answer.rows) if answer.ok else None
    return chat, history, answer.sql or "", table, _status(answer), sources_markdown(answer.sources)


def prime(db_label: str, model: str, pool: EnginePool) -> threading.Thread | None:
    """A database was chosen: get it ready in the background (see EnginePool.prime)."""
    path = database_choices().get(db_label)
    return pool.prime(*_safe_resolve(model), path) if path is not None else None


def run_edited_sql(sql: str, db_label: str, pool: EnginePool) -> tuple[Any, str]:
    """Run the (possibly hand-edited) SQL with the same read-only rules."""
    from engine.executor import run_readonly

    dbs = database_choices()
    if db_label not in dbs:
        return None, "Please choose a database."
    if not (sql or "").strip():
        return None, "There is no SQL to run."
    result = run_readonly(
        dbs[db_label], sql, timeout_s=pool.base.timeout_s, max_rows=pool.base.max_rows
    )
    if not result.ok:
        return None, f"**Could not run:** {result.error}"
    return frame(result.columns, [list(r) for r in result.rows]), f"{len(result.rows)} row(s)"


def transpile(sql: str, dialect: str) -> str:
    """The SQL rewritten for another database's dialect (sqlglot)."""
    import sqlglot
    from sqlglot.errors import ParseError

    if not (sql or "").strip():
        return ""
    try:
        return ";\n".join(sqlglot.transpile(sql, read="sqlite", write=dialect, pretty=True))
    except ParseError as err:
        return f"-- cannot transpile: {str(err).splitlines()[0]}"


def _safe_resolve(choice: str) -> tuple[str | None, str | None]:
    try:
        return resolve(choice)
    except ValueError:
        return choice, None


def build(pool: EnginePool) -> tuple[Any, Any]:
    """Lay out the tab in the current ``gr.Blocks``; returns its database and model dropdowns."""
    import gradio as gr

    dbs = list(database_choices())
    history = gr.State([])
    with gr.Row():
        db = gr.Dropdown(dbs, value=default_database(dbs), label="Database", elem_id="chat-db")
        model = gr.Dropdown(
            model_choices(),
            value=pool.base.model,
            label="Model",
            allow_custom_value=True,
            elem_id="chat-model",
        )
    chatbot = gr.Chatbot(label="Conversation", height=320, elem_id="chat-log")
    with gr.Row():
        question = gr.Textbox(
            placeholder="e.g. How many customers are there?",
            show_label=False,
            scale=5,
            elem_id="chat-question",
        )
        send = gr.Button("Ask", variant="primary", scale=1, elem_id="chat-ask")
        clear = gr.Button("Clear", scale=1, elem_id="chat-clear")
    status = gr.Markdown(elem_id="chat-status")
    sql = gr.Code(
        language="sql", label="SQL (edit and re-run)", interactive=True, elem_id="chat-sql"
    )
    with gr.Row():
        rerun = gr.Button("Run edited SQL", elem_id="chat-rerun")
        dialect = gr.Dropdown(DIALECTS, value="postgres", label="Show in dialect", scale=1)
        show_dialect = gr.Button("Transpile", scale=1)
    transpiled = gr.Code(language="sql", label="Transpiled SQL", interactive=False)
    table = gr.Dataframe(label="Result", interactive=False, elem_id="chat-result", wrap=True)
    with gr.Accordion("Retrieved sources", open=False, elem_id="chat-sources-box"):
        sources = gr.Markdown(elem_id="chat-sources")

    def on_ask(q, d, m, c, h):
        busy = (
            "Working…" if pool.is_loaded(m) else "Loading the model (first use can take a minute)…"
        )
        yield c, h, gr.skip(), gr.skip(), busy, gr.skip(), ""
        c, h, s, t, st, src = ask(q, d, m, c, h, pool)
        yield c, h, s, t, st, src, ""

    outputs = [chatbot, history, sql, table, status, sources, question]
    send.click(on_ask, [question, db, model, chatbot, history], outputs)
    question.submit(on_ask, [question, db, model, chatbot, history], outputs)
    clear.click(
        lambda: ([], [], "", None, "", "", ""),
        None,
        [chatbot, history, sql, table, status, sources, transpiled],
    )
    rerun.click(lambda s, d: run_edited_sql(s, d, pool), [sql, db], [table, status])

    def on_db_change(d, m):
        prime(d, m, pool)

    db.change(on_db_change, [db, model], None)
    show_dialect.click(transpile, [sql, dialect], transpiled)
    return db, model
