"""A follow-up in a real browser (Playwright + Debian's Chromium): how it was understood, what
its SQL does, and the understood question edited and asked instead.

What is checked is the chat's plumbing, so the model is a scripted OpenAI-compatible server
in this process (the app's ``openai`` backend): its rewrites and SQL are known, and nothing
loads a model. The rewrite and the SQL themselves are tests/test_conversation.py's.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from engine.conversation import REWRITE_SYSTEM
from tests.browser import browser_page, free_port, running_app, screenshot

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


class ScriptedServer(BaseHTTPRequestHandler):
    """The two requests of an OpenAI-compatible server the backend makes; every chat it was
    sent is kept in ``chats``."""

    chats: list[list[dict]] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self._reply({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def do_POST(self):  # noqa: N802 - http.server's name
        messages = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["messages"]
        self.chats.append(messages)
        last = messages[-1]["content"]
        if messages[0]["content"] == REWRITE_SYSTEM:
            asked = re.search(r"Follow-up: (.*)\n", last).group(1)
            text = REWRITES.get(asked, asked)
        else:
            text = SQL.get(re.search(r"Task: (.*)\n", last).group(1), "SELECT 1")
        self._reply(
            {
                "id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
            }
        )  # fmt: skip

    def _reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), ScriptedServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = f"http://127.0.0.1:{server.server_port}/v1"
    args = ("--set", "backend=openai", "--set", f"openai.base_url={remote}",
            "--set", "openai.model=scripted", "--set", "rag.enabled=false", "--set", "followup.way=rewrite")  # fmt: skip
    try:
        with running_app(*args, data_dir=tmp_path_factory.mktemp("followup")) as url:
            yield url
    finally:
        server.shutdown()


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
    last = json.dumps(ScriptedServer.chats[-1])
    assert EDITED in last and FIRST not in last and FOLLOW_UP not in last
