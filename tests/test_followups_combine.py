"""A combination of follow-up ways told from its ways' records (bench/followups_combine.py)."""

from __future__ import annotations

import pytest

from bench.followups_combine import combine, expand

ABOUT_ROWS = "which of them live in Leeds?"
CHANGE = "and for 2024?"
NEW = "How many authors are there?"


FIRST = "Which members joined in 2022?"


def _key(question):
    return FIRST, question


def _record(row, question, kind, rows, correct, ok=True):
    return {
        "row": row,
        "first": FIRST,
        "followup": question,
        "kind": kind,
        "ok": ok,
        "rows": rows,
        "correct": correct,
        "s_per_answer": 2.0,
    }


def test_form_resolves_by_wording_and_a_new_question_is_asked_alone():
    assert expand("form", ABOUT_ROWS) == ["previous"]
    assert expand("form", CHANGE) == ["edit"]
    assert expand("edit+rewrite", CHANGE) == ["edit", "rewrite"]
    assert expand("form+rewrite", ABOUT_ROWS) == ["previous", "rewrite"]
    assert expand("rewrite+edit", NEW) == ["rewrite"]  # not a follow-up: the same in every row


def test_a_combination_keeps_the_rows_most_ways_share_ties_to_the_first():
    parts = {_key(ABOUT_ROWS): "tune", _key(CHANGE): "tune", _key(NEW): "final"}
    records = [
        # the edit failed: the rewrite's answer is kept
        _record("edit", ABOUT_ROWS, "refers_back", None, False, ok=False),
        _record("rewrite", ABOUT_ROWS, "refers_back", "a", True),
        _record("previous", ABOUT_ROWS, "refers_back", "b", False),
        # both ran and differ: the first way's
        _record("edit", CHANGE, "refines", "c", True),
        _record("rewrite", CHANGE, "refines", "d", False),
        _record("previous", CHANGE, "refines", "d", False),
        _record("edit", NEW, "unrelated", "e", True),
        _record("rewrite", NEW, "unrelated", "e", True),
        _record("previous", NEW, "unrelated", "e", True),
    ]
    line = combine(records, "edit+rewrite", parts, "tune")
    assert (line["right"], line["refers_back"], line["refines"]) == (2, "1/1", "1/1")
    assert combine(records, "rewrite+edit", parts, "tune")["refines"] == "0/1"
    # three ways: the two that agree outvote the first
    assert combine(records, "edit+rewrite+previous", parts, "tune")["refines"] == "0/1"
    assert combine(records, "form", parts, "tune")["refers_back"] == "0/1"
    assert combine(records, "edit", parts, "final")["unrelated"] == "1/1"
    assert combine(records, "edit+rewrite", parts, "all")["n"] == 3


COUNT = "how many people work in each of them?"


def test_a_combination_with_compose_takes_the_composed_answer_and_the_rest_from_records():
    assert expand("compose+edit+rewrite", ABOUT_ROWS) == ["edit", "rewrite"]
    assert expand("compose+edit+rewrite", NEW) == ["edit"]
    parts = {_key(COUNT): "tune", _key(CHANGE): "tune"}
    records = [
        _record("edit", CHANGE, "refines", "c", True),
        _record("rewrite", CHANGE, "refines", "d", False),
    ]  # no records of the count follow-up: its answer is composed
    composed = {_key(COUNT): {"kind": "refers_back", "ok": True, "rows": "x", "correct": True}}
    line = combine(records, "compose+edit+rewrite", parts, "tune", composed)
    assert (line["refers_back"], line["refines"]) == ("1/1", "1/1")
    assert line["s_per_answer_of_ways"] == 2.0  # (0 + 2 + 2) / 2


def test_the_sample_follow_ups_of_the_composed_forms_are_right_without_a_model():
    from bench.followups_combine import composed_records
    from bench.followups_set import load_conversations

    items = [it for it in load_conversations() if it["source"] == "sample"]
    found = composed_records("compose+edit+rewrite", items)
    assert sorted(followup for _, followup in found) == [
        "how many orders has each of them placed in total?",
        "how many people hold each of those?",
        "how many people work in each of them?",
        "how many reviews has each of them written?",
        "sort them by salary, highest first",  # a refinement: the previous rows re-sorted
        "what about Amsterdam instead?",  # refinements: a value in place of the previous one
        "what about Garden instead?",
        "what about Marketing?",
        "what about bands?",
        "what about paypal?",
        "what are their job titles?",
        "what departments are they in?",
        "which of them are in Sales?",
        "who are their managers?",
    ]
    assert all(r["correct"] for r in found.values())
    assert composed_records("edit+rewrite", items) == {}


def test_scope_in_a_combination_answers_only_the_follow_ups_about_the_previous_rows():
    assert expand("compose+scope+edit+rewrite", ABOUT_ROWS) == ["scope", "edit", "rewrite"]
    assert expand("compose+scope+edit+rewrite", CHANGE) == ["edit", "rewrite"]
    assert expand("compose+scope+edit", NEW) == ["scope"]  # asked alone: its first way stands


def test_one_run_of_the_widest_combination_tells_the_narrower_ones():
    from bench.followups_combine import split_voters

    row = "compose+scope+edit+rewrite+previous"
    records = [
        {  # answered four ways: scope alone was right, edit and previous agree
            "row": row,
            "first": FIRST,
            "followup": ABOUT_ROWS,
            "kind": "refers_back",
            "way": "edit",
            "ok": True,
            "rows": "y",
            "correct": False,
            "voters": {
                "scope": [True, "x"],
                "edit": [False, "y"],
                "rewrite": [False, "z"],
                "previous": [False, "y"],
            },
        },
        {  # the rewrite came back unchanged: asked three ways
            "row": row,
            "first": FIRST,
            "followup": COUNT,
            "kind": "refers_back",
            "way": "scope",
            "ok": True,
            "rows": "x",
            "correct": True,
            "voters": {"scope": [True, "x"], "edit": [False, None], "previous": [False, "w"]},
        },
        {
            "row": row,
            "first": FIRST,
            "followup": NEW,
            "kind": "unrelated",
            "way": None,
            "ok": True,
            "rows": "e",
            "correct": True,
            "inherited": False,
        },
        {
            "row": "edit",
            "followup": NEW,
            "kind": "unrelated",
            "way": None,
            "ok": True,
            "rows": "f",
            "correct": False,
        },  # another row's: left out
    ]
    split = split_voters(records, row)
    assert sorted((r["row"], r["followup"]) for r in split if r["followup"] == NEW) == [
        ("edit", NEW),
        ("history", NEW),
        ("previous", NEW),
        ("rewrite", NEW),
        ("scope", NEW),
    ]
    parts = {_key(ABOUT_ROWS): "tune", _key(COUNT): "tune", _key(NEW): "tune"}

    def right(combination):
        return combine(split, combination, parts, "tune")["right"]

    assert right("scope+edit+rewrite") == 3  # three different rows: the first way's
    # edit and previous outvote scope on the first; the count is 1-1 (edit failed): scope's
    assert right("scope+edit+rewrite+previous") == 2
    assert right("edit+previous") == 1  # the count: edit failed, previous's wrong rows
    assert right("rewrite") == 2  # the count's rewrite was asked as scope
    with pytest.raises(ValueError, match="no records of history"):
        right("history")  # a way the recorded row did not ask
