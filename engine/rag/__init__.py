"""Retrieval-augmented generation: a Chroma index per database and the retriever over it.

``index.index_database`` writes one collection per SQLite file (table docs with sample values,
the user's documentation chunks, validated question/SQL pairs); ``retriever.RagRetriever``
picks what goes into the prompt; ``chain`` holds the LangChain pieces (LLM class over the
engine's backend, the kind-aware retriever, the retrieval chain).

Importing this package is cheap: chromadb, LangChain and sentence-transformers are imported
by the functions that need them.
"""

from engine.rag.config import RagConfig

__all__ = ["RagConfig"]
