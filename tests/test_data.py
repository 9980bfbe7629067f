"""training.data: every source format, skipped rows, seeded sampling, database-grouped split."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from engine.prompt import build_training_example
from training.data import (
    DataError,
    Example,
    load_examples,
    split_by_database,
    to_prompt_completion,
)

DDL_A = "CREATE TABLE a (x INT)"
DDL_B = "CREATE TABLE b (y TEXT)"


def _spider_folder(root: Path) -> Path:
    for db_id in ("one", "two"):
        folder = root / "database" / db_id
        folder.mkdir(parents=True)
        conn = sqlite3.connect(folder / f"{db_id}.sqlite")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.commit()
        conn.close()
    rows = [
        {"db_id": "one", "question": "How many?", "query": "SELECT count(*) FROM t"},
        {"db_id": "two", "question": "Names?", "query": "SELECT name FROM t"},
        {"db_id": "gone", "question": "Lost?", "query": "SELECT 1"},
        {"db_id": "one", "question": "Broken?", "query": "SELECT FROM WHERE ((("},
        {"db_id": "two", "question": "", "query": "SELECT 1"},
    ]
    (root / "train.json").write_text(json.dumps(rows))
    (root / "dev.json").write_text(json.dumps(rows[:1]))
    return root


def test_spider_folder_skips_and_counts_bad_rows(tmp_path: Path) -> None:
    report = load_examples(_spider_folder(tmp_path))
    assert report.kind == "spider"
    assert [e.question for e in report.examples] == ["How many?", "Names?"]
    assert report.skipped == {"database missing": 1, "sql does not parse": 1, "missing field": 1}
    ex = report.examples[0]
    assert ex.db_id == "one" and ex.db_path is not None and ex.db_path.is_file()
    assert ex.schema.startswith("CREATE TABLE t (") and ex.ddl is None
    assert len(load_examples(tmp_path, split="dev").examples) == 1
    with pytest.raises(DataError, match="No split 'test'"):
        load_examples(tmp_path, split="test")


def _one_split_spider_folder(root: Path, *splits: str) -> Path:
    """A Spider-shaped folder (database/, tables.json) holding only the given split files."""
    folder = root / "database" / "one"
    folder.mkdir(parents=True)
    conn = sqlite3.connect(folder / "one.sqlite")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    (root / "tables.json").write_text(json.dumps([{"db_id": "one", "table_names": ["t"]}]))
    for split in splits:
        row = {"db_id": "one", "question": f"From {split}?", "query": "SELECT name FROM t"}
        (root / f"{split}.json").write_text(json.dumps([row]))
    return root


def test_spider_folder_with_only_dev_loads_without_a_split(tmp_path: Path) -> None:
    report = load_examples(_one_split_spider_folder(tmp_path, "dev"))
    assert report.kind == "spider"
    assert [e.question for e in report.examples] == ["From dev?"]
    assert report.examples[0].db_path == tmp_path / "database" / "one" / "one.sqlite"
    assert [e.question for e in load_examples(tmp_path, split="dev").examples] == ["From dev?"]
    with pytest.raises(DataError, match=r"No split 'train' .*\(found: dev\)"):
        load_examples(tmp_path, split="train")


def test_spider_folder_with_several_splits_and_no_train_asks_for_one(tmp_path: Path) -> None:
    _one_split_spider_folder(tmp_path, "dev", "test")
    with pytest.raises(DataError, match="choose one of dev, test$"):
        load_examples(tmp_path)
    assert [e.question for e in load_examples(tmp_path, split="test").examples] == ["From test?"]


def test_spider_folder_prefers_train_when_there_are_several(tmp_path: Path) -> None:
    _one_split_spider_folder(tmp_path, "dev", "train")
    assert [e.question for e in load_examples(tmp_path).examples] == ["From train?"]


def test_spider_folder_without_split_files_is_a_clear_error(tmp_path: Path) -> None:
    _one_split_spider_folder(tmp_path)
    with pytest.raises(DataError, match="No split file"):
        load_examples(tmp_path)


def test_seed_files_json_jsonl_csv(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Count a", "input": DDL_A, "response": "SELECT count(*) FROM a"},
        {"instruction": "No answer", "input": DDL_A, "response": ""},
    ]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "d.csv").write_text(
        "instruction,input,response\nCount a,CREATE TABLE a (x INT),SELECT count(*) FROM a\n"
    )
    for name in ("d.json", "d.jsonl", "d.csv"):
        report = load_examples(tmp_path / name)
        assert report.kind == "seed"
        assert report.examples == [
            Example("Count a", "SELECT count(*) FROM a", DDL_A, ddl=DDL_A)
        ], name
    assert load_examples(tmp_path / "d.json").skipped == {"missing field": 1}


def test_seed_saved_dataset_split(tmp_path: Path) -> None:
    import datasets

    row = {"instruction": "Count a", "input": DDL_A, "response": "SELECT count(*) FROM a"}
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list([row] * 3), "test": datasets.Dataset.from_list([row])}
    ).save_to_disk(str(tmp_path / "ds"))
    assert len(load_examples(tmp_path / "ds").examples) == 3
    assert len(load_examples(tmp_path / "ds", split="test").examples) == 1


def test_missing_local_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_examples(tmp_path / "nope.json")


def test_sample_pairs_by_name_and_by_file() -> None:
    report = load_examples("samples")
    assert report.kind == "pairs" and not report.skipped
    assert {e.db_id for e in report.examples} >= {"shop", "hr", "music"}
    shop = load_examples("sample_dbs/pairs/shop.json")
    assert {e.db_id for e in shop.examples} == {"shop"}
    assert shop.examples[0].db_path.name == "shop.sqlite"


def test_limit_is_a_seeded_sample_not_the_head() -> None:
    full = load_examples("samples").examples
    a = load_examples("samples", limit=20, seed=1).examples
    b = load_examples("samples", limit=20, seed=1).examples
    c = load_examples("samples", limit=20, seed=2).examples
    assert len(a) == 20 and a == b and a != c
    assert a != full[:20]
    assert len({e.db_id for e in a}) > 1


def test_split_by_database_never_shares_a_schema() -> None:
    examples = [Example(f"q{i}", "SELECT 1", "s", db_id=f"db{i % 7}") for i in range(70)]
    train, val = split_by_database(examples, val_fraction=0.2, seed=3)
    assert len(train) + len(val) == 70 and val
    assert not {e.db_id for e in train} & {e.db_id for e in val}
    assert split_by_database(examples, 0.2, seed=3) == (train, val)
    seed_rows = [Example(f"q{i}", "SELECT 1", d, ddl=d) for i, d in enumerate([DDL_A, DDL_B] * 5)]
    train, val = split_by_database(seed_rows, val_fraction=0.3)
    assert {e.schema for e in train}.isdisjoint({e.schema for e in val}) and train and val


def test_to_prompt_completion_uses_the_engine_format() -> None:
    ex = Example("How many?", "SELECT count(*) FROM a", DDL_A)
    assert to_prompt_completion(ex) == build_training_example(
        "How many?", DDL_A, "SELECT count(*) FROM a"
    )


def test_spider_shared_data_loads(shared_data: Path) -> None:
    report = load_examples(shared_data / "spider_train", limit=50, seed=0)
    assert report.kind == "spider" and len(report.examples) == 50
    assert len({e.db_id for e in report.examples}) > 10


def test_the_held_out_slices_are_disjoint_and_the_world_slice_is_outside_the_split(shared_data):
    from training.data import load_examples, split_by_database
    from training.slices import WORLD, held_out_databases, held_out_slices

    spider = shared_data / "spider_train"
    slices = held_out_slices(spider)
    tune, final, world = (set(slices[k]) for k in ("tune", "final", "world"))
    assert not (tune & final) and not (tune & world) and not (final & world)
    assert world == set(WORLD) and len(world) >= 15
    train = split_by_database(load_examples(spider).examples, 0.2, 0)[0]
    assert {e.db_id for e in train} >= world  # world is never in the split's held-out part
    assert held_out_databases(spider) == tune | final | world
