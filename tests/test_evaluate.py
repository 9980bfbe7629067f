"""Evaluation runs: CLI and config, tiny-model end to end, resume, bad input, jobs, compare."""

import json
import re
import shlex
import sqlite3
import time
from pathlib import Path

import pytest

from engine.config import ConfigError, load_config
from engine.pipeline import TextToSQL
from engine.prompt import DEFAULT_FORMAT
from training.eval_report import compare_runs
from training.evaluate import EvalConfig, EvalJob, build_parser, config_from_args, main, run

REPO = Path(__file__).resolve().parent.parent
REQUIRED_KEYS = {
    "n",
    "exact_match",
    "bleu",
    "rouge1",
    "rouge2",
    "rougeL",
    "execution_accuracy",
    "valid_sql_rate",
    "seconds",
    "settings",
}
HANG = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"


class OracleBackend:
    """Answers from a question -> SQL table; ``repair`` answers repair turns; some questions
    make generate() raise. Counts the prompts it was asked."""

    name = "oracle"
    prompt_format = DEFAULT_FORMAT
    context_length = 4096

    def __init__(self, answers, repair=None, explode=(), delay=0.0):
        self.answers, self.repair, self.explode = answers, repair or {}, set(explode)
        self.delay = delay
        self.prompts = 0

    def render(self, messages):
        return json.dumps(messages)

    def count_tokens(self, text):
        return len(text.split())

    def generate(self, prompts, cfg):
        time.sleep(self.delay)
        out = []
        for p in prompts:
            messages = json.loads(p)
            question = re.search(r"Task: (.*?)\n", messages[1]["content"]).group(1)
            if question in self.explode:
                raise RuntimeError("CUDA out of memory (simulated)")
            table = self.repair if len(messages) > 2 else self.answers
            out.append(f"```sql\n{table.get(question, 'SELECT 1 FROM nowhere')};\n```")
        self.prompts += len(prompts)
        return out


def oracle_engine(answers, **kw):
    return TextToSQL(OracleBackend(answers, **kw))


def sample_questions(limit):
    from training.data import load_examples

    return load_examples("samples", limit=limit).examples


# --- config and CLI -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs").glob("eval*.yaml")), ids=lambda p: p.name
)
def test_shipped_eval_configs_load(path):
    cfg = load_config(EvalConfig, path)
    assert isinstance(cfg, EvalConfig) and cfg.generation.temperature == 0.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"limit": 0}, "limit"),
        ({"generation.top_p": 0}, "top_p"),
        ({"generation.temperature": -1}, "temperature"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"model": None}, "adapter"),
        ({"backend": "vllm"}, "backend"),
        ({"holdout": 1.5}, "holdout"),
        ({"generaton.top_k": 3}, "generaton"),
    ],
)
def test_bad_settings_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(EvalConfig, None, overrides)


def test_cli_flags_fill_the_config():
    argv = (
        "--data d --split test --limit 30 --adapter ad --rag --temperature 0.7 --top-k 20 "
        "--top-p 0.9 --max-attempts 3 --num-threads 1 --db-ids a,b --out o --set batch_size=2"
    )
    cfg = config_from_args(build_parser().parse_args(shlex.split(argv)))
    assert (cfg.data, cfg.split, cfg.limit, cfg.out) == ("d", "test", 30, "o")
    assert cfg.rag.enabled and cfg.db_ids == ["a", "b"] and cfg.num_threads == 1
    assert cfg.model is None and cfg.adapter == "ad"  # the adapter's base model
    g = cfg.generation
    assert (g.temperature, g.top_k, g.top_p) == (0.7, 20, 0.9)
    assert (cfg.max_attempts, cfg.batch_size) == (3, 2)
    assert config_from_args(build_parser().parse_args(["--no-rag"])).rag.enabled is False
    assert EvalConfig().rag.enabled is False  # RAG is opt-in for evaluation


# --- end to end ---------------------------------------------------------------------------


