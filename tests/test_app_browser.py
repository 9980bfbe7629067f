"""The app in a real browser: Playwright driving Debian's Chromium against launch.py."""

import pytest

from tests.browser import browser_page, running_app, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app_url():
    with running_app("--model", "smollm2-135m-instruct") as url:
        yield url


def test_chat_answers_with_a_result_table(app_url):
    with browser_page() as page:
        page.goto(app_url, wait_until="load")
        box = page.locator("#chat-question textarea")
        box.wait_for(timeout=60_000)
        box.fill("How many customers are there?")
        page.locator("#chat-ask").click()
        status = page.locator("#chat-status")
        status.get_by_text("attempt(s)").wait_for(timeout=240_000)
        screenshot(page, "chat")
        assert "Could not answer" not in status.inner_text()
        assert page.locator("#chat-result table tbody tr").count() >= 1
        assert "customers" in page.locator("#chat-sql").inner_text().lower()
