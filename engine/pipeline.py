"""Question -> prompt -> SQL -> checked -> executed rows, with self-correction.

:class:`TextToSQL` ties a model backend, an optional retriever and the safe executor together.
It never raises for bad input: every failure comes back as :attr:`Answer.error`, one line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine.executor import DatabaseError, QueryResult, run_readonly
from engine.generate import Backend, GenerationConfig
from engine.prompt import Message, build_messages, build_repair_messages
from engine.schema import Schema, read_schema
from engine.sql_check import extract_sql, validate_sql

log = logging.getLogger(__name__)
# Any question will do: priming keeps only what every prompt on the database starts with.
PRIMING_QUESTION = "How many rows does each table have?"


@dataclass
class Source:
    kind: str  # table | doc | example
    text: str
    score: float | None = None


@dataclass
class Context:
    """What a retriever adds to a prompt: the schema to show, notes, and their sources."""

    schema_text: str
    notes: str | None = None
    sources: list[Source] = field(default_factory=list)


class Retriever(Protocol):
    """Chooses what of a database goes into the prompt (see engine.rag)."""

    def context(
        self,
        question: str,
        db_path: Path,
        schema: Schema,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
    ) -> Context: ...


@dataclass
class Answer:
    question: str
    sql: str | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    error: str | None = None
    sources: list[Source] = field(default_factory=list)
    attempts: int = 0
    truncated: bool = False
    raw_output: str = ""
    seconds: float = 0.0
    backend: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = (
            QueryResult(columns=self.columns, rows=[tuple(r) for r in self.rows])
            .to_dict()
            .get("rows", [])
        )
        return d


class TextToSQL:
    """The engine's front door: ``ask(question, db_path)``."""

    def __init__(
        self,
        backend: Backend,
        *,
        retriever: Retriever | None = None,
        generation: GenerationConfig | None = None,
        max_attempts: int = 2,
        timeout_s: float = 10.0,
        max_rows: int = 1000,
    ) -> None:
        self.backend = backend
        self.retriever = retriever
        self.generation = generation or GenerationConfig()
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.max_rows = max_rows

    def prompt_budget(self) -> int:
        """Tokens the schema/context may use: the context window less room for the answer."""
        return max(256, self.backend.context_length - self.generation.max_new_tokens - 256)

    def build_messages(
        self,
        question: str,
        db_path: Path,
        schema: Schema,
        history: list[tuple[str, str]] | None = None,
    ) -> tuple[list[Message], list[Source]]:
        if self.retriever is not None:
            ctx = self.retriever.context(
                question, db_path, schema, self.prompt_budget(), self.backend.count_tokens
            )
        else:
            ctx = Context(schema_text=schema.ddl())
        fmt = self.backend.prompt_format
        return build_messages(question, ctx.schema_text, ctx.notes, history, fmt), ctx.sources

    def ask(
        self, question: str, db_path: str | Path, history: list[tuple[str, str]] | None = None
    ) -> Answer:
        started = time.perf_counter()
        answer = self._ask(question.strip() if question else "", Path(db_path), history)
        answer.seconds = round(time.perf_counter() - started, 3)
        answer.backend = self.backend.name
        return answer

    def _ask(self, question: str, db_path: Path, history: list[tuple[str, str]] | None) -> Answer:
        if not question:
            return Answer(question=question, error="Please type a question.")
        try:
            schema = read_schema(db_path)
        except DatabaseError as err:
            return Answer(question=question, error=str(err))
        if not schema.tables:
            return Answer(question=question, error=f"{db_path.name} has no tables to query.")
        messages, sources = self.build_messages(question, db_path, schema, history)
        answer = Answer(question=question, sources=sources)
        for attempt in range(1, self.max_attempts + 1):
            answer.attempts = attempt
            prompt = self.backend.render(messages)
            answer.raw_output = self.backend.generate([prompt], self.generation)[0]
            sql, error, result = self.check_and_run(answer.raw_output, db_path, schema)
            answer.sql = sql
            if result is not None and error is None:
                answer.columns, answer.rows = result.columns, [list(r) for r in result.rows]
                answer.truncated, answer.error = result.truncated, None
                return answer
            answer.error = error
            log.info("attempt %d failed: %s", attempt, error)
            messages = build_repair_messages(
                messages,
                sql or answer.raw_output.strip()[:500],
                error or "",
                self.backend.prompt_format,
            )
        return answer

    def prime(self, db_path: str | Path) -> int:
        """Get a database ready for quick first answers; returns the prompt tokens now cached.

        Indexes it when the retriever does that on first use, and lets a backend with a prompt
        cache (llama.cpp's ``prefill``) evaluate a prompt for it: every later question on the
        database reuses what they share (system prompt, schema, sample values). Raises
        ``DatabaseError`` for an unreadable database.
        """
        db_path = Path(db_path)
        schema = read_schema(db_path)
        if not schema.tables:
            return 0
        messages, _ = self.build_messages(PRIMING_QUESTION, db_path, schema)
        prefill = getattr(self.backend, "prefill", None)
        return prefill(self.backend.render(messages)) if prefill is not None else 0

    def check_and_run(
        self, raw_output: str, db_path: Path, schema: Schema
    ) -> tuple[str | None, str | None, QueryResult | None]:
        """Model text -> (sql, error, result); exactly one of error/result is set."""
        sql = extract_sql(raw_output)
        if sql is None:
            return None, "The model's answer contains no SQL query.", None
        check = validate_sql(sql, schema)
        if not check.ok:
            return sql, check.message, None
        result = run_readonly(db_path, sql, timeout_s=self.timeout_s, max_rows=self.max_rows)
        return sql, result.error, (result if result.ok else None)

    def run_sql(self, sql: str, db_path: str | Path) -> QueryResult:
        """Run user-edited SQL under the same safety rules."""
        return run_readonly(db_path, sql, timeout_s=self.timeout_s, max_rows=self.max_rows)


def engine_from_config(
    cfg: Any,
    retriever: Retriever | None = None,
    progress: Any = None,
    backend: Backend | None = None,
) -> TextToSQL:
    """A ready :class:`TextToSQL` from an :class:`engine.config.EngineConfig`.

    Without an explicit ``retriever``, ``cfg.rag.enabled`` (the default) gives the
    Chroma-backed :class:`engine.rag.retriever.RagRetriever`. Without an explicit
    ``backend`` (a benchmark passes its own), the config's model is loaded.
    """
    from engine.generate import load_backend

    rag = getattr(cfg, "rag", None)
    if retriever is None and rag is not None and rag.enabled:
        from engine.rag.retriever import RagRetriever

        retriever = RagRetriever(rag, progress=progress)

    if backend is None:
        backend = load_backend(
            cfg.model,
            cfg.adapter,
            load_in_4bit=cfg.load_in_4bit,
            kind=cfg.backend,
            progress=progress,
        )
    return TextToSQL(
        backend,
        retriever=retriever,
        generation=cfg.generation,
        max_attempts=cfg.max_attempts,
        timeout_s=cfg.timeout_s,
        max_rows=cfg.max_rows,
    )