def test_tiny_model_end_to_end(tiny_llama, tmp_path, capsys):
    out = tmp_path / "run"
    argv = shlex.split(
        "--data samples --limit 3 --max-new-tokens 8 --batch-size 2 --backend transformers"
    )
    rc = main([*argv, "--model", str(tiny_llama), "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= REQUIRED_KEYS
    assert metrics["n"] == 3 and metrics["complete"] is True
    assert metrics["settings"]["generation"]["max_new_tokens"] == 8
    assert metrics["execution_accuracy"] is not None  # real sample databases
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    assert {"question", "gold", "prediction", "correct", "error"} <= set(rows[0])
    report = (out / "report.md").read_text()
    assert "By difficulty" in report and "By database" in report
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert '"n": 3' in capsys.readouterr().out


def test_resume_after_interruption(tmp_path):
    examples = sample_questions(6)
    answers = {e.question: e.sql for e in examples}
    cfg = EvalConfig(data="samples", limit=6, batch_size=2, out=str(tmp_path / "r"))
    polls = []

    def stop_after_one_batch():
        polls.append(1)
        return len(polls) > 1

    first = run(cfg, should_stop=stop_after_one_batch, engine=oracle_engine(answers))
    assert first["n"] == 2 and first["complete"] is False
    preds = tmp_path / "r" / "predictions.jsonl"
    kept = preds.read_text().splitlines()
    with open(preds, "a") as f:
        f.write('{"index": 4, "quest')  # killed in the middle of a write

    engine = oracle_engine(answers)
    final = run(cfg, engine=engine)
    assert engine.backend.prompts == 4  # only the questions not done before
    assert final["n"] == 6 and final["complete"] is True
    assert final["execution_accuracy"] == 1.0 and final["exact_match"] == 1.0
    lines = preds.read_text().splitlines()
    assert lines[:2] == kept and len(lines) == 6
    assert sorted(json.loads(x)["index"] for x in lines) == list(range(6))

    again = oracle_engine(answers)
    assert run(cfg, engine=again)["n"] == 6 and again.backend.prompts == 0  # nothing left
    cfg.generation.temperature = 0.5
    with pytest.raises(ConfigError, match="generation"):
        run(cfg, engine=oracle_engine(answers))
    cfg.resume = False
    assert run(cfg, engine=oracle_engine({}))["execution_accuracy"] == 0.0


def test_holdout_and_db_ids_pick_whole_databases(tmp_path):
    from training.data import load_examples, split_by_database

    held = {e.db_id for e in split_by_database(load_examples("samples").examples, 0.3, 0)[1]}
    cfg = EvalConfig(data="samples", holdout=0.3, limit=5, out=str(tmp_path / "h"))
    metrics = run(cfg, engine=oracle_engine({}))
    assert metrics["n"] == 5 and set(metrics["by_database"]) <= held
    cfg = EvalConfig(data="samples", db_ids="music", limit=4, out=str(tmp_path / "d"))
    assert cfg.db_ids == ["music"]
    assert set(run(cfg, engine=oracle_engine({}))["by_database"]) == {"music"}


def _people_db(path):
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER);"
        "INSERT INTO people VALUES (1,'Ann',30),(2,'Bo',25),(3,'Cy',41);"
    )
    con.commit()
    con.close()


