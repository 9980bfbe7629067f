"""What the MCP server offers, without the protocol: :class:`Workbench` lists, describes and
queries the local user's databases and answers questions about them with the engine's own
answer loop. :mod:`engine.mcp_server` puts these methods on the wire; tests call them too.

A client reaches only databases the server lists (:func:`engine.catalog.resolve_database`):
the bundled samples, the uploads and the saved connections of the local user. A file path or
URL from the client is refused, never opened. SQL runs read-only under the same guard, time
limit, memory cap and row cap as the app and the CLI (:func:`engine.db.run_readonly`).
``save_example`` writes the user's example file of a database (engine.rag.saved_pairs), never
the database. Every refusal is :class:`ToolRefused` with one readable line.

What it does not protect against: whoever starts the server chooses its data folder and its
model, and a client may read every table of every listed database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.catalog import UnknownDatabase, database_choices, resolve_database
from engine.config import EngineConfig
from engine.conversation import HistoryError, parse_history
from engine.db import DatabaseError, open_database, run_readonly
from engine.paths import data_dir

log = logging.getLogger(__name__)
SAMPLE_VALUES = 3  # per column, in describe_database


class ToolRefused(Exception):
    """A tool call that cannot be served; the message is one line for the client."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class Workbench:
    """The tools over one engine configuration and one user's data folder (``root``; None:
    the local user's, :func:`engine.paths.data_dir`). The model loads at the first question
    (or in the background after :meth:`warm_up`); questions are answered one at a time."""

    def __init__(
        self,
        cfg: EngineConfig,
        root: Path | None = None,
        *,
        allow_save: bool = False,
        engine_factory: Callable[[EngineConfig], Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.root = root
        self.allow_save = allow_save
        self._factory = engine_factory or _build_engine
        self._engine: Any = None
        self._lock = threading.Lock()  # one model, one question at a time

    def _root(self) -> Path:
        return self.root if self.root is not None else data_dir()

    def _database(self, name: str) -> tuple[str, Path | str]:
        try:
            return resolve_database(name, self._root())
        except UnknownDatabase as err:
            raise ToolRefused(str(err)) from None

    def list_databases(self) -> list[str]:
        """The names the other tools accept: samples, uploads, workspaces, saved connections."""
        return list(database_choices(self._root()))

    def describe_database(self, database: str) -> dict[str, Any]:
        """Tables, columns (type, primary key, not null), foreign keys, row counts and a few
        stored values per column."""
        label, ref = self._database(database)
        try:
            db = open_database(ref)
            schema = db.read_schema()
            samples = db.sample_values(schema, SAMPLE_VALUES)
        except DatabaseError as err:
            raise ToolRefused(f"{label}: {err}") from None
        tables = []
        for table in schema.tables.values():
            sample = samples.get(table.name)
            values = sample.values if sample else {}
            tables.append(
                {
                    "name": table.name,
                    "rows": sample.rows if sample else None,
                    "columns": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "primary_key": c.primary_key,
                            "not_null": c.not_null,
                            "sample_values": list(values.get(c.name, ([], False))[0]),
                        }
                        for c in table.columns
                    ],
                    "foreign_keys": [
                        {"column": fk.column, "references": _reference(fk)}
                        for fk in table.foreign_keys
                    ],
                }
            )
        return {"database": label, "dialect": schema.dialect, "tables": tables}

    def run_sql(self, sql: str, database: str) -> dict[str, Any]:
        """One read-only statement: columns, rows (up to the row cap), truncated."""
        label, ref = self._database(database)
        if not (sql or "").strip():
            raise ToolRefused("There is no SQL to run.")
        result = run_readonly(ref, sql, timeout_s=self.cfg.timeout_s, max_rows=self.cfg.max_rows)
        if not result.ok:
            raise ToolRefused(f"{label}: {result.error}")
        return {
            "database": label,
            "sql": sql,
            **result.to_dict(),
            "truncated": bool(result.truncated),
        }

    def ask(self, question: str, database: str, history: Any = None) -> dict[str, Any]:
        """The engine's answer: SQL, columns, rows (capped; ``truncated``), error (None when
        it ran), attempts, how a follow-up was understood and what the SQL does."""
        question = (question or "").strip()
        if not question:
            raise ToolRefused("Please give a question.")
        label, ref = self._database(database)
        try:
            turns = parse_history(history)
        except HistoryError as err:
            raise ToolRefused(str(err)) from None
        with self._lock:
            engine = self._ready_engine()
            _prepare(engine, label, ref)
            answer = engine.ask(question, ref, turns)
        d = answer.to_dict()
        keys = ("question", "sql", "columns", "rows", "error", "truncated", "attempts")
        return {"database": label, **{k: d[k] for k in keys},
                "understood": d["understood"], "explanation": d["explanation"]}  # fmt: skip

    def save_example(self, question: str, sql: str, database: str) -> dict[str, Any]:
        """Keep a question and its SQL as a solved example of the database (its SQL must run);
        similar questions retrieve it from then on."""
        if not self.allow_save:
            raise ToolRefused("Saving examples is off: start the server with --allow-save.")
        # deferred: the saved pairs load LangChain (0.4 s), only for this tool
        from engine.rag.documents import RagInputError
        from engine.rag.embeddings import EmbedderError
        from engine.rag.saved_pairs import PairError, SavedPairs
        from engine.rag.store import StoreError

        label, ref = self._database(database)
        examples = SavedPairs(self.cfg.rag, self._root(), timeout_s=self.cfg.timeout_s)
        try:
            saved = examples.add(ref, question, sql)
        except (PairError, RagInputError, StoreError, EmbedderError, DatabaseError) as err:
            raise ToolRefused(f"Not saved: {err}") from None
        return {
            "database": label,
            "id": saved.pair.id,
            "question": saved.pair.question,
            "sql": saved.pair.query,
            "replaced": bool(saved.replaced),
            "indexed": saved.indexed,
        }

    def warm_up(self) -> threading.Thread:
        """Load the model in the background, so the first question need not wait for it."""

        def work() -> None:
            try:
                with self._lock:
                    self._ready_engine()
            except Exception as err:  # the first question reports it
                log.warning("The model could not be loaded yet: %s", err)

        thread = threading.Thread(target=work, name="mcp-warm-up", daemon=True)
        thread.start()
        return thread

    def _ready_engine(self) -> Any:
        if self._engine is None:
            try:
                self._engine = self._factory(self.cfg)
            except Exception as err:
                raise ToolRefused(f"Cannot load the model: {err}") from err
        return self._engine


def _build_engine(cfg: EngineConfig) -> Any:
    from engine.factory import engine_from_config  # deferred: the model's modules

    return engine_from_config(cfg, progress=logging.getLogger("engine").info)


def _prepare(engine: Any, label: str, ref: Path | str) -> None:
    """Index the database if it has no index yet (as ``python -m engine ask`` does)."""
    if engine.retriever is None or not hasattr(engine.retriever, "prepare"):
        return
    # deferred: the RAG modules load only with a retriever
    from engine.rag.documents import RagInputError
    from engine.rag.embeddings import EmbedderError
    from engine.rag.store import StoreError

    try:
        engine.retriever.prepare(ref)
    except (StoreError, EmbedderError, RagInputError, DatabaseError) as err:
        raise ToolRefused(f"{label} cannot be searched: {err}") from None


def _reference(fk: Any) -> str:
    return f"{fk.ref_table}.{fk.ref_column}" if fk.ref_column else fk.ref_table
