"""Training in the served format: a row's prompt is the engine's prompt for its question,
token for token, without the row's own pair; the adapter records the retrieval it learned."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from engine.config import ConfigError, EngineConfig, load_config
from engine.prompt import DEFAULT_FORMAT
from engine.rag.config import RagConfig
from tests.helpers import REPO, tiny_config

ZOO = [
    ("Which keeper works the morning shift?", "SELECT name FROM keepers WHERE shift = 'Morning'"),
    ("List every species kept at the zoo.", "SELECT DISTINCT species FROM animals"),
    ("Which keeper looks after the most zebras?",
     "SELECT k.name FROM keepers AS k JOIN animals AS a ON a.keeper_id = k.id "
     "WHERE a.species = 'Zebra' GROUP BY k.name ORDER BY count(*) DESC LIMIT 1"),
    ("Count the lions looked after by Bo.",
     "SELECT count(*) FROM animals AS a JOIN keepers AS k ON a.keeper_id = k.id "
     "WHERE k.name = 'Bo' AND a.species = 'Lion'"),
    ("What shifts do the keepers work?", "SELECT DISTINCT shift FROM keepers"),
]  # fmt: skip
FARM = [
    ("Which crops grow on more than ten acres?", "SELECT crop FROM fields WHERE acres > 10"),
    ("What brands of tractor does the farm own?", "SELECT DISTINCT brand FROM tractors"),
    ("Total acreage of the wheat fields?", "SELECT sum(acres) FROM fields WHERE crop = 'Wheat'"),
    ("Which tractor works the largest field?",
     "SELECT t.brand FROM tractors AS t JOIN fields AS f ON t.field_id = f.id "
     "ORDER BY f.acres DESC LIMIT 1"),
]  # fmt: skip


@pytest.fixture(scope="module")
def served_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small databases and a pairs file over both (Spider's row shape)."""
    folder = tmp_path_factory.mktemp("served")
    scripts = {
        "zoo": "CREATE TABLE keepers (id INTEGER PRIMARY KEY, name TEXT, shift TEXT);"
        "CREATE TABLE animals (id INTEGER PRIMARY KEY, species TEXT, keeper_id INTEGER "
        "REFERENCES keepers(id));"
        "INSERT INTO keepers VALUES (1,'Ann','Morning'),(2,'Bo','Evening');"
        "INSERT INTO animals VALUES (1,'Zebra',1),(2,'Lion',2),(3,'Zebra',2);",
        "farm": "CREATE TABLE fields (id INTEGER PRIMARY KEY, crop TEXT, acres REAL);"
        "CREATE TABLE tractors (id INTEGER PRIMARY KEY, brand TEXT, field_id INTEGER "
        "REFERENCES fields(id));"
        "INSERT INTO fields VALUES (1,'Wheat',12.5),(2,'Barley',8);"
        "INSERT INTO tractors VALUES (1,'Deere',1),(2,'Fendt',2);",
    }
    for name, script in scripts.items():
        con = sqlite3.connect(folder / f"{name}.sqlite")
        con.executescript(script)
        con.commit()
        con.close()
    rows = [{"db_id": "zoo", "question": q, "query": s} for q, s in ZOO]
    rows += [{"db_id": "farm", "question": q, "query": s} for q, s in FARM]
    path = folder / "pairs.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


def _renderer(cfg, tokenizer, examples, messages=None):
    from training.served_prompts import served_prompts

    return served_prompts(
        cfg,
        tokenizer,
        DEFAULT_FORMAT,
        examples,
        progress=messages.append if messages is not None else None,
    )


def _prompt_text(row: dict) -> str:
    return "\n".join(m["content"] for m in row["prompt"])


