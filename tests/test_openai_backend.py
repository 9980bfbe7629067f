"""The ``openai`` backend against a real OpenAI-compatible server: llama-cpp-python's own
``python -m llama_cpp.server`` on 127.0.0.1, serving the bundled SmolLM2 GGUF with an API key.

The CLI, an evaluation and a chat-tab answer go through it; each failure (connection refused,
a refused key, an unknown model, a timeout, a malformed reply) must be one line naming it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.backends.base import GenerationConfig
from engine.backends.openai_backend import OpenAIBackend, RemoteError, connect
from engine.backends.openai_config import OpenAIConfig
from engine.config import ConfigError, EngineConfig, load_config
from engine.errors import ModelLoadError
from engine.factory import engine_from_config
from engine.rag.config import RagConfig

REPO = Path(__file__).resolve().parent.parent
KEY_ENV = "TEXT2SQL_TEST_SERVER_KEY"
MODEL = "smollm2"
QUESTION = "How many customers are there?"
SERVER_DEPS = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context")
missing = [m for m in SERVER_DEPS if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(missing),
    reason=f"llama-cpp-python's server is not installed ({', '.join(missing)} missing)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """(base_url, key) of a llama.cpp server on 127.0.0.1 that requires the key."""
    from engine.presets import PRESETS, preset_gguf

    gguf = preset_gguf(PRESETS["smollm2-135m-instruct"])
    key = secrets.token_hex(16)
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
           "--model_alias", MODEL, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "4096", "--n_threads", "2", "--api_key", key, "--verbose", "False"]  # fmt: skip
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        request = urllib.request.Request(
            f"{base_url}/models", headers={"Authorization": f"Bearer {key}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
    yield base_url, key
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def remote(server, monkeypatch) -> OpenAIConfig:
    base_url, key = server
    monkeypatch.setenv(KEY_ENV, key)
    return OpenAIConfig(base_url=base_url, model=MODEL, api_key_env=KEY_ENV)


def shop_count(shop_db: Path) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{shop_db}?mode=ro", uri=True) as con:
        return con.execute("SELECT count(*) FROM customers").fetchone()[0]


# --- through the engine's front doors ----------------------------------------------------


def test_engine_ask_cli_answers_through_the_server(remote, shop_db, server):
    base_url, key = server
    cmd = [sys.executable, "-m", "engine", "ask", "--db", str(shop_db), "--no-rag", "--json",
           "--set", "backend=openai", "--set", f"openai.base_url={base_url}",
           "--set", f"openai.model={MODEL}", "--set", f"openai.api_key_env={KEY_ENV}",
           QUESTION]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout)
    assert answer["rows"] == [[shop_count(shop_db)]], answer
    assert answer["backend"] == f"openai:{MODEL} @ {base_url}"
    assert answer["confidence"] < 0  # the server's logprobs of the answer's tokens
    assert key not in done.stdout + done.stderr  # the key is never logged


def test_evaluation_runs_through_the_server(remote, tmp_path):
    from training.evaluate import main

    out = tmp_path / "eval"
    argv = ["--data", "samples", "--limit", "4", "--no-rag", "--backend", "openai",
            "--batch-size", "4", "--out", str(out), "--max-new-tokens", "64",
            "--set", f"engine.openai.base_url={remote.base_url}",
            "--set", f"engine.openai.model={MODEL}", "--set", f"engine.openai.api_key_env={KEY_ENV}",
            "--set", "engine.openai.max_concurrency=2"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["complete"] is True
    assert metrics["execution_accuracy"] is not None
    assert metrics["settings"]["engine"]["openai"]["base_url"] == remote.base_url


def test_chat_tab_answer_names_the_server(remote, shop_db):
    from app import chat
    from app.engines import EnginePool

    pool = EnginePool(EngineConfig(backend="openai", openai=remote, rag=RagConfig(enabled=False)))
    turn = chat.ask(QUESTION, "shop (sample)", None, [], [], pool)
    assert turn.answer.ok, turn.status
    assert turn.answer.rows == [[shop_count(shop_db)]]
    assert f"openai:{MODEL} @ {remote.base_url}" in turn.status


def test_candidates_are_concurrent_requests_within_the_bound(remote, shop_db):
    backend = connect(replace(remote, max_concurrency=2))
    create = backend.client.chat.completions.create
    in_flight, most, lock = [0], [0], threading.Lock()

    def counting_create(**kwargs):  # the real request, counted
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            return create(**kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    backend.client.chat.completions.create = counting_create
    engine = engine_from_config(
        EngineConfig(
            backend="openai",
            openai=remote,
            rag=RagConfig(enabled=False),
            generation=GenerationConfig(candidates=4, max_new_tokens=48),
        ),
        backend=backend,
    )
    answer = engine.ask(QUESTION, shop_db)
    assert answer.candidates == 4 and answer.ok, answer.error
    assert most[0] == 2
    backend.close()


# --- one-line errors, each naming the server -----------------------------------------------


def one_line(err: BaseException, *parts: str) -> str:
    text = str(err)
    assert "\n" not in text
    for part in parts:
        assert part in text, text
    return text


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelLoadError) as err:
        connect(OpenAIConfig(base_url=url, model=MODEL))
    one_line(err.value, f"Cannot reach the server at {url}", "connection refused")


def test_refused_key(server, monkeypatch):
    base_url, key = server
    monkeypatch.delenv(KEY_ENV, raising=False)
    cfg = OpenAIConfig(base_url=base_url, model=MODEL, api_key_env=KEY_ENV)
    with pytest.raises(ModelLoadError) as err:
        connect(cfg)
    one_line(err.value, f"the server at {base_url}", "401", f"set {KEY_ENV}")
    monkeypatch.setenv(KEY_ENV, "wrong-" + key[:4])
    with pytest.raises(ModelLoadError) as err:
        connect(cfg)
    text = one_line(err.value, "401", f"the key in {KEY_ENV} is not accepted")
    assert "wrong-" not in text


def test_unknown_model_and_wrong_path(remote):
    with pytest.raises(ModelLoadError) as err:
        connect(replace(remote, model="no-such-model"))
    one_line(err.value, f"the server at {remote.base_url}", "no model 'no-such-model'", MODEL)
    no_v1 = remote.base_url.removesuffix("/v1")
    with pytest.raises(ModelLoadError) as err:
        connect(replace(remote, base_url=no_v1))
    one_line(err.value, f"the server at {no_v1}", "404", "ends in /v1")


def test_the_only_served_model_is_used_when_none_is_named(remote):
    backend = connect(replace(remote, model=""))
    assert backend.model == MODEL
    backend.close()


def test_timeout_is_one_line_and_the_engine_keeps_going(remote, shop_db):
    backend = connect(replace(remote, timeout=0.05))
    with pytest.raises(RemoteError) as err:
        backend.generate([backend.render([{"role": "user", "content": "Count to 100."}])],
                         GenerationConfig(max_new_tokens=200, stop_at_statement_end=False))  # fmt: skip
    one_line(err.value, f"the server at {remote.base_url} did not answer within 0.05 s")
    engine = engine_from_config(
        EngineConfig(backend="openai", openai=remote, rag=RagConfig(enabled=False)),
        backend=backend,
    )
    answer = engine.ask(QUESTION, shop_db)
    assert not answer.ok and "did not answer within" in answer.error
    backend.close()


class _BrokenServer(BaseHTTPRequestHandler):
    """Lists a model, then answers chat completions with something that is not one."""

    replies = {
        "/v1/models": b'{"object": "list", "data": [{"id": "m", "object": "model"}]}',
        "/v1/chat/completions": b'{"id": "x", "choices": []}',
        "/bad/v1/models": b"<html>not json</html>",
    }

    def _reply(self) -> None:
        body = self.replies.get(self.path, b"{}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args) -> None:
        pass


class _NoLogprobsServer(BaseHTTPRequestHandler):
    """Refuses a chat completion that asks for logprobs (as some servers do rather than
    ignore the field) and answers one that does not; ``asked`` records which were asked."""

    asked: list[bool] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.asked.append(bool(body.get("logprobs")))
        if body.get("logprobs"):
            self._send(400, {"error": {"message": "logprobs are not supported"}})
            return
        message = {"role": "assistant", "content": "SELECT 1"}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                         "choices": [choice]})  # fmt: skip

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_scores_come_from_the_servers_logprobs_or_are_none(remote):
    """Scores are asked for only by generate_scored; a server that refuses them gives
    unscored answers, and is not asked again."""
    from engine.backends.base import Scored

    prompt = json.dumps([{"role": "user", "content": "Say SELECT 1."}])
    cfg = GenerationConfig(max_new_tokens=8)
    backend = connect(remote)
    ((text, logprob),) = [(s.text, s.logprob) for s in backend.generate_scored([prompt], cfg)]
    assert text == backend.generate([prompt], cfg)[0] and logprob < 0
    backend.close()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NoLogprobsServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        backend = connect(OpenAIConfig(base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1"))
        assert backend.generate([prompt], cfg) == ["SELECT 1"] and _NoLogprobsServer.asked == [
            False
        ]
        assert backend.generate_scored([prompt], cfg) == [Scored("SELECT 1", None)]
        assert backend.generate_scored([prompt], cfg) == [Scored("SELECT 1", None)]
        assert _NoLogprobsServer.asked == [False, True, False, False]
    finally:
        httpd.shutdown()


def test_malformed_replies():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        backend = connect(OpenAIConfig(base_url=f"{url}/v1"))
        assert isinstance(backend, OpenAIBackend) and backend.model == "m"
        with pytest.raises(RemoteError) as err:
            backend.generate([backend.render([{"role": "user", "content": "hi"}])],
                             GenerationConfig())  # fmt: skip
        one_line(err.value, f"the server at {url}/v1 sent a malformed reply")
        with pytest.raises(ModelLoadError) as err:
            connect(OpenAIConfig(base_url=f"{url}/bad/v1"))
        one_line(err.value, f"the server at {url}/bad/v1 sent a malformed reply")
    finally:
        httpd.shutdown()


# --- settings --------------------------------------------------------------------------------


def test_nothing_is_sent_without_a_base_url():
    with pytest.raises(ConfigError, match="openai.base_url"):
        EngineConfig(backend="openai")
    with pytest.raises(ModelLoadError, match="nothing is sent"):
        connect(OpenAIConfig())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"openai.base_url": "127.0.0.1:8000"}, "must start with http"),
        ({"openai.timeout": 0}, "openai.timeout"),
        ({"openai.max_concurrency": 0}, "openai.max_concurrency"),
        ({"openai.base_url": "http://h/v1", "backend": "openai", "adapter": "x"}, "local backends"),
    ],
)
def test_bad_settings_are_rejected(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(EngineConfig, None, overrides)


def test_a_key_pasted_as_the_variable_name_is_not_echoed():
    with pytest.raises(ConfigError) as err:
        OpenAIConfig(api_key_env="sk-proj-abc123")
    assert "sk-proj" not in str(err.value)
