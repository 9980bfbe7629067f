"""Saved question/SQL pairs: the per-database file, incremental index updates and the CLI.

Real Chroma in a temp folder and the real bundled MiniLM embedder, as in test_rag.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main as cli_main
from engine.rag.config import RagConfig
from engine.rag.documents import RagInputError
from engine.rag.saved_pairs import PairBook, PairError, SavedPairs, pair_id

REPO = Path(__file__).resolve().parent.parent
BUSIEST = (
    "SELECT k.name FROM keepers AS k JOIN animals AS a ON a.keeper_id = k.id "
    "GROUP BY k.id ORDER BY count(*) DESC LIMIT 1"
)


@pytest.fixture
def zoo(small_db) -> Path:
    return small_db


@pytest.fixture
def cfg(tmp_path) -> RagConfig:
    return RagConfig(store_dir=str(tmp_path / "store"))


@pytest.fixture
def saved(cfg, tmp_path) -> SavedPairs:
    return SavedPairs(cfg, tmp_path / "data")


def _examples(cfg, db, question) -> list[tuple[str, str]]:
    """(question, SQL) of the example hits that pass the score threshold."""
    from engine.rag.retriever import RagRetriever

    hits = RagRetriever(cfg).search(question, db)
    return [
        (h.page_content, h.metadata["sql"])
        for h in hits
        if h.metadata["kind"] == "example" and h.metadata["score"] >= cfg.score_threshold
    ]


def _index(cfg, db, root):
    from engine.rag.index import index_database

    return index_database(cfg, db, examples_root=root)


# --- the store: incremental add and delete --------------------------------------------------


def test_a_saved_pair_is_retrieved_at_once_and_never_after_its_deletion(cfg, saved, zoo, tmp_path):
    _index(cfg, zoo, tmp_path / "data")
    result = saved.add(zoo, "Which keeper looks after the most animals?", BUSIEST + ";")
    assert result.indexed and result.replaced == []
    paraphrase = "Who is the keeper caring for the largest number of animals?"
    assert _examples(cfg, zoo, paraphrase) == [
        ("Which keeper looks after the most animals?", BUSIEST)
    ]
    # the plain file, in Spider's shape
    rows = json.loads(saved.book.file(zoo).read_text())
    assert rows == [
        {"db_id": "zoo", "question": "Which keeper looks after the most animals?", "query": BUSIEST}
    ]

    assert [p.question for p in saved.remove(zoo, [result.pair.id])] == [result.pair.question]
    assert _examples(cfg, zoo, paraphrase) == []
    assert saved.book.pairs(zoo) == []
    _index(cfg, zoo, tmp_path / "data")  # a rebuilt index does not bring it back
    assert _examples(cfg, zoo, paraphrase) == []


def test_a_pair_indexed_by_a_rebuild_is_deleted_by_its_id(cfg, saved, zoo, tmp_path):
    saved.add(zoo, "Which keeper looks after the most animals?", BUSIEST)
    report = _index(cfg, zoo, tmp_path / "data")  # the document gets the index's own id
    assert (report.examples, report.saved_examples) == (1, 1)
    question = "Which keeper has the most animals?"
    assert len(_examples(cfg, zoo, question)) == 1
    saved.remove(zoo, [pair_id("which keeper LOOKS after the most  animals?")])
    assert _examples(cfg, zoo, question) == []


def test_saving_a_question_again_or_editing_it_replaces_the_pair(cfg, saved, zoo, tmp_path):
    _index(cfg, zoo, tmp_path / "data")
    first = saved.add(zoo, "How many zebras are there?", "SELECT count(*) FROM animals")
    fixed = "SELECT count(*) FROM animals WHERE species = 'Zebra'"
    again = saved.add(zoo, "how many zebras are there?", fixed)
    assert [p.query for p in again.replaced] == ["SELECT count(*) FROM animals"]
    assert [p.query for p in saved.list(zoo)] == [fixed]
    assert _examples(cfg, zoo, "What is the number of zebras?") == [
        ("how many zebras are there?", fixed)
    ]
    edited = saved.edit(zoo, first.pair.id, "Count the zebras in the zoo", fixed)
    assert [p.id for p in edited.replaced] == [first.pair.id]
    assert [p.question for p in saved.list(zoo)] == ["Count the zebras in the zoo"]
    hits = _examples(cfg, zoo, "What is the number of zebras?")
    assert [q for q, _ in hits] == ["Count the zebras in the zoo"]


def test_sql_that_fails_is_refused_with_the_reason(saved, zoo):
    with pytest.raises(PairError, match="does not run: .*no such column: colour"):
        saved.add(zoo, "What colour are the animals?", "SELECT colour FROM animals")
    with pytest.raises(PairError, match="does not run: Refused"):
        saved.add(zoo, "Delete the lions", "DELETE FROM animals WHERE species = 'Lion'")
    with pytest.raises(PairError, match="needs a question"):
        saved.add(zoo, "  ", "SELECT 1")
    assert saved.list(zoo) == [] and not saved.book.file(zoo).exists()


def test_a_database_without_an_index_gets_its_pairs_when_indexed(cfg, saved, zoo, tmp_path):
    result = saved.add(zoo, "Which keeper looks after the most animals?", BUSIEST)
    assert not result.indexed
    report = _index(cfg, zoo, tmp_path / "data")
    assert report.saved_examples == 1 and "(1 saved)" in report.summary()
    assert len(_examples(cfg, zoo, "Which keeper has the most animals?")) == 1


def test_a_saved_pair_wins_over_a_bundled_pair_of_the_same_question(cfg, tmp_path, shop_db):
    from engine.rag.store import VectorStore, collection_name

    saved = SavedPairs(cfg, tmp_path / "data")
    mine = "SELECT count(DISTINCT customer_id) FROM customers"
    saved.add(shop_db, "How many customers are there?", mine)  # a bundled question too
    _index(cfg, shop_db, tmp_path / "data")
    collection = VectorStore(cfg).client.get_collection(
        collection_name(shop_db), embedding_function=None
    )
    found = collection.get(
        where={"kind": "example"}, include=["documents", "metadatas"], limit=1000
    )
    same = [m["sql"] for d, m in zip(found["documents"], found["metadatas"], strict=True)
            if d == "How many customers are there?"]  # fmt: skip
    assert same == [mine]


def test_import_json_jsonl_csv_and_export_round_trip(cfg, saved, zoo, tmp_path):
    _index(cfg, zoo, tmp_path / "data")
    rows = [
        {"db_id": "zoo", "question": "How many animals?", "query": "SELECT count(*) FROM animals"},
        {"db_id": "zoo", "question": "Bad column", "query": "SELECT colour FROM animals"},
        {"db_id": "zoo", "question": "", "query": "SELECT 1"},
        {"db_id": "other", "question": "Another database", "query": "SELECT 1"},
    ]
    spider = tmp_path / "pairs.json"
    spider.write_text(json.dumps(rows))
    report = saved.import_file(zoo, spider)
    assert (report.added, report.replaced, report.indexed) == (1, 0, True)
    assert report.skipped == {"SQL does not run": 1, "missing question or SQL": 1}
    assert "Imported 1 new and 0 updated" in report.summary("pairs.json")

    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(
        json.dumps({"question": "How many animals?", "sql": "SELECT count(id) FROM animals"})
        + "\n"
        + json.dumps({"question": "Name the keepers", "sql": "SELECT name FROM keepers"})
    )
    report = saved.import_file(zoo, jsonl)
    assert (report.added, report.replaced) == (1, 1)
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        'question,sql\n"Which shift, morning or evening?",SELECT shift FROM keepers\n'
    )
    assert saved.import_file(zoo, csv_file).added == 1
    assert len(_examples(cfg, zoo, "Give me the names of all keepers")) == 1

    for suffix in (".json", ".jsonl", ".csv"):
        out = tmp_path / f"export{suffix}"
        assert saved.export(zoo, out) == 3
        other = SavedPairs(cfg, tmp_path / f"data{suffix}")
        assert other.import_file(zoo, out).added == 3
        assert other.list(zoo) == saved.list(zoo)
    with pytest.raises(RagInputError, match=r"\.json, \.jsonl or \.csv"):
        saved.export(zoo, tmp_path / "export.txt")


def test_search_matches_every_word_in_question_or_sql(saved, zoo):
    saved.add(
        zoo, "How many zebras are there?", "SELECT count(*) FROM animals WHERE species = 'Zebra'"
    )
    saved.add(zoo, "Name the keepers", "SELECT name FROM keepers")
    assert [p.question for p in saved.list(zoo, "zebra")] == ["How many zebras are there?"]
    assert [p.question for p in saved.list(zoo, "KEEPERS name")] == ["Name the keepers"]
    assert saved.list(zoo, "keepers zebra") == []
    assert len(saved.list(zoo, "")) == 2


def test_a_damaged_pairs_file_is_named_not_overwritten(saved, zoo):
    path = saved.book.file(zoo)
    path.parent.mkdir(parents=True)
    path.write_text("[{broken")
    with pytest.raises(RagInputError, match="cannot be read"):
        saved.add(zoo, "How many animals?", "SELECT count(*) FROM animals")
    assert path.read_text() == "[{broken"


def test_each_database_has_its_own_file(tmp_path, zoo):
    other = tmp_path / "b" / "zoo.sqlite"
    other.parent.mkdir()
    shutil.copy(zoo, other)
    book = PairBook(tmp_path / "data")
    assert book.file(zoo) != book.file(other)
    assert book.file(zoo).parent == tmp_path / "data" / "examples"


# --- command line ---------------------------------------------------------------------------


def _run(capsys, *args) -> tuple[int, dict, str]:
    code = cli_main(list(args))
    out = capsys.readouterr()
    return code, (json.loads(out.out) if "--json" in args else out.out), out.err


def test_cli_examples_add_list_export_remove(cfg, zoo, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEXT2SQL_DATA", str(tmp_path / "data"))
    store = ["--db", str(zoo), "--store", cfg.store_dir]
    assert cli_main(["index", *store, "--quiet"]) == 0
    capsys.readouterr()

    code, out, _ = _run(
        capsys, "examples", "add", *store, "--json",
        "--question", "Which keeper looks after the most animals?", "--sql", BUSIEST,
    )  # fmt: skip
    assert code == 0 and out["indexed"] and out["added"]["query"] == BUSIEST
    pid = out["added"]["id"]

    code, out, err = _run(
        capsys, "examples", "add", *store, "--json", "--question", "Q", "--sql", "SELECT x FROM y"
    )
    assert code == 1 and "no such table: y" in out["error"] and "no such table: y" in err

    code, out, _ = _run(capsys, "examples", "list", *store, "--json", "--search", "keeper")
    assert code == 0 and [e["id"] for e in out["examples"]] == [pid]
    code, text, _ = _run(capsys, "examples", "list", *store)
    assert pid in text and "Which keeper looks after the most animals?" in text

    code, text, _ = _run(capsys, "examples", "export", *store)
    assert json.loads(text) == [
        {"db_id": "zoo", "question": "Which keeper looks after the most animals?", "query": BUSIEST}
    ]
    dest = tmp_path / "out.csv"
    code, out, _ = _run(capsys, "examples", "export", *store, "--out", str(dest), "--json")
    assert out["exported"] == 1 and dest.read_text().startswith("db_id,question,query")

    code, out, _ = _run(capsys, "examples", "remove", *store, "--id", pid, "--json")
    assert code == 0 and [e["id"] for e in out["removed"]] == [pid]
    assert _examples(cfg, zoo, "Which keeper has the most animals?") == []
    code, out, _ = _run(capsys, "examples", "remove", *store, "--id", pid, "--json")
    assert code == 1 and "No saved pair" in out["error"]

    code, out, _ = _run(capsys, "examples", "import", *store, str(dest), "--json")
    assert code == 0 and out["imported"]["added"] == 1
    code, out, _ = _run(
        capsys, "examples", "remove", *store, "--json",
        "--question", "which keeper looks after the most animals?",
    )  # fmt: skip
    assert code == 0 and len(out["removed"]) == 1


def test_cli_examples_bad_database_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TEXT2SQL_DATA", str(tmp_path / "data"))
    code, out, err = _run(capsys, "examples", "list", "--db", str(tmp_path / "nope.db"), "--json")
    assert code == 1 and "Database not found" in out["error"] and err.count("\n") == 1


@pytest.mark.slow
def test_added_pair_is_a_source_of_the_answer_to_a_paraphrase(zoo, tmp_path):
    """The issue's acceptance check, as a user runs it: ``examples add`` then ``ask`` with
    the default model on a database it has never seen."""
    env = {**os.environ, "TEXT2SQL_DATA": str(tmp_path / "data")}

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "engine", *args],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=900,
        )  # fmt: skip

    question = "Which keeper looks after the most animals?"
    out = cli("examples", "add", "--db", str(zoo), "--question", question, "--sql", BUSIEST)
    assert out.returncode == 0, out.stderr[-2000:]
    out = cli(
        "ask",
        "--db",
        str(zoo),
        "--json",
        "Who is the keeper caring for the largest number of animals?",
    )
    answer = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr[-2000:]
    examples = [s["text"] for s in answer["sources"] if s["kind"] == "example"]
    assert f"Q: {question}\nSQL: {BUSIEST}" in examples
    assert answer["rows"] == [["Bo"]]
