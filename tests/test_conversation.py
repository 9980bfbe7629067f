"""Follow-ups answered each way, and whether a question is one (engine.conversation)."""

import json

import pytest

from engine.config import EngineConfig, load_config
from engine.conversation import (
    FollowupConfig,
    followup_form,
    parse_rewrite,
    plan_followups,
    rewrite_messages,
    same_question,
    ways_for,
)
from engine.errors import ConfigError
from engine.pipeline import Request, TextToSQL
from tests.helpers import ScriptedBackend, customers_db

FRANCE = "SELECT name FROM customers WHERE country = 'France'"
HISTORY = [("Who lives in France?", FRANCE)]


@pytest.fixture
def db(tmp_path):
    return customers_db(tmp_path / "t.sqlite", orders=True)


def _turns(prompt: str) -> list[dict]:
    return json.loads(prompt)


@pytest.mark.parametrize(
    ("question", "form"),
    [
        ("which of them live in Leeds?", "refers_back"),
        ("and what did they spend?", "refers_back"),
        ("only the ones who paid by card", "refers_back"),
        ("how much was that?", "refers_back"),
        ("who are their managers?", "refers_back"),
        ("who is each of their advisors?", "refers_back"),
        ("List the names of each of their advisors", "refers_back"),
        ("Show each employee with their salary", None),
        ("which city is it based in?", "refers_back"),
        ("how many sections in each?", "refers_back"),
        ("how many races has each hosted so far?", "refers_back"),
        ("How many of its services are rated unsatisfied?", "refers_back"),
        ("How many orders in total per customer listed?", "refers_back"),
        ("How many students does each advisor have?", None),
        ("What are the card types, and how many cards are there of each?", None),
        (
            "What is the name of the department with the most students minoring in it?",
            "refers_back",  # "it" at the end: read as pointing back, as before
        ),
        (
            "What is the description for the CIS-220 and how many credits does it have?",
            None,  # a long question's "it" points inside it
        ),
        ("what about Spain?", "refines"),
        ("and in 2024?", "refines"),
        ("for 2024?", "refines"),
        ("sorted by name instead", "refines"),
        ("How many products cost more than 50?", None),
        ("List the departments and their budgets.", None),
        ("What are the names of the students and of their advisors?", None),
        ("Which customers ordered more than three times last year?", None),
    ],
)
def test_a_question_is_told_a_follow_up_by_its_wording(question, form):
    assert followup_form(question) == form


def test_a_rewritten_follow_up_is_answered_as_a_question_of_its_own(db):
    backend = ScriptedBackend(
        [
            "Standalone question: Which customers living in France have placed an order?",
            "SELECT DISTINCT c.name FROM customers AS c JOIN orders AS o ON o.customer_id = c.id "
            "WHERE c.country = 'France'",
        ]
    )
    engine = TextToSQL(backend, followup=FollowupConfig(way="rewrite", scope=False))
    answer = engine.ask("which of them have ordered?", db, HISTORY)
    assert answer.ok and answer.way == "rewrite"
    assert answer.understood == "Which customers living in France have placed an order?"
    assert answer.question == "which of them have ordered?"
    # the rewrite saw the conversation, after its worked examples
    rewrite = _turns(backend.prompts[0])
    assert rewrite[-1]["content"].startswith("Earlier question: Who lives in France?\nFollow-up:")
    assert len(rewrite) == 1 + 2 * 4 + 1
    # the SQL prompt asks the understood question alone: no earlier turns, no previous rows
    asked = _turns(backend.prompts[1])
    assert [m["role"] for m in asked] == ["system", "user"]
    assert "Task: Which customers living in France have placed an order?" in asked[1]["content"]
    assert "previous_result" not in asked[1]["content"]


def test_an_edited_follow_up_sees_the_previous_question_and_sql_in_one_turn(db):
    backend = ScriptedBackend(["SELECT name FROM customers WHERE country = 'Spain'"])
    engine = TextToSQL(backend, followup=FollowupConfig(way="edit"))
    answer = engine.ask("what about Spain?", db, HISTORY)
    assert answer.ok and answer.way == "edit" and answer.understood is None
    asked = _turns(backend.prompts[0])
    assert [m["role"] for m in asked] == ["system", "user"]
    text = asked[1]["content"]
    assert "previous question: Who lives in France?" in text and FRANCE in text
    assert text.index(FRANCE) < text.index("Task: what about Spain?")


