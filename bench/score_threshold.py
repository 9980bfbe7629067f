"""Where should the RAG score threshold sit? Scores of relevant vs. irrelevant documents.

Indexes databases into a temporary Chroma store with the real embedder, asks each question,
and reads the relevance scores the store reports (cosine collections: score = 1 - cosine
distance = cosine similarity of the normalised MiniLM vectors).

- tables: a table is relevant when the gold SQL reads it (sqlglot), irrelevant otherwise;
- examples: for a question of database A, the examples of A that read the same tables
  (itself excluded) are relevant; every example of another database is irrelevant.

Prints one JSON line: score quantiles per group, and for each candidate threshold the share
of relevant hits kept and irrelevant hits let through.

    PYTHONPATH=. .venv/bin/python bench/score_threshold.py [--spider-dbs 20]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SPIDER = REPO.parent / "shared" / "data" / "spider_train"
THRESHOLDS = [0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8]


def gold_tables(sql: str) -> set[str]:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:
        return set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name.lower() for t in tree.find_all(exp.Table) if t.name.lower() not in ctes}


def quantiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    qs = statistics.quantiles(xs, n=20) if len(xs) > 1 else [xs[0]] * 19
    return {
        "n": len(xs),
        "p5": round(qs[0], 3),
        "p25": round(qs[4], 3),
        "p50": round(qs[9], 3),
        "p75": round(qs[14], 3),
        "p95": round(qs[18], 3),
    }


def sweep(relevant: list[float], irrelevant: list[float]) -> dict[str, dict[str, float]]:
    out = {}
    for t in THRESHOLDS:
        kept = sum(s >= t for s in relevant) / max(1, len(relevant))
        leak = sum(s >= t for s in irrelevant) / max(1, len(irrelevant))
        out[str(t)] = {"relevant_kept": round(kept, 3), "irrelevant_passed": round(leak, 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spider-dbs", type=int, default=20, help="Spider databases (0: none)")
    parser.add_argument("--questions", type=int, default=8, help="questions per Spider db")
    args = parser.parse_args()

    from engine.paths import sample_databases, sample_pairs_file
    from engine.rag.config import RagConfig
    from engine.rag.index import index_database
    from engine.rag.retriever import RagRetriever

    rng = random.Random(0)
    dbs: list[tuple[str, Path, list[dict]]] = []
    for name, path in sample_databases().items():
        dbs.append(("sample", path, json.loads(sample_pairs_file(name).read_text())))
    if args.spider_dbs and SPIDER.is_dir():
        train = json.loads((SPIDER / "train.json").read_text())
        by_db = defaultdict(list)
        for row in train:
            by_db[row["db_id"]].append(row)
        names = sorted(n for n in by_db if (SPIDER / "database" / n / f"{n}.sqlite").is_file())
        for n in rng.sample(names, min(args.spider_dbs, len(names))):
            rows = rng.sample(by_db[n], min(args.questions, len(by_db[n])))
            dbs.append(("spider", SPIDER / "database" / n / f"{n}.sqlite", rows))

    scores: dict[str, list[float]] = defaultdict(list)
    top1 = defaultdict(int)
    with tempfile.TemporaryDirectory() as store:
        cfg = RagConfig(store_dir=store, k_tables=100, k_docs=0, k_examples=100)
        rag = RagRetriever(cfg)
        for _, path, _ in dbs:
            index_database(cfg, path)  # sample DBs get their pairs as examples; Spider: none
        samples = [(p, rows) for s, p, rows in dbs if s == "sample"]
        for source, path, rows in dbs:
            for row in rows:
                gold = gold_tables(row["query"])
                hits = rag.search(row["question"], path)
                tables = [h for h in hits if h.metadata["kind"] == "table"]
                for h in tables:
                    group = "relevant" if h.metadata["table"].lower() in gold else "irrelevant"
                    scores[f"{source}_table_{group}"].append(h.metadata["score"])
                if tables:
                    top1[source] += tables[0].metadata["table"].lower() in gold
                    top1[f"{source}_n"] += 1
                if source != "sample":
                    continue
                for h in hits:
                    if h.metadata["kind"] != "example" or h.page_content == row["question"]:
                        continue
                    if gold and gold_tables(h.metadata["sql"]) == gold:
                        scores["example_relevant"].append(h.metadata["score"])
                for other, _ in samples:  # another database's examples: never relevant
                    if other == path:
                        continue
                    for h in rag.search(row["question"], other):
                        if h.metadata["kind"] == "example":
                            scores["example_other_db"].append(h.metadata["score"])

    result = {
        "score": "cosine similarity (Chroma cosine space, relevance = 1 - distance)",
        "databases": {"sample": len(samples), "spider": len(dbs) - len(samples)},
        "top1_table_is_gold": {
            s: round(top1[s] / max(1, top1[f"{s}_n"]), 3) for s in ("sample", "spider")
        },
        "quantiles": {k: quantiles(v) for k, v in sorted(scores.items())},
        "tables_sample": sweep(scores["sample_table_relevant"], scores["sample_table_irrelevant"]),
        "tables_spider": sweep(scores["spider_table_relevant"], scores["spider_table_irrelevant"]),
        "examples": sweep(scores["example_relevant"], scores["example_other_db"]),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
