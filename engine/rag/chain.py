"""The engine as a LangChain ``Runnable``: retrieval with its sources, then the checked SQL
and its rows.

For LangChain users who want the workbench's answers inside their own chains::

    from engine.factory import engine_from_config
    from engine.config import EngineConfig
    from engine.rag.chain import build_sql_chain

    chain = build_sql_chain(engine_from_config(EngineConfig()))
    out = chain.invoke({"question": "How many customers are there?", "db_path": "shop.sqlite"})
    out["source_documents"]      # retrieved LangChain Documents, metadata["score"] set
    out["answer"]["rows"]        # the checked, executed answer (Answer.to_dict())
    out["answer"]["explanation"] # what the SQL does, in Markdown bullets

A follow-up passes ``"history"``: earlier ``(question, sql)`` turns; ``out["answer"]
["understood"]`` is then the standalone question it was rewritten into.

The answer step is :meth:`engine.pipeline.TextToSQL.ask_batch`, the same loop the chat and
evaluation run (checking, execution, repair); ``chain.batch([...])`` answers all inputs in
one ``ask_batch`` call. Why an LCEL sequence and not ``RetrievalQA``: that class is
deprecated in LangChain 1.x, and our "stuff the documents" step is the engine's own prompt
builder (schema linking, token budget), not a text template.

This module imports LangChain at the top: import it only where it is needed.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from engine.context import Context
from engine.db import open_database
from engine.followup import retrieval_query
from engine.pipeline import Request, TextToSQL

log = logging.getLogger(__name__)
_DB = "_database"  # the retrieval step's opened database, handed to the answer step


class _AnswerStep(Runnable[dict, dict]):
    """Inputs with ``context`` -> the same plus ``answer``, through ``TextToSQL.ask_batch``."""

    def __init__(self, engine: TextToSQL) -> None:
        self.engine = engine

    def invoke(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> dict:
        return self.batch([input], config)[0]

    def batch(
        self,
        inputs: list[dict],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[dict]:
        requests = [
            Request(x["question"], x.get(_DB, x["db_path"]), x.get("history"), x.get("context"))
            for x in inputs
        ]
        answers = self.engine.ask_batch(requests)
        return [
            {**{k: v for k, v in x.items() if k != _DB}, "answer": a.to_dict()}
            for x, a in zip(inputs, answers, strict=True)
        ]


def build_sql_chain(engine: TextToSQL) -> Runnable:
    """``{"question", "db_path"[, "history"]}`` -> the same plus ``context`` (what the prompt
    shows), ``source_documents`` (retrieved documents with scores; empty without a RAG
    retriever) and ``answer`` (:meth:`engine.pipeline.Answer.to_dict`)."""

    def retrieve(inputs: dict) -> dict:
        query = retrieval_query(inputs["question"], inputs.get("history"))
        retrieve_docs = getattr(engine.retriever, "retrieve", None)
        try:
            db = open_database(inputs["db_path"])
            schema = db.read_schema()
        except Exception:  # the answer step reports an unreadable database in one line
            return {**inputs, "context": None, "source_documents": []}
        inputs = {**inputs, _DB: db}
        if retrieve_docs is None:
            context: Context = engine.context(query, db, schema)
            return {**inputs, "context": context, "source_documents": []}
        try:
            found = retrieve_docs(
                query, db, schema, engine.prompt_budget(), engine.backend.count_tokens
            )
        except Exception as err:  # as RagRetriever.context does: answer from the whole schema
            log.warning("Retrieval unavailable, using the whole schema: %s", err)
            return {**inputs, "context": Context(schema.ddl()), "source_documents": []}
        return {**inputs, "context": found.context, "source_documents": found.documents}

    return (RunnableLambda(retrieve) | _AnswerStep(engine)).with_config(run_name="text2sql_chain")
