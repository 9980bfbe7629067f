"""Answering in the chat without Gradio: a question and its turn (:func:`ask`), SQL the user
edited (:func:`run_edited_sql`), a pair saved as an example (:func:`save_example`), a
database primed for its first question (:func:`prime`), SQL shown in another dialect
(:func:`transpile`). The Chat tab (:mod:`app.chat_tab`) and the named API (:mod:`app.api`)
call these; tests call them directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot.errors import ParseError

from app.databases import databases_of
from app.engines import EnginePool
from app.messages import first_line, public
from app.model_choices import resolve
from app.users import root_of
from engine.conversation import same_question
from engine.db import DatabaseError, read_schema, run_readonly
from engine.followup import retrieval_query
from engine.pipeline import Request
from engine.rag.documents import RagInputError
from engine.rag.saved_pairs import PairError
from engine.rag.store import StoreError
from engine.scope import refers_to_rows

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


def understood_as(answer: Any) -> str | None:
    """The standalone question a follow-up was rewritten into; None when it was not
    rewritten, or the rewrite left it as it was."""
    understood = getattr(answer, "understood", None)
    if not understood or same_question(understood, answer.question):
        return None
    return understood


def reply_markdown(answer: Any, previous: str | None = None) -> str:
    """The assistant's message: how a follow-up was understood, the SQL, what it does (a
    collapsed section) and the status line. ``previous``: the question it followed."""
    parts = []
    understood = understood_as(answer)
    if understood:
        parts.append(f"*Understood as: {understood}*")
    elif previous and getattr(answer, "way", None) not in (None, "rewrite"):
        how = "about its rows" if refers_to_rows(answer.question) else "as a change of it"
        parts.append(f"*Understood as a follow-up of “{previous}”, {how}*")
    if answer.sql:
        parts.append(f"```sql\n{answer.sql}\n```")
    if answer.explanation:
        parts.append(
            "<details><summary>What this query does</summary>\n\n"
            f"{answer.explanation}\n\n</details>"
        )
    parts.append(_status(answer))
    return "\n\n".join(parts)


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
    standalone: bool = False,
) -> Turn:
    """One chat turn; the question is recorded in ``history`` (a QuestionHistory) if given.
    ``space`` (app.users.UserSpace) is whose databases and index to use; None: the local
    user's. ``standalone``: the question replaces the last one (the person edited how a
    follow-up was understood): it is asked without the earlier turns, and its turn takes the
    place of the last one in ``turns``."""
    question = (question or "").strip()
    chat, turns = list(chat or []), list(turns or [])
    dbs = databases_of(space)
    if not question:
        return Turn(chat, turns, "Please type a question.")
    if db_label not in dbs:
        return Turn(chat, turns, "Please choose a database.")
    try:
        engine = pool.get(*resolve(model, root_of(space)))
    except Exception as err:  # a bad path or hub id: say so, keep serving
        return Turn(chat, turns, f"**Cannot load the model:** {first_line(err)}")
    earlier = [] if standalone else turns[-3:]
    context = _own_context(engine, space, question, dbs[db_label], earlier)
    answer = pool.answer(engine, Request(question, dbs[db_label], earlier, context))
    chat.append({"role": "user", "content": question})
    previous = earlier[-1][0] if earlier else None
    chat.append({"role": "assistant", "content": reply_markdown(answer, previous)})
    if answer.ok:
        turns = turns[:-1] if standalone else turns
        turns.append((question, answer.sql or ""))
    if history is not None:
        detail = f"{len(answer.rows)} row(s)" if answer.ok else public(answer.error)
        history.record(dbs[db_label], question, answer.sql, answer.ok, detail)
    return Turn(chat, turns, _status(answer), answer)


def _own_context(engine: Any, space: Any, question: str, db_path: Any, turns: list) -> Any:
    """Retrieval from a signed-in user's own index (their saved pairs); None: the engine
    retrieves from the shared one."""
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
    return pool.prime(*_safe_resolve(model, space), path, retriever)


def run_edited_sql(sql: str, db_label: str, pool: EnginePool, space: Any = None) -> tuple[Any, str]:
    """Run the (possibly hand-edited) SQL with the same read-only rules: (QueryResult or
    None, status line)."""
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
    from engine.rag.embeddings import EmbedderError  # deferred: it loads LangChain (0.4 s)

    path = databases_of(space).get(db_label)
    if path is None:
        return False, "Please choose a database."
    try:
        saved = examples.add(path, question, sql)
    except (PairError, RagInputError, StoreError, EmbedderError) as err:
        return False, f"**Not saved:** {first_line(err)}"
    verb = "Updated the saved SQL of" if saved.replaced else "Saved"
    when = (
        f"similar questions retrieve it from now on (indexed in {saved.seconds:.2f} s)"
        if saved.indexed
        else "it is indexed with the database's first question"
    )
    return True, f"{verb} “{saved.pair.question}” as an example for **{db_label}**: {when}."


def _safe_resolve(choice: str, space: Any) -> tuple[str | None, str | None]:
    try:
        return resolve(choice, root_of(space))
    except ValueError:
        return choice, None
