"""Evaluation runs: CLI and config, tiny-model end to end, resume, bad input, jobs, compare."""

import dataclasses
import json
import shlex
import sqlite3
from pathlib import Path

import pytest

from engine.backends.base import GenerationConfig
from engine.config import ConfigError, EngineConfig, load_config
from engine.rag.config import RagConfig
from tests.helpers import OracleBackend, eval_config
from training.eval_config import EvalConfig, make_config
from training.eval_report import compare_runs
from training.evaluate import EvalJob, build_parser, config_from_args, main, run

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


def sample_questions(limit):
    from training.data import load_examples

    return load_examples("samples", limit=limit).examples


# --- config and CLI -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs").glob("eval*.yaml")), ids=lambda p: p.name
)
def test_shipped_eval_configs_load(path):
    cfg = make_config(path=path)
    assert isinstance(cfg, EvalConfig) and cfg.engine.generation.temperature == 0.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"limit": 0}, "limit"),
        ({"engine.generation.top_p": 0}, "top_p"),
        ({"engine.generation.temperature": -1}, "temperature"),
        ({"engine.max_attempts": 0}, "max_attempts"),
        ({"engine.model": None}, "adapter"),
        ({"engine.backend": "vllm"}, "backend"),
        ({"holdout": 1.5}, "holdout"),
        ({"engine.generaton.top_k": 3}, "engine.generaton"),
        ({"max_attempts": 2}, "Unknown config key: max_attempts"),  # an engine setting
    ],
)
def test_bad_settings_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_config(overrides=overrides)


def test_no_flags_evaluate_what_the_chat_serves():
    """Without flags the engine evaluated is configs/engine.yaml's (the chat's), changed only
    where configs/eval.yaml says so."""
    chat = load_config(EngineConfig, REPO / "configs" / "engine.yaml")
    cfg = config_from_args(build_parser().parse_args([]))
    assert dataclasses.replace(cfg.engine, max_rows=chat.max_rows) == chat
    assert cfg.engine.max_rows == 100_000  # scoring compares whole results
    assert cfg.engine.rag.enabled and cfg.engine.max_attempts == chat.max_attempts


def test_engine_config_file_is_evaluated(tmp_path):
    other = tmp_path / "engine.yaml"
    other.write_text("model: smollm2-135m-instruct\nmax_attempts: 3\nrag:\n  k_examples: 1\n")
    cfg = config_from_args(build_parser().parse_args(["--engine-config", str(other)]))
    assert (cfg.engine.model, cfg.engine.max_attempts) == ("smollm2-135m-instruct", 3)
    assert cfg.engine.rag.k_examples == 1 and cfg.engine.rag.enabled  # merged, not replaced


def test_cli_flags_fill_the_config():
    argv = (
        "--data d --split test --limit 30 --adapter ad --rag --temperature 0.7 --top-k 20 "
        "--top-p 0.9 --max-attempts 3 --num-threads 1 --db-ids a,b --out o "
        "--set engine.batch_size=2"
    )
    cfg = config_from_args(build_parser().parse_args(shlex.split(argv)))
    assert (cfg.data, cfg.split, cfg.limit, cfg.out) == ("d", "test", 30, "o")
    e = cfg.engine
    assert e.rag.enabled and cfg.db_ids == ["a", "b"] and e.threads == 1
    assert e.model is None and e.adapter == "ad"  # the adapter's base model
    g = e.generation
    assert (g.temperature, g.top_k, g.top_p) == (0.7, 20, 0.9)
    assert (e.max_attempts, e.batch_size) == (3, 2)
    assert config_from_args(build_parser().parse_args(["--no-rag"])).engine.rag.enabled is False


# --- end to end ---------------------------------------------------------------------------


