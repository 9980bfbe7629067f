"""The app's public API through gradio_client, against a real ``launch.py`` subprocess.

Sessions are separate ``Client`` objects (each its own Gradio session); the model is the
small bundled SmolLM2 through llama.cpp, so answers come fast (right or wrong: what is
checked is that each session gets its own). The app binds to every address without sign-in,
so it must warn about that, in its log and on the page.
"""

import json
import threading
import urllib.request

import pytest

from tests.browser import (
    ARTIFACTS,
    CHEAP_ANSWERS,
    browser_page,
    free_port,
    running_app,
    screenshot,
    wait_for,
)
from tests.helpers import ScriptedBackend

pytestmark = [pytest.mark.slow]
SHOP, HR = "shop (sample)", "hr (sample)"
SHOP_QUESTIONS = ["How many customers are there?", "How many orders are there?"]
HR_QUESTIONS = ["How many employees are there?", "How many departments are there?"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data = tmp_path_factory.mktemp("apidata")
    with running_app("--host", "0.0.0.0", *CHEAP_ANSWERS, data_dir=data, ready_timeout=180) as url:
        yield url, data


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def test_only_the_named_endpoints_are_offered(app):
    url, _ = app
    api = _client(url).view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/ask", "/run_sql", "/databases"}
    assert api["unnamed_endpoints"] == {}
    names = {
        name: [p["parameter_name"] for p in e["parameters"]]
        for name, e in api["named_endpoints"].items()
    }
    assert names == {"/ask": ["question", "database", "history"], "/run_sql": ["sql", "database"],
                     "/databases": []}  # fmt: skip
    with browser_page() as page:  # the "Use via API" page shows the same three
        page.goto(url, wait_until="load")
        page.get_by_text("Use via API").click()
        page.get_by_text("API name: /databases").first.wait_for(timeout=60_000)
        screenshot(page, "api-page")
        text = page.locator("body").inner_text()
        assert "API name: /ask" in text and "API name: /run_sql" in text
        assert text.count("API name: /") == 3, text
    # An internal event (here: the chat's Ask button) is refused to the client.
    with pytest.raises(Exception):  # noqa: B017 - gradio_client's own error types vary
        _client(url).predict("How many customers?", api_name="/on_ask")


def test_ask_and_run_sql_return_json(app):
    url, _ = app
    client = _client(url)
    assert {SHOP, HR} <= set(client.predict(api_name="/databases"))
    answer = client.predict("How many customers are there?", SHOP, api_name="/ask")
    assert {"sql", "columns", "rows", "error", "history"} <= set(answer)
    assert answer["question"] == "How many customers are there?" and answer["database"] == SHOP
    ran = client.predict("SELECT count(*) AS n FROM customers", SHOP, api_name="/run_sql")
    assert ran["error"] is None and ran["columns"] == ["n"] and ran["rows"][0][0] > 0
    refused = client.predict("DELETE FROM customers", SHOP, api_name="/run_sql")
    assert refused["error"] and refused["rows"] == []
    unknown = client.predict("How many?", "nope (sample)", api_name="/ask")
    assert unknown["error"] == "Please choose a database."


def test_two_sessions_on_different_databases_keep_their_own_answers(app):
    """Both sessions ask at the same time; each answer and each history is its own."""
    url, _ = app
    results: dict[str, list] = {SHOP: [], HR: []}
    errors: list[BaseException] = []

    def session(database, questions, count_sql):
        try:
            client = _client(url)
            for question in questions:
                results[database].append(
                    (question, client.predict(question, database, api_name="/ask"))
                )
                results[database].append(
                    (count_sql, client.predict(count_sql, database, api_name="/run_sql"))
                )
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    threads = [
        threading.Thread(target=session, args=(SHOP, SHOP_QUESTIONS, "SELECT count(*) FROM customers")),
        threading.Thread(target=session, args=(HR, HR_QUESTIONS, "SELECT count(*) FROM employees")),
    ]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors
    for database, own, other in ((SHOP, SHOP_QUESTIONS, HR_QUESTIONS), (HR, HR_QUESTIONS, SHOP_QUESTIONS)):  # fmt: skip
        asked = [r for q, r in results[database] if "question" in r]
        assert [r["question"] for r in asked] == own
        assert all(r["database"] == database for r in asked)
        history = [h["question"] for r in asked for h in r["history"]]
        assert set(own) <= set(history) and not set(other) & set(history)
        counts = [r for q, r in results[database] if "question" not in r]
        assert all(r["error"] is None and r["rows"][0][0] > 0 for r in counts)
    shop_count = results[SHOP][1][1]["rows"][0][0]
    hr_count = results[HR][1][1]["rows"][0][0]
    assert shop_count != hr_count  # the two counts come from two different tables


def test_waiting_user_sees_their_place_in_the_queue(app):
    """While programs keep the model busy, a question asked in the browser shows its place
    in the queue (one question at a time: the app runs with --batch 1)."""
    url, _ = app
    busy = [
        threading.Thread(
            target=lambda q=q: _client(url).predict(q, SHOP, api_name="/ask"), daemon=True
        )
        for q in (
            "Which customers live in Paris?",
            "List all product categories.",
            "How many products do we sell?",
            "Which products cost more than 100?",
            "How many orders are there?",
            "List the customers in the gold tier.",
            "What is the average product price?",
            "How many reviews have five stars?",
        )  # fmt: skip
    ]
    with browser_page() as page:
        page.goto(url, wait_until="load")
        page.locator("#chat-question textarea").fill("How many orders have been cancelled?")
        for t in busy:
            t.start()
        # asked once one program's question is being answered and five wait: the browser's
        # question reaches the queue before they are all answered, however slow the browser
        # (with two waiting, a cold run's Chromium once arrived after the small model had
        # answered both: no place in the queue was ever shown)
        wait_for(lambda: _waiting(url) >= 5, 60, "five questions waiting in the queue", 0.05)
        page.locator("#chat-ask").click()
        queue = page.get_by_text("queue:").first
        queue.wait_for(timeout=60_000)
        screenshot(page, "chat-queue-place")
        assert "/" in queue.inner_text()  # "queue: 2/3"
        page.locator("#chat-status").get_by_text("attempt(s)").wait_for(timeout=300_000)
    for t in busy:
        t.join(300)


def _waiting(url: str) -> int:
    """Events waiting in the app's queue (not counting the one being processed)."""
    with urllib.request.urlopen(f"{url}gradio_api/queue/status", timeout=10) as response:
        return json.loads(response.read())["queue_size"]


def test_exposed_without_sign_in_warns_in_log_and_page(app):
    url, data = app
    with browser_page() as page:
        page.goto(url, wait_until="load")
        warning = page.locator("#exposure-warning")
        warning.wait_for(timeout=60_000)
        screenshot(page, "exposure-warning")
        assert "without sign-in" in warning.inner_text()
    config = urllib.request.urlopen(f"{url}config", timeout=10).read().decode()
    assert "without sign-in" in config
    port = url.rstrip("/").rsplit(":", 1)[1]
    assert "without sign-in" in (ARTIFACTS / f"app-{port}.log").read_text()


# --- a follow-up through /ask: a scripted model, the app's API in this process ---------------


@pytest.fixture
def scripted_api(tmp_path):
    """(gradio_client Client, the scripted backend's outputs) of /ask over a scripted model."""
    import gradio as gr
    from gradio_client import Client

    from app import api
    from app.engines import EnginePool
    from app.users import UserSpace
    from engine.config import EngineConfig
    from engine.conversation import FollowupConfig
    from engine.history import QuestionHistory
    from engine.paths import data_dir
    from engine.pipeline import TextToSQL

    pool = EnginePool(EngineConfig(model="scripted"))
    backend = ScriptedBackend([])
    pool.put("scripted", None, TextToSQL(backend, followup=FollowupConfig(way="rewrite")))
    space = UserSpace("", data_dir(), QuestionHistory(tmp_path), None)
    with gr.Blocks() as demo:
        api.register(pool, lambda request: space)
    demo.queue().launch(prevent_thread_lock=True, quiet=True, server_port=free_port())
    try:
        yield Client(demo.local_url, verbose=False), backend.outputs
    finally:
        demo.close()


EARLIER = [{"question": "How many customers?", "sql": "SELECT count(*) FROM customers"}]


@pytest.mark.parametrize("history", [json.dumps(EARLIER), EARLIER, [["How many customers?", "SELECT count(*) FROM customers"]]], ids=["json", "list", "pairs"])  # fmt: skip
def test_ask_answers_a_follow_up_with_its_history(scripted_api, shop_db, history):
    client, outputs = scripted_api
    outputs += ["How many orders are there?", "SELECT count(*) FROM orders"]
    answer = client.predict("And orders?", SHOP, history, api_name="/ask")
    assert answer["error"] is None and answer["sql"] == "SELECT count(*) FROM orders"
    assert answer["understood"] == "How many orders are there?"
    assert answer["explanation"].startswith("- ") and "orders" in answer["explanation"]
    # without history, as existing clients call it: a question alone
    outputs += ["SELECT count(*) FROM products"]
    alone = client.predict("How many products?", SHOP, api_name="/ask")
    assert alone["error"] is None and alone["understood"] is None and alone["explanation"]


@pytest.mark.parametrize(
    "history, says",
    [
        ("[{'question': 'x'}]", "history is not JSON"),
        ('{"question": "x", "sql": "y"}', "history must be a JSON list"),
        ('[["How many customers?"]]', 'history turn 1 is ["How many customers?"]'),
        ('[{"question": "x"}]', 'history turn 1 is {"question": "x"}'),
        ([[1, 2]], "history turn 1 is [1, 2]"),
    ],
)
def test_ask_refuses_malformed_history_in_one_line(scripted_api, shop_db, history, says):
    client, outputs = scripted_api
    answer = client.predict("And orders?", SHOP, history, api_name="/ask")
    assert answer["error"].startswith(says) and "\n" not in answer["error"]
    assert answer["sql"] is None and answer["rows"] == [] and outputs == []  # nothing asked
