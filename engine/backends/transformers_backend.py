"""Generation with transformers, for any causal LM it can load (CPU or GPU, 4-bit, PEFT).

Generates in batches with left padding and stops each sequence as soon as it holds a
complete SQL statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from engine.backends.base import GenerationConfig, Scored, per_prompt
from engine.backends.streaming import threaded
from engine.models import LoadedModel
from engine.prompt import Message, render_prompt
from engine.sql_check import is_statement_complete


class _StopAtStatementEnd:
    """Per-sequence stop once the generated text holds a complete SQL statement."""

    def __init__(self, tokenizer: Any, prompt_len: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch  # deferred: torch takes seconds to import

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

    def __init__(self, loaded: LoadedModel, batch_size: int = 4) -> None:
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

    def generate(
        self, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig]
    ) -> list[str]:
        """Batches of up to ``batch_size`` prompts; prompts with other settings (the sampled
        candidates of a question) go in batches of their own."""
        return [s.text for s in self._generate_all(prompts, cfg, scores=False)]

    def generate_scored(
        self, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig]
    ) -> list[Scored]:
        """:meth:`generate`'s texts with their mean token log-probabilities, from the raw
        logits transformers keeps of each step (``output_logits``: no extra forward pass, a
        vocabulary-sized row per step and sequence held until the batch ends)."""
        return self._generate_all(prompts, cfg, scores=True)

    def _generate_all(
        self, prompts: list[str], cfg: GenerationConfig | Sequence[GenerationConfig], scores: bool
    ) -> list[Scored]:
        cfgs = per_prompt(cfg, len(prompts))
        out: dict[int, Scored] = {}
        groups: dict[int, list[int]] = {}
        for i, c in enumerate(cfgs):
            groups.setdefault(next(j for j in range(i + 1) if cfgs[j] == c), []).append(i)
        for first, members in groups.items():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                texts = self._generate_batch([prompts[i] for i in chunk], cfgs[first], scores)
                out.update(zip(chunk, texts, strict=True))
        return [out[i] for i in range(len(prompts))]

    def _generate_batch(
        self, prompts: list[str], cfg: GenerationConfig, scores: bool
    ) -> list[Scored]:
        # deferred: torch and transformers take seconds to import
        import torch
        from transformers import StoppingCriteriaList

        tok = self.loaded.tokenizer
        tok.padding_side = "left"
        # The chat template already wrote BOS where the model wants one.
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.loaded.device) for k, v in enc.items()}
        prompt_len = enc["input_ids"].shape[1]
        kwargs = self._settings(cfg)
        if cfg.stop_at_statement_end:
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [_StopAtStatementEnd(tok, prompt_len)]
            )
        if scores:
            kwargs.update(return_dict_in_generate=True, output_logits=True)
        with torch.inference_mode():
            output = self.loaded.model.generate(**enc, **kwargs)
            rows = output.sequences if scores else output
            logprobs = self._mean_logprobs(rows[:, prompt_len:], output.logits) if scores else None
        texts = [tok.decode(row[prompt_len:], skip_special_tokens=True) for row in rows]
        return [Scored(t, lp) for t, lp in zip(texts, logprobs or [None] * len(texts), strict=True)]

    def _mean_logprobs(self, new: Any, logits: tuple) -> list[float | None]:
        """Mean log-probability of each row's generated tokens, up to its first end-of-turn
        or padding token (left out: the text ends before it)."""
        import torch  # deferred: torch takes seconds to import

        taken = torch.stack(
            [
                torch.log_softmax(step.float(), dim=-1).gather(1, new[:, k : k + 1]).squeeze(1)
                for k, step in enumerate(logits)
            ],
            dim=1,
        )
        ends = self.loaded.model.generation_config.eos_token_id
        ends = [ends] if isinstance(ends, int) else list(ends or [])
        if self.loaded.tokenizer.pad_token_id is not None:
            ends.append(self.loaded.tokenizer.pad_token_id)
        stops = torch.tensor(ends, dtype=new.dtype, device=new.device)
        ended = torch.isin(new, stops).cumsum(dim=1) > 0
        emitted = (~ended).sum(dim=1)
        sums = taken.masked_fill(ended, 0.0).sum(dim=1)
        return [
            total / n if n else None
            for total, n in zip(sums.tolist(), emitted.tolist(), strict=True)
        ]

    def _settings(self, cfg: GenerationConfig) -> dict[str, Any]:
        """``generate``'s keyword arguments for ``cfg`` (seeds torch when sampling)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": cfg.max_new_tokens,
            "pad_token_id": self.loaded.tokenizer.pad_token_id,
        }
        if cfg.temperature > 0:
            import torch  # deferred: torch takes seconds to import

            torch.manual_seed(cfg.seed)
            kwargs.update(
                do_sample=True, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p
            )
        else:
            kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
        return kwargs

    def stream(self, prompt: str, cfg: GenerationConfig) -> Iterator[str]:
        """The answer to one prompt, piece by piece as it is generated; closing the iterator
        stops the generation at the next token."""
        return threaded(lambda emit: self._stream(prompt, cfg, emit))

    def _stream(self, prompt: str, cfg: GenerationConfig, emit: Any) -> None:
        # deferred: torch and transformers take seconds to import
        import torch
        from transformers import StoppingCriteriaList, TextStreamer

        tok = self.loaded.tokenizer
        enc = tok([prompt], return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(self.loaded.device) for k, v in enc.items()}
        closed = []

        class Pieces(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text and emit(text):
                    closed.append(True)

        def stop(input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), bool(closed), device=input_ids.device)

        criteria = [stop]
        if cfg.stop_at_statement_end:
            criteria.append(_StopAtStatementEnd(tok, enc["input_ids"].shape[1]))
        streamer = Pieces(tok, skip_prompt=True, skip_special_tokens=True)
        with torch.inference_mode():
            self.loaded.model.generate(
                **enc, **self._settings(cfg), streamer=streamer,
                stopping_criteria=StoppingCriteriaList(criteria),
            )  # fmt: skip
