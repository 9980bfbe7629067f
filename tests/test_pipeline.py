"""The engine's ask loop: prompt, extraction, validation, execution, self-correction."""

import json
import sqlite3
from pathlib import Path

import pytest

from engine.backends.base import GenerationConfig
from engine.backends.transformers_backend import TransformersBackend, _StopAtStatementEnd
from engine.conversation import FollowupConfig
from engine.pipeline import Request, TextToSQL
from engine.prompt import render_prompt
from tests.helpers import ScriptedBackend, customers_db, engine_cli

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path):
    return customers_db(tmp_path / "t.sqlite")


def test_answer_with_rows(db):
    engine = TextToSQL(ScriptedBackend(["```sql\nSELECT count(*) FROM customers;\n```"]))
    answer = engine.ask("How many customers are there?", db)
    assert answer.ok and answer.sql == "SELECT count(*) FROM customers"
    assert answer.rows == [[3]] and answer.attempts == 1
    assert set(answer.to_dict()) >= {
        "question",
        "sql",
        "columns",
        "rows",
        "error",
        "sources",
        "attempts",
    }


def test_self_correction_fixes_an_unknown_column(db):
    backend = ScriptedBackend(
        ["SELECT nme FROM customers", "SELECT name FROM customers WHERE country = 'Spain'"]
    )
    answer = TextToSQL(backend, max_attempts=2).ask("Who lives in Spain?", db)
    assert answer.ok and answer.rows == [["Bo"]] and answer.attempts == 2
    repair = json.loads(backend.prompts[1])
    assert "Unknown column: nme" in repair[-1]["content"]


def test_gives_up_after_max_attempts_with_the_last_error(db):
    answer = TextToSQL(ScriptedBackend(["no idea", "DELETE FROM customers"]), max_attempts=2).ask(
        "Q?", db
    )
    assert not answer.ok and answer.attempts == 2
    assert answer.error == "Only SELECT queries are allowed, got DELETE"


class KeyedBackend(ScriptedBackend):
    """Answers by the question in the prompt (first turn) or in the repair turn; one
    question makes generate() raise, as a model that runs out of memory would."""

    def __init__(self, first, repair, explode=()):
        super().__init__([])
        self.first, self.repair, self.explode = first, repair, set(explode)

    def generate(self, prompts, cfg):
        self.calls.append(len(prompts))
        out = []
        for p in prompts:
            messages = json.loads(p)
            question = messages[1]["content"].rsplit("Task: ", 1)[-1].split("\n")[0]
            if question in self.explode:
                raise RuntimeError("out of memory (simulated)")
            out.append((self.repair if len(messages) > 2 else self.first)[question])
        return out


def test_ask_batch_generates_together_and_repairs_only_the_failed(db, tmp_path):
    from engine.pipeline import Request

    backend = KeyedBackend(
        first={"Count?": "SELECT count(*) FROM customers", "Names?": "SELECT nme FROM customers",
               "Oops?": "x", "Boom?": "-"},
        repair={"Names?": "SELECT name FROM customers ORDER BY id", "Oops?": "still no SQL"},
        explode={"Boom?"},
    )  # fmt: skip
    requests = [
        Request("Count?", db),
        Request("Names?", db),
        Request("  ", db),
        Request("Oops?", db),
        Request("Boom?", db),
        Request("Count?", tmp_path / "missing.sqlite"),
    ]
    answers = TextToSQL(backend, max_attempts=2).ask_batch(requests)
    assert [a.question for a in answers] == ["Count?", "Names?", "", "Oops?", "Boom?", "Count?"]
    # attempt 1: one call for the four askable questions, then Boom? alone after the batch
    # failed (and the others again, one by one); attempt 2: the two failed, together
    assert backend.calls == [4, 1, 1, 1, 1, 2]
    count, names, empty, oops, boom, missing = answers
    assert count.rows == [[3]] and count.attempts == 1
    assert names.rows == [["Ann"], ["Bo"], ["Cy"]] and names.attempts == 2
    assert empty.error == "Please type a question." and empty.attempts == 0
    assert oops.error == "The model's answer contains no SQL query." and oops.attempts == 2
    assert boom.error.startswith("Generation failed: RuntimeError: out of memory")
    assert boom.attempts == 1  # a model failure is not repaired
    assert "missing.sqlite" in missing.error and missing.attempts == 0
    assert all(a.backend == "scripted" for a in answers)


