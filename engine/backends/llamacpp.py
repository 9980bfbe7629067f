"""Generation with llama.cpp (llama-cpp-python) straight from the bundled GGUF files.

On CPU this reads the 4-bit weights as they are instead of dequantised fp32, which is where
most of its speed over transformers comes from (see bench/inference.py for numbers). The
prompt text comes from the same tokenizer chat template as the transformers backend
(:func:`engine.prompt.render_prompt`), so both backends see identical prompts.

* one decoder (:mod:`engine.backends.llamacpp_batch`) for everything: the chat's single
  prompt, the candidates of one question (voting), and evaluation's batches are decoded
  together, one model pass per step for all sequences;
* prompt caching: the decoder keeps the KV cache of the prefix its last prompts shared; a
  new prompt re-evaluates only what follows (on one database: the retrieved notes and the
  question). :attr:`LlamaCppBackend.stats` counts the reused tokens;
* stop at statement end: generation ends at an end-of-turn token or as soon as the text
  holds a complete SQL statement (:func:`engine.sql_check.is_statement_complete`).
* LoRA adapters: converted once to a llama.cpp LoRA GGUF (:mod:`engine.backends.lora_gguf`)
  and applied at run time on top of the unchanged base.
"""

from __future__ import annotations

import atexit
import codecs
import importlib.util
import logging
import os
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.backends.base import GenerationConfig, Scored, per_prompt
from engine.backends.llamacpp_batch import BATCH_CONTEXT, BatchDecoder
from engine.backends.lora_gguf import LoraConversionError, cached_lora_gguf
from engine.backends.prompt_state_files import StateFiles, folder_for
from engine.backends.streaming import threaded
from engine.errors import ModelLoadError
from engine.models import read_adapter_meta
from engine.paths import cache_dir, llamacpp_hint
from engine.presets import DEFAULT_MODEL, PRESETS, preset_gguf, preset_tokenizer
from engine.progress import say
from engine.prompt import DEFAULT_FORMAT, Message, PromptFormat, ensure_chat_template, render_prompt

log = logging.getLogger(__name__)
NAME = "llamacpp"
MAX_CONTEXT = 8192  # tokens one prompt and its answer may use; SQL prompts stay far below this


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
        state_dir: Path | None = None,
    ) -> None:
        """``state_dir``: where prompt-cache states are shared with other processes of this
        model (see :mod:`engine.backends.prompt_state_files`); None keeps them in memory."""
        self.adaptive_threads = n_threads is None and not openmp_sleeps_when_idle()
        from llama_cpp import Llama  # optional: llama-cpp-python may be absent (~250 ms)

        self.tokenizer = tokenizer  # only for the chat template
        self.prompt_format = prompt_format
        self.name = f"{NAME}:{name}" + (" + adapter" if lora else "")
        threads = n_threads or default_threads()
        self.threads = threads
        self._context_length = n_ctx or MAX_CONTEXT
        self.llm = Llama(
            model_path=str(gguf),
            n_ctx=512,  # its own context stays unused: the decoder has one of its own
            n_batch=512,
            n_threads=threads,
            n_threads_batch=threads,
            flash_attn=True,  # ~10% faster per answer here; 55/60 answers identical, same accuracy
            lora_path=str(lora) if lora else None,
            verbose=False,
        )
        self.stats = GenerationStats()
        self.batch_size = batch_size  # at most this many sequences decoded together
        self._decoder: Any = None
        self._state_files = None
        if state_dir is not None:
            settings = {"n_ctx": BATCH_CONTEXT, "n_batch": 512, "flash_attn": True}
            self._state_files = StateFiles(folder_for(state_dir, gguf, lora, settings))
        # Close before interpreter teardown, when llama-cpp-python's own __del__ fails noisily.
        atexit.register(_close, weakref.ref(self.llm))

    @property
    def context_length(self) -> int:
        return self._context_length

    def render(self, messages: list[Message]) -> str:
        return render_prompt(self.tokenizer, messages)

    def tokenize(self, text: str) -> list[int]:
        # The chat template already wrote BOS where the model wants one.
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def clear_cache(self) -> None:
        """Forget the cached prompt (the benchmark's cold-prompt measurements use this)."""
        self.decoder.clear()

    @property
    def decoder(self) -> BatchDecoder:
        if self._decoder is None:
            self._decoder = BatchDecoder(self, max(1, self.batch_size), files=self._state_files)
        return self._decoder

    def generate(
        self, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig]
    ) -> list[str]:
        """All prompts decoded together where they fit one batch (see the decoder)."""
        return [text for text, _ in self._decode(prompts, cfg, scores=False)]

    def generate_scored(
        self, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig]
    ) -> list[Scored]:
        """:meth:`generate`'s texts with their mean token log-probabilities."""
        return [Scored(text, lp) for text, lp in self._decode(prompts, cfg, scores=True)]

    def _decode(
        self, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig], scores: bool
    ) -> list[tuple[str, float | None]]:
        cfgs = per_prompt(cfg, len(prompts))
        tokens = [self._fitting(p, c) for p, c in zip(prompts, cfgs, strict=True)]
        if self.adaptive_threads:
            self._fit_threads()
        out: list[tuple[list[int], float | None]] = []
        start = 0
        while start < len(tokens):
            end = start + 1  # the largest run of prompts from ``start`` that fits one batch
            while end < len(tokens) and self.decoder.fits(
                tokens[start : end + 1], cfgs[start : end + 1]
            ):
                end += 1
            if scores:
                out.extend(self.decoder.generate_scored(tokens[start:end], cfgs[start:end]))
            else:
                out.extend(
                    (t, None) for t in self.decoder.generate(tokens[start:end], cfgs[start:end])
                )
            start = end
        return [(self.llm.detokenize(o).decode("utf-8", errors="replace"), lp) for o, lp in out]

    def stream(self, prompt: str, cfg: GenerationConfig) -> Iterator[str]:
        """The answer to one prompt, piece by piece as it is generated (by the same decoder
        as :meth:`generate`); closing the iterator stops the generation."""
        tokens = self._fitting(prompt, cfg)
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")

        def run(emit: Any) -> None:
            def on_token(_: int, token: int) -> bool:
                piece = text.decode(self.llm.detokenize([token]))
                return emit(piece) if piece else False

            self.decoder.generate([tokens], [cfg], on_token=on_token)

        return threaded(run)

    def _fitting(self, prompt: str, cfg: GenerationConfig) -> list[int]:
        """The prompt's tokens; ValueError when they and the answer exceed the context."""
        tokens = self.tokenize(prompt)
        if len(tokens) + cfg.max_new_tokens > self.context_length:
            raise ValueError(
                f"Prompt of {len(tokens)} tokens + {cfg.max_new_tokens} new tokens does not "
                f"fit the {self.context_length}-token context"
            )
        return tokens

    def _fit_threads(self) -> None:
        """With spinning OpenMP threads, use one core while other work keeps the CPU busy."""
        cores = default_threads()
        threads = cores if os.getloadavg()[0] < cores - 0.5 else 1
        if threads != self.threads:
            self.decoder.ctx.set_n_threads(threads, threads)
            self.threads = threads

    def prefill(self, prompt: str) -> int:
        """Evaluate a prompt into the prompt cache without generating; later prompts that
        start the same way reuse it. Returns how many of its tokens are cached (0: too long)."""
        tokens = self.tokenize(prompt)
        if len(tokens) >= self.context_length:
            return 0
        return self.decoder.prefill(tokens)

    def runtime_timings(self) -> dict[str, float]:
        """llama.cpp's own counters since the last reset: prompt and generation ms/tokens."""
        import llama_cpp  # optional: llama-cpp-python may be absent (~250 ms)

        perf = llama_cpp.llama_perf_context(self.decoder.ctx.ctx)
        return {
            "prompt_ms": perf.t_p_eval_ms,
            "prompt_tokens": perf.n_p_eval,
            "eval_ms": perf.t_eval_ms,
            "eval_tokens": perf.n_eval,
        }

    def reset_timings(self) -> None:
        import llama_cpp  # optional: llama-cpp-python may be absent (~250 ms)

        llama_cpp.llama_perf_context_reset(self.decoder.ctx.ctx)
        self.stats = GenerationStats()


