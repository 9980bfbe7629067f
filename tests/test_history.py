"""The question history: one SQLite file in the data folder, newest first, per database."""

from engine import history as history_module
from engine.history import QuestionHistory


def test_entries_come_back_newest_first_per_database(tmp_path):
    history = QuestionHistory(tmp_path)
    shop, hr = tmp_path / "shop.sqlite", tmp_path / "hr.sqlite"
    history.record(shop, "How many customers?", "SELECT count(*) FROM customers", True, "1 row(s)")
    history.record(hr, "How many employees?", "SELECT count(*) FROM employees", True, "1 row(s)")
    history.record(shop, "Revenue?", "SELECT quantity FROM orders", False, "Unknown column")
    history.record(shop, "Revenue?", "SELECT 1", True, "1 row(s)", edited=True)
    entries = history.recent(shop)
    assert [(e.question, e.ok, e.edited) for e in entries] == [
        ("Revenue?", True, True),
        ("Revenue?", False, False),
        ("How many customers?", True, False),
    ]
    assert entries[0].asked_at >= entries[-1].asked_at
    assert history.get(entries[1].id).detail == "Unknown column"
    assert [e.question for e in history.recent(hr)] == ["How many employees?"]


def test_history_survives_a_restart_and_clears_per_database(tmp_path):
    shop, hr = tmp_path / "shop.sqlite", tmp_path / "hr.sqlite"
    QuestionHistory(tmp_path).record(shop, "Q1", None, False, "no SQL")
    QuestionHistory(tmp_path).record(hr, "Q2", "SELECT 2", True, "1 row(s)")
    again = QuestionHistory(tmp_path)  # a new process opens the same file
    assert [e.question for e in again.recent(shop)] == ["Q1"] and again.recent(shop)[0].sql == ""
    assert again.clear(shop) == 1
    assert again.recent(shop) == [] and [e.question for e in again.recent(hr)] == ["Q2"]
    assert (tmp_path / "history.sqlite").is_file()


def test_a_fresh_folder_has_no_history_and_no_file(tmp_path):
    history = QuestionHistory(tmp_path / "new")
    assert history.recent(tmp_path / "x.sqlite") == [] and history.get(1) is None
    assert history.clear(tmp_path / "x.sqlite") == 0
    assert not (tmp_path / "new").exists()


def test_old_entries_are_dropped_beyond_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(history_module, "KEEP", 3)
    history = QuestionHistory(tmp_path)
    for i in range(5):
        history.record(tmp_path / "a.sqlite", f"Q{i}", "SELECT 1", True, "1 row(s)")
    assert [e.question for e in history.recent(tmp_path / "a.sqlite")] == ["Q4", "Q3", "Q2"]
