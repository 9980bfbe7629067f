"""Several prompts decoded together on llama.cpp, for evaluation.

One new token per unfinished sequence goes through the model in a single llama.cpp batch,
so the weights are read once per step for all of them instead of once per sequence. The
prompts' common token prefix (at least the system prompt) is evaluated once and its KV cache
copied to every sequence. Uses its own llama.cpp context (the model's weights are shared),
so the chat path's prompt cache is left alone.
"""

from __future__ import annotations

import time
from typing import Any

from engine.backends.base import GenerationConfig
from engine.sql_check import is_statement_complete


class BatchDecoder:
    """Greedy or sampled decoding of up to ``n_seq`` prompts at once."""

    def __init__(self, backend: Any, n_seq: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self.backend = backend
        self.n_seq = n_seq
        llm = backend.llm
        params = llama_cpp.llama_context_default_params()
        for name in (
            "n_ctx",
            "n_batch",
            "n_ubatch",
            "n_threads",
            "n_threads_batch",
            "flash_attn_type",
        ):
            setattr(params, name, getattr(llm.context_params, name))
        params.n_seq_max = n_seq
        params.kv_unified = True  # sequences share one cache: the common prefix is copied
        self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self.n_batch = params.n_batch
        self.batch = _internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=n_seq)

    def generate(self, prompts: list[str], cfg: GenerationConfig) -> list[str]:
        import llama_cpp

        backend, llm = self.backend, self.backend.llm
        tokens = [backend.tokenize(p) for p in prompts]
        need = sum(len(t) for t in tokens) + len(prompts) * cfg.max_new_tokens
        if len(prompts) > self.n_seq or need > self.ctx.n_ctx():
            raise ValueError(f"Batch needs {need} tokens of context, more than this one holds")
        mem = llama_cpp.llama_get_memory(self.ctx.ctx)
        llama_cpp.llama_memory_clear(mem, True)
        shared = _common_prefix(tokens)
        samplers = []
        for seq in range(len(prompts)):
            llm.set_seed(cfg.seed + seq)
            samplers.append(llm._init_sampler(**sampler_settings(cfg)))
        self._decode([(0, pos, tok, False) for pos, tok in enumerate(tokens[0][:shared])])
        pending: dict[int, int] = {}  # seq -> sampled token not yet decoded
        for seq, t in enumerate(tokens):
            if seq:
                llama_cpp.llama_memory_seq_cp(mem, 0, seq, 0, shared)
            rest = [(seq, pos, t[pos], pos == len(t) - 1) for pos in range(shared, len(t))]
            pending[seq] = samplers[seq].sample(self.ctx, self._decode(rest)[seq])
        backend.stats.prompt_tokens += sum(len(t) for t in tokens)
        backend.stats.prompt_tokens_reused += shared * (len(prompts) - 1)

        vocab = llm._model.vocab
        out: list[list[int]] = [[] for _ in prompts]
        position = {seq: len(t) for seq, t in enumerate(tokens)}
        started = time.perf_counter()
        while pending:
            step = []
            for seq, token in pending.items():
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    continue
                out[seq].append(token)
                if len(out[seq]) >= cfg.max_new_tokens or (
                    cfg.stop_at_statement_end and self._complete(token, out[seq])
                ):
                    continue
                step.append((seq, position[seq], token, True))
                position[seq] += 1
            index = self._decode(step) if step else {}
            pending = {seq: samplers[seq].sample(self.ctx, i) for seq, i in index.items()}
        backend.stats.generate_seconds += time.perf_counter() - started
        backend.stats.generated_tokens += sum(len(o) for o in out)
        return [llm.detokenize(o).decode("utf-8", errors="replace") for o in out]

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> dict[int, int]:
        """Decode (seq, pos, token, want_logits) items; {seq: batch index of its logits}.

        Logits survive only from the last chunk: callers put the wanted ones there.
        """
        last: dict[int, int] = {}
        b = self.batch.batch
        for start in range(0, len(items), self.n_batch):
            chunk = items[start : start + self.n_batch]
            b.n_tokens = len(chunk)
            for i, (seq, pos, token, logits) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
                b.seq_id[i][0] = seq
                if logits:
                    last[seq] = i
            self.ctx.decode(self.batch)
        return last

    def _complete(self, token: int, out: list[int]) -> bool:
        llm = self.backend.llm
        piece = llm._model.token_to_piece(token)
        if b";" not in piece and b"`" not in piece:
            return False
        return is_statement_complete(llm.detokenize(out).decode("utf-8", errors="ignore"))


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