def test_tiny_model_end_to_end(tiny_llama, tmp_path, capsys):
    out = tmp_path / "run"
    argv = shlex.split(
        "--data samples --limit 3 --max-new-tokens 8 --batch-size 2 --backend transformers --no-rag"
    )
    rc = main([*argv, "--model", str(tiny_llama), "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= REQUIRED_KEYS
    assert metrics["n"] == 3 and metrics["complete"] is True
    assert metrics["settings"]["engine"]["generation"]["max_new_tokens"] == 8
    assert metrics["execution_accuracy"] is not None  # real sample databases
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    assert {"question", "gold", "prediction", "correct", "error"} <= set(rows[0])
    assert all(isinstance(r["greedy_confidence"], float) for r in rows)  # scored by transformers
    report = (out / "report.md").read_text()
    assert "By difficulty" in report and "By database" in report
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert '"n": 3' in capsys.readouterr().out


class SchemaCountingBackend(OracleBackend):
    """Records how many different schemas each generate() call was asked about."""

    def __init__(self, answers):
        super().__init__(answers)
        self.schemas_per_call = []

    def generate(self, prompts, cfg):
        schemas = {json.loads(p)[1]["content"].split("Task:")[0] for p in prompts}
        self.schemas_per_call.append(len(schemas))
        return super().generate(prompts, cfg)


def test_each_batch_asks_about_one_database(tmp_path):
    """A batch shares the evaluation of its prompts' common start (the schema): questions
    of two databases in one batch would each evaluate their whole schema again."""
    examples = sample_questions(12)
    dbs = [e.db_id for e in examples]
    assert any(len(set(dbs[i : i + 4])) > 1 for i in range(0, 12, 4))  # in order, they mix
    backend = SchemaCountingBackend({e.question: e.sql for e in examples})
    cfg = eval_config(data="samples", limit=12, out=str(tmp_path / "b"), engine={"batch_size": 4})
    metrics = run(cfg, backend=backend)
    assert metrics["n"] == 12 and metrics["execution_accuracy"] == 1.0
    assert backend.schemas_per_call and set(backend.schemas_per_call) == {1}
    assert len(backend.schemas_per_call) == 4  # hr 4 + 2, music 3, shop 3


def test_resume_after_interruption(tmp_path):
    examples = sample_questions(6)
    answers = {e.question: e.sql for e in examples}
    cfg = eval_config(data="samples", limit=6, out=str(tmp_path / "r"), engine={"batch_size": 2})
    polls = []

    def stop_after_one_batch():
        polls.append(1)
        return len(polls) > 1

    first = run(cfg, should_stop=stop_after_one_batch, backend=OracleBackend(answers))
    assert first["n"] == 2 and first["complete"] is False
    preds = tmp_path / "r" / "predictions.jsonl"
    kept = preds.read_text().splitlines()
    with open(preds, "a") as f:
        f.write('{"index": 4, "quest')  # killed in the middle of a write

    backend = OracleBackend(answers)
    final = run(cfg, backend=backend)
    assert len(backend.prompts) == 4  # only the questions not done before
    assert final["n"] == 6 and final["complete"] is True
    assert final["execution_accuracy"] == 1.0 and final["exact_match"] == 1.0
    lines = preds.read_text().splitlines()
    assert lines[:2] == kept and len(lines) == 6
    assert sorted(json.loads(x)["index"] for x in lines) == list(range(6))

    again = OracleBackend(answers)
    assert run(cfg, backend=again)["n"] == 6 and not again.prompts  # nothing left
    cfg.engine.generation.temperature = 0.5
    with pytest.raises(ConfigError, match=r"\(engine.generation.temperature\)"):
        run(cfg, backend=OracleBackend(answers))
    cfg.resume = False
    assert run(cfg, backend=OracleBackend({}))["execution_accuracy"] == 0.0


_HOLD_LOCK = (
    "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
    "print('held', flush=True); time.sleep(600)"
)


def test_a_run_waits_for_an_earlier_process_of_its_folder(tmp_path, monkeypatch):
    """A resumed run never writes beside a process of the same run that is still alive (its
    app killed, itself not stopped yet): it waits, then goes on; one that stays is named."""
    import subprocess
    import sys
    import threading

    from training import run_lock

    examples = sample_questions(2)
    out = tmp_path / "r"
    out.mkdir()
    cfg = eval_config(data="samples", limit=2, out=str(out))
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out / run_lock.LOCK_FILE)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        finished = []
        resumed = threading.Thread(
            target=lambda: finished.append(run(cfg, backend=OracleBackend({}))), daemon=True
        )
        resumed.start()
        resumed.join(3)
        # unlocked, it would have rewritten predictions.jsonl at once (resume_records)
        assert resumed.is_alive() and not (out / "predictions.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    resumed.join(120)
    assert finished and finished[0]["n"] == len(examples)

    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out / run_lock.LOCK_FILE)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(run_lock, "WAIT_S", 0.5)
        with pytest.raises(run_lock.RunBusy, match="in use by another process"):
            run(cfg, backend=OracleBackend({}))
    finally:
        holder.kill()
        holder.wait()


def test_holdout_and_db_ids_pick_whole_databases(tmp_path):
    from training.data import load_examples, split_by_database

    held = {e.db_id for e in split_by_database(load_examples("samples").examples, 0.3, 0)[1]}
    cfg = eval_config(data="samples", holdout=0.3, limit=5, out=str(tmp_path / "h"))
    metrics = run(cfg, backend=OracleBackend({}))
    assert metrics["n"] == 5 and set(metrics["by_database"]) <= held
    cfg = eval_config(data="samples", db_ids="music", limit=4, out=str(tmp_path / "d"))
    assert cfg.db_ids == ["music"]
    assert set(run(cfg, backend=OracleBackend({}))["by_database"]) == {"music"}


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
    cfg = eval_config(
        data=str(tmp_path / "pairs.json"),
        out=str(tmp_path / "o"),
        engine={"timeout_s": 0.5, "max_attempts": 1},
    )
    metrics = run(cfg, backend=OracleBackend(answers, explode={"Names?"}))
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


class ScoredOracle(OracleBackend):
    """The oracle's answers, each with a mean token log-probability of -0.25."""

    def generate_scored(self, prompts, cfg):
        from engine.backends.base import Scored

        return [Scored(text, -0.25) for text in self.generate(prompts, cfg)]


def test_records_carry_the_confidence_of_the_answer_and_of_the_greedy_one(tmp_path):
    """Every record has the served answer's and the first greedy answer's confidence (from
    a default run, a gate's threshold can be chosen offline), and how many answers voted."""
    answers = {e.question: e.sql for e in sample_questions(3)}
    cfg = eval_config(data="samples", limit=3, out=str(tmp_path / "c"))
    run(cfg, backend=ScoredOracle(answers))
    for rec in _records(tmp_path / "c"):
        assert rec["confidence"] == rec["greedy_confidence"] == -0.25
        assert (rec["attempts"], rec["candidates"], rec["votes"]) == (1, 1, 1)
    run(
        eval_config(data="samples", limit=3, out=str(tmp_path / "u")),
        backend=OracleBackend(answers),
    )
    assert all(r["confidence"] is r["greedy_confidence"] is None for r in _records(tmp_path / "u"))
    # a run begun before these settings existed resumes at their defaults
    assert "vote_below" not in cfg.identity()["engine"]["generation"]
    gated = eval_config(engine={"generation": GenerationConfig(retry_candidates=5, vote_below=-1)})
    assert gated.identity()["engine"]["generation"]["vote_below"] == -1


def test_self_correction_counts_attempts(tmp_path):
    examples = sample_questions(4)
    bad = {e.question: "SELECT nope FROM nowhere" for e in examples}
    good = {e.question: e.sql for e in examples}
    cfg = eval_config(data="samples", limit=4, out=str(tmp_path / "sc"), engine={"max_attempts": 2})
    metrics = run(cfg, backend=OracleBackend(bad, repair=good))
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
        eval_config(data=str(path), out=str(tmp_path / "s")), backend=OracleBackend(answers)
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
    metrics = run(eval_config(data=str(root), out=str(out)), backend=OracleBackend({}))
    assert metrics["by_database"]["people"]["n"] == 1
    assert "Yu et al." in (out / "report.md").read_text()


# --- background job and comparison -------------------------------------------------------


def test_eval_job_runs_and_cancels(tmp_path):
    examples = sample_questions(4)
    answers = {e.question: e.sql for e in examples}
    cfg = eval_config(data="samples", limit=4, out=str(tmp_path / "j"), engine={"batch_size": 1})
    job = EvalJob(cfg, backend=OracleBackend(answers)).start()
    result = job.wait(120)
    assert result is not None and result["n"] == 4 and job.error is None
    snap = job.snapshot()
    assert snap["done"] == snap["total"] == 4 and snap["running"] is False

    slow = eval_config(data="samples", limit=4, out=str(tmp_path / "k"), engine={"batch_size": 1})
    job = EvalJob(slow, backend=OracleBackend(answers, delay=0.3)).start()
    job.cancel()
    result = job.wait(120)
    assert result is not None and result["complete"] is False and result["n"] < 4
    assert job.snapshot()["cancelled"] is True


def test_compare_runs_table(tmp_path, capsys):
    examples = sample_questions(3)
    dirs = []
    for name, answers in (("base", {}), ("tuned", {e.question: e.sql for e in examples})):
        cfg = eval_config(data="samples", limit=3, out=str(tmp_path / name))
        run(cfg, backend=OracleBackend(answers))
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
def test_rag_prompts_use_the_retriever_and_no_stored_answers(tmp_path, monkeypatch):
    from engine.rag.saved_pairs import PairBook

    examples = sample_questions(2)
    # The user saved these very questions as examples in the app: evaluation must not show them.
    monkeypatch.setenv("TEXT2SQL_DATA", str(tmp_path / "data"))
    book = PairBook(tmp_path / "data")
    for e in examples:
        book.file(e.db_path).parent.mkdir(parents=True, exist_ok=True)
        saved = (
            json.loads(book.file(e.db_path).read_text()) if book.file(e.db_path).is_file() else []
        )
        saved.append({"db_id": e.db_id, "question": e.question, "query": e.sql})
        book.file(e.db_path).write_text(json.dumps(saved))
    assert all(book.pairs(e.db_path) for e in examples)
    backend = OracleBackend({e.question: e.sql for e in examples})
    seen = []
    render = backend.render
    backend.render = lambda messages: seen.append(messages) or render(messages)
    cfg = EvalConfig(data="samples", limit=2, out=str(tmp_path / "rag"))
    cfg.engine.rag.score_threshold = -1  # every example the store holds would be shown
    assert cfg.engine.rag.enabled  # the chat's default
    metrics = run(cfg, backend=backend)
    assert metrics["execution_accuracy"] == 1.0
    assert (tmp_path / "rag" / "vector_db").is_dir()  # the run's own index
    prompts = [m[-1]["content"] for m in seen]
    assert all("Values found in the columns" in p for p in prompts)  # retrieved context
    assert not any("Similar questions" in p for p in prompts)  # sample pairs not indexed


def test_seed_data_is_evaluated_without_retrieval(tmp_path):
    path = tmp_path / "seed.jsonl"
    path.write_text(
        json.dumps(
            {"instruction": "q", "input": "CREATE TABLE t (a int)", "response": "SELECT a FROM t"}
        )
    )
    cfg = EvalConfig(data=str(path), out=str(tmp_path / "x"))
    assert cfg.engine.rag.enabled
    metrics = run(cfg, backend=OracleBackend({"q": "SELECT a FROM t"}))
    assert metrics["n"] == 1 and metrics["execution_accuracy"] == 1.0
    assert metrics["settings"]["engine"]["rag"]["enabled"] is False  # recorded as run
    assert not (tmp_path / "x" / "vector_db").exists()


def test_error_kinds():
    from training.eval_report import error_kind

    assert error_kind("The model's answer contains no SQL query.") == "no SQL"
    assert error_kind("Unknown column: x") == "unknown column"
    assert error_kind("Query timed out after 5 s") == "timed out"
    assert error_kind("Query stopped after 10 s (the time limit)") == "timed out"
    assert error_kind("Query failed: no such column: y") == "unknown name (SQLite)"


# --- one path: evaluation scores what the chat serves ------------------------------------


def _chat_answers(backend, engine_cfg, questions):
    """The questions asked through the chat's own handler (app.chat.ask), one turn each."""
    from app import chat
    from app.databases import databases_of
    from app.engines import EnginePool
    from engine.factory import engine_from_config

    pool = EnginePool(engine_cfg)
    pool.put(engine_cfg.model, None, engine_from_config(engine_cfg, backend=backend))
    labels = {path.resolve(): label for label, path in databases_of().items()}
    out = {}
    for ex in questions:
        label = labels[Path(ex.db_path).resolve()]
        turn = chat.ask(ex.question, label, engine_cfg.model, [], [], pool)
        out[ex.question] = (turn.answer.sql if turn.answer else None, turn.status)
    return out


class Recording:
    """Wraps a backend; keeps every (prompt, output) pair it produced."""

    def __init__(self, backend):
        self.inner, self.pairs = backend, []
        self.name, self.prompt_format = backend.name, backend.prompt_format
        self.context_length = backend.context_length
        self.render, self.count_tokens = backend.render, backend.count_tokens

    def generate(self, prompts, cfg):
        outputs = self.inner.generate(prompts, cfg)
        self.pairs.extend(zip(prompts, outputs, strict=True))
        return outputs


def _records(folder):
    return [json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()]


def test_evaluation_scores_the_sql_the_chat_serves(tmp_path):
    """Same questions, same settings: the chat tab's SQL and evaluation's prediction are the
    same, first answers, repaired answers and failures alike."""
    questions = sample_questions(9)
    first = {e.question: e.sql for e in questions[:3]}
    first.update({e.question: "SELECT nope FROM nowhere" for e in questions[3:]})
    repair = {e.question: e.sql for e in questions[3:6]}  # the rest stays wrong
    engine_cfg = EngineConfig(model="oracle", batch_size=4, rag=RagConfig(enabled=False))
    cfg = EvalConfig(data="samples", limit=9, out=str(tmp_path / "e"), engine=engine_cfg)
    metrics = run(cfg, backend=OracleBackend(first, repair))
    records = {r["question"]: r for r in _records(tmp_path / "e")}
    chat = _chat_answers(OracleBackend(first, repair), engine_cfg, questions)
    assert metrics["execution_accuracy"] == pytest.approx(6 / 9, abs=1e-3)
    assert [r["attempts"] for r in records.values()].count(2) == 6
    for question, (sql, status) in chat.items():
        assert sql == records[question]["prediction"], question
        assert f"{records[question]['attempts']} attempt(s)" in status


def test_the_chat_and_evaluation_prompt_a_real_model_alike(tiny_llama, tmp_path):
    """A real (tiny, random) model: chat and evaluation send it the same prompts, repair
    turns included, and it answers both the same, though evaluation decodes four at once."""
    from engine.backends.base import GenerationConfig
    from engine.backends.loader import load_backend

    engine_cfg = EngineConfig(
        model=str(tiny_llama),
        backend="transformers",
        batch_size=4,
        rag=RagConfig(enabled=False),
        generation=GenerationConfig(max_new_tokens=24),
    )
    backend = load_backend(str(tiny_llama), kind="transformers", batch_size=4)
    evaluated, chatted = Recording(backend), Recording(backend)
    cfg = EvalConfig(data="samples", limit=8, out=str(tmp_path / "e"), engine=engine_cfg)
    run(cfg, backend=evaluated)
    chat = _chat_answers(chatted, engine_cfg, sample_questions(8))
    records = _records(tmp_path / "e")
    assert len(evaluated.pairs) == sum(r["attempts"] for r in records) > 8  # repairs ran
    assert sorted(chatted.pairs) == sorted(evaluated.pairs)
    assert all(chat[r["question"]][0] == r["prediction"] for r in records)
