"""Rows of bench/followups.py share their steps: each is answered once (bench.followups.Steps)."""

from types import SimpleNamespace

from bench.followups import Steps
from engine.answer import Answer


class FakeEngine:
    """The two methods Steps wraps, counting what reaches them."""

    def __init__(self):
        self.asked, self.rewrites = [], []

    def _answer_all(self, asked, schemas=None):
        self.asked += asked
        return [Answer(question=request.question, sql=f"-- {way}") for way, request, _ in asked]

    def _rewrite(self, asked):
        self.rewrites += asked
        return [q.upper() for q, _ in asked]


def request(question, history=(("first?", "SELECT 1"),)):
    return SimpleNamespace(question=question, db_path="a.sqlite", history=list(history))


def test_a_step_asked_by_a_second_row_is_not_asked_again_and_each_row_gets_its_own_copy():
    engine = FakeEngine()
    steps = Steps(engine)
    one = engine._answer_all([("edit", request("which of them?"), None)])
    steps.seconds()
    two = engine._answer_all(
        [("edit", request("which of them?"), None), ("scope", request("which of them?"), None)]
    )
    assert [way for way, _, _ in engine.asked] == ["edit", "scope"]
    assert two[0].sql == one[0].sql == "-- edit" and two[0] is not one[0]
    two[0].understood = "changed by the vote"
    assert engine._answer_all([("edit", request("which of them?"), None)])[0].understood is None


def test_the_same_question_kept_within_other_rows_or_in_another_conversation_is_a_new_step():
    engine = FakeEngine()
    Steps(engine)
    engine._answer_all([("edit", request("which of them?"), None)])
    engine._answer_all([("edit", request("which of them?"), "SELECT 2")])
    engine._answer_all([("edit", request("which of them?", [("other?", "SELECT 3")]), None)])
    assert len(engine.asked) == 3


def test_rewrites_are_asked_once_and_seconds_count_what_a_row_used():
    engine = FakeEngine()
    steps = Steps(engine)
    history = [("first?", "SELECT 1")]
    assert engine._rewrite([("their names?", history)]) == ["THEIR NAMES?"]
    assert engine._rewrite([("their names?", history), ("and ages?", history)]) == [
        "THEIR NAMES?",
        "AND AGES?",
    ]
    assert len(engine.rewrites) == 2
    assert steps.seconds() >= 0.0
    assert steps.seconds() == 0.0  # nothing asked since


def test_a_row_names_its_ways_detection_and_whether_the_kept_rows_are_off():
    from bench.followups import parse_row

    assert parse_row("edit+rewrite") == {"way": "edit+rewrite", "detect": "rule"}
    assert parse_row("edit@model") == {"way": "edit", "detect": "model"}
    assert parse_row("compose+scope-within") == {
        "way": "compose+scope",
        "detect": "rule",
        "within": False,
    }


def test_a_follow_up_answered_several_ways_keeps_each_ways_rows_and_whether_it_was_right(
    tmp_path,
):
    import sqlite3

    import engine.pipeline as pipeline
    from bench.followups import _voters, rows_digest

    db = tmp_path / "t.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        con.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
    Steps(FakeEngine())
    one = Answer("q", sql="SELECT x FROM t WHERE x = 1", rows=[[1]])
    every = Answer("q", sql="SELECT x FROM t", rows=[[1], [2]])
    failed = Answer("q", sql="SELECT y FROM t", error="no such column: y")
    kept = pipeline.vote_by_rows([("scope", one), ("edit", every), ("rewrite", failed)])
    assert kept is one
    assert _voters(kept, "SELECT 1", db) == {
        "scope": [True, rows_digest([[1]])],
        "edit": [False, rows_digest([[1], [2]])],
        "rewrite": [False, None],
    }
    alone = pipeline.vote_by_rows([(None, every)])
    assert _voters(alone, "SELECT 1", db) is None  # one way: the record says it all
