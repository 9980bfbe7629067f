"""Generation with llama.cpp (llama-cpp-python) straight from the bundled GGUF files.

On CPU this reads the 4-bit weights as they are instead of dequantised fp32, which is where
most of its speed over transformers comes from (see bench/inference.py for numbers). The
prompt text comes from the same tokenizer chat template as the transformers backend
(:func:`engine.prompt.render_prompt`), so both backends see identical prompts.

* prompt caching: llama.cpp keeps the KV cache of the last prompt; a new prompt re-evaluates
  only what follows the longest common token prefix (the system prompt and whatever else
  repeats). :attr:`LlamaCppBackend.stats` counts the reused tokens.
* stop at statement end: generation ends at an end-of-turn token or as soon as the text
  holds a complete SQL statement (:func:`engine.sql_check.is_statement_complete`).
* batches: :meth:`LlamaCppBackend.generate` decodes a list of prompts together
  (:mod:`engine.backends.llamacpp_batch`), which evaluation uses.
* LoRA adapters: converted once to a llama.cpp LoRA GGUF (:mod:`engine.backends.lora_gguf`)
  and applied at run time on top of the unchanged base.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import time
import weakref
from collections.abc import Generator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.backends.base import GenerationConfig
from engine.backends.llamacpp_batch import BatchDecoder, sampler_settings
from engine.prompt import DEFAULT_FORMAT, Message, PromptFormat, render_prompt
from engine.sql_check import is_statement_complete

log = logging.getLogger(__name__)
NAME = "llamacpp"
MAX_CONTEXT = 8192  # the KV cache is allocated up front; SQL prompts stay far below this


def is_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def default_threads() -> int:
    """Every core this process may use."""
    return len(os.sched_getaffinity(0))


def openmp_sleeps_when_idle() -> bool:
    """Make llama.cpp's OpenMP threads wait passively, if it is not too late; say if they do.

    With the default (spinning) wait, llama.cpp's threads on a busy 2-core machine wait for
    each other at every op: measured here under load, 2 spinning threads generated 10x slower
    than 1, while 2 passive ones matched or beat 1. libgomp reads the policy once, when it is
    loaded, and torch ships a libgomp.so.1 that llama.cpp then shares: so entry points set
    ``OMP_WAIT_POLICY=PASSIVE`` before importing torch, and otherwise we adapt the thread
    count to the machine's load (:meth:`LlamaCppBackend._fit_threads`).
    """
    if not _libgomp_loaded():
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


def _libgomp_loaded() -> bool:
    try:
        return "libgomp" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


@dataclass
class GenerationStats:
    """Counters over all calls; the benchmark reads and resets them."""

    prompt_tokens: int = 0  # tokens in the prompts asked for
    prompt_tokens_reused: int = 0  # of those, served from the KV cache
    generated_tokens: int = 0  # tokens the model produced, a final end-of-turn token included
    generate_seconds: float = 0.0  # time after the first token

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LlamaCppBackend:
    """The :class:`engine.backends.base.Backend` interface over a ``llama_cpp.Llama``."""

    def __init__(
        self,
        gguf: Path,
        tokenizer: Any,
        *,
        name: str,
        prompt_format: PromptFormat = DEFAULT_FORMAT,
        lora: Path | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        batch_size: int = 4,
    ) -> None:
        self.adaptive_threads = n_threads is None and not openmp_sleeps_when_idle()
        from llama_cpp import Llama

        self.tokenizer = tokenizer  # only for the chat template
        self.prompt_format = prompt_format
        self.name = f"{NAME}:{name}" + (" + adapter" if lora else "")
        threads = n_threads or default_threads()
        self.threads = threads
        self.llm = Llama(
            model_path=str(gguf),
            n_ctx=n_ctx or MAX_CONTEXT,
            n_batch=512,
            n_threads=threads,
            n_threads_batch=threads,
            flash_attn=True,  # ~10% faster per answer here; 55/60 answers identical, same accuracy
            lora_path=str(lora) if lora else None,
            verbose=False,
        )
        self.stats = GenerationStats()
        self.batch_size = batch_size  # prompts decoded together by generate()
        self._decoder: Any = None
        # Close before interpreter teardown, when llama-cpp-python's own __del__ fails noisily.
        atexit.register(_close, weakref.ref(self.llm))

    @property
    def context_length(self) -> int:
        return int(self.llm.n_ctx())

    def render(self, messages: list[Message]) -> str:
        return render_prompt(self.tokenizer, messages)

    def tokenize(self, text: str) -> list[int]:
        # The chat template already wrote BOS where the model wants one.
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def clear_cache(self) -> None:
        """Forget the cached prompt (the benchmark's cold-prompt measurements use this)."""
        self.llm.reset()

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[str]:
        """One prompt at a time (chat: the prompt cache helps), or batches for evaluation."""
        if len(prompts) == 1 or self.batch_size == 1:
            return [self._generate_one(p, cfg) for p in prompts]
        out: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            out.extend(self._generate_batch(prompts[start : start + self.batch_size], cfg))
        return out

    def _generate_batch(self, prompts: list[str], cfg: GenerationConfig) -> list[str]:
        if self.adaptive_threads:
            self._fit_threads()
        if self._decoder is None or self._decoder.n_seq < len(prompts):
            self._decoder = BatchDecoder(self, self.batch_size)
        try:
            return self._decoder.generate(prompts, cfg)
        except ValueError:  # too long to fit together: one at a time
            return [self._generate_one(p, cfg) for p in prompts]

    def _fit_threads(self) -> None:
        """With spinning OpenMP threads, use one core while other work keeps the CPU busy."""
        cores = default_threads()
        threads = cores if os.getloadavg()[0] < cores - 0.5 else 1
        if threads != self.threads:
            self.llm._ctx.set_n_threads(threads, threads)
            if self._decoder is not None:
                self._decoder.ctx.set_n_threads(threads, threads)
            self.threads = threads

    def _generate_one(self, prompt: str, cfg: GenerationConfig) -> str:
        import llama_cpp

        if self.adaptive_threads:
            self._fit_threads()
        tokens = self.tokenize(prompt)
        if len(tokens) + cfg.max_new_tokens > self.context_length:
            raise ValueError(
                f"Prompt of {len(tokens)} tokens + {cfg.max_new_tokens} new tokens does not "
                f"fit the {self.context_length}-token context"
            )
        reused = self._cached_prefix(tokens)
        self.stats.prompt_tokens += len(tokens)
        self.stats.prompt_tokens_reused += reused
        vocab = self.llm._model.vocab
        out: list[int] = []
        started = time.perf_counter()
        first = started
        if cfg.temperature <= 0:
            stream = self._greedy(tokens, reused)
        else:
            self.llm.set_seed(cfg.seed)
            stream = self.llm.generate(tokens, reset=True, **sampler_settings(cfg))
        produced = 0
        for token in stream:
            if not produced:
                first = time.perf_counter()
            produced += 1
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            out.append(token)
            if len(out) >= cfg.max_new_tokens:
                break
            if cfg.stop_at_statement_end and self._ends_statement(token, out):
                break
        stream.close()
        ended = time.perf_counter()
        self.stats.generated_tokens += produced
        self.stats.generate_seconds += ended - first
        return self.llm.detokenize(out).decode("utf-8", errors="replace")

    def _greedy(self, tokens: list[int], reused: int) -> Generator[int, None, None]:
        """Argmax decoding straight from llama.cpp's logits, the KV cache kept across calls.

        Same tokens as llama-cpp-python's greedy sampler, without building its candidate list
        over the whole vocabulary (150k entries for Qwen) at every step. The bookkeeping
        (``n_tokens``, ``input_ids``) stays llama-cpp-python's, so its own prefix matching
        works on the next sampled call too.
        """
        import llama_cpp
        import numpy as np

        llm = self.llm
        n_vocab = llm.n_vocab()
        self._eval_after(tokens, reused)
        while True:
            logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            token = int(np.ctypeslib.as_array(logits, shape=(n_vocab,)).argmax())
            yield token
            llm.eval([token])

    def _eval_after(self, tokens: list[int], reused: int) -> None:
        """Evaluate ``tokens`` into the KV cache, keeping its first ``reused`` entries."""
        self.llm.n_tokens = reused  # eval() drops the KV cache from here on
        self.llm.eval(tokens[reused:])

    def prefill(self, prompt: str) -> int:
        """Evaluate a prompt into the KV cache without generating; later prompts that start
        the same way reuse it. Returns how many of its tokens are cached (0: too long)."""
        import llama_cpp

        tokens = self.tokenize(prompt)
        if not tokens or len(tokens) >= self.context_length:
            return 0
        self._eval_after(tokens, self._cached_prefix(tokens))
        # llama.cpp finishes (and books) a decode when its results are next read: do it now.
        llama_cpp.llama_synchronize(self.llm.ctx)
        return len(tokens)

    def _ends_statement(self, token: int, out: list[int]) -> bool:
        piece = self.llm._model.token_to_piece(token)
        if b";" not in piece and b"`" not in piece:  # cheap pre-check before a full decode
            return False
        return is_statement_complete(self.llm.detokenize(out).decode("utf-8", errors="ignore"))

    def _cached_prefix(self, tokens: list[int]) -> int:
        """How many leading prompt tokens llama.cpp will take from its KV cache."""
        cached = self.llm.input_ids[: self.llm.n_tokens]
        n = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            n += 1
        return min(n, len(tokens) - 1)  # the last prompt token is always evaluated again

    def runtime_timings(self) -> dict[str, float]:
        """llama.cpp's own counters since the last reset: prompt and generation ms/tokens."""
        import llama_cpp

        perf = llama_cpp.llama_perf_context(self.llm.ctx)
        return {
            "prompt_ms": perf.t_p_eval_ms,
            "prompt_tokens": perf.n_p_eval,
            "eval_ms": perf.t_eval_ms,
            "eval_tokens": perf.n_eval,
        }

    def reset_timings(self) -> None:
        import llama_cpp

        llama_cpp.llama_perf_context_reset(self.llm.ctx)
        self.stats = GenerationStats()


def _close(ref: weakref.ref) -> None:
    llm = ref()
    if llm is not None:
        llm.close()


def find_gguf(name_or_path: str, progress: Any = None) -> Path | None:
    """The GGUF file for a preset, a ``.gguf`` path, or a folder holding one; else None."""
    from engine.models import PRESETS, preset_gguf

    if name_or_path in PRESETS:
        return preset_gguf(PRESETS[name_or_path], progress)
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        found = sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
    return None


def load(
    model: str | None = None,
    adapter: str | Path | None = None,
    *,
    threads: int | None = None,
    batch_size: int = 4,
    progress: Any = None,
) -> LlamaCppBackend:
    """A :class:`LlamaCppBackend` for a preset or GGUF model, with an optional LoRA adapter.

    Raises :class:`engine.models.ModelLoadError` (one line) when llama.cpp cannot serve it.
    """
    from engine.backends.lora_gguf import LoraConversionError, cached_lora_gguf
    from engine.models import (
        DEFAULT_MODEL,
        ModelLoadError,
        _say,
        read_adapter_meta,
    )

    if not is_installed():
        raise ModelLoadError("llama-cpp-python is not installed (scripts/setup.sh builds it)")
    meta = read_adapter_meta(adapter) if adapter else {}
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelLoadError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    name = model or meta.get("base_model") or DEFAULT_MODEL
    gguf = find_gguf(name, progress)
    if gguf is None:
        raise ModelLoadError(f"No GGUF file for '{name}': llama.cpp serves presets and .gguf files")
    lora = None
    if adapter:
        from engine.paths import cache_dir

        try:
            lora = cached_lora_gguf(adapter, gguf, cache_dir())
        except LoraConversionError as err:
            raise ModelLoadError(f"Adapter {adapter} cannot run on llama.cpp: {err}") from err
    tokenizer = _chat_tokenizer(name, gguf, adapter, progress)
    fmt = PromptFormat.from_dict(meta["prompt_format"]) if "prompt_format" in meta else None
    n_threads = threads or default_threads()
    _say(progress, f"Loading {name} with llama.cpp ({gguf.name}, {n_threads} threads)")
    try:
        return LlamaCppBackend(
            gguf,
            tokenizer,
            name=name,
            prompt_format=fmt or DEFAULT_FORMAT,
            lora=lora,
            n_threads=threads,
            batch_size=batch_size,
        )
    except (ValueError, RuntimeError) as err:  # llama.cpp refused the file or the adapter
        raise ModelLoadError(f"llama.cpp cannot load {gguf.name}: {err}") from err


def _chat_tokenizer(name: str, gguf: Path, adapter: str | Path | None, progress: Any) -> Any:
    """The transformers tokenizer whose chat template the transformers backend uses too."""
    from transformers import AutoTokenizer

    from engine.models import PRESETS, preset_tokenizer
    from engine.prompt import ensure_chat_template

    if adapter and (Path(adapter) / "tokenizer_config.json").is_file():
        source: str | Path = adapter
    elif name in PRESETS:  # no need to convert the whole model for its tokenizer
        source = preset_tokenizer(name, progress)
    elif Path(name).is_dir() and (Path(name) / "config.json").is_file():
        source = name
    else:  # a bare GGUF file: transformers reads its tokenizer and template from it
        return ensure_chat_template(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name))
    return ensure_chat_template(AutoTokenizer.from_pretrained(source))
