"""Choosing and loading the runtime for a model: :func:`load_backend`."""

from __future__ import annotations

import logging
from typing import Any

from engine.backends import llamacpp
from engine.backends.base import Backend, check_backend_kind
from engine.backends.openai_backend import connect
from engine.backends.openai_config import OpenAIConfig
from engine.backends.transformers_backend import TransformersBackend
from engine.errors import ConfigError, ModelLoadError
from engine.models import load_model, pick_device
from engine.progress import say

log = logging.getLogger(__name__)


def load_backend(
    model: str | None = None,
    adapter: str | None = None,
    *,
    load_in_4bit: bool = False,
    kind: str = "auto",
    threads: int | None = None,
    batch_size: int = 4,
    progress: Any = None,
    remote: OpenAIConfig | None = None,
) -> Backend:
    """The generation backend for a model; ``kind='auto'`` picks the best available one.

    ``auto``: llama.cpp (:mod:`engine.backends.llamacpp`) on CPU when it is installed and can
    serve the model (a preset or GGUF file, adapter included); transformers otherwise (GPU,
    4-bit bitsandbytes, any hub or local model). The choice and its reason are logged.
    ``threads``: CPU threads (None: every core this process may use); ``batch_size``: how
    many prompts one ``generate`` call decodes together. ``openai``: the server ``remote``
    names (:mod:`engine.backends.openai_backend`); ``model`` and ``adapter`` are not used.
    """
    try:
        check_backend_kind(kind)
    except ConfigError as err:
        raise ModelLoadError(str(err)) from err
    if kind == "openai":
        backend = connect(remote or OpenAIConfig(), progress=progress)
        say(progress, f"Backend: {backend.name}", log)
        return backend
    llamacpp.openmp_sleeps_when_idle()  # before pick_device() imports torch's libgomp
    if kind == "auto":
        why = None
        if not llamacpp.is_installed():
            why = "llama-cpp-python is not installed"
        elif load_in_4bit:
            why = "4-bit bitsandbytes loading was asked for"
        elif pick_device() != "cpu":
            why = "a GPU is available"
        if why is None:
            try:
                backend = llamacpp.load(
                    model, adapter, threads=threads, batch_size=batch_size, progress=progress
                )
                say(progress, f"Backend: {backend.name} (fast CPU runtime)", log)
                return backend
            except ModelLoadError as err:
                why = str(err)
        log.info("Backend auto: using transformers because %s", why)
    elif kind == "llamacpp":
        backend = llamacpp.load(
            model, adapter, threads=threads, batch_size=batch_size, progress=progress
        )
        say(progress, f"Backend: {backend.name}", log)
        return backend
    if threads:
        import torch  # deferred: torch takes seconds to import

        torch.set_num_threads(threads)
    loaded = load_model(model, adapter, load_in_4bit=load_in_4bit, progress=progress)
    backend = TransformersBackend(loaded, batch_size=batch_size)
    say(progress, f"Backend: {backend.name}", log)
    return backend