@pytest.mark.parametrize("pool", [0, 2], ids=["own-examples", "with-pool"])
def test_a_training_row_is_the_prompt_the_engine_serves_token_for_token(
    tiny_llama: Path, served_data: Path, tokenizer, tmp_path: Path, pool: int, small_pool: Path
) -> None:
    """What TRL trains on, up to the answer, is what the engine feeds the model for the same
    question on the same database with the same settings, had the row's pair never been
    saved for it."""
    from engine.backends.transformers_backend import TransformersBackend
    from engine.db import read_schema
    from engine.models import load_model
    from engine.pipeline import TextToSQL
    from engine.rag.index import index_database
    from engine.rag.retriever import POOL_HEADER, RagRetriever
    from training.data import load_examples
    from training.lora import load_base_model
    from training.train import build_trainer

    rag = RagConfig(k_examples=3, pool_examples=pool, score_threshold=-1.0)  # 3 own examples
    cfg = tiny_config(tiny_llama, served_data, tmp_path / "run", packing=False, max_length=2048,
                      val_fraction=0, rag=rag).for_hardware(False)  # fmt: skip
    examples = load_examples(served_data).examples
    prompts = _renderer(cfg, tokenizer, examples)
    trainer = build_trainer(cfg, load_base_model(cfg, str(tiny_llama)), tokenizer, examples, [],
                            DEFAULT_FORMAT, render=prompts.rows)  # fmt: skip
    assert len(trainer.train_dataset) == len(examples)  # every row fits: the order is kept
    i = next(k for k, e in enumerate(examples) if "zebras" in e.question)
    target = examples[i]
    trained = trainer.train_dataset[i]
    n_prompt = next(k for k, label in enumerate(trained["labels"]) if label != -100)

    # The engine as it serves: its own index of the database, without the row's pair.
    others = [{"question": e.question, "query": e.sql} for e in examples
              if e.db_id == target.db_id and e is not target]  # fmt: skip
    (tmp_path / "others.json").write_text(json.dumps(others))
    (tmp_path / "nothing_saved").mkdir()
    served_rag = dataclasses.replace(rag, store_dir=str(tmp_path / "served"))
    index_database(served_rag, target.db_path, examples=tmp_path / "others.json",
                   examples_root=tmp_path / "nothing_saved")  # fmt: skip
    backend = TransformersBackend(load_model(str(tiny_llama), device="cpu"))
    engine = TextToSQL(backend, retriever=RagRetriever(served_rag))
    messages, _ = engine.build_messages(
        target.question, target.db_path, read_schema(target.db_path)
    )
    served_ids = tokenizer(backend.render(messages), add_special_tokens=False)["input_ids"]

    assert prompts.row(target)["prompt"] == messages
    assert trained["input_ids"][:n_prompt] == served_ids
    text = backend.render(messages)
    assert "Values found in the columns:" in text and "Zebra" in text
    assert text.count("Q: ") == 3 + pool and (POOL_HEADER in text) == bool(pool)
    assert target.sql not in text and text.count(target.question) == 1


def test_a_rows_own_pair_never_appears_in_its_prompt(
    tiny_llama: Path, served_data: Path, tokenizer, tmp_path: Path, monkeypatch
) -> None:
    """Leakage rule for training: neither among the database's examples (every other pair of
    the database is shown here) nor from the pool (which holds the very same question under
    another database)."""
    import engine.rag.pool as pool_module
    from engine.db import read_schema
    from engine.rag.index import schema_fingerprint
    from training.data import load_examples

    examples = load_examples(served_data).examples
    zoo = next(e for e in examples if e.db_id == "zoo")
    twin = (zoo.question, "SELECT name FROM staff WHERE rota = 'Morning'")
    other = (
        "Which clown works the evening show?",
        "SELECT name FROM clowns WHERE show = 'Evening'",
    )
    pool_file = tmp_path / "pool.jsonl"
    pool_module.write_pool(
        [pool_module.PoolExample("circus", q, s, q, "circus") for q, s in (twin, other)], pool_file
    )
    pool = pool_module.ExamplePool(RagConfig().embedder, pool_file)
    monkeypatch.setattr(pool_module, "example_pool", lambda embedder: pool)
    assert schema_fingerprint(read_schema(zoo.db_path)) != "circus"

    # every example of the database passes (threshold -1), and both pool pairs would be shown
    rag = RagConfig(k_examples=10, pool_examples=2, score_threshold=-1.0)
    prompts = _renderer(tiny_config(tiny_llama, served_data, tmp_path / "run", rag=rag),
                        tokenizer, examples)  # fmt: skip
    for example in examples:
        text = _prompt_text(prompts.row(example))
        assert example.sql not in text, example.question
        assert text.count(example.question) == 1, example.question  # the task itself
        mates = [e for e in examples if e.db_id == example.db_id and e is not example]
        assert all(f"Q: {e.question}\nSQL: {e.sql}" in text for e in mates), example.question
        assert other[1] in text  # the pool is on
        assert (twin[1] in text) == (example is not zoo)  # the same question: never for itself


def test_each_database_is_indexed_once_and_reused(
    tiny_llama: Path, served_data: Path, tokenizer, tmp_path: Path
) -> None:
    from training.data import load_examples

    examples = load_examples(served_data).examples
    cfg = tiny_config(tiny_llama, served_data, tmp_path / "run")
    first, again, fewer = [], [], []
    store = _renderer(cfg, tokenizer, examples, first).store_dir
    assert store.parent == tmp_path / "run" / "vector_db" and store.is_dir()
    assert "2 databases" in first[0] and "0 already indexed" in first[0]
    assert any("Indexed 2/2" in m for m in first)
    assert _renderer(cfg, tokenizer, examples, again).store_dir == store
    assert "2 already indexed" in again[0] and len(again) == 1  # a resumed run re-indexes nothing
    # other pairs, another index: a database never shows pairs of another run's data
    assert _renderer(cfg, tokenizer, examples[1:], fewer).store_dir != store