def test_a_new_question_after_a_conversation_does_not_inherit_it(db):
    # the rule: not worded as a follow-up, so no rewrite and no earlier turns
    backend = ScriptedBackend(["SELECT count(*) FROM orders"])
    answer = TextToSQL(backend).ask("How many orders are there in total?", db, HISTORY)
    assert answer.ok and answer.way is None and answer.understood is None
    assert len(backend.prompts) == 1
    assert "France" not in backend.prompts[0]
    # the model decides: a rewrite that returns the question unchanged answers it alone
    backend = ScriptedBackend(["And how many orders are there?", "SELECT count(*) FROM orders"])
    engine = TextToSQL(backend, followup=FollowupConfig(way="rewrite", detect="model"))
    answer = engine.ask("and how many orders are there?", db, HISTORY)
    assert answer.ok and answer.way is None and "France" not in backend.prompts[1]


def test_ways_that_disagree_vote_by_their_rows(db):
    spain = "SELECT name FROM customers WHERE country = 'Spain'"
    backend = ScriptedBackend(
        [
            "Who lives in Spain?",  # the rewrite
            spain,  # rewrite's answer
            "SELECT name FROM customers",  # edit's answer: a different result
            spain + " ORDER BY name",  # previous's answer: the same rows as the rewrite's
            "SELECT count(*) FROM customers",  # the second question, asked once, alone
        ]
    )
    cfg = FollowupConfig(way="rewrite+edit+previous")
    answers = TextToSQL(backend, followup=cfg).ask_batch(
        [Request("what about Spain?", db, HISTORY), Request("How many customers?", db)]
    )
    follow, single = answers
    assert follow.ok and follow.sql == spain and follow.way == "rewrite"
    assert follow.votes == 2 and follow.candidates == 3
    assert follow.understood == "Who lives in Spain?" and follow.question == "what about Spain?"
    assert single.rows == [[3]] and single.way is None and not backend.outputs


def test_questions_without_a_conversation_are_asked_as_before(db):
    backend = ScriptedBackend(["SELECT count(*) FROM customers"])
    answer = TextToSQL(backend, followup=FollowupConfig(way="rewrite+edit")).ask(
        "How many customers?", db
    )
    assert answer.ok and len(backend.prompts) == 1 and answer.understood is None


def test_the_rewrite_reply_is_cleaned_or_refused():
    q = "which of them?"
    assert parse_rewrite(' "Which customers live in Leeds?"\nmore', q) == (
        "Which customers live in Leeds?"
    )
    assert parse_rewrite("SELECT * FROM customers", q) == q
    assert parse_rewrite("", q) == q
    # the earlier question repeated: the follow-up is lost, no rewrite came back
    assert parse_rewrite("Who lives in France?", q, ["Who lives in France?"]) == q
    assert parse_rewrite("Who lives in France?", "who lives in france", ["Who lives in France?"])
    assert same_question("How many orders are there?", "how many orders are there")
    messages = rewrite_messages(q, HISTORY)
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"


def test_the_follow_up_settings_load_and_refuse_nonsense(tmp_path):
    cfg = load_config(EngineConfig, None, {"followup.way": "edit", "followup.detect": "model"})
    assert cfg.followup == FollowupConfig(way="edit", detect="model")
    with pytest.raises(ConfigError, match="followup.way"):
        FollowupConfig(way="guess")
    with pytest.raises(ConfigError, match="followup.turns"):
        FollowupConfig(turns=0)


def test_form_picks_a_way_by_the_wording_and_joins_others():
    form = FollowupConfig(way="form+rewrite")
    assert ways_for(form, "which of them live in Leeds?", HISTORY) == ("previous", "rewrite")
    assert ways_for(form, "what about Spain?", HISTORY) == ("edit", "rewrite")
    assert ways_for(FollowupConfig(way="form+edit"), "and Spain?", HISTORY) == ("edit",)
    assert ways_for(form, "How many orders are there in total?", HISTORY) == ()
    assert ways_for(form, "which of them?", []) == ()


