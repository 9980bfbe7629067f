"""A follow-up in a real browser (Playwright + Debian's Chromium): how it was understood, what
its SQL does, and the understood question edited and asked instead.

What is checked is the chat's plumbing, so the model is a scripted OpenAI-compatible server
in this process (the app's ``openai`` backend): its rewrites and SQL are known, and nothing
loads a model. The rewrite and the SQL themselves are tests/test_conversation.py's.
"""

import json
import re

import pytest
from playwright.sync_api import expect

from engine.conversation import REWRITE_SYSTEM
from tests.browser import browser_page, running_app, screenshot
from tests.scripted_openai import engine_flags, scripted_server, sql_by_task

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ANSWER_TIMEOUT_MS = 120_000
FIRST, FOLLOW_UP = "How many customers are there?", "Which of them live in Rome?"
UNDERSTOOD, EDITED = "Which customers live in Rome?", "Which customers live in Tokyo?"
# the scripted model: a rewrite by the follow-up, SQL by the question asked
REWRITES = {FOLLOW_UP: UNDERSTOOD}
SQL = {
    FIRST: "SELECT count(*) AS customers FROM customers",
    UNDERSTOOD: "SELECT first_name, last_name, city FROM customers WHERE city = 'Rome' ORDER BY last_name",
    EDITED: "SELECT first_name, last_name, city FROM customers WHERE city = 'Tokyo' ORDER BY last_name",
}


CHATS: list[list[dict]] = []  # every chat the scripted model was sent


def _reply(messages: list[dict]) -> str:
    """A rewrite by the follow-up, SQL by the question asked."""
    CHATS.append(messages)
    if messages[0]["content"] == REWRITE_SYSTEM:
        asked = re.search(r"Follow-up: (.*)\n", messages[-1]["content"]).group(1)
        return REWRITES.get(asked, asked)
    return sql_by_task(SQL, messages)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with (
        scripted_server(_reply) as remote,
        running_app(
            *engine_flags(remote),
            "--set",
            "followup.way=rewrite",
            data_dir=tmp_path_factory.mktemp("followup"),
        ) as url,
    ):
        yield url


def _ask(page, question):
    page.locator("#chat-question textarea").fill(question)
    page.locator("#chat-ask").click()
    _answered(page, question)


def _answered(page, question):
    """Wait for the chat to show ``question`` as asked, and an answer's status line."""
    log = page.locator("#chat-log")
    log.get_by_text(question, exact=True).first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.locator("#chat-status").get_by_text("attempt(s)").wait_for(timeout=ANSWER_TIMEOUT_MS)


def test_follow_up_shows_how_it_was_understood_and_asks_the_edited_question(app_url):
    with browser_page() as page:
        page.goto(app_url, wait_until="load")
        page.locator("#chat-question textarea").wait_for(timeout=60_000)
        _ask(page, FIRST)
        log = page.locator("#chat-log")
        assert "Understood as" not in log.inner_text()  # a question alone: as before
        expect(page.locator("#chat-understood")).to_be_hidden()

        _ask(page, FOLLOW_UP)
        log.get_by_text(f"Understood as: {UNDERSTOOD}").wait_for(timeout=ANSWER_TIMEOUT_MS)
        screenshot(page, "chat-follow-up")  # the reply whole: its explanation collapsed
        summary = log.locator("summary", has_text="What this query does").last
        summary.click()  # the explanation is collapsed under the SQL
        details = log.locator("details").last
        expect(details).to_contain_text("customers")
        expect(details).to_contain_text("Rome")
        assert "<details>" not in log.inner_text()  # rendered, not shown as text
        box = page.locator("#chat-understood textarea")
        expect(box).to_have_value(UNDERSTOOD)
        screenshot(page, "chat-follow-up-explained")
        expect(page.locator("#chat-status")).to_contain_text("11 row(s)")
        expect(page.locator("#chat-result")).to_contain_text("Rome")

        box.fill(EDITED)
        page.locator("#chat-understood-ask").click()
        _answered(page, EDITED)
        expect(page.locator("#chat-sql")).to_contain_text("Tokyo")
        expect(page.locator("#chat-status")).to_contain_text("10 row(s)")
        expect(page.locator("#chat-understood")).to_be_hidden()  # asked as it was written
        screenshot(page, "chat-follow-up-asked-instead")
    # the edited question went to the model alone: no earlier turn, no rewrite
    last = json.dumps(CHATS[-1])
    assert EDITED in last and FIRST not in last and FOLLOW_UP not in last
