"""The bundled models' install, offered on the page when the models the app serves by default
are not installed: the same line as the command line, and a button that runs
``python -m engine install-models`` (what ``text2sql install-models`` runs) in a child
process, its progress shown as it goes; once done the default model loads."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from app.messages import public
from engine.config import EngineConfig
from engine.model_packages import missing, missing_message

_STEP = re.compile(r"^\[(\d+)/(\d+)\] ")


def what_is_missing(cfg: EngineConfig) -> tuple[str, list[str]]:
    """The line for the page and the models to install (none: nothing is missing)."""
    model = None if cfg.backend == "openai" else cfg.model
    absent = missing(model, cfg.rag.enabled, cfg.rag.embedder)
    return (public(missing_message(absent)) if absent else ""), [b.name for b in absent]


def command(names: list[str]) -> list[str]:
    return [sys.executable, "-m", "engine", "install-models", *names]


def install_lines(names: list[str]) -> Iterator[tuple[float | None, str]]:
    """Run the install in a child process: (fraction done or None, line) as it goes; the last
    line starts with "Done" or "Error"."""
    proc = subprocess.Popen(
        command(names), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = public(raw.rstrip())
        step = _STEP.match(line)
        yield (int(step[1]) / int(step[2]) if step else None), line
    code = proc.wait()
    importlib.invalidate_caches()  # this process finds the new packages from now on
    if code == 0:
        yield 1.0, "Done: the models are installed."
    else:
        yield None, "Error: the install did not finish (see above); nothing was installed."


def build(pool: Any, show_button: bool) -> Any:
    """The notice and, with ``show_button``, the install button (nothing when all is there).
    Returns the button's click event (to chain the status line on), or None."""
    import gradio as gr  # deferred: gradio takes seconds to import

    notice, names = what_is_missing(pool.base)
    if not notice:
        return None
    with gr.Group(elem_id="install-models"):
        text = gr.Markdown(f"**{notice}**")
        if not show_button:  # signed-in users do not change the server's packages
            return None
        button = gr.Button("Install the models (text2sql install-models)", variant="primary")
        log = gr.Textbox(label="Install", lines=8, max_lines=8, visible=False)

    def install(progress=gr.Progress()):  # noqa: B008 (Gradio's way to ask for a bar)
        lines: list[str] = []
        yield gr.update(), gr.update(interactive=False), gr.update(visible=True, value="")
        for fraction, line in install_lines(names):
            lines.append(line)
            if fraction is not None:
                progress(fraction, desc=line)
            yield gr.update(), gr.update(), "\n".join(lines[-200:])
        if lines[-1].startswith("Done"):
            pool.unload_all()  # one loaded before, on a fallback, loads again on the best backend
            pool.warm_up()
            message, again = "Installed: the model loads now (see the line above).", False
        else:
            message, again = f"**{notice}** The install failed: {lines[-2:][0]}", True
        yield message, gr.update(interactive=again, visible=again), gr.update()

    return button.click(install, None, [text, button, log])
