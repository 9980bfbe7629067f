"""Feedback, examples, history and results in a real browser (Playwright + Debian's Chromium).

What a model writes varies, so the deterministic steps put known SQL through the UI ("Write
SQL yourself", edit, run); the model answers only where the feature is about answering.
"""

import csv
import json
import re

import pytest
from playwright.sync_api import expect

from engine.db import run_readonly
from engine.paths import sample_databases
from tests.browser import browser_page, running_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ANSWER_TIMEOUT_MS = 420_000  # the first question may index the database, then generates
SHOP = sample_databases()["shop"]
REVENUE_QUESTION = "Which 5 products have the highest total revenue from orders?"
REVENUE_SQL = (
    "SELECT p.name, SUM(oi.quantity * oi.unit_price) AS total_revenue FROM order_items AS oi "
    "JOIN products AS p ON oi.product_id = p.product_id GROUP BY p.product_id "
    "ORDER BY total_revenue DESC LIMIT 5"
)


@pytest.fixture
def app(default_app):
    return default_app  # (URL, data folder) of the app shared with other browser tests


def _open(page, url, tab=None):
    page.goto(url, wait_until="load")
    page.locator("#chat-question textarea").wait_for(timeout=60_000)
    if tab:
        page.get_by_role("tab", name=tab).click()


def _ask(page, question):
    page.locator("#chat-question textarea").fill(question)
    page.locator("#chat-ask").click()
    # the status line of an answer ends with its attempts; wait for this question's turn
    page.locator("#chat-log").get_by_text(question).first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.locator("#chat-status").get_by_text("attempt(s)").wait_for(timeout=ANSWER_TIMEOUT_MS)
    return page.locator("#chat-status").inner_text()


