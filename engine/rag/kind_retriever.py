"""The LangChain retriever over one database's Chroma collection, kind by kind.

This module imports LangChain at the top: import it only where it is needed.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict


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
