"""The LangChain pieces: a kind-aware scored retriever, an LLM class over the engine's
backend, and the retrieval chain that ties them together.

Why an ``LLM`` (text in, text out) and not a chat model: the engine's prompt format lives in
``engine.prompt`` and is shared with training; the backend renders messages with the
tokenizer's own chat template and generates from that text. A ``BaseChatModel`` would need a
second conversion from LangChain messages to the same template for no gain.

Why an LCEL chain and not ``RetrievalQA``: ``RetrievalQA`` is deprecated in LangChain 1.x
(moved to ``langchain-classic``); its documented replacement, ``create_retrieval_chain``, is
itself ``RunnablePassthrough.assign(context=retriever).assign(answer=...)``. We build that
shape directly with ``langchain-core`` runnables, because our "stuff the documents" step is
the engine's own prompt builder (schema linking and token budget), not a text template.
``create_agent`` with a retrieval tool needs a tool-calling model, which a 0.5B SQL model
is not.

This module imports LangChain at the top: import it only where it is needed.
"""

from __future__ import annotations

from operator import itemgetter
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.llms import LLM
from langchain_core.outputs import Generation, LLMResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough
from pydantic import ConfigDict

from engine.generate import GenerationConfig


class KindRetriever(BaseRetriever):
    """Top ``k`` documents of each kind from one database's collection, scores attached.

    The score is the store's relevance score; with the cosine collections this project
    creates it is the cosine similarity of query and document (1 - cosine distance).
    ``invoke`` drops hits below their kind's threshold (``kind_thresholds``, else
    ``score_threshold``); :meth:`search` keeps them all.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    vectorstore: Any
    k_by_kind: dict[str, int]
    score_threshold: float = 0.0
    kind_thresholds: dict[str, float] = {}

    def search(self, query: str) -> list[Document]:
        """Every kind's top-k, best first within a kind, ``metadata['score']`` set."""
        vector = self.vectorstore.embeddings.embed_query(query)
        relevance = self.vectorstore._select_relevance_score_fn()
        out: list[Document] = []
        for kind, k in self.k_by_kind.items():
            if k <= 0:
                continue
            hits = self.vectorstore.similarity_search_by_vector_with_relevance_scores(
                vector, k=k, filter={"kind": kind}
            )
            for doc, distance in hits:  # langchain-chroma returns distances here
                doc.metadata["score"] = round(float(relevance(distance)), 4)
                out.append(doc)
        return out

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [d for d in self.search(query) if d.metadata["score"] >= self._threshold(d)]

    def _threshold(self, doc: Document) -> float:
        return self.kind_thresholds.get(doc.metadata.get("kind", ""), self.score_threshold)


class EngineLLM(LLM):
    """A LangChain LLM over an ``engine.generate.Backend`` (prompts are already rendered)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backend: Any
    generation: GenerationConfig | None = None

    @property
    def _llm_type(self) -> str:
        return "text2sql-engine"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        gen = self.generation or GenerationConfig()
        return {"backend": self.backend.name, **gen.to_dict()}

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return self._texts([prompt], stop)[0]

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        # One batched call instead of LLM's default prompt-by-prompt loop.
        return LLMResult(generations=[[Generation(text=t)] for t in self._texts(prompts, stop)])

    def _texts(self, prompts: list[str], stop: list[str] | None) -> list[str]:
        texts = self.backend.generate(prompts, self.generation or GenerationConfig())
        return [_cut(t, stop) for t in texts]


def _cut(text: str, stop: list[str] | None) -> str:
    for s in stop or []:
        text = text.split(s, 1)[0]
    return text


def build_sql_chain(backend: Any, rag: Any, generation: GenerationConfig | None = None) -> Runnable:
    """``{"question", "db_path"}`` -> the same plus ``context``, ``source_documents``,
    ``prompt``, ``answer`` (model text) and ``sql`` (extracted, or None).

    ``rag`` is an :class:`engine.rag.retriever.RagRetriever`. The chain does one generation;
    checking, execution and self-correction are :class:`engine.pipeline.TextToSQL`'s job,
    which uses the same retriever.
    """
    from engine.pipeline import TextToSQL
    from engine.prompt import build_messages
    from engine.schema import read_schema
    from engine.sql_check import extract_sql

    engine = TextToSQL(backend, generation=generation)
    llm = EngineLLM(backend=backend, generation=engine.generation)

    def retrieve(inputs: dict[str, Any]) -> Any:
        db = Path(inputs["db_path"])
        schema = read_schema(db)
        return rag.retrieve(
            inputs["question"], db, schema, engine.prompt_budget(), backend.count_tokens
        )

    def render(inputs: dict[str, Any]) -> str:
        ctx = inputs["context"]
        messages = build_messages(
            inputs["question"], ctx.schema_text, ctx.notes, fmt=backend.prompt_format
        )
        return backend.render(messages)

    return (
        RunnablePassthrough.assign(retrieval=RunnableLambda(retrieve))
        .assign(
            context=lambda x: x["retrieval"].context,
            source_documents=lambda x: x["retrieval"].documents,
        )
        .assign(prompt=RunnableLambda(render))
        .assign(answer=itemgetter("prompt") | llm)
        .assign(sql=lambda x: extract_sql(x["answer"]))
        .with_config(run_name="text2sql_retrieval_chain")
    )
