"""The workbench's local model as a LangChain chat model, for anyone's chain.

:class:`LocalChatModel` is a ``BaseChatModel`` over the engine's own backend
(:func:`engine.backends.loader.load_backend`): a bundled preset, a GGUF file, a local or hub
model folder, or a LoRA adapter trained in the Training tab, on llama.cpp or transformers.
Prompts are rendered with the model's own chat template, as the engine renders its SQL
prompts. ``invoke``, ``stream`` (piece by piece as the model generates), ``batch`` (all
prompts decoded together in one backend call), stop sequences and the generation settings
(``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``, ``seed``)::

    from engine.langchain_model import LocalChatModel

    chat = LocalChatModel(model="smollm2-135m-instruct", max_new_tokens=64)
    chat.invoke("Write a SQL query that counts the rows of table t.")
    for chunk in chat.stream("Name three SQL keywords.", stop=["\\n\\n"]):
        print(chunk.content, end="")

The SQL chain runs on the same loaded model: ``build_sql_chain(chat.engine(EngineConfig()))``
(:mod:`engine.rag.chain`). This module imports LangChain at the top: import it only where
it is needed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from engine.backends.base import GenerationConfig
from engine.backends.streaming import StopSequences, cut_at_stop, stream_text

log = logging.getLogger(__name__)
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "user"}


class LocalChatModel(BaseChatModel):
    """A chat model over the engine's backend; the model loads at its first use (or pass a
    loaded ``backend``, e.g. ``engine.backend`` of a running engine, to share it)."""

    model: str | None = None
    """Preset name, GGUF file, local model folder or hub id (None: the engine's default, or
    the adapter's recorded base model)."""
    adapter: str | None = None
    """A LoRA adapter folder from training."""
    backend_kind: str = "auto"
    """``auto`` (llama.cpp on CPU when it can serve the model), ``llamacpp``,
    ``transformers`` or ``openai`` (settings: ``remote``)."""
    load_in_4bit: bool = False
    threads: int | None = None
    remote: Any = None
    """engine.backends.openai_config.OpenAIConfig for ``backend_kind="openai"``."""
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_k: int = 50
    top_p: float = 1.0
    seed: int = 0
    stop: list[str] | None = None
    """Stop sequences of every call (a call's own ``stop`` adds to them)."""
    backend: Any = None
    """A loaded engine Backend to use instead of loading ``model``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _ready: dict = PrivateAttr(default_factory=dict)  # batch: prompt -> texts decoded together

    @property
    def _llm_type(self) -> str:
        return "text2sql-workbench-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "adapter": self.adapter, "backend": self.backend_kind,
                **self._settings().to_dict()}  # fmt: skip

    def load(self) -> Any:
        """The engine Backend (loaded on first use)."""
        with self._load_lock:
            return self._load()

    def _load(self) -> Any:
        if self.backend is None:
            # deferred: the runtimes load with the model, not with this module
            from engine.backends.loader import load_backend
            from engine.presets import DEFAULT_MODEL

            model = self.model or (None if self.adapter else DEFAULT_MODEL)
            self.backend = load_backend(
                model, self.adapter, load_in_4bit=self.load_in_4bit, kind=self.backend_kind,
                threads=self.threads, remote=self.remote,
            )  # fmt: skip
        return self.backend

    def engine(self, cfg: Any = None) -> Any:
        """An engine (TextToSQL) answering with this model: the SQL chain's
        (``build_sql_chain(chat.engine())``); ``cfg``: an EngineConfig (its model settings are
        not used)."""
        # deferred: the answer loop's modules, only for the SQL chain
        from engine.config import EngineConfig
        from engine.factory import engine_from_config

        return engine_from_config(cfg or EngineConfig(), backend=self.load())

    def _settings(self, **overrides: Any) -> GenerationConfig:
        """The generation settings of a call: the model's fields, a call's keyword arguments
        (``max_new_tokens``, ``temperature``, ...) over them. Chat text is not SQL: it does
        not stop at the end of a statement."""
        fields = ("max_new_tokens", "temperature", "top_k", "top_p", "seed")
        base = GenerationConfig(stop_at_statement_end=False,
                                **{k: getattr(self, k) for k in fields})  # fmt: skip
        return replace(base, **{k: v for k, v in overrides.items() if k in fields})

    def _prompt(self, messages: list[BaseMessage]) -> str:
        rendered = [
            {"role": _ROLES.get(m.type, "user"), "content": _text(m.content)} for m in messages
        ]
        return self.load().render(rendered)

    def _stops(self, stop: Sequence[str] | None) -> list[str]:
        return [*(self.stop or []), *(stop or [])]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt, cfg = self._prompt(messages), self._settings(**kwargs)
        text = self._take_ready(prompt, cfg)
        if text is None:
            text = "".join(c.message.content for c in self._stream(messages, stop, None, **kwargs))
        else:
            text = cut_at_stop(text, self._stops(stop))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        prompt, cfg = self._prompt(messages), self._settings(**kwargs)
        stops = StopSequences(self._stops(stop))
        with self._lock:  # one generation at a time on the one model
            pieces = stream_text(self.load(), prompt, cfg)
            try:
                for piece in pieces:
                    text = stops.feed(piece)
                    if text:
                        yield _chunk(text, run_manager)
                    if stops.stopped:
                        break
            finally:
                pieces.close()  # a stop sequence, or the caller stopped reading: stop generating
            if tail := stops.flush():
                yield _chunk(tail, run_manager)

    def batch(
        self,
        inputs: list[Any],
        config: Any = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[BaseMessage]:
        """Every input answered in one backend call (decoded together), then each one's
        result delivered as ``invoke`` delivers it (callbacks, stop sequences)."""
        prompts = [self._prompt(self._convert_input(i).to_messages()) for i in inputs]
        cfg = self._settings(**kwargs)
        if len(prompts) > 1:
            with self._lock:
                try:
                    texts = self.load().generate(prompts, cfg)
                except Exception as err:  # each input then fails (or not) on its own
                    log.warning("Batched generation failed, answering one by one: %s", err)
                    texts = []
                for prompt, text in zip(prompts, texts, strict=False):
                    self._ready.setdefault((prompt, _key(cfg)), []).append(text)
        try:
            return super().batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        finally:
            with self._lock:
                for prompt in prompts:
                    self._ready.pop((prompt, _key(cfg)), None)

    def _take_ready(self, prompt: str, cfg: GenerationConfig) -> str | None:
        with self._lock:
            texts = self._ready.get((prompt, _key(cfg)))
            return texts.pop(0) if texts else None


def _chunk(text: str, run_manager: CallbackManagerForLLMRun | None) -> ChatGenerationChunk:
    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
    if run_manager is not None:
        run_manager.on_llm_new_token(text, chunk=chunk)
    return chunk


def _key(cfg: GenerationConfig) -> tuple:
    return tuple(sorted(cfg.to_dict().items()))


def _text(content: Any) -> str:
    """A message's content as text (LangChain allows a list of text blocks)."""
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)
