"""What retrieval hands the answer loop: the :class:`Retriever` protocol and its data types.

:class:`engine.pipeline.TextToSQL` asks a retriever for a :class:`Context` per question;
:class:`engine.rag.retriever.RagRetriever` is the Chroma-backed implementation. Keeping the
types here lets both sides import them without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from engine.schema import Schema

if TYPE_CHECKING:
    from engine.db import Database


@dataclass
class Source:
    """One retrieved document as the user sees it under an answer."""

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
    """Chooses what of a database goes into the prompt.

    Must not raise for a question: when it cannot retrieve, it returns the whole schema.
    """

    def context(
        self,
        question: str,
        db: Database,
        schema: Schema,
        budget_tokens: int,
        count_tokens: Callable[[str], int],
        draft: str | None = None,
    ) -> Context: ...