def test_plain_schema_prompts_when_retrieval_is_off_or_there_is_no_database(
    tiny_llama: Path, served_data: Path, tokenizer, tmp_path: Path
) -> None:
    from training.data import Example, load_examples

    examples = load_examples(served_data).examples
    off = tiny_config(tiny_llama, served_data, tmp_path, rag=RagConfig(enabled=False))
    assert _renderer(off, tokenizer, examples) is None
    seed = [Example("How many?", "SELECT count(*) FROM t", "CREATE TABLE t (a INT)", ddl="x")]
    assert _renderer(tiny_config(tiny_llama, served_data, tmp_path), tokenizer, seed) is None


def test_a_tiny_run_on_served_rows_records_its_retrieval(
    tiny_llama: Path, served_data: Path, tmp_path: Path, caplog, small_pool: Path
) -> None:
    """The 3-step smoke run, on rows rendered as served; the adapter says how it was
    prompted, and the engine serving it so raises no warning (otherwise it does)."""
    from engine.factory import engine_from_config
    from engine.models import read_adapter_meta
    from training.train import run

    rag = RagConfig(k_examples=2, pool_examples=1)
    cfg = tiny_config(tiny_llama, served_data, tmp_path / "run", max_length=2048,
                      val_fraction=0.4, rag=rag)  # fmt: skip
    events: list = []
    adapter = run(cfg, events.append, progress_bar=False)
    meta = read_adapter_meta(adapter)
    assert meta["retrieval"] == rag.prompt_settings()
    assert meta["train_config"]["rag"]["pool_examples"] == 1
    assert "as the engine serves them" in (adapter / "README.md").read_text()
    assert any("as the engine serves them" in e.message for e in events if e.kind == "info")

    store = dataclasses.replace(rag, store_dir=str(tmp_path / "serving"))
    with caplog.at_level(logging.WARNING, logger="engine.factory"):
        engine = engine_from_config(
            EngineConfig(model=None, adapter=str(adapter), backend="transformers", rag=store)
        )
    assert engine.backend.prompt_format == DEFAULT_FORMAT  # read from the adapter folder
    assert not [r for r in caplog.records if "served with other prompts" in r.message]
    other = dataclasses.replace(store, pool_examples=0)
    with caplog.at_level(logging.WARNING, logger="engine.factory"):
        engine_from_config(
            EngineConfig(model=None, adapter=str(adapter), backend="transformers", rag=other),
            backend=engine.backend,
        )
    assert "rag.pool_examples 0 (in training: 1)" in caplog.text


def test_the_engine_warns_when_an_adapter_is_served_with_other_retrieval(tmp_path: Path):
    from engine.factory import adapter_retrieval_warning
    from engine.models import ADAPTER_META_FILE
    from engine.rag.retriever import RagRetriever

    def warning(trained, rag):
        (tmp_path / ADAPTER_META_FILE).write_text(json.dumps(trained))
        cfg = EngineConfig(model=None, adapter=str(tmp_path), rag=rag)
        return adapter_retrieval_warning(cfg, RagRetriever(rag) if rag.enabled else None)

    rag = RagConfig(k_examples=3)
    assert warning({"retrieval": rag.prompt_settings()}, rag) is None
    assert warning({"prompt_format": {}}, rag) is None  # trained before this was recorded
    changed = warning({"retrieval": rag.prompt_settings()}, RagConfig(k_examples=1))
    assert "rag.k_examples 1 (in training: 3)" in changed
    assert "retrieval on" in warning({"retrieval": None}, rag)
    assert "retrieval off" in warning(
        {"retrieval": rag.prompt_settings()}, RagConfig(enabled=False)
    )


def test_training_prompts_default_to_the_engines_retrieval_settings() -> None:
    from training.config import TrainConfig, load_train_config

    served = load_config(EngineConfig, REPO / "configs" / "engine.yaml").rag
    assert TrainConfig().rag.prompt_settings() == served.prompt_settings()
    for name in ("train_cpu.yaml", "train_gpu_qlora.yaml"):
        shipped = load_train_config(REPO / "configs" / name).rag
        assert shipped.prompt_settings() == served.prompt_settings(), name
    assert load_train_config(None, ["rag.enabled=false"]).rag.prompt_settings() is None
    with pytest.raises(ConfigError, match="rag.chroma_host"):
        TrainConfig(rag=RagConfig(chroma_host="localhost"))


def test_each_process_of_a_distributed_run_indexes_into_its_own_folder(
    tiny_llama: Path, served_data: Path, tokenizer, tmp_path: Path, monkeypatch
) -> None:
    """An embedded Chroma folder is not shared between processes (accelerate launch)."""
    from training.data import load_examples

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    cfg = tiny_config(tiny_llama, served_data, tmp_path / "run")
    store = _renderer(cfg, tokenizer, load_examples(served_data).examples).store_dir
    assert store.parent == tmp_path / "run" / "vector_db" / "rank1"
