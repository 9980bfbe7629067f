"""RAG index build and query speed at about 10,000 chunks (CPU, bundled MiniLM, Chroma).

Documents come from Spider's training split (read from ../shared/data, never copied): every
table of its 138 databases as a table document (with sample values), every question/SQL
pair as an example, and documentation-like chunks (per database: its tables described in
words and its solved questions in prose, split by the indexer's own splitter) to pad the
total to ``--chunks``.
All of it goes into one collection, as one big database would.

Prints one JSON line: build chunks/s (embedding + Chroma writes), query latency p50/p95 for
a full retrieval (embed the question, top-k of each kind) and for the Chroma search alone.

    PYTHONPATH=. .venv/bin/python bench/retrieval.py [--chunks 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SPIDER = REPO.parent / "shared" / "data" / "spider_train"


def build_documents(target: int, rng: random.Random) -> tuple[list, list[str]]:
    from langchain_core.documents import Document

    from engine.db import read_schema
    from engine.rag.documents import doc_documents, table_documents
    from engine.rag.embeddings import embedder_tokenizer, get_embeddings

    train = json.loads((SPIDER / "train.json").read_text())
    docs = []
    for path in sorted((SPIDER / "database").glob("*/*.sqlite")):
        for d in table_documents(path, read_schema(path)):
            d.metadata["db"] = path.stem
            docs.append(d)
    n_tables = len(docs)
    for row in train:
        meta = {"kind": "example", "sql": row["query"], "db": row["db_id"]}
        docs.append(Document(page_content=row["question"], metadata=meta))
    # Documentation-like text per database: its tables described in words, then its
    # solved questions with their SQL, in paragraphs, as a team's data notes might read.
    notes = defaultdict(list)
    for d in docs[:n_tables]:
        notes[d.metadata["db"]].append(d.page_content.split("\nCREATE TABLE")[0])
    for row in train:
        notes[row["db_id"]].append(f"To answer '{row['question']}' we run {row['query']}.")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for db, lines in notes.items():
            paras = ["\n".join(lines[i : i + 4]) for i in range(0, len(lines), 4)]
            (folder / f"{db}.md").write_text(f"# Notes on {db}\n\n" + "\n\n".join(paras))
        tok = embedder_tokenizer(get_embeddings())
        chunks, _, _ = doc_documents(folder, tok, chunk_tokens=200, overlap=30)
    rng.shuffle(chunks)
    docs += chunks[: max(0, target - len(docs))]
    print(
        f"{n_tables} tables, {len(train)} examples, {len(docs) - n_tables - len(train)} chunks",
        file=sys.stderr,
    )
    return docs, [row["question"] for row in rng.sample(train, 400)]


def pct(xs: list[float], q: int) -> float:
    return round(statistics.quantiles(xs, n=100)[q - 1] * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    if not SPIDER.is_dir():
        sys.exit(f"Spider data not found at {SPIDER}")

    import torch

    from engine.rag.config import RagConfig
    from engine.rag.embeddings import get_embeddings
    from engine.rag.kind_retriever import KindRetriever
    from engine.rag.store import VectorStore

    rng = random.Random(0)
    embeddings = get_embeddings()
    embeddings.embed_query("warm up")
    docs, questions = build_documents(args.chunks, rng)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RagConfig(store_dir=str(Path(tmp) / "chroma"))
        store = VectorStore(cfg)
        fake_db = Path(tmp) / "spider_all.sqlite"
        started = time.perf_counter()
        store.replace(fake_db, docs, embeddings, {"embedder": cfg.embedder})
        build_s = time.perf_counter() - started

        vs = store.open(fake_db, embeddings)
        retriever = KindRetriever(vectorstore=vs, k_by_kind=cfg.k_by_kind)
        full, search_only = [], []
        for q in questions[: args.queries]:
            vector = embeddings.embed_query(q)
            t1 = time.perf_counter()
            for kind, k in cfg.k_by_kind.items():
                vs.similarity_search_by_vector_with_relevance_scores(
                    vector, k=k, filter={"kind": kind}
                )
            search_only.append(time.perf_counter() - t1)
            t2 = time.perf_counter()
            retriever.search(q)
            full.append(time.perf_counter() - t2)
        count = vs._collection.count()

    result = {
        "bench": "rag_retrieval",
        "chunks": count,
        "build_s": round(build_s, 1),
        "build_chunks_per_s": round(count / build_s, 1),
        "queries": len(full),
        "query_p50_ms": pct(full, 50),
        "query_p95_ms": pct(full, 95),
        "search_only_p50_ms": pct(search_only, 50),
        "search_only_p95_ms": pct(search_only, 95),
        "k": cfg.k_by_kind,
        "embedder": cfg.embedder,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
