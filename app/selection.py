"""Clicks on a table row, as plain ``(row, column, *inputs)`` handlers.

Gradio passes the click (``gr.SelectData``) only to a parameter whose type hint it can
resolve, so this module keeps real annotations (no ``from __future__ import annotations``)
and imports gradio; it is imported only while the app's tabs are built.
"""

import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr


def row_click(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A select listener calling ``handler(row, column, *inputs)`` (generators stay ones)."""
    if inspect.isgeneratorfunction(handler):

        def stream(evt: gr.SelectData, *inputs: Any) -> Any:
            row, col = _cell(evt)
            yield from handler(row, col, *inputs)

        return stream

    def listener(evt: gr.SelectData, *inputs: Any) -> Any:
        row, col = _cell(evt)
        return handler(row, col, *inputs)

    return listener


def _cell(evt: gr.SelectData) -> tuple[int, int]:
    index = evt.index if isinstance(evt.index, list | tuple) else [evt.index, 0]
    return int(index[0]), int(index[1]) if len(index) > 1 else 0