class CandidateBackend(ScriptedBackend):
    """Answers each prompt by its sampling seed: seed 0 is the greedy candidate."""

    def __init__(self, by_seed, repair=None):
        super().__init__([])
        self.by_seed, self.repair, self.cfgs = by_seed, repair or {}, []

    def generate(self, prompts, cfg):
        self.calls.append(len(prompts))
        self.prompts.extend(prompts)
        self.cfgs.append(list(cfg))
        table = [self.repair if len(json.loads(p)) > 2 else self.by_seed for p in prompts]
        return [t.get(c.seed, "no SQL") for t, c in zip(table, cfg, strict=True)]


def _voter(by_seed, repair=None, candidates=3, retry_candidates=0):
    backend = CandidateBackend(by_seed, repair)
    gen = GenerationConfig(
        candidates=candidates,
        retry_candidates=retry_candidates,
        candidate_temperature=0.8,
        seed=0,
    )
    return backend, TextToSQL(backend, generation=gen, max_attempts=2)


def test_candidates_vote_by_their_rows(db):
    france = "SELECT name FROM customers WHERE country = 'France'"
    backend, engine = _voter(
        {0: "SELECT name FROM customers", 1: france, 2: france.replace("'France'", '"France"')}
    )
    answer = engine.ask("Who lives in France?", db)
    # greedy lost 1 to 2: two different queries that return the same rows agree
    assert answer.rows == [["Ann"], ["Cy"]] and answer.sql == france
    assert (answer.votes, answer.candidates, answer.attempts) == (2, 3, 1)
    assert backend.calls == [3]  # all candidates in one generate() call
    assert [(c.temperature, c.seed) for c in backend.cfgs[0]] == [(0.0, 0), (0.8, 1), (0.8, 2)]


def test_a_tie_goes_to_the_greedy_candidate_and_failures_drop_out(db):
    backend, engine = _voter(
        {0: "SELECT count(*) FROM customers", 1: "SELECT nme FROM customers", 2: "SELECT 7"}
    )
    answer = engine.ask("How many customers?", db)
    assert answer.rows == [[3]] and answer.votes == 1 and answer.attempts == 1


def test_when_every_candidate_fails_the_greedy_error_is_repaired(db):
    backend, engine = _voter(
        {0: "SELECT nme FROM customers", 1: "DELETE FROM customers", 2: "nothing"},
        repair={0: "SELECT name FROM customers WHERE id = 1", 2: "SELECT 1"},
    )
    answer = engine.ask("Who is first?", db)
    assert answer.rows == [["Ann"]] and answer.attempts == 2 and answer.votes == 1
    repair = json.loads(backend.prompts[3])  # attempt 2's first prompt
    assert repair[-2]["content"] == "SELECT nme FROM customers"  # the greedy one
    assert "Unknown column: nme" in repair[-1]["content"]


def test_a_cascade_votes_only_when_the_greedy_answer_failed(db):
    """candidates=1, retry_candidates=3: one greedy answer; after a failure, the greedy
    repair and two fresh samples of the question's own prompt vote."""
    fresh = {0: "SELECT nme FROM customers", 2: "SELECT 1", 3: "SELECT 1"}
    backend, engine = _voter({0: "SELECT count(*) FROM customers"}, {}, 1, 3)
    answer = engine.ask("How many customers?", db)
    assert answer.rows == [[3]] and answer.candidates == 1 and backend.calls == [1]

    backend, engine = _voter(fresh, {0: "SELECT count(*) FROM customers"}, 1, 3)
    answer = engine.ask("How many customers?", db)
    assert backend.calls == [1, 3]
    assert [(c.temperature, c.seed) for c in backend.cfgs[1]] == [(0.0, 0), (0.8, 2), (0.8, 3)]
    repair, *samples = (json.loads(p) for p in backend.prompts[1:])
    assert "Unknown column: nme" in repair[-1]["content"]
    assert samples == [json.loads(backend.prompts[0])] * 2  # the question's own prompt
    # two samples that agree outvote the repair (seeds 2 and 3: attempt 1 had seed 1's)
    assert answer.rows == [[1]] and (answer.attempts, answer.candidates, answer.votes) == (2, 3, 2)


