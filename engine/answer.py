"""What the answer loop takes and gives: a :class:`Request` and its :class:`Answer`.

:class:`engine.pipeline.TextToSQL` answers requests; the chat, the named API, the CLI,
evaluation and the LangChain chain read answers. Kept apart from the loop so that the
modules around it (engine.conversation) can name them without importing it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.context import Context, Source
from engine.db import Database, DbRef, QueryResult

History = list[tuple[str, str]]  # earlier (question, SQL) turns of a conversation


@dataclass
class Request:
    """One question for :meth:`TextToSQL.ask_batch`.

    ``history``: earlier (question, SQL) turns of a conversation. ``context``: retrieval
    already done by the caller (the LangChain chain); None lets the engine's retriever do it.
    ``db_path``: a :class:`engine.db.Database`, or a SQLite/DuckDB file or database URL
    (opened once, when the batch starts).
    """

    question: str
    db_path: DbRef | Database
    history: History | None = None
    context: Context | None = None


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
    candidates: int = 0  # answers drawn in the last attempt
    votes: int = 0  # of those, how many returned the same rows as this one
    # A follow-up: the standalone question it was rewritten into (None: not rewritten) and
    # the way that answered it (engine.conversation; None: answered as a question alone).
    understood: str | None = None
    way: str | None = None
    explanation: str = ""  # what the SQL does, in words, from its syntax tree (engine.explain)
    # The model's mean token log-probability (engine.backends.base.Scored; None: unknown) of
    # this answer, and of the first attempt's first answer (greedy unless temperature > 0),
    # served or not: what the confidence gate (generation.vote_below) reads.
    confidence: float | None = None
    greedy_confidence: float | None = None

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


def rows_key(rows: list) -> tuple:
    """What two answers must share to agree: their rows, in any order."""
    return tuple(sorted(repr(tuple(row)) for row in rows))
