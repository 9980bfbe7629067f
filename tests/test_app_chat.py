"""Chat tab handlers, driven without a browser (the browser tests are in test_app_browser)."""

import json

import pytest

from app import chat
from app.databases import databases_of
from app.engines import EnginePool
from engine.config import EngineConfig
from engine.conversation import FollowupConfig
from engine.history import QuestionHistory
from engine.pipeline import TextToSQL
from tests.helpers import PrefillingBackend, ScriptedBackend

SHOP = "shop (sample)"


@pytest.fixture
def pool():
    return EnginePool(EngineConfig(model="scripted"))


def _with(pool, outputs):
    backend = ScriptedBackend(outputs)
    # these tests show the rewrite's "Understood as"; the default way has its own test
    pool.put("scripted", None, TextToSQL(backend, followup=FollowupConfig(way="rewrite")))
    return backend


def test_sample_databases_are_offered():
    assert {"shop (sample)", "hr (sample)", "music (sample)"} <= set(databases_of())


def test_ask_shows_sql_rows_and_status(pool, shop_db, tmp_path):
    _with(pool, ["SELECT count(*) AS n FROM customers;"])
    history = QuestionHistory(tmp_path)
    turn = chat.ask("How many customers?", SHOP, "scripted", [], [], pool, history)
    sql = turn.answer.sql
    assert sql == "SELECT count(*) AS n FROM customers"
    assert turn.answer.columns == ["n"] and turn.answer.rows[0][0] > 0
    assert turn.chat[0] == {"role": "user", "content": "How many customers?"}
    assert "1 row(s)" in turn.status and "1 attempt(s)" in turn.status
    assert turn.turns == [("How many customers?", sql)]
    [entry] = history.recent(shop_db)
    assert (entry.question, entry.sql, entry.ok, entry.detail) == (
        "How many customers?", sql, True, "1 row(s)",
    )  # fmt: skip


def test_follow_up_sends_earlier_turns(pool, shop_db):
    backend = _with(
        pool,
        [
            "SELECT count(*) FROM customers",
            "How many orders are there?",  # the follow-up rewritten (engine.conversation)
            "SELECT count(*) FROM orders",
        ],
    )
    turn = chat.ask("How many customers?", SHOP, "scripted", [], [], pool)
    turn = chat.ask("And orders?", SHOP, "scripted", turn.chat, turn.turns, pool)
    rewrite = json.loads(backend.prompts[-2])[-1]["content"]
    assert rewrite.startswith("Earlier question: How many customers?\nFollow-up: And orders?")
    assert turn.answer.understood == "How many orders are there?"
    assert "Understood as: How many orders are there?" in turn.chat[-1]["content"]


def test_errors_are_plain_and_the_app_keeps_going(pool, shop_db, tmp_path):
    _with(pool, ["I cannot help with that.", "Still no SQL."])
    history = QuestionHistory(tmp_path)
    turn = chat.ask("Delete everything", SHOP, "scripted", [], [], pool, history)
    assert not turn.answer.ok and turn.status.startswith("**Could not answer:**")
    assert turn.turns == []
    assert [(e.ok, e.sql) for e in history.recent(shop_db)] == [(False, "")]
    assert chat.ask("", SHOP, "scripted", [], [], pool).status == "Please type a question."


def test_edited_sql_runs_read_only(pool, shop_db):
    before = shop_db.read_bytes()
    result, status = chat.run_edited_sql("SELECT name FROM products LIMIT 3", SHOP, pool)
    assert len(result.rows) == 3 and status == "3 row(s)"
    result, status = chat.run_edited_sql("DROP TABLE products", SHOP, pool)
    assert not result.ok and "Could not run" in status
    assert shop_db.read_bytes() == before


def test_transpile_to_other_dialects():
    assert "LIMIT" not in chat.transpile("SELECT name FROM t LIMIT 5", "tsql")
    assert chat.transpile("SELECT name FROM t LIMIT 5", "postgres").startswith("SELECT")
    assert chat.transpile("SELECT FROM WHERE (", "postgres").startswith("-- cannot transpile")


def test_choosing_a_database_primes_it_for_the_loaded_model(pool, shop_db):
    backend = PrefillingBackend([])
    pool.put("scripted", None, TextToSQL(backend))
    chat.prime(SHOP, "scripted", pool).join(timeout=60)
    assert len(backend.prefilled) == 1 and "CREATE TABLE customers" in backend.prefilled[0]
    assert pool.status == "Model ready: scripted · shop.sqlite ready"
    # a model that is not loaded is not loaded just because a database was picked
    assert chat.prime(SHOP, "not-loaded-model", pool) is None
    assert chat.prime("no such database", "scripted", pool) is None


def test_warm_up_primes_the_default_database(pool, shop_db):
    backend = PrefillingBackend([])
    pool.put("scripted", None, TextToSQL(backend))
    pool.warm_up(shop_db).join(timeout=60)
    assert "CREATE TABLE orders" in backend.prefilled[0]