def _set_code(page, elem_id, text):
    editor = page.locator(f"#{elem_id} .cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    editor.fill(text)


def _run_sql(page, sql, fresh=True):
    """Type SQL into the chat's editor and run it; ``fresh``: clear the chat first (so the
    status line changes even when two results have the same row count)."""
    if fresh and page.locator("#chat-sql").is_visible():
        page.locator("#chat-clear").click()
        expect(page.locator("#chat-sql")).to_be_hidden(timeout=30_000)
    if not page.locator("#chat-sql").is_visible():
        page.locator("#chat-write-sql").click()
    _set_code(page, "chat-sql", sql)
    before = page.locator("#chat-status").inner_text().strip()
    page.locator("#chat-rerun").click()
    # a new final status: not the old one, not the old one under Gradio's progress text
    # ("processing | 0.1s", "0.4/39.3s", or "queue: 1/1 | 0.1s" while the event waits its turn:
    # that once passed for the result, the old status showing beneath it)
    page.wait_for_function(
        r"""(before) => {
            const text = document.querySelector('#chat-status').innerText.trim();
            return text !== before && !/processing|queue:|^[0-9.\/]+s\b/.test(text)
                && /row\(s\)|Could not run|There is no SQL/.test(text);
        }""",
        arg=before,
        timeout=60_000,
    )
    return page.locator("#chat-status").inner_text().strip()


def _click_cell(table, text):
    """Click a table cell by its text (Gradio keeps a hidden copy of each cell's text)."""
    table.get_by_text(text).filter(visible=True).first.click()


def _sources(page):
    box = page.locator("#chat-sources-box")
    box.get_by_text("Retrieved sources").click()  # open it, for the screenshot too
    return page.locator("#chat-sources").inner_text()


def _saved(data, db=SHOP):
    from engine.rag.saved_pairs import PairBook

    return [(p.question, p.query) for p in PairBook(data).pairs(db)]


def test_correct_answer_is_retrieved_for_a_similar_question(app):
    url, data = app
    with browser_page() as page:
        _open(page, url)
        status = _ask(page, "How many reviews are there in total?")
        assert "Could not answer" not in status, status
        sql = page.locator("#chat-sql").inner_text()
        page.locator("#chat-correct").click()
        page.locator("#chat-feedback").get_by_text("as an example for").wait_for(timeout=60_000)
        expect(page.locator("#chat-correct")).to_be_hidden()
        assert [q for q, _ in _saved(data)] == ["How many reviews are there in total?"]
        assert "reviews" in sql.lower()

        _ask(page, "What is the number of reviews altogether?")
        sources = _sources(page)
        screenshot(page, "feedback-correct-then-similar")
        assert "Q: How many reviews are there in total?" in sources, sources


def test_edited_sql_saved_as_correct_helps_the_next_question(app):
    url, data = app
    with browser_page() as page:
        _open(page, url)
        _ask(page, REVENUE_QUESTION)  # the model may or may not get it; the user fixes it
        status = _run_sql(page, REVENUE_SQL, fresh=False)
        assert status == "5 row(s)", status
        expect(page.locator("#chat-save-question textarea")).to_have_value(REVENUE_QUESTION)
        page.locator("#chat-save").click()
        page.locator("#chat-feedback").get_by_text("as an example for").wait_for(timeout=60_000)
        screenshot(page, "feedback-save-as-correct")
        assert (REVENUE_QUESTION, REVENUE_SQL) in _saved(data)
        expect(page.locator("#chat-save-row")).to_be_hidden()

        page.get_by_role("tab", name="Schema").click()
        expect(page.locator("#examples-table")).to_contain_text(REVENUE_QUESTION, timeout=30_000)

        page.get_by_role("tab", name="Chat").click()
        _ask(page, "What are the top 5 products by total revenue?")
        sources = _sources(page)
        screenshot(page, "feedback-saved-pair-retrieved")
        assert f"Q: {REVENUE_QUESTION}" in sources, sources


def test_examples_manager_adds_edits_and_deletes(app):
    url, data = app
    question, sql = "How many orders were paid by card?", "SELECT count(*) FROM orders"
    with browser_page() as page:
        _open(page, url, "Schema")
        page.locator("#examples-question textarea").fill(question)
        _set_code(page, "examples-sql", "SELECT count(*) FROM nowhere")
        page.locator("#examples-save").click()
        status = page.locator("#examples-status")
        status.get_by_text("Not saved").wait_for(timeout=30_000)
        assert "no such table: nowhere" in status.inner_text()

        _set_code(page, "examples-sql", sql)
        page.locator("#examples-save").click()
        status.get_by_text("Added").wait_for(timeout=60_000)
        table = page.locator("#examples-table")
        _click_cell(table, question)
        expect(page.locator("#examples-delete")).to_be_visible()
        expect(page.locator("#examples-question textarea")).to_have_value(question)

        fixed = "SELECT count(*) FROM orders WHERE payment_method = 'credit_card'"
        page.locator("#examples-question textarea").fill(
            "How many orders were paid by credit card?"
        )
        _set_code(page, "examples-sql", fixed)
        page.locator("#examples-save").click()
        status.get_by_text("Updated").wait_for(timeout=60_000)
        expect(table).to_contain_text("How many orders were paid by credit card?")
        expect(table).not_to_contain_text(question)
        screenshot(page, "examples-edited")
        assert ("How many orders were paid by credit card?", fixed) in _saved(data)
        assert question not in [q for q, _ in _saved(data)]

        page.locator("#examples-search textarea, #examples-search input").first.fill("credit")
        expect(page.locator("#examples-summary")).to_contain_text("1 match")
        _click_cell(table, "How many orders were paid by credit card?")
        page.locator("#examples-delete").click()
        status.get_by_text("Deleted").wait_for(timeout=60_000)
        screenshot(page, "examples-deleted")
        assert "How many orders were paid by credit card?" not in [q for q, _ in _saved(data)]


def test_history_survives_a_reload_and_a_restart(app):
    url, data = app
    question = "How many customers live in France?"
    with browser_page() as page:
        _open(page, url)
        _ask(page, question)
        page.reload(wait_until="load")
        history = page.locator("#chat-history")
        expect(history).to_contain_text(question, timeout=60_000)
        expect(page.locator("#chat-result-box")).to_be_hidden()
        screenshot(page, "history-after-reload")

        # its SQL: loaded into the editor and run
        _click_cell(history, re.compile(r"FROM\s+customers", re.IGNORECASE))
        expect(page.locator("#chat-status")).to_contain_text("Loaded the SQL", timeout=60_000)
        expect(page.locator("#chat-sql")).to_contain_text("customers")
        expect(page.locator("#chat-result-box")).to_be_visible()
        # the question: asked again, and the new entry comes first
        _click_cell(history, question)
        expect(page.locator("#chat-log")).to_contain_text(question, timeout=ANSWER_TIMEOUT_MS)
        expect(history.get_by_text(question).filter(visible=True)).to_have_count(2, timeout=60_000)
        screenshot(page, "history-asked-again")

    # a second app process on the same data folder: the history is still there
    with running_app("--no-warm-up", data_dir=data) as second, browser_page() as page:
        _open(page, second)
        expect(page.locator("#chat-history")).to_contain_text(question, timeout=60_000)
        page.locator("#chat-history-clear").click()
        expect(page.locator("#chat-history-hint")).to_contain_text("No questions asked")
        screenshot(page, "history-cleared")


def test_csv_download_holds_every_row_of_the_result(app, tmp_path):
    sql = "SELECT customer_id, first_name, last_name, country FROM customers ORDER BY customer_id"
    expected = run_readonly(SHOP, sql)
    url, _ = app
    with browser_page() as page:
        _open(page, url)
        assert _run_sql(page, sql) == f"{len(expected.rows)} row(s)"
        with page.expect_download() as download:
            page.locator("#chat-download").click()
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        screenshot(page, "result-download")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == expected.columns
    assert rows[1:] == [[str(v) for v in r] for r in expected.rows]
    assert len(rows) - 1 == 300 and path.name == "shop_sample-result.csv"


def test_group_by_shows_a_bar_chart_dates_a_line_chart(app):
    url, _ = app
    with browser_page() as page:
        _open(page, url)
        _run_sql(page, "SELECT status, count(*) AS orders FROM orders GROUP BY status")
        bar = page.locator("#chat-bar")
        expect(bar).to_be_visible(timeout=30_000)
        expect(bar.locator("canvas, svg").first).to_be_visible(timeout=30_000)
        expect(page.locator("#chat-line")).to_be_hidden()
        expect(page.locator("#chat-result")).to_contain_text("delivered")
        screenshot(page, "chart-bar")

        monthly = (
            "SELECT strftime('%Y-%m', order_date) AS month, count(*) AS orders, "
            "sum(order_id % 7) AS other FROM orders GROUP BY month"
        )
        _run_sql(page, monthly)
        line = page.locator("#chat-line")
        expect(line).to_be_visible(timeout=30_000)
        expect(line.locator("canvas, svg").first).to_be_visible(timeout=30_000)
        expect(bar).to_be_hidden()
        screenshot(page, "chart-line")

        _run_sql(page, "SELECT first_name, last_name, city FROM customers LIMIT 5")
        expect(page.locator("#chat-result")).to_be_visible()
        expect(bar).to_be_hidden()
        expect(line).to_be_hidden()


def test_no_placeholders_after_a_failure_and_transpile_only_when_asked(app):
    url, _ = app
    with browser_page() as page:
        _open(page, url)
        for hidden in ("#chat-result-box", "#chat-transpiled", "#chat-sql", "#chat-sources-box"):
            expect(page.locator(hidden)).to_be_hidden()
        status = _run_sql(page, "SELECT nope FROM orders")
        assert status.startswith("Could not run") and "nope" in status
        for hidden in ("#chat-result-box", "#chat-transpiled", "#chat-download", "#chat-save-row"):
            expect(page.locator(hidden)).to_be_hidden()
        screenshot(page, "failure-no-placeholders")
        page.locator("#chat-transpile").click()
        expect(page.locator("#chat-transpiled")).to_be_visible(timeout=30_000)
        expect(page.locator("#chat-transpiled")).to_contain_text("nope")


def test_bad_csv_uploads_name_the_problem_and_no_server_path(app, tmp_path):
    url, _ = app
    ragged = tmp_path / "sales.csv"
    ragged.write_text("region,month,amount\nNorth,2024-01,10\nSouth,2024-01\nWest,2024-02,7\n")
    extra = tmp_path / "extra.csv"
    extra.write_text("a,b,c\n1,2,3\n4,5,6,7\n")
    fake = tmp_path / "fake.sqlite"
    fake.write_bytes(b"not a database at all")
    with browser_page() as page:
        messages = []
        for src, expected in [
            (extra, "Line 3 of extra.csv has 4 fields; the header has 3"),
            (fake, "Not a SQLite database: fake.sqlite"),
            (ragged, "imported as NULL"),
        ]:
            _open(page, url, "Schema")  # a fresh form: one upload at a time
            page.locator("#schema-upload input[type=file]").set_input_files(str(src))
            page.locator("#schema-import").click()
            status = page.locator("#schema-upload-status")
            expect(status).to_contain_text(expected, timeout=60_000)
            messages.append(status.inner_text())
            if src is extra:
                screenshot(page, "upload-long-row-refused")
        expect(page.locator("#schema-overview")).to_contain_text("sales", timeout=30_000)
        screenshot(page, "upload-ragged-csv")
    assert all("/tmp" not in m and str(tmp_path) not in m for m in messages), messages
    assert "Imported" in messages[-1] and "sales.csv: 1 row(s)" in messages[-1]
    assert json.dumps(messages)  # plain strings
