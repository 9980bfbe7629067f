"""The local model as a LangChain chat model (engine/langchain_model.py) on real weights:
SmolLM2-135M, the smallest bundled preset, greedy, a few tokens per answer."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from engine.backends import llamacpp
from engine.langchain_model import LocalChatModel
from tests.helpers import random_adapter

pytestmark = [pytest.mark.slow]
SMOL = "smollm2-135m-instruct"
KIND = "llamacpp" if llamacpp.is_installed() else "transformers"
ASK = [SystemMessage("You write SQLite queries."),
       HumanMessage("Table: customers(id, name, country). Count the customers.")]  # fmt: skip


@pytest.fixture(scope="module")
def chat():
    return LocalChatModel(model=SMOL, backend_kind=KIND, max_new_tokens=24)


def test_invoke_stream_and_stop_sequences(chat):
    said = chat.invoke(ASK)
    assert isinstance(said, AIMessage) and said.content.strip()
    assert chat.invoke(ASK).content == said.content  # greedy: the same answer again
    chunks = list(chat.stream(ASK))
    assert len(chunks) > 1  # piece by piece, as generated
    assert "".join(c.content for c in chunks) == said.content
    # A stop sequence taken from the answer itself: the answer ends right before it.
    stop = said.content.strip().split()[1]
    cut = said.content[: said.content.index(stop)]
    assert chat.invoke(ASK, stop=[stop]).content == cut
    assert "".join(c.content for c in chat.stream(ASK, stop=[stop])) == cut
    # generation settings: per model and per call
    assert chat.load().count_tokens(chat.invoke(ASK, max_new_tokens=3).content) <= 4
    sampled = [chat.invoke(ASK, temperature=0.9, seed=7).content for _ in range(2)]
    assert sampled[0] == sampled[1]  # seeded


def test_transformers_streams_the_same_answer_as_it_invokes():
    chat = LocalChatModel(model=SMOL, backend_kind="transformers", max_new_tokens=16)
    said = chat.invoke(ASK).content
    assert chat.load().name.startswith("transformers:")
    chunks = [c.content for c in chat.stream(ASK)]
    assert len(chunks) > 1 and "".join(chunks) == said
    stop = said.strip().split()[1]
    assert chat.invoke(ASK, stop=[stop]).content == said[: said.index(stop)]


def test_batch_decodes_every_input_in_one_backend_call(chat, monkeypatch):
    backend = chat.load()
    calls = []
    generate = backend.generate
    monkeypatch.setattr(backend, "generate", lambda p, c: calls.append(len(p)) or generate(p, c))
    questions = [ASK, "Say hello.", [HumanMessage("Name one SQL keyword.")]]
    answers = chat.batch(questions)
    assert calls == [3]  # one call, three prompts decoded together
    assert [type(a) for a in answers] == [AIMessage] * 3
    assert all(a.content.strip() for a in answers)


def test_a_trained_adapter_is_a_chat_model_too(tmp_path, chat):
    from engine.presets import prepare_preset

    adapter = random_adapter(prepare_preset(SMOL), tmp_path / "adapter", scale=0.1)
    (adapter / "text2sql_adapter.json").write_text(json.dumps({"base_model": SMOL}))
    tuned = LocalChatModel(adapter=str(adapter), backend_kind=KIND, max_new_tokens=24)
    said = tuned.invoke(ASK)
    assert "adapter" in tuned.load().name
    assert said.content != chat.invoke(ASK).content  # the adapter changed the answer
    assert "".join(c.content for c in tuned.stream(ASK)) == said.content


def test_the_sql_chain_runs_on_the_chat_models_backend(chat, shop_db):
    from engine.config import EngineConfig, load_config
    from engine.rag.chain import build_sql_chain

    cfg = load_config(EngineConfig, None, {"rag.enabled": False, "max_attempts": 1,
                                            "generation.max_new_tokens": 48,
                                            "generation.retry_candidates": 1})  # fmt: skip
    engine = chat.engine(cfg)
    assert engine.backend is chat.load()  # one loaded model for both
    out = build_sql_chain(engine).invoke(
        {"question": "How many customers are there?", "db_path": str(shop_db)}
    )
    assert {"sql", "rows", "error"} <= set(out["answer"])
