"""Follow-ups about the previous answer's rows: the ``previous_result`` table (engine.followup)."""

import json
import sqlite3

import pytest

from engine.conversation import FollowupConfig
from engine.followup import attach_previous, previous_columns, previous_note, retrieval_query
from engine.pipeline import TextToSQL
from tests.helpers import ScriptedBackend, customers_db

TOP2 = "SELECT name, country FROM customers ORDER BY id LIMIT 2"
# These tests are about the previous_result way (engine.conversation has the others).
# the previous_result way on its own (within=False: its SQL as written, not kept by keys)
PREVIOUS = FollowupConfig(way="previous", within=False)


@pytest.fixture
def db(tmp_path):
    return customers_db(tmp_path / "t.sqlite", orders=True)


def test_the_note_names_the_previous_answers_columns():
    assert previous_columns("SELECT c.name, count(*) AS n FROM customers AS c") == ["name", "n"]
    # unnamed ones get a name the follow-up can use (the CTE's column list gives it them)
    assert previous_columns("SELECT country, count(*), id + 1, id FROM c") == [
        "country",
        "count",
        "column3",
        "id",
    ]
    assert previous_columns("SELECT a.id, b.id FROM a, b") == ["id", "id_2"]
    note = previous_note(TOP2)
    assert "previous_result(name, country)" in note
    # nothing to offer when the columns cannot be told
    assert previous_note("SELECT * FROM customers") == ""
    assert previous_note("not sql at all (") == "" and previous_note(None) == ""


def test_an_answer_that_selects_from_the_previous_rows_gets_them_in_front():
    sql = attach_previous("SELECT name FROM previous_result WHERE country = 'France'", TOP2)
    cte = f"WITH previous_result(name, country) AS ({TOP2})"
    assert sql == f"{cte} SELECT name FROM previous_result WHERE country = 'France'"
    # the query's own CTEs come after it, so they may use it
    own = attach_previous("WITH f AS (SELECT * FROM previous_result) SELECT name FROM f", TOP2)
    assert own.startswith(f"WITH previous_result(name, country) AS ({TOP2}), f AS (")
    # left alone: no mention of the table, the model defined it itself, no previous answer
    assert attach_previous("SELECT name FROM customers", TOP2) == "SELECT name FROM customers"
    defined = "WITH previous_result AS (SELECT 1 AS a) SELECT a FROM previous_result"
    assert attach_previous(defined, TOP2) == defined
    assert attach_previous("SELECT a FROM previous_result", None) == "SELECT a FROM previous_result"


def test_a_follow_up_retrieves_with_the_question_before_it():
    assert retrieval_query("what about paypal?", None) == "what about paypal?"
    turns = [("Orders by gift card each year?", "SELECT 1"), ("and by card?", "SELECT 2")]
    assert retrieval_query("what about paypal?", turns) == "and by card?\nwhat about paypal?"


def test_a_follow_up_about_them_is_answered_over_the_previous_rows_only(db):
    backend = ScriptedBackend(
        [
            "SELECT p.name, sum(o.total) AS spent FROM previous_result AS p "
            "JOIN customers AS c ON c.name = p.name JOIN orders AS o ON o.customer_id = c.id "
            "GROUP BY p.name ORDER BY spent DESC LIMIT 1"
        ]
    )
    history = [("Who are our first two customers?", TOP2)]
    answer = TextToSQL(backend, followup=PREVIOUS).ask(
        "and which of them spent the most?", db, history
    )
    # Cy spent most of all customers; of the first two, Ann did
    assert answer.ok and answer.rows == [["Ann", 15.0]]
    assert answer.sql.startswith(f"WITH previous_result(name, country) AS ({TOP2}) SELECT")
    follow_up = json.loads(backend.prompts[0])[-1]["content"]
    assert "previous_result(name, country)" in follow_up
    assert follow_up.index("previous_result") < follow_up.index("Task: and which of them")
    # the SQL shown is whole: it runs on its own, and a further follow-up builds on it
    con = sqlite3.connect(db)
    assert con.execute(answer.sql).fetchall() == [("Ann", 15.0)]
    again = ScriptedBackend(["SELECT spent FROM previous_result"])
    turns = [*history, ("and which of them spent the most?", answer.sql)]
    third = TextToSQL(again, followup=PREVIOUS).ask("how much was that?", db, turns)
    assert third.ok and third.rows == [[15.0]]
    assert "previous_result(name, spent)" in json.loads(again.prompts[0])[-1]["content"]


def test_a_refining_follow_up_runs_as_written_and_a_first_question_gets_no_note(db):
    backend = ScriptedBackend(["SELECT name FROM customers WHERE country = 'Spain'"])
    history = [("Who lives in France?", "SELECT name FROM customers WHERE country = 'France'")]
    answer = TextToSQL(backend, followup=PREVIOUS).ask("what about Spain?", db, history)
    assert answer.ok and answer.sql == "SELECT name FROM customers WHERE country = 'Spain'"
    first = ScriptedBackend(["SELECT count(*) FROM customers"])
    TextToSQL(first).ask("How many customers?", db)
    assert "previous_result" not in first.prompts[0]


def test_a_wrong_column_of_the_previous_rows_is_repaired_like_any_other(db):
    backend = ScriptedBackend(
        ["SELECT total FROM previous_result", "SELECT country FROM previous_result"]
    )
    answer = TextToSQL(backend, max_attempts=2, followup=PREVIOUS).ask(
        "their countries?", db, [("Q", TOP2)]
    )
    assert answer.ok and answer.rows == [["France"], ["Spain"]] and answer.attempts == 2
    repair = json.loads(backend.prompts[1])[-1]["content"]
    assert "Unknown column: total" in repair and "previous_result(name, country)" in repair


def test_the_engine_retrieves_for_a_follow_up_with_the_question_before_it(db):
    from engine.context import Context

    class Recording:
        def __init__(self):
            self.queries = []

        def context(self, question, db_path, schema, budget, count_tokens):
            self.queries.append(question)
            return Context(schema.ddl())

    retriever = Recording()
    engine = TextToSQL(
        ScriptedBackend(["SELECT 1", "SELECT 2"]), retriever=retriever, followup=PREVIOUS
    )
    engine.ask("How many customers?", db)
    engine.ask(
        "what about orders?", db, [("How many customers?", "SELECT count(*) FROM customers")]
    )
    assert retriever.queries == ["How many customers?", "How many customers?\nwhat about orders?"]
