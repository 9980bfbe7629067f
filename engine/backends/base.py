"""What the engine needs from a model runtime, and the settings it generates with.

The runtimes (:mod:`engine.backends.transformers_backend`, :mod:`engine.backends.llamacpp`)
implement :class:`Backend`; :func:`engine.backends.loader.load_backend` picks one. Nothing
here imports a runtime.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from engine.errors import ConfigError
from engine.prompt import Message, PromptFormat

# ``auto``: llama.cpp on CPU when it can serve the model, transformers otherwise.
BACKEND_KINDS = ("auto", "llamacpp", "transformers")


def check_backend_kind(kind: str, key: str = "backend") -> None:
    if kind not in BACKEND_KINDS:
        raise ConfigError(f"{key} must be one of {', '.join(BACKEND_KINDS)}; got {kind!r}")


@dataclass
class GenerationConfig:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 50  # 0 = no top-k cut
    top_p: float = 1.0
    stop_at_statement_end: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError("generation.max_new_tokens must be at least 1")
        if self.temperature < 0:
            raise ConfigError("generation.temperature must be >= 0 (0 = greedy)")
        if self.top_k < 0:
            raise ConfigError("generation.top_k must be >= 0 (0 = no top-k cut)")
        if not 0 < self.top_p <= 1:
            raise ConfigError("generation.top_p must be in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backend(Protocol):
    """Messages in (rendered by the model's own chat template), text out."""

    name: str
    prompt_format: PromptFormat

    @property
    def context_length(self) -> int: ...

    def render(self, messages: list[Message]) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[str]: ...

    # Optional: ``prefill(prompt) -> int`` evaluates a prompt into a prompt cache ahead of
    # time (llama.cpp has one); TextToSQL.prime uses it where a backend has it.
