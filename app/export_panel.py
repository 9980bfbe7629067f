"""Training tab, export section: a finished run's adapter -> merged model, quantized GGUF and
an Ollama Modelfile (:mod:`training.export`), beside the run (``runs/NAME/export/``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from app.messages import public
from app.model_choices import adapters
from app.users import root_of
from engine.config import ConfigError
from training.export import QUANTS, ExportConfig, ExportError, run


def export(choice: str | None, quant: str, space: Any = None) -> Iterator[str]:
    """Export one of ``space``'s adapters (app.users.UserSpace; None: the local user's): yield
    progress lines, then where the files went (or one line saying why not)."""
    folder = adapters(root_of(space)).get(choice or "")
    if folder is None:
        yield "Choose a finished run's adapter to export."
        return
    lines: list[str] = []
    yield f"Exporting **{folder.parent.name}** (merging, then GGUF {quant})…"
    try:
        result = run(ExportConfig(adapter=str(folder), quant=quant), progress=lines.append)
    except (ConfigError, ExportError, OSError, RuntimeError) as err:
        yield f"**Export failed:** {public(err)}"
        return
    done = [f"Done in {result.seconds:.0f} s: merged model in `{result.merged}`."]
    if result.gguf is not None:
        done.append(
            f"GGUF: `{result.gguf}` (`text2sql ask --model` loads it); "
            f"Ollama: `ollama create NAME -f {result.modelfile}`."
        )
    yield "\n\n".join(done)


def build(space: Callable[[], Any] = lambda: None) -> None:
    """Lay out the section; ``space()`` is the caller's app.users.UserSpace (None: the local
    user)."""
    import gradio as gr  # deferred: gradio takes seconds; exporting runs without it

    gr.Markdown(
        "**Export.** Fold a finished adapter into its base model: a merged Hugging Face "
        "folder (vLLM, transformers), a quantized GGUF for llama.cpp and an Ollama Modelfile."
    )
    with gr.Row():
        choice = gr.Dropdown(
            list(adapters(root_of(space()))),
            label="Adapter",
            elem_id="export-adapter",
            allow_custom_value=False,
        )
        quant = gr.Dropdown(list(QUANTS), value="Q8_0", label="GGUF type", elem_id="export-quant")
        refresh = gr.Button("Refresh list", elem_id="export-refresh")
        go = gr.Button("Export", elem_id="export-start")
    status = gr.Markdown(elem_id="export-message")
    refresh.click(lambda: gr.update(choices=list(adapters(root_of(space())))), None, choice)

    def on_export(chosen: str | None, quant: str) -> Iterator[str]:  # a generator: streamed
        yield from export(chosen, quant, space())

    go.click(on_export, [choice, quant], status)
