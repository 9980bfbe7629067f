"""Decoding on llama.cpp: several sequences at once, with a prompt cache kept across calls.

One new token per unfinished sequence goes through the model in a single llama.cpp batch, so
the weights are read once per step for all of them instead of once per sequence: several
candidate answers to one question (execution-guided voting) or several questions
(evaluation) cost far less than one after the other.

The KV cache is shared between sequences (``kv_unified``):

- sequence 0 only holds the prompt cache, the token prefix all prompts of the call share
  (at least the system prompt; in the chat, everything up to the question). The next call
  evaluates only what follows the part of it that its own prompts share; ``prefill`` fills
  it ahead of time;
- each distinct prompt is evaluated once, after the cached prefix, in its first sequence;
  copies of a prompt (the candidates of one question) get its cache by a copy, not again;
- when a prompt on another database replaces the prompt cache, the cache's state is saved
  (a few MB per database, the most recent first, up to ``SAVED_STATES_MB``) and restored
  when a later prompt shares more with it than with the cache: switching between databases
  costs a memory copy instead of evaluating the schema again;
- given a :class:`engine.backends.prompt_state_files.StateFiles`, a prompt cache that took many
  tokens to evaluate is also written to disk, and any later process of the same model starts
  from the longest prefix it shares with one of those (a restart, the next CLI call).

Greedy sequences take the argmax of the logits straight away (llama-cpp-python's sampler
builds a candidate list over the whole vocabulary, 150k entries for Qwen, at every step);
sampled ones use llama.cpp's sampler chain, seeded per sequence. ``generate_scored`` also
scores each answer by its mean token log-probability, a log-sum-exp over the vocabulary at
each step (a fraction of a millisecond beside tens of milliseconds per decoding step).
"""

from __future__ import annotations

import ctypes
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from engine.backends.base import GenerationConfig
from engine.backends.prompt_state_files import MIN_TOKENS as MIN_DISK_TOKENS
from engine.backends.prompt_state_files import StateFiles
from engine.sql_check import is_statement_complete

# Every sequence of a call shares this context: prompts, copies and generated tokens.
BATCH_CONTEXT = 16384
# Saved prompt-cache states (one per database recently asked): memory they may use, and the
# shortest prefix worth saving or restoring (shorter ones are evaluated again in no time).
SAVED_STATES_MB = 256
MIN_SAVED_TOKENS = 64


