"""A combination of follow-up ways told from its ways' records (bench/followups_combine.py)."""

from __future__ import annotations

from bench.followups_combine import combine, expand

ABOUT_ROWS = "which of them live in Leeds?"
CHANGE = "and for 2024?"
NEW = "How many authors are there?"


def _record(row, question, kind, rows, correct, ok=True):
    return {
        "row": row,
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
    parts = {ABOUT_ROWS: "tune", CHANGE: "tune", NEW: "final"}
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