def test_bad_input_is_counted_not_fatal(tmp_path):
    _people_db(tmp_path / "people.sqlite")
    rows = [
        {"db_id": "people", "question": "How many people?", "query": "SELECT count(*) FROM people"},
        {"db_id": "people", "query": "SELECT 1"},  # no question
        {"db_id": "ghost", "question": "Who?", "query": "SELECT 1"},  # no database
        {"db_id": "people", "question": "Broken gold", "query": "SELECT x FROM missing"},
        {"db_id": "people", "question": "Oldest?", "query": "SELECT max(age) FROM people"},
        {"db_id": "people", "question": "Names?", "query": "SELECT name FROM people"},
    ]
    (tmp_path / "pairs.json").write_text(json.dumps(rows))
    answers = {
        "How many people?": "SELECT count(*) FROM people",
        "Broken gold": "SELECT 1",
        "Oldest?": HANG,
    }
    cfg = EvalConfig(data=str(tmp_path / "pairs.json"), out=str(tmp_path / "o"), timeout_s=0.5)
    metrics = run(cfg, engine=oracle_engine(answers, explode={"Names?"}))
    assert metrics["data"]["skipped"] == {"missing field": 1, "database missing": 1}
    assert metrics["n"] == 4 and metrics["gold_failed"] == 1
    assert metrics["n_execution"] == 3 and metrics["execution_accuracy"] == pytest.approx(
        1 / 3, abs=1e-3
    )
    assert metrics["error_kinds"] == {"timed out": 1, "generation failed": 1}
    lines = (tmp_path / "o" / "predictions.jsonl").read_text().splitlines()
    recs = {r["question"]: r for r in map(json.loads, lines)}
    assert (
        recs["Broken gold"]["correct"] is None
        and "no such table" in recs["Broken gold"]["gold_error"]
    )
    assert recs["Names?"]["prediction"] is None and recs["Names?"]["correct"] is False
    assert metrics["gold_failures"][0]["gold"] == "SELECT x FROM missing"
    assert "Gold queries that failed" in (tmp_path / "o" / "report.md").read_text()


def test_self_correction_counts_attempts(tmp_path):
    examples = sample_questions(4)
    bad = {e.question: "SELECT nope FROM nowhere" for e in examples}
    good = {e.question: e.sql for e in examples}
    cfg = EvalConfig(data="samples", limit=4, max_attempts=2, out=str(tmp_path / "sc"))
    metrics = run(cfg, engine=oracle_engine(bad, repair=good))
    assert metrics["avg_attempts"] == 2.0 and metrics["execution_accuracy"] == 1.0
    assert "self-correction on" in (tmp_path / "sc" / "report.md").read_text()


def test_seed_format_runs_on_generated_databases(tmp_path):
    rows = [
        {"instruction": "Which school is in Brookville?",
         "input": 'CREATE TABLE t1 (\n    "School" text,\n    "City" text\n)',
         "response": "SELECT \"School\" FROM t1 WHERE \"City\" = 'brookville'"},
        {"instruction": "How many games after 1990?",
         "input": "CREATE TABLE g (\n    year VARCHAR,\n    game VARCHAR\n)",
         "response": "SELECT COUNT(game) FROM g WHERE year > 1990"},
        {"instruction": "Average rank?", "input": "CREATE TABLE r (rank number)",
         "response": "SELECT AVG(rank) FROM r"},
    ]  # fmt: skip
    path = tmp_path / "seed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    answers = {
        "Which school is in Brookville?": 'SELECT School FROM t1 WHERE City = "brookville"',
        "How many games after 1990?": "SELECT COUNT(*) FROM g",  # wrong on the generated rows
        "Average rank?": "SELECT sum(rank) * 1.0 / count(rank) FROM r",
    }
    metrics = run(
        EvalConfig(data=str(path), out=str(tmp_path / "s")), engine=oracle_engine(answers)
    )
    assert metrics["execution_db"] == "synthetic"
    assert metrics["execution_accuracy"] == pytest.approx(2 / 3, abs=1e-3)
    assert metrics["exact_match"] == pytest.approx(1 / 3, abs=1e-3)
    assert "weaker than execution on real data" in (tmp_path / "s" / "report.md").read_text()


def test_spider_folder_is_credited(tmp_path):
    root = tmp_path / "spider"
    (root / "database" / "people").mkdir(parents=True)
    _people_db(root / "database" / "people" / "people.sqlite")
    rows = [
        {"db_id": "people", "question": "How many people?", "query": "SELECT count(*) FROM people"}
    ]
    (root / "train.json").write_text(json.dumps(rows))
    out = tmp_path / "sp"
    metrics = run(EvalConfig(data=str(root), out=str(out)), engine=oracle_engine({}))
    assert metrics["by_database"]["people"]["n"] == 1
    assert "Yu et al." in (out / "report.md").read_text()