def test_the_model_status_is_polled_only_while_it_can_change(pool, monkeypatch):
    """An open page asks the app for the model status line every 2 s only while a model
    loads or a background job (warm-up, priming, an index rebuild) runs: an idle page costs
    the app and the browser nothing."""
    import threading

    import gradio as gr

    import app.engines
    from app.main import build_app

    loading, release = threading.Event(), threading.Event()

    def slow_load(cfg, progress=None):
        progress("Converting the model…")
        loading.set()
        release.wait(timeout=60)
        return TextToSQL(ScriptedBackend([]))

    monkeypatch.setattr(app.engines, "engine_from_config", slow_load)
    monkeypatch.setattr(app.engines, "EnginePool", lambda cfg, max_batch=1: pool)
    demo = build_app(EngineConfig(model="scripted"))
    [timer] = [b for b in demo.blocks.values() if isinstance(b, gr.Timer)]
    assert timer.active is False  # a page starts without polling
    [poll] = {f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "poll"}
    line, update = poll()
    assert not pool.busy and update.active is False and "not loaded yet" in line

    load = threading.Thread(target=pool.get, args=("scripted",))
    load.start()
    assert loading.wait(timeout=30)
    line, update = poll()
    assert pool.busy and update.active is True and line == "Converting the model…"
    release.set()
    load.join(timeout=30)
    line, update = poll()  # the last tick shows the result and stops the polling
    assert not pool.busy and update.active is False and line.startswith("Model ready")


def test_reply_shows_the_understood_question_and_what_the_sql_does(pool, shop_db):
    _with(pool, ["SELECT count(*) FROM customers", "How many orders are there?",
                 "SELECT count(*) FROM orders"])  # fmt: skip
    first = chat.ask("How many customers?", SHOP, "scripted", [], [], pool)
    reply = first.chat[-1]["content"]
    assert "Understood as" not in reply  # a question alone is shown as before
    assert reply.startswith("```sql\nSELECT count(*) FROM customers\n```")
    assert "<summary>What this query does</summary>" in reply and "customers" in reply
    assert reply.endswith(first.status)
    turn = chat.ask("And orders?", SHOP, "scripted", first.chat, first.turns, pool)
    reply = turn.chat[-1]["content"]
    assert reply.startswith("*Understood as: How many orders are there?*\n\n```sql")
    assert turn.answer.explanation and turn.answer.explanation in reply
    assert chat.understood_as(turn.answer) == "How many orders are there?"


def test_a_rewrite_that_changed_nothing_is_not_shown(pool, shop_db):
    _with(pool, ["SELECT count(*) FROM customers", "and orders?", "SELECT count(*) FROM orders"])
    first = chat.ask("How many customers?", SHOP, "scripted", [], [], pool)
    turn = chat.ask("And orders?", SHOP, "scripted", first.chat, first.turns, pool)
    assert turn.answer.understood == "and orders?" and chat.understood_as(turn.answer) is None
    assert "Understood as" not in turn.chat[-1]["content"]


def test_the_edited_understood_question_replaces_the_follow_up(pool, shop_db):
    backend = _with(pool, ["SELECT count(*) FROM customers", "How many orders are there?",
                           "SELECT count(*) FROM orders", "SELECT count(*) FROM products"])  # fmt: skip
    first = chat.ask("How many customers?", SHOP, "scripted", [], [], pool)
    turn = chat.ask("And orders?", SHOP, "scripted", first.chat, first.turns, pool)
    asked = len(backend.prompts)
    edited = chat.ask(
        "How many products are there?", SHOP, "scripted", turn.chat, turn.turns, pool,
        standalone=True,
    )  # fmt: skip
    # asked alone: no rewrite, no earlier turns in its one prompt
    assert len(backend.prompts) == asked + 1
    prompt = json.loads(backend.prompts[-1])
    assert [m["role"] for m in prompt] == ["system", "user"]
    assert "How many customers?" not in backend.prompts[-1]
    assert edited.answer.understood is None and edited.answer.sql.endswith("FROM products")
    assert edited.turns == [
        ("How many customers?", "SELECT count(*) FROM customers"),
        ("How many products are there?", "SELECT count(*) FROM products"),
    ]
    assert [m["content"] for m in edited.chat if m["role"] == "user"] == [
        "How many customers?", "And orders?", "How many products are there?",
    ]  # fmt: skip


def test_a_follow_up_answered_without_a_rewrite_says_what_it_followed(pool, shop_db):
    top = "SELECT customer_id, first_name FROM customers ORDER BY customer_id LIMIT 3"
    backend = ScriptedBackend([top, "SELECT first_name FROM customers WHERE city = 'Toronto'"])
    pool.put("scripted", None, TextToSQL(backend, followup=FollowupConfig(way="form")))
    first = chat.ask("Who are the first three customers?", SHOP, "scripted", [], [], pool)
    turn = chat.ask(
        "which of them live in Toronto?", SHOP, "scripted", first.chat, first.turns, pool
    )
    reply = turn.chat[-1]["content"]
    assert turn.answer.way == "previous" and turn.answer.understood is None
    assert reply.startswith(
        "*Understood as a follow-up of “Who are the first three customers?”, about its rows*"
    )
    assert "scope_key" in turn.answer.sql  # kept to the three of them
