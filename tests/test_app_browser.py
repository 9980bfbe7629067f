"""The app in a real browser: Playwright driving Debian's Chromium against launch.py."""

import pytest
from playwright.sync_api import expect

from tests.browser import browser_page, screenshot
from tests.helpers import seed_rows

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ANSWER_TIMEOUT_MS = 420_000  # first question indexes the database for RAG, then generates


@pytest.fixture
def app_url(default_app):
    return default_app[0]  # the app on the bundled defaults, shared with other browser tests


def _ask(page, question):
    box = page.locator("#chat-question textarea")
    box.wait_for(timeout=60_000)
    box.fill(question)
    page.locator("#chat-ask").click()
    status = page.locator("#chat-status")
    status.get_by_text("attempt(s)").wait_for(timeout=ANSWER_TIMEOUT_MS)
    return status.inner_text()


def test_chat_answers_with_a_result_table(app_url):
    with browser_page() as page:
        page.goto(app_url, wait_until="load")
        status = _ask(page, "How many customers are there?")
        screenshot(page, "chat")
        assert "Could not answer" not in status, status
        assert page.locator("#chat-result table tbody tr").count() >= 1
        assert "customers" in page.locator("#chat-sql").inner_text().lower()


def test_upload_a_ddl_script_and_ask_about_it(app_url, tmp_path):
    script = tmp_path / "library.sql"
    script.write_text(
        "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT, country TEXT);\n"
        "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, year INTEGER,"
        " author_id INTEGER REFERENCES authors(id));\n"
        "INSERT INTO authors VALUES (1,'Ada Lovelace','UK'),(2,'Grace Hopper','USA');\n"
        "INSERT INTO books VALUES (1,'Notes',1843,1),(2,'Compilers',1952,2),(3,'COBOL',1959,2);\n"
    )
    with browser_page() as page:
        page.goto(app_url, wait_until="load")
        page.get_by_role("tab", name="Schema").click()
        page.locator("#schema-upload input[type=file]").set_input_files(str(script))
        page.locator("#schema-import").click()
        page.locator("#schema-upload-status").get_by_text("Imported").wait_for(timeout=60_000)
        page.locator("#schema-overview").get_by_text("authors").first.wait_for(timeout=30_000)
        screenshot(page, "schema")
        assert "books" in page.locator("#schema-overview").inner_text()

        page.get_by_role("tab", name="Chat").click()
        expect(page.locator("#chat-db input")).to_have_value("library (uploaded)", timeout=15_000)
        status = _ask(page, "How many books are there?")
        screenshot(page, "chat-upload")
        assert "Could not answer" not in status, status
        assert "books" in page.locator("#chat-sql").inner_text().lower()


def _fill_number(page, elem_id, value):
    box = page.locator(f"#{elem_id} input").first
    box.fill(str(value))
    box.press("Tab")


def test_one_click_training_finishes(app_url, tiny_llama, tmp_path):
    # The browser's part is the form, the start and the progress: seed-format rows (plain
    # prompts of at most 275 tiny-tokenizer tokens, packed to 512) train in a second, where
    # the bundled samples' served prompts take a retrieval per row and 2048-token steps. The
    # served-prompt path is tests/test_app_tabs.py's and tests/test_train_served.py's.
    rows = seed_rows(tmp_path / "rows.json")
    with browser_page() as page:
        page.goto(app_url, wait_until="load")
        page.get_by_role("tab", name="Training").click()
        for elem_id, value in (("train-model", tiny_llama), ("train-data", rows)):
            box = page.locator(f"#{elem_id} input")
            box.fill(str(value))
            box.press("Enter")
        _fill_number(page, "train-steps", 2)
        _fill_number(page, "train-maxlen", 512)
        page.locator("#train-name textarea, #train-name input").first.fill("browser-run")
        page.locator("#train-start").click()
        page.locator("#train-message").get_by_text("Done.").wait_for(timeout=300_000)
        screenshot(page, "training")
        assert "step 2/2" in page.locator("#train-progress").inner_text()


def test_small_evaluation_shows_metrics(app_url):
    with browser_page() as page:
        page.goto(app_url, wait_until="load")
        page.get_by_role("tab", name="Evaluation").click()
        models = page.locator("#eval-models")
        expect(models.locator(".token")).to_have_text(["qwen2.5-coder-1.5b-instruct"])
        # What is checked is the tab's plumbing, so the small model answers (the 1.5B reads a
        # prompt at 15 tokens/s on a slow CPU: a minute a question) and once, without retries.
        models.locator(".token-remove").first.click()
        box = models.locator("input").first
        box.fill("smollm2-135m-instruct")
        box.press("Enter")
        expect(models.locator(".token")).to_have_text(["smollm2-135m-instruct"])
        _fill_number(page, "eval-limit", 2)
        _fill_number(page, "eval-attempts", 1)
        page.locator("#eval-run").click()
        page.locator("#eval-status").get_by_text("Done:").wait_for(timeout=300_000)
        screenshot(page, "evaluation")
        assert page.locator("#eval-metrics table tbody tr").count() == 1
        assert "execution_accuracy" in page.locator("#eval-metrics").inner_text()
        assert "smollm2-135m-instruct" in page.locator("#eval-metrics").inner_text()