# --- background job and comparison -------------------------------------------------------


def test_eval_job_runs_and_cancels(tmp_path):
    examples = sample_questions(4)
    answers = {e.question: e.sql for e in examples}
    cfg = EvalConfig(data="samples", limit=4, batch_size=1, out=str(tmp_path / "j"))
    job = EvalJob(cfg, engine=oracle_engine(answers)).start()
    result = job.wait(120)
    assert result is not None and result["n"] == 4 and job.error is None
    snap = job.snapshot()
    assert snap["done"] == snap["total"] == 4 and snap["running"] is False

    slow = EvalConfig(data="samples", limit=4, batch_size=1, out=str(tmp_path / "k"))
    job = EvalJob(slow, engine=oracle_engine(answers, delay=0.3)).start()
    job.cancel()
    result = job.wait(120)
    assert result is not None and result["complete"] is False and result["n"] < 4
    assert job.snapshot()["cancelled"] is True


def test_compare_runs_table(tmp_path, capsys):
    examples = sample_questions(3)
    dirs = []
    for name, answers in (("base", {}), ("tuned", {e.question: e.sql for e in examples})):
        cfg = EvalConfig(data="samples", limit=3, out=str(tmp_path / name))
        run(cfg, engine=oracle_engine(answers))
        dirs.append(str(tmp_path / name))
    table = compare_runs(dirs, tmp_path / "cmp")
    lines = table.splitlines()
    assert lines[0].startswith("| run | model") and "exec acc" in lines[0]
    assert lines[2].startswith("| base |") and "| 0.0 |" in lines[2]
    assert lines[3].startswith("| tuned |") and "| 100.0 |" in lines[3]
    assert (tmp_path / "cmp" / "comparison.csv").read_text().startswith("run,model")
    assert main(["compare", *dirs]) == 0
    assert "| tuned |" in capsys.readouterr().out


@pytest.mark.slow  # real MiniLM embeddings and Chroma (~30 s)
def test_rag_prompts_use_the_retriever_and_no_stored_answers(tmp_path):
    from engine.rag.config import RagConfig
    from engine.rag.retriever import RagRetriever

    examples = sample_questions(2)
    backend = OracleBackend({e.question: e.sql for e in examples})
    seen = []
    render = backend.render
    backend.render = lambda messages: seen.append(messages) or render(messages)
    retriever = RagRetriever(RagConfig(store_dir=str(tmp_path / "store"), score_threshold=-1))
    cfg = EvalConfig(data="samples", limit=2, out=str(tmp_path / "rag"))
    cfg.rag.enabled = True
    metrics = run(cfg, engine=TextToSQL(backend, retriever=retriever))
    assert metrics["execution_accuracy"] == 1.0
    prompts = [m[-1]["content"] for m in seen]
    assert all("Values found in the columns" in p for p in prompts)  # retrieved context
    assert not any("Similar questions" in p for p in prompts)  # sample pairs not indexed


def test_rag_on_seed_data_is_rejected(tmp_path):
    path = tmp_path / "seed.jsonl"
    path.write_text(
        json.dumps(
            {"instruction": "q", "input": "CREATE TABLE t (a int)", "response": "SELECT a FROM t"}
        )
    )
    cfg = EvalConfig(data=str(path), out=str(tmp_path / "x"))
    cfg.rag.enabled = True
    with pytest.raises(ConfigError, match="RAG needs real databases"):
        run(cfg, engine=oracle_engine({}))


def test_error_kinds():
    from training.eval_report import error_kind

    assert error_kind("The model's answer contains no SQL query.") == "no SQL"
    assert error_kind("Unknown column: x") == "unknown column"
    assert error_kind("Query timed out after 5 s") == "timed out"
    assert error_kind("Query failed: no such column: y") == "unknown name (SQLite)"
