"""LLM backends behind one small interface: messages in, text out.

:class:`TransformersBackend` works for any causal LM transformers can load (CPU or GPU,
4-bit, PEFT adapters). It generates in batches with left padding and stops each sequence as
soon as it holds a complete SQL statement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from engine.models import LoadedModel
from engine.prompt import Message, PromptFormat, render_prompt
from engine.sql_check import is_statement_complete


@dataclass
class GenerationConfig:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 50
    top_p: float = 1.0
    stop_at_statement_end: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backend(Protocol):
    """What the engine needs from a model runtime."""

    name: str
    prompt_format: PromptFormat

    @property
    def context_length(self) -> int: ...

    def render(self, messages: list[Message]) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[str]: ...

    # Optional: ``prefill(prompt) -> int`` evaluates a prompt into a prompt cache ahead of
    # time (llama.cpp has one); TextToSQL.prime uses it where a backend has it.


class _StopAtStatementEnd:
    """Per-sequence stop once the generated text holds a complete SQL statement."""

    def __init__(self, tokenizer: Any, prompt_len: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for i, row in enumerate(input_ids):
            last = self.tokenizer.decode(row[-1:], skip_special_tokens=True)
            if not any(ch in last for ch in ";`\n"):  # cheap pre-check before a full decode
                continue
            text = self.tokenizer.decode(row[self.prompt_len :], skip_special_tokens=True)
            done[i] = is_statement_complete(text)
        return done


class TransformersBackend:
    """Generation with a transformers model (optionally with a PEFT adapter)."""

    def __init__(self, loaded: LoadedModel, batch_size: int = 8) -> None:
        self.loaded = loaded
        self.batch_size = batch_size
        self.name = f"transformers:{loaded.name}" + (" + adapter" if loaded.adapter else "")
        self.prompt_format = loaded.prompt_format

    @property
    def context_length(self) -> int:
        return self.loaded.context_length

    def render(self, messages: list[Message]) -> str:
        return render_prompt(self.loaded.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        return len(self.loaded.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[str]:
        out: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            out.extend(self._generate_batch(prompts[start : start + self.batch_size], cfg))
        return out

    def _generate_batch(self, prompts: list[str], cfg: GenerationConfig) -> list[str]:
        import torch
        from transformers import StoppingCriteriaList

        tok = self.loaded.tokenizer
        tok.padding_side = "left"
        # The chat template already wrote BOS where the model wants one.
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.loaded.device) for k, v in enc.items()}
        prompt_len = enc["input_ids"].shape[1]
        kwargs: dict[str, Any] = {
            "max_new_tokens": cfg.max_new_tokens,
            "pad_token_id": tok.pad_token_id,
        }
        if cfg.temperature > 0:
            torch.manual_seed(cfg.seed)
            kwargs.update(
                do_sample=True, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p
            )
        else:
            kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
        if cfg.stop_at_statement_end:
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [_StopAtStatementEnd(tok, prompt_len)]
            )
        with torch.inference_mode():
            output = self.loaded.model.generate(**enc, **kwargs)
        return [tok.decode(row[prompt_len:], skip_special_tokens=True) for row in output]


def load_backend(
    model: str | None = None,
    adapter: str | None = None,
    *,
    load_in_4bit: bool = False,
    kind: str = "auto",
    progress: Any = None,
) -> Backend:
    """The generation backend for a model; ``kind='auto'`` picks the best available one.

    ``auto``: llama.cpp (:mod:`engine.backends.llamacpp`) on CPU when it is installed and can
    serve the model (a preset or GGUF file, adapter included); transformers otherwise (GPU,
    4-bit bitsandbytes, any hub or local model). The choice and its reason are logged.
    """
    import logging

    from engine.models import ModelLoadError, _say, load_model, pick_device

    log = logging.getLogger(__name__)
    if kind not in {"auto", "transformers", "llamacpp"}:
        raise ModelLoadError(f"Unknown backend {kind!r}: use auto, transformers or llamacpp")
    if kind == "auto":
        from engine.backends import llamacpp

        why = None
        llamacpp.openmp_sleeps_when_idle()  # before pick_device() imports torch's libgomp
        if not llamacpp.is_installed():
            why = "llama-cpp-python is not installed"
        elif load_in_4bit:
            why = "4-bit bitsandbytes loading was asked for"
        elif pick_device() != "cpu":
            why = "a GPU is available"
        if why is None:
            try:
                backend = llamacpp.load(model, adapter, progress=progress)
                _say(progress, f"Backend: {backend.name} (fast CPU runtime)")
                return backend
            except ModelLoadError as err:
                why = str(err)
        log.info("Backend auto: using transformers because %s", why)
    elif kind == "llamacpp":
        from engine.backends import llamacpp

        backend = llamacpp.load(model, adapter, progress=progress)
        _say(progress, f"Backend: {backend.name}")
        return backend
    loaded = load_model(model, adapter, load_in_4bit=load_in_4bit, progress=progress)
    backend = TransformersBackend(loaded)
    _say(progress, f"Backend: {backend.name}")
    return backend