def _close(ref: weakref.ref) -> None:
    llm = ref()
    if llm is not None:
        llm.close()


def find_gguf(name_or_path: str, progress: Any = None) -> Path | None:
    """The GGUF file for a preset, a ``.gguf`` path, or a folder holding one; else None."""
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
    state_dir: Path | None = None,
) -> LlamaCppBackend:
    """A :class:`LlamaCppBackend` for a preset or GGUF model, with an optional LoRA adapter.
    ``state_dir``: where prompt states are shared between processes (None: the cache's
    ``prompt-states`` folder; a benchmark gives its own to start cold).

    Raises :class:`engine.errors.ModelLoadError` (one line) when llama.cpp cannot serve it.
    """
    if not is_installed():
        raise ModelLoadError(f"llama-cpp-python is not installed ({llamacpp_hint()})")
    meta = read_adapter_meta(adapter) if adapter else {}
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelLoadError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    name = model or meta.get("base_model") or DEFAULT_MODEL
    gguf = find_gguf(name, progress)
    if gguf is None:
        raise ModelLoadError(f"No GGUF file for '{name}': llama.cpp serves presets and .gguf files")
    lora = None
    if adapter:
        try:
            lora = cached_lora_gguf(adapter, gguf, cache_dir())
        except LoraConversionError as err:
            raise ModelLoadError(f"Adapter {adapter} cannot run on llama.cpp: {err}") from err
    tokenizer = _chat_tokenizer(name, gguf, adapter, progress)
    fmt = PromptFormat.from_dict(meta["prompt_format"]) if "prompt_format" in meta else None
    n_threads = threads or default_threads()
    say(progress, f"Loading {name} with llama.cpp ({gguf.name}, {n_threads} threads)", log)
    try:
        return LlamaCppBackend(
            gguf,
            tokenizer,
            name=name,
            prompt_format=fmt or DEFAULT_FORMAT,
            lora=lora,
            n_threads=threads,
            batch_size=batch_size,
            state_dir=state_dir or cache_dir() / "prompt-states",
        )
    except (ValueError, RuntimeError) as err:  # llama.cpp refused the file or the adapter
        raise ModelLoadError(f"llama.cpp cannot load {gguf.name}: {err}") from err


def _chat_tokenizer(name: str, gguf: Path, adapter: str | Path | None, progress: Any) -> Any:
    """The transformers tokenizer whose chat template the transformers backend uses too."""
    from transformers import AutoTokenizer  # deferred: transformers takes seconds to import

    if adapter and (Path(adapter) / "tokenizer_config.json").is_file():
        source: str | Path = adapter
    elif name in PRESETS:  # no need to convert the whole model for its tokenizer
        source = preset_tokenizer(name, progress)
    elif Path(name).is_dir() and (Path(name) / "config.json").is_file():
        source = name
    else:  # a bare GGUF file: transformers reads its tokenizer and template from it
        return ensure_chat_template(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name))
    return ensure_chat_template(AutoTokenizer.from_pretrained(source))