def test_by_default_a_follow_up_is_edited_and_rewritten_and_the_edit_wins_a_tie(db):
    backend = ScriptedBackend(
        [
            "Who lives in Spain?",  # the rewrite
            "SELECT name FROM customers WHERE country = 'Spain'",  # the edit's answer
            "SELECT name FROM customers",  # the rewrite's answer, other rows
        ]
    )
    # two values: no one value to put in the place of the earlier one, so the model's
    answer = TextToSQL(backend).ask("and in Spain or Portugal?", db, HISTORY)
    assert (
        answer.way == "edit" and answer.sql == "SELECT name FROM customers WHERE country = 'Spain'"
    )
    # the rewrite's answer disagreed: it is not how this answer understood the question
    assert answer.understood is None
    assert FollowupConfig().way == "compose+scope+edit+rewrite"
    spain = "SELECT name FROM customers WHERE country = 'Spain'"
    backend = ScriptedBackend(["Who lives in Spain?", spain, spain + " ORDER BY name"])
    answer = TextToSQL(backend).ask("and in Spain or Portugal?", db, HISTORY)
    assert answer.way == "edit" and answer.votes == 2 and answer.understood == "Who lives in Spain?"


def test_a_rewrite_that_repeats_the_earlier_question_is_asked_alone_within_its_rows(db):
    backend = ScriptedBackend(
        [
            "Who lives in France?",  # the rewrite only repeats the earlier question
            "SELECT name FROM customers WHERE length(name) < 3",  # the follow-up, asked alone
        ]
    )
    engine = TextToSQL(backend, followup=FollowupConfig(way="rewrite"))
    answer = engine.ask("which of them have a name shorter than 3 letters?", db, HISTORY)
    assert answer.ok and answer.way == "scope" and answer.understood is None
    assert "Who lives in France?" not in backend.prompts[1]
    # Cy, not Bo: Bo's name is as short, but Bo lives in Spain (the earlier SQL, kept to
    # the rows the answer gives: engine.compose.within_previous)
    assert answer.rows == [["Cy"]] and answer.sql.startswith(f"{HISTORY[-1][1]} AND ")


def test_scope_joined_to_other_ways_answers_only_questions_about_the_previous_rows():
    cfg = FollowupConfig(way="compose+scope+edit")
    assert ways_for(cfg, "which of them live in Leeds?", HISTORY) == ("compose", "scope", "edit")
    assert ways_for(cfg, "what about Spain?", HISTORY) == ("compose", "edit")
    assert ways_for(FollowupConfig(way="scope"), "what about Spain?", HISTORY) == ("scope",)


def test_a_rewrite_that_comes_back_empty_does_not_ask_the_scope_way_twice():
    cfg = FollowupConfig(way="scope+rewrite")
    asked = [("which of them live in Leeds?", HISTORY)]
    steps, _ = plan_followups(cfg, asked, lambda items: [q for q, _ in items])
    assert [way for _, way, _, _ in steps] == ["scope"]


def test_by_default_a_follow_up_about_the_rows_is_also_asked_about_them_by_name(db):
    backend = ScriptedBackend(
        [
            "Who of the customers in France has a name shorter than 3 letters?",  # the rewrite
            "SELECT name FROM customers WHERE length(name) < 3",  # scope: kept to their rows
            "SELECT name FROM customers WHERE name = 'Ann'",  # the edit's answer, other rows
            "SELECT name FROM customers WHERE length(name) < 3",  # the rewrite's: every Bo too
        ]
    )
    # within=False: the ways' own rows vote (kept within France, two of them would agree)
    answer = TextToSQL(backend, followup=FollowupConfig(within=False)).ask(
        "which of them have a name shorter than 3 letters?", db, HISTORY
    )
    assert "which of the customers have a name shorter than 3 letters?" in backend.prompts[1]
    # three different rows: the tie goes to scope, the first way (Cy; Bo is not in France)
    assert answer.way == "scope" and answer.rows == [["Cy"]] and answer.understood is None
