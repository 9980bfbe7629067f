"""Rebuild engine/rag/pool/examples.jsonl, the solved questions offered to every database.

    PYTHONPATH=. .venv/bin/python scripts/build_example_pool.py [--spider ../shared/data/spider_train]

Takes the Spider-train pairs (Yu et al., EMNLP 2018, CC BY-SA 4.0) of every database except
those held out for measuring (training.slices: tune, final and world, the slices
bench/ablation.py reports on, so reported numbers come from databases the pool has never
seen), and the sample
databases' pairs. Each pair keeps its database id, its question masked with its own
database's schema words (engine.rag.pool.mask_question) and that schema's fingerprint. Pairs
whose SQL fails on their database are left out. The output is sorted and byte-reproducible.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.db import (
    read_schema,  # noqa: E402
    run_readonly,  # noqa: E402
)
from engine.paths import SAMPLE_DBS_DIR, sample_databases  # noqa: E402
from engine.rag.index import schema_fingerprint  # noqa: E402
from engine.rag.pool import POOL_FILE, PoolExample, mask_question, schema_words, write_pool  # noqa: E402
from training.slices import held_out_databases  # noqa: E402

SPIDER = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "spider_train"


def pairs(spider: Path) -> list[tuple[str, Path, str, str]]:
    """(db_id, database file, question, sql) of Spider train and the sample databases."""
    out = []
    for row in json.loads((spider / "train.json").read_text()):
        db = spider / "database" / row["db_id"] / f"{row['db_id']}.sqlite"
        out.append((row["db_id"], db, row["question"], row["query"]))
    for name, db in sample_databases().items():
        for row in json.loads((SAMPLE_DBS_DIR / "pairs" / f"{name}.json").read_text()):
            out.append((name, db, row["question"], row["query"]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--spider", default=str(SPIDER))
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(POOL_FILE))
    args = p.parse_args(argv)
    spider = Path(args.spider)
    if not (spider / "train.json").is_file():
        print(f"No Spider data at {spider} (see ../shared/data/README.md)", file=sys.stderr)
        return 2
    excluded = held_out_databases(spider, args.holdout, args.seed)
    schemas: dict[Path, tuple[set[str], str]] = {}
    examples, failed = [], 0
    for db_id, db, question, sql in pairs(spider):
        if db_id in excluded or not db.is_file():
            continue
        if db not in schemas:
            schema = read_schema(db)
            schemas[db] = (schema_words(schema), schema_fingerprint(schema))
        if not run_readonly(db, sql, timeout_s=5.0, max_rows=1).ok:
            failed += 1
            continue
        words, sha = schemas[db]
        sql = " ".join(sql.split()).rstrip(";")
        examples.append(
            PoolExample(db_id, question.strip(), sql, mask_question(question, words), sha)
        )
    examples.sort(key=lambda e: (e.db_id, e.question, e.sql))
    write_pool(examples, Path(args.out))
    print(
        f"Wrote {len(examples)} pairs of {len(schemas)} databases to {args.out} "
        f"({len(excluded)} held-out databases left out, {failed} pairs whose SQL failed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
