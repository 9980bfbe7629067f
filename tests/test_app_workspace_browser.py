"""Asking files in a real browser (Playwright + Debian's Chromium): two CSV files and an Excel
sheet put into one workspace on the Schema tab, then a question that joins them in the chat;
and a ragged CSV refused in one line, the workspace as it was.

What is checked is the plumbing, so the model is a scripted OpenAI-compatible server in this
process (tests/scripted_openai.py): its SQL is known and nothing loads a model.
"""

import pytest
from playwright.sync_api import expect

from tests.browser import browser_page, running_app, screenshot
from tests.scripted_openai import scripted_openai
from tests.test_app_workspace import write_files

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ANSWER_TIMEOUT_MS = 120_000
WORKSPACE = "shop_files"
QUESTION = "How much did customers in Leeds spend on each product?"
SQL = {
    QUESTION: "SELECT p.name AS product, sum(o.amount) AS spent FROM orders o "
    "JOIN customers c ON c.customer_id = o.customer_id "
    "JOIN products p ON p.product_id = o.product_id "
    "WHERE c.city = 'Leeds' GROUP BY p.name ORDER BY spent DESC"
}


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    data = tmp_path_factory.mktemp("workspace")
    with scripted_openai(SQL) as flags, running_app(*flags, data_dir=data) as url:
        yield url


def _grid(page, elem_id):
    """The body rows a gr.Dataframe shows, as lists of cell texts (its hidden sizing row,
    a <tbody> of its own, left out)."""
    rows = page.locator(f"#{elem_id} [role=row].virtual-row")
    return [
        [c.strip() for c in row.locator("[role=gridcell]").all_inner_texts()] for row in rows.all()
    ]


def _tables(page):
    """The table names the workspace's table shows."""
    return sorted(row[0] for row in _grid(page, "workspace-tables"))


def _open_workspace_section(page, url):
    page.goto(url, wait_until="load")
    page.get_by_role("tab", name="Schema").click()
    page.get_by_text("Files workspace: CSV, Parquet, Excel, JSON").click()
    page.locator("#workspace-add").wait_for(timeout=60_000)


def _add(page, files, new_name=None):
    """Choose ``files`` (and a new workspace's name), press Add; returns the status line."""
    if new_name:
        page.locator("#workspace-new textarea, #workspace-new input").first.fill(new_name)
    page.locator("#workspace-files input[type=file]").set_input_files([str(f) for f in files])
    page.locator("#workspace-add").click()
    status = page.locator("#workspace-status")
    status.get_by_text("Add").first.wait_for(timeout=60_000)  # Added / Not added
    return status


def test_files_in_one_workspace_answer_a_join(app_url, tmp_path):
    files = write_files(tmp_path)
    with browser_page() as page:
        _open_workspace_section(page, app_url)
        status = _add(page, files, WORKSPACE)
        expect(status).to_contain_text("3 table(s)")
        expect(page.locator("#workspace-tables")).to_contain_text("products", timeout=30_000)
        assert _tables(page) == ["customers", "orders", "products"]
        expect(page.locator("#schema-db input")).to_have_value(f"{WORKSPACE} (workspace)")
        page.locator("#workspace-tables").scroll_into_view_if_needed()
        screenshot(page, "workspace-tables")

        page.get_by_role("tab", name="Chat").click()
        expect(page.locator("#chat-db input")).to_have_value(
            f"{WORKSPACE} (workspace)", timeout=15_000
        )
        page.locator("#chat-question textarea").fill(QUESTION)
        page.locator("#chat-ask").click()
        page.locator("#chat-status").get_by_text("attempt(s)").wait_for(timeout=ANSWER_TIMEOUT_MS)
        expect(page.locator("#chat-status")).to_contain_text("3 row(s)")
        result = page.locator("#chat-result")
        expect(result).to_contain_text("Kettle")
        rows = _grid(page, "chat-result")
        assert rows == [
            ["Kettle", "35"],
            ["Mug", "33"],
            ["Teapot", "20"],
        ], rows
        screenshot(page, "workspace-chat-join")


def test_a_ragged_csv_is_refused_in_one_line(app_url, tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    customers = write_files(tmp_path)[0]
    with browser_page() as page:
        _open_workspace_section(page, app_url)
        expect(_add(page, [customers], "ragged_try")).to_contain_text("1 table(s)")
        expect(page.locator("#workspace-choice input")).to_have_value("ragged_try")
        expect(page.locator("#workspace-tables")).to_contain_text("customers", timeout=30_000)
        page.locator("#workspace-status").get_by_text("Added").wait_for()
        status = _add(page, [ragged])
        status.get_by_text("Not added").wait_for(timeout=60_000)
        assert len(status.inner_text().strip().splitlines()) == 1, status.inner_text()
        assert "ragged.csv" in status.inner_text()
        assert _tables(page) == ["customers"]
        screenshot(page, "workspace-bad-file")