class BatchDecoder:
    """Greedy or sampled decoding of up to ``n_seq`` sequences at once (see module doc)."""

    def __init__(
        self,
        backend: Any,
        n_seq: int,
        n_ctx: int = BATCH_CONTEXT,
        saved_states_mb: float = SAVED_STATES_MB,
        files: StateFiles | None = None,
    ) -> None:
        # optional: llama-cpp-python may be absent (~250 ms)
        import llama_cpp
        from llama_cpp import _internals

        self.backend = backend
        self.n_seq = n_seq
        llm = backend.llm
        params = llama_cpp.llama_context_default_params()
        names = (
            "n_batch",
            "n_ubatch",
            "n_threads",
            "n_threads_batch",
            "flash_attn_type",
            "no_perf",
        )
        for name in names:
            setattr(params, name, getattr(llm.context_params, name))
        params.n_ctx = n_ctx
        params.n_seq_max = n_seq + 1  # sequence 0 holds the prompt cache
        params.kv_unified = True  # sequences share cells: a copied prefix costs no memory
        self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        if llm._lora_adapter is not None:  # the adapter llama-cpp-python loaded for its own
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(llm._lora_adapter)
            scales = (ctypes.c_float * 1)(llm.lora_scale)
            if llama_cpp.llama_set_adapters_lora(self.ctx.ctx, adapters, 1, scales):
                raise RuntimeError(f"llama.cpp could not apply the LoRA adapter {llm.lora_path}")
        self.n_batch = params.n_batch
        self.batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=n_seq + 1)
        self.cached: list[int] = []  # the tokens whose KV sequence 0 holds, from position 0
        self.saved_states_mb = saved_states_mb
        # token prefix -> sequence 0's saved state for it; least recently used first
        self.saved: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.files = files  # states on disk, shared with other processes
        self._from_disk: set[tuple[int, ...]] = set()

    @property
    def memory(self) -> Any:
        import llama_cpp  # optional: llama-cpp-python may be absent

        return llama_cpp.llama_get_memory(self.ctx.ctx)

    def clear(self) -> None:
        """Forget the prompt cache and every saved state; a cleared decoder starts cold and
        stays so, neither reading nor writing states on disk (what a measurement of cold
        prompts needs)."""
        import llama_cpp  # optional: llama-cpp-python may be absent

        llama_cpp.llama_memory_clear(self.memory, True)
        self.cached = []
        self.saved.clear()
        self.files = None

    def fits(self, tokens: Sequence[list[int]], cfgs: Sequence[GenerationConfig]) -> bool:
        """Whether these prompts and their answers fit this context together."""
        distinct = {tuple(t) for t in tokens}
        shared = _common_prefix([list(t) for t in distinct])
        need = shared + sum(len(t) - shared for t in distinct)
        need += sum(c.max_new_tokens for c in cfgs)
        return len(tokens) <= self.n_seq and need <= self.ctx.n_ctx()

    def prefill(self, tokens: list[int]) -> int:
        """Put ``tokens`` into the prompt cache; returns how many are cached."""
        import llama_cpp  # optional: llama-cpp-python may be absent

        if not tokens or len(tokens) >= self.ctx.n_ctx():
            return 0
        reused = self._reuse(tokens, len(tokens))
        self._decode([((0,), pos, tokens[pos], False) for pos in range(reused, len(tokens))])
        self.cached = list(tokens)
        llama_cpp.llama_synchronize(self.ctx.ctx)  # book the decode now, not at the next read
        self._persist(len(tokens) - reused)
        return len(tokens)

    def generate(
        self,
        tokens: Sequence[list[int]],
        cfgs: Sequence[GenerationConfig],
        on_token: Callable[[int, int], bool] | None = None,
    ) -> list[list[int]]:
        """Generated token ids per prompt (``fits`` must hold). ``on_token(prompt index,
        token)`` hears of each token as it is generated; returning True ends that prompt's
        answer there (streaming, stop sequences)."""
        return [out for out, _ in self._generate(tokens, cfgs, on_token, scores=False)]

    def generate_scored(
        self, tokens: Sequence[list[int]], cfgs: Sequence[GenerationConfig]
    ) -> list[tuple[list[int], float | None]]:
        """As :meth:`generate`, with each answer's mean token log-probability (see
        :class:`engine.backends.base.Scored`; None for an empty answer)."""
        return self._generate(tokens, cfgs, scores=True)

    def _generate(
        self,
        tokens: Sequence[list[int]],
        cfgs: Sequence[GenerationConfig],
        on_token: Callable[[int, int], bool] | None = None,
        scores: bool = False,
    ) -> list[tuple[list[int], float | None]]:
        import llama_cpp  # optional: llama-cpp-python may be absent

        llm, stats = self.backend.llm, self.backend.stats
        leaders: dict[tuple[int, ...], int] = {}  # distinct prompt -> its first sequence
        for i, t in enumerate(tokens):
            leaders.setdefault(tuple(t), i + 1)
        shared = _common_prefix([list(t) for t in leaders])
        reused = self._reuse(list(tokens[0]), shared)
        pickers = [_Picker(llm, cfg, scores) for cfg in cfgs]
        pending: dict[int, int] = {}  # sequence -> its next token, not decoded yet
        # The shared part not cached yet goes into the cache and every leader in the same
        # batch as the first leader's own part: a prompt decoded from a cold cache is
        # evaluated in one pass, as llama.cpp would on its own.
        every = (0, *leaders.values())
        items = [(every, p, tokens[0][p], False) for p in range(reused, shared)]
        for leader in leaders.values():
            llama_cpp.llama_memory_seq_cp(self.memory, 0, leader, 0, reused)
        for prompt, leader in leaders.items():
            items += [
                ((leader,), p, prompt[p], p == len(prompt) - 1) for p in range(shared, len(prompt))
            ]
            index = self._decode(items)[leader]
            items = []
            # Its copies take the cache and the first logits now: the next decode overwrites them.
            for i, t in enumerate(tokens):
                if tuple(t) == prompt:
                    if i + 1 != leader:
                        llama_cpp.llama_memory_seq_cp(self.memory, leader, i + 1, 0, len(t))
                    pending[i + 1] = pickers[i].pick(self.ctx, index)
        self.cached = list(tokens[0][:shared])
        self._persist(shared - reused)
        evaluated = shared - reused + sum(len(p) - shared for p in leaders)
        stats.prompt_tokens += sum(len(t) for t in tokens)
        stats.prompt_tokens_reused += sum(len(t) for t in tokens) - evaluated
        position = {i + 1: len(t) for i, t in enumerate(tokens)}
        out = self._run(pending, pickers, position, cfgs, on_token)
        for seq in range(1, len(tokens) + 1):  # keep only the prompt cache
            llama_cpp.llama_memory_seq_rm(self.memory, seq, 0, -1)
        return [(out[i + 1], pickers[i].mean(len(out[i + 1]))) for i in range(len(tokens))]

    def _run(
        self,
        pending: dict[int, int],
        pickers: list[_Picker],
        position: dict[int, int],
        cfgs: Sequence[GenerationConfig],
        on_token: Callable[[int, int], bool] | None = None,
    ) -> dict[int, list[int]]:
        import llama_cpp  # optional: llama-cpp-python may be absent

        llm, stats = self.backend.llm, self.backend.stats
        vocab = llm._model.vocab
        out: dict[int, list[int]] = {seq: [] for seq in position}
        started = time.perf_counter()
        while pending:
            step = []
            for seq, token in pending.items():
                stats.generated_tokens += 1
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    continue
                out[seq].append(token)
                if on_token is not None and on_token(seq - 1, token):
                    continue
                cfg = cfgs[seq - 1]
                if len(out[seq]) >= cfg.max_new_tokens or (
                    cfg.stop_at_statement_end and self._complete(token, out[seq])
                ):
                    continue
                step.append(((seq,), position[seq], token, True))
                position[seq] += 1
            index = self._decode(step) if step else {}
            pending = {seq: pickers[seq - 1].pick(self.ctx, i) for seq, i in index.items()}
        stats.generate_seconds += time.perf_counter() - started
        return out

    def _reuse(self, tokens: list[int], length: int) -> int:
        """Keep the cached prefix ``tokens[:length]`` shares (dropping the rest); its length.

        A saved state that shares more with ``tokens`` than the cache does is restored first;
        a cache about to lose most of itself to another database's prompt is saved first.
        """
        import llama_cpp  # optional: llama-cpp-python may be absent

        reused = _shared(self.cached, tokens, length)
        shared = {key: _shared(key, tokens, length) for key in self.saved}
        if self.files is not None and self.saved_states_mb > 0:
            on_disk = [key for key in self.files.prefixes() if key not in shared]
            shared.update({key: _shared(key, tokens, length) for key in on_disk})
        best = max(shared, key=shared.__getitem__, default=None)
        gain = shared[best] - reused if best is not None else 0
        lost = len(self.cached) - reused
        if lost >= MIN_SAVED_TOKENS and (reused < len(self.cached) // 2 or gain > 0):
            self._save()
        if best is not None and gain >= MIN_SAVED_TOKENS and self._load(best):
            self._restore(best)
            reused = _shared(self.cached, tokens, length)
        llama_cpp.llama_memory_seq_rm(self.memory, 0, reused, -1)
        self.cached = self.cached[:reused]
        return reused

    def _save(self) -> None:
        """Keep sequence 0's state under its tokens (replacing an older state of the same
        prompt start), within the memory allowed; the least recently used go first."""
        key = tuple(self.cached)
        if self.saved_states_mb <= 0 or len(key) < MIN_SAVED_TOKENS:
            return
        for old in [k for k in self.saved if _shared(k, key, len(key)) >= len(k) // 2]:
            del self.saved[old]
        buf = self._cache_state()
        if buf is None:
            return
        self.saved[key] = buf
        limit = self.saved_states_mb * 2**20
        while self.saved and sum(ctypes.sizeof(b) for b in self.saved.values()) > limit:
            self.saved.popitem(last=False)

    def _load(self, key: tuple[int, ...]) -> bool:
        """Whether ``key``'s state is in memory, read from disk if need be."""
        if key in self.saved:
            return True
        state = self.files.read(key) if self.files is not None else None
        if state is None:
            return False
        self.saved[key] = state
        self._from_disk.add(key)
        return True

    def _persist(self, evaluated: int) -> None:
        """Write the prompt cache to disk when it took ``evaluated`` >= ``MIN_TOKENS`` tokens
        to make: restoring it is then faster than evaluating it."""
        if self.files is None or self.saved_states_mb <= 0 or evaluated < MIN_DISK_TOKENS:
            return
        state = self._cache_state()
        if state is not None:
            self.files.write(self.cached, state)

    def _cache_state(self) -> Any:
        """Sequence 0's state (the prompt cache) as a ctypes buffer; None if llama.cpp fails."""
        import llama_cpp  # optional: llama-cpp-python may be absent

        size = llama_cpp.llama_state_seq_get_size(self.ctx.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        return (
            buf if llama_cpp.llama_state_seq_get_data(self.ctx.ctx, buf, size, 0) == size else None
        )

    def _restore(self, key: tuple[int, ...]) -> None:
        import llama_cpp  # optional: llama-cpp-python may be absent

        buf = self.saved[key]
        llama_cpp.llama_memory_seq_rm(self.memory, 0, 0, -1)
        if llama_cpp.llama_state_seq_set_data(self.ctx.ctx, buf, ctypes.sizeof(buf), 0) == 0:
            self.saved.pop(key)  # could not be restored: the prompt is evaluated instead
            if key in self._from_disk and self.files is not None:
                self.files.forget(key, delete=True)  # another llama.cpp's, or damaged
            self.cached = []
            return
        self.saved.move_to_end(key)
        self.cached = list(key)

    def _decode(self, items: list[tuple[tuple[int, ...], int, int, bool]]) -> dict[int, int]:
        """Decode (sequences, pos, token, want_logits) items; {seq: batch index of its logits}.

        A token given to several sequences is stored once and belongs to all of them. Logits
        survive only from the last chunk: callers put the wanted ones there.
        """
        last: dict[int, int] = {}
        b = self.batch.batch
        for start in range(0, len(items), self.n_batch):
            chunk = items[start : start + self.n_batch]
            b.n_tokens = len(chunk)
            for i, (seqs, pos, token, logits) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, len(seqs), logits
                for j, seq in enumerate(seqs):
                    b.seq_id[i][j] = seq
                if logits:
                    last[seqs[0]] = i
            self.ctx.decode(self.batch)
        return last

    def _complete(self, token: int, out: list[int]) -> bool:
        llm = self.backend.llm
        piece = llm._model.token_to_piece(token)
        if b";" not in piece and b"`" not in piece:
            return False
        return is_statement_complete(llm.detokenize(out).decode("utf-8", errors="ignore"))


class _Picker:
    """The next token of one sequence: argmax when greedy, else llama.cpp's seeded sampler.
    With ``scores``, each picked token's log-probability too (see ``logprob``)."""

    def __init__(self, llm: Any, cfg: GenerationConfig, scores: bool = False) -> None:
        self.n_vocab = llm.n_vocab()
        self.sampler = None
        self.logprobs: list[float] | None = [] if scores else None
        if cfg.temperature > 0:
            llm.set_seed(cfg.seed)
            self.sampler = llm._init_sampler(**sampler_settings(cfg))

    def pick(self, ctx: Any, index: int) -> int:
        if self.logprobs is not None:
            return self._pick_scored(ctx, index)
        if self.sampler is not None:
            return self.sampler.sample(ctx, index)
        # optional: llama-cpp-python may be absent; numpy (~100 ms) comes with it
        import llama_cpp
        import numpy as np

        logits = llama_cpp.llama_get_logits_ith(ctx.ctx, index)
        return int(np.ctypeslib.as_array(logits, shape=(self.n_vocab,)).argmax())

    def _pick_scored(self, ctx: Any, index: int) -> int:
        # optional: llama-cpp-python may be absent; numpy (~100 ms) comes with it
        import llama_cpp
        import numpy as np

        pointer = llama_cpp.llama_get_logits_ith(ctx.ctx, index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        # log-softmax at temperature 1 of the raw logits, whatever the token is picked with
        top = logits.max()
        norm = float(np.log(np.exp(logits - top).sum(dtype=np.float64)))
        token = int(logits.argmax()) if self.sampler is None else self.sampler.sample(ctx, index)
        self.logprobs.append(float(logits[token] - top) - norm)
        return token

    def mean(self, emitted: int) -> float | None:
        """Mean log-probability of the first ``emitted`` picks (an end-of-turn token picked
        after them is not part of the answer); None without scores or tokens."""
        if not self.logprobs or emitted == 0:
            return None
        return sum(self.logprobs[:emitted]) / emitted


def _shared(cached: Sequence[int], tokens: Sequence[int], length: int) -> int:
    """How many leading tokens ``cached`` has in common with ``tokens[:length]``."""
    n = 0
    for a, b in zip(cached, tokens[:length], strict=False):
        if a != b:
            break
        n += 1
    return n


def _common_prefix(tokens: list[list[int]]) -> int:
    """Length of the shared token prefix, leaving every prompt at least one token of its own."""
    n = min(len(t) for t in tokens) - 1
    for i in range(max(n, 0)):
        if any(t[i] != tokens[0][i] for t in tokens[1:]):
            return i
    return max(n, 0)


def sampler_settings(cfg: GenerationConfig) -> dict[str, Any]:
    """GenerationConfig -> llama.cpp sampler settings that match transformers' meaning."""
    if cfg.temperature <= 0:
        return {"temp": 0.0, "repeat_penalty": 1.0}
    return {
        "temp": cfg.temperature,
        "top_k": cfg.top_k if cfg.top_k > 0 else 0,
        "top_p": cfg.top_p,
        "min_p": 0.0,  # llama.cpp's default 0.05 has no transformers counterpart
        "typical_p": 1.0,
        "repeat_penalty": 1.0,
    }