def test_ask_is_a_batch_of_one(db):
    backend = ScriptedBackend(["SELECT name FROM customers WHERE id = 2"])
    engine = TextToSQL(backend, followup=FollowupConfig(way="history"))
    answer = engine.ask("and who is 2?", db, history=[("How many?", "SELECT 1")])
    assert answer.rows == [["Bo"]] and backend.calls == [1]
    assert "How many?" in backend.prompts[0]  # the follow-up sees the earlier turn


@pytest.mark.parametrize(
    ("question", "path", "message"),
    [
        ("  ", None, "Please type a question."),
        ("Q?", "missing.sqlite", "missing.sqlite"),
    ],
)
def test_bad_input_is_one_line(db, question, path, message):
    answer = TextToSQL(ScriptedBackend([])).ask(question, db.parent / path if path else db)
    assert not answer.ok and message in answer.error and "\n" not in answer.error


def test_stop_criterion_stops_each_sequence_separately(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    rows = [tok("P SELECT 1;")["input_ids"], tok("P SELECT 1")["input_ids"]]
    width = max(map(len, rows))
    import torch

    ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    done = _StopAtStatementEnd(tok, prompt_len=1)(ids, None)
    assert done.tolist() == [True, False]


def test_tiny_llama_end_to_end_does_not_crash(tiny_llama, db):
    from engine.models import load_model

    backend = TransformersBackend(load_model(str(tiny_llama), device="cpu"))
    engine = TextToSQL(backend, generation=GenerationConfig(max_new_tokens=8))
    answer = engine.ask("How many customers are there?", db)
    assert answer.attempts == 2 and answer.backend.startswith("transformers")
    batch = backend.generate(
        [render_prompt(backend.loaded.tokenizer, [{"role": "user", "content": "a"}])] * 3,
        GenerationConfig(max_new_tokens=4),
    )
    assert len(batch) == 3


def test_cli_run_sql_json(db):
    out = engine_cli(
        "run-sql", "--db", str(db), "--json", "SELECT name FROM customers ORDER BY id LIMIT 2"
    )
    assert out.returncode == 0
    assert json.loads(out.stdout) == {"columns": ["name"], "rows": [["Ann"], ["Bo"]]}


def test_cli_run_sql_refuses_writes_and_leaves_file(db):
    before = db.read_bytes()
    out = engine_cli("run-sql", "--db", str(db), "--json", "DELETE FROM customers")
    assert out.returncode != 0 and "error" in json.loads(out.stdout)
    assert db.read_bytes() == before


@pytest.mark.parametrize("args", [["--db", "nope.sqlite", "Q?"], ["--db", "DB", ""]])
def test_cli_ask_bad_input(db, args):
    args = [str(db) if a == "DB" else a for a in args]
    out = engine_cli("ask", "--json", *args)
    assert out.returncode == 1
    assert json.loads(out.stdout)["error"]


@pytest.fixture
def scripted_cli(monkeypatch):
    """``python -m engine`` in this process over a scripted model: (run(argv) -> exit code,
    the model's outputs to come)."""
    import engine.factory
    from engine.cli import main

    outputs = []
    monkeypatch.setattr(
        engine.factory,
        "engine_from_config",
        lambda cfg, retriever=None, progress=None: TextToSQL(
            ScriptedBackend(outputs), followup=FollowupConfig(way="rewrite")
        ),
    )
    return main, outputs


EARLIER = [{"question": "How many customers are there?", "sql": "SELECT count(*) FROM customers"}]


@pytest.mark.parametrize("given", ["file", "inline"])
def test_cli_ask_follows_up_on_a_history(db, tmp_path, scripted_cli, capsys, given):
    main, outputs = scripted_cli
    history = json.dumps(EARLIER)
    if given == "file":
        (tmp_path / "history.json").write_text(history)
        history = str(tmp_path / "history.json")
    outputs += ["How many customers live in France?", "SELECT count(*) FROM customers WHERE country = 'France'"]  # fmt: skip
    args = ["ask", "--db", str(db), "--no-rag", "--history", history, "And in France?"]
    assert main([*args, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["understood"] == "How many customers live in France?"
    assert answer["rows"] == [[2]] and "France" in answer["explanation"]
    outputs += ["How many customers live in France?", "SELECT count(*) FROM customers WHERE country = 'France'"]  # fmt: skip
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Understood as: How many customers live in France?"
    assert lines[1] == "SELECT count(*) FROM customers WHERE country = 'France'"
    assert lines[2].startswith("- ") and lines[-1].strip() == "2"  # explanation, then rows


def test_cli_ask_without_history_prints_no_understood_line(db, scripted_cli, capsys):
    main, outputs = scripted_cli
    outputs.append("SELECT count(*) FROM customers")
    assert main(["ask", "--db", str(db), "--no-rag", "How many customers are there?"]) == 0
    out = capsys.readouterr().out
    assert "Understood as" not in out and out.startswith("SELECT count(*) FROM customers\n- ")


@pytest.mark.parametrize(
    "history, says",
    [
        ("[1, 2]", "history turn 1 is 1"),
        ('[["q"]]', 'history turn 1 is ["q"]'),
        ("[{'question': 'q'}]", "history is not JSON"),
        ("no-such-file.json", "--history 'no-such-file.json' is neither a file nor"),
    ],
)
def test_cli_ask_refuses_a_malformed_history(db, tmp_path, history, says):
    out = engine_cli("ask", "--db", str(db), "--no-rag", "--history", history, "--json", "And?")
    assert out.returncode == 1 and json.loads(out.stdout)["error"].startswith(says)
    [line] = out.stderr.strip().splitlines()  # one line, no traceback, nothing loaded
    assert line.startswith(f"Error: {says}")


def _count_customers(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM customers").fetchone()[0]
    finally:
        con.close()


@pytest.mark.slow
def test_real_smollm2_answers_on_the_shop_db(shop_db):
    """The smallest bundled model, real weights, through the CLI: checked SQL that ran.

    Without retrieval: SmolLM2-135M copies retrieved notes into WHERE clauses (RAG's own
    end-to-end run is in test_rag.py).
    """
    out = engine_cli(
        "ask",
        "--db",
        str(shop_db),
        "--model",
        "smollm2-135m-instruct",
        "--no-rag",
        "--json",
        "How many customers are there?",
    )
    answer = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr[-2000:]
    assert answer["error"] is None and "customers" in answer["sql"].lower()
    assert answer["columns"] and answer["rows"]


@pytest.mark.slow
def test_default_model_counts_customers(shop_db):
    """The default preset (Qwen2.5-Coder 1.5B) gets the count right, as the README promises."""
    out = engine_cli("ask", "--db", str(shop_db), "--json", "How many customers are there?")
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["rows"] == [[_count_customers(shop_db)]]


class DraftRetriever:
    """Notes that depend on the draft answer, as the pool's skeleton re-ranking does."""

    class cfg:  # noqa: N801 - what engine.rag.config.RagConfig offers
        pool_examples, pool_draft = 2, True

    def __init__(self):
        self.drafts = []

    def context(self, question, db_path, schema, budget, count_tokens, draft=None):
        from engine.context import Context

        self.drafts.append(draft)
        grouped = draft is not None and "GROUP BY" in draft
        return Context(schema.ddl(), "Q: per group\nSQL: GROUP BY" if grouped else "Q: plain")


def test_a_draft_answer_chooses_the_examples_and_only_changed_prompts_are_answered_again(db):
    backend = ScriptedBackend(
        [
            "SELECT country, count(*) FROM customers GROUP BY country",  # draft, question 1
            "SELECT count(*) FROM customers",  # question 2: its examples stay, so it stands
            "SELECT country, count(*) AS n FROM customers GROUP BY country ORDER BY n DESC",
        ]
    )
    retriever = DraftRetriever()
    engine = TextToSQL(backend, retriever=retriever)
    grouped, plain = engine.ask_batch(
        [Request("Customers per country?", db), Request("How many customers?", db)]
    )
    assert backend.calls == [2, 1]  # the second generation: only the changed prompt
    assert "SQL: GROUP BY" in backend.prompts[2] and "SQL: GROUP BY" not in backend.prompts[0]
    assert grouped.ok and grouped.rows == [["France", 2], ["Spain", 1]]
    assert plain.ok and plain.rows == [[3]] and plain.attempts == 1
    assert retriever.drafts == [
        None,
        None,
        "SELECT country, count(*) FROM customers GROUP BY country",
        "SELECT count(*) FROM customers",
    ]
