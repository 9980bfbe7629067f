"""What the engine needs from a model runtime, and the settings it generates with.

The runtimes (:mod:`engine.backends.transformers_backend`, :mod:`engine.backends.llamacpp`)
implement :class:`Backend`; :func:`engine.backends.loader.load_backend` picks one. Nothing
here imports a runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from engine.errors import ConfigError
from engine.prompt import Message, PromptFormat
from engine.setting import setting

# How the candidates that ran are chosen (GenerationConfig.selector; engine.pipeline).
SELECTORS = ("majority", "likelihood")

# ``auto``: llama.cpp on CPU when it can serve the model, transformers otherwise; ``openai``:
# an OpenAI-compatible server (engine.backends.openai_backend, settings under ``openai.*``).
BACKEND_KINDS = ("auto", "llamacpp", "transformers", "openai")


def check_backend_kind(kind: str, key: str = "backend") -> None:
    if kind not in BACKEND_KINDS:
        raise ConfigError(f"{key} must be one of {', '.join(BACKEND_KINDS)}; got {kind!r}")


@dataclass
class GenerationConfig:
    max_new_tokens: int = setting(256, "answer length cap in tokens")
    temperature: float = setting(0.0, "0 = greedy")
    top_k: int = setting(50, "sample from the k likeliest tokens; 0 = no top-k cut")
    top_p: float = setting(1.0, "nucleus sampling: the likeliest tokens up to this mass")
    stop_at_statement_end: bool = setting(True, "stop at the end of the first SQL statement")
    seed: int = setting(0, "for temperature > 0 and the sampled candidates")
    # With more than one candidate, the engine votes among them by their result rows
    # (execution-guided); the first is greedy (unless temperature > 0), the others are
    # sampled at candidate_temperature with seeds seed+1, seed+2, ...
    candidates: int = setting(1, "answers per question; > 1: they vote by their result rows")
    # Answers drawn in each later attempt: the greedy repair of the failed answer, and fresh
    # samples of the question's own prompt. candidates=1 with retry_candidates>1 is a
    # cascade: one greedy answer, and a vote only for the questions whose first answer
    # failed. The engine's default (EngineConfig.generation) is 5: on held-out Spider
    # databases that matched voting on every question (0.70, greedy 0.585) while drawing
    # extra answers for a quarter of them.
    retry_candidates: int = setting(
        0, "answers drawn after a failed answer (its repair + fresh samples); 0 = as candidates"
    )
    candidate_temperature: float = setting(0.7, "temperature of the sampled candidates")
    # Both off until measured (bench/ablation.py): the majority of result rows, and voting
    # only after a failure, are today's rule.
    selector: str = setting(
        "majority",
        "majority: the rows most candidates return | likelihood: rows weighed by their "
        "candidates' likelihood (engine.selector)",
        choices=SELECTORS,
    )
    vote_below: float | None = setting(
        None,
        "a greedy answer that ran with a mean token log-probability below this: "
        "retry_candidates are drawn and vote with it; null = off",
    )

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError("generation.max_new_tokens must be at least 1")
        if self.temperature < 0:
            raise ConfigError("generation.temperature must be >= 0 (0 = greedy)")
        if self.top_k < 0:
            raise ConfigError("generation.top_k must be >= 0 (0 = no top-k cut)")
        if not 0 < self.top_p <= 1:
            raise ConfigError("generation.top_p must be in (0, 1]")
        if self.candidates < 1:
            raise ConfigError("generation.candidates must be at least 1")
        if self.retry_candidates < 0:
            raise ConfigError("generation.retry_candidates must be >= 0 (0 = as candidates)")
        if self.candidate_temperature <= 0:
            raise ConfigError("generation.candidate_temperature must be > 0")
        if self.selector not in SELECTORS:
            raise ConfigError(
                f"generation.selector must be one of {', '.join(SELECTORS)}; got {self.selector!r}"
            )
        if self.vote_below is not None and (
            self.vote_below > 0 or self.candidates > 1 or self.candidate_count(2) < 2
        ):
            raise ConfigError(
                "generation.vote_below (a mean log-probability, <= 0) gates the cascade: it "
                "needs candidates 1 and retry_candidates > 1"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def candidate_configs(self, attempt: int = 1) -> list[GenerationConfig]:
        """One config per candidate answer of an attempt (see ``candidates``); each attempt
        samples with seeds of its own."""
        count = self.candidate_count(attempt)
        temperature = self.temperature or self.candidate_temperature
        offset = 0 if attempt == 1 else self.candidates + (attempt - 2) * count
        return [self] + [
            replace(self, temperature=temperature, seed=self.seed + offset + k)
            for k in range(1, count)
        ]

    def candidate_count(self, attempt: int = 1) -> int:
        """Answers one question draws in an attempt (``retry_candidates`` after the first)."""
        return self.candidates if attempt == 1 else self.retry_candidates or self.candidates

    def most_candidates(self) -> int:
        """The most answers one question draws at once, in any attempt."""
        return max(self.candidate_count(1), self.candidate_count(2))


@dataclass(frozen=True)
class Scored:
    """A generated text and the model's confidence in it: the mean log-probability of its
    generated tokens under the model's own distribution (log-softmax of the raw logits, at
    temperature 1, whatever the text was sampled with), the end-of-turn token that ended it
    left out (stopping at the statement's end emits none, so every text is scored on its own
    tokens alone). None where the backend cannot tell (a server without logprobs) or no token
    was generated."""

    text: str
    logprob: float | None = None


def per_prompt(
    cfg: GenerationConfig | Sequence[GenerationConfig], n: int
) -> list[GenerationConfig]:
    """``generate``'s settings argument as one config per prompt."""
    cfgs = [cfg] * n if isinstance(cfg, GenerationConfig) else list(cfg)
    if len(cfgs) != n:
        raise ValueError(f"{len(cfgs)} generation configs for {n} prompts")
    return cfgs


class Backend(Protocol):
    """Messages in (rendered by the model's own chat template), text out."""

    name: str
    prompt_format: PromptFormat

    @property
    def context_length(self) -> int: ...

    def render(self, messages: list[Message]) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def generate(
        self, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig]
    ) -> list[str]:
        """One text per prompt; ``cfg`` is one config for all, or one per prompt."""
        ...

    # Optional: ``generate_scored(prompts, cfg) -> list[Scored]``, the same texts as
    # ``generate`` with their mean token log-probabilities (llama.cpp, transformers, openai
    # have it). A separate method, so that a caller who wants only text (streaming, the
    # follow-up rewrite, the benchmarks) pays nothing for scores; ``generate_scored`` below
    # calls it where a backend has it.
    # Optional: ``prefill(prompt) -> int`` evaluates a prompt into a prompt cache ahead of
    # time (llama.cpp has one); TextToSQL.prime uses it where a backend has it.


def generate_scored(
    backend: Backend, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig]
) -> list[Scored]:
    """``backend.generate_scored`` where it has one, else its texts with no scores."""
    scored = getattr(backend, "generate_scored", None)
    if scored is not None:
        return scored(prompts, cfg)
    return [Scored(text) for text in backend.generate(prompts, cfg)]
