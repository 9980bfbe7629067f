"""Would speculative decoding speed up the 1.5B's answers on this CPU? Measured, then priced.

    PYTHONPATH=. .venv/bin/python bench/speculative.py [--questions 30] [--draft-tokens 1 2 3 4]

Greedy speculative decoding gives exactly the target model's answer; what it changes is the
time. Two things decide that time, and both are measured here on the sample questions:

1. Acceptance: the target (1.5B) answers greedily; then, for every position of its answer,
   whether a drafter would have proposed the same token:
   - ``draft-0.5b``: Qwen2.5-Coder-0.5B (same tokenizer) run over the prompt and the target's
     answer in one pass (teacher forcing: with greedy verification, a step accepts drafts
     exactly as long as the draft's argmax equals the target's token, so this replays the
     real run);
   - ``prompt-lookup``: the tokens that followed the latest earlier occurrence of the last
     1-3 tokens in the prompt and answer so far (no model).
2. Cost: the time of one llama.cpp step with 1..8 tokens in the batch (verifying k drafts
   means k+1 tokens in one step), for the target and for the draft model, on this machine.

The projected generation time per answer for each drafter and draft length k is then
``steps x target_step(k+1) + drafted x draft_step(1)`` against ``tokens x target_step(1)``.
Prints one JSON line (the load average included). A projection, labelled as one: it does not
include the bookkeeping of a real implementation, which only adds to the speculative side.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.inference import fixed_questions  # noqa: E402

log = logging.getLogger("bench.speculative")
TARGET, DRAFT = "qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct"


def step_costs(backend: Any, sizes: range, repeats: int = 9) -> dict[int, float]:
    """Median seconds of one decode step with n tokens of one sequence in the batch."""
    import llama_cpp

    dec = backend.decoder
    dec.clear()
    prompt = backend.tokenize("SELECT name FROM singer WHERE age > 20 ORDER BY name; " * 30)
    dec.prefill(prompt)
    base, out = len(prompt), {}
    for n in sizes:
        times = []
        for _ in range(repeats):
            items = [((0,), base + i, prompt[i], True) for i in range(n)]
            started = time.perf_counter()
            dec._decode(items)
            llama_cpp.llama_synchronize(dec.ctx.ctx)
            times.append(time.perf_counter() - started)
            llama_cpp.llama_memory_seq_rm(dec.memory, 0, base, -1)
        out[n] = statistics.median(times)
    dec.clear()
    return out


def draft_matches(draft: Any, prompt: list[int], answer: list[int]) -> list[bool]:
    """Per answer position: the draft model's argmax given the target's prefix is its token."""
    import llama_cpp
    import numpy as np

    dec = draft.decoder
    dec.clear()
    tokens = prompt + answer
    first = len(prompt) - 1  # logits at prompt[-1] predict answer[0]
    dec._decode([((0,), p, tokens[p], p >= first) for p in range(len(tokens))])
    n_vocab = draft.llm.n_vocab()
    out = []
    for i, token in enumerate(answer):
        logits = llama_cpp.llama_get_logits_ith(dec.ctx.ctx, first + i)
        out.append(int(np.ctypeslib.as_array(logits, shape=(n_vocab,)).argmax()) == token)
    dec.clear()
    return out


def lookup(context: list[int], k: int, max_ngram: int = 3) -> list[int]:
    """Prompt-lookup drafting: what followed the last occurrence of the context's tail."""
    for n in range(max_ngram, 0, -1):
        tail = context[-n:]
        for start in range(len(context) - n - 1, -1, -1):
            if context[start : start + n] == tail:
                return context[start + n : start + n + k]
    return []


def simulate(answer: list[int], propose: Any, k: int) -> list[int]:
    """The number of drafted tokens verified at each step to produce ``answer``."""
    pos, steps = 0, []
    while pos < len(answer):
        draft = propose(pos, k)
        steps.append(len(draft))
        accepted = 0
        while accepted < len(draft) and pos + accepted < len(answer):
            if draft[accepted] != answer[pos + accepted]:
                break
            accepted += 1
        pos += accepted + 1  # the verification step also gives the next token itself
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--draft-tokens", type=int, nargs="*", default=[1, 2, 3, 4, 7])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    from engine.backends.base import GenerationConfig
    from engine.backends.loader import load_backend
    from engine.db import read_schema
    from engine.pipeline import TextToSQL

    load_before = os.getloadavg()
    target = load_backend(TARGET, kind="llamacpp", batch_size=1)
    draft = load_backend(DRAFT, kind="llamacpp", batch_size=1)
    sizes = range(1, max(args.draft_tokens) + 2)
    cost_t, cost_d = step_costs(target, sizes), step_costs(draft, range(1, 2))
    engine = TextToSQL(target, generation=GenerationConfig())
    rows = []
    for q in fixed_questions(args.questions):
        messages, _ = engine.build_messages(q["question"], Path(q["db"]), read_schema(q["db"]))
        prompt = target.tokenize(target.render(messages))
        text = target.generate([target.render(messages)], GenerationConfig())[0]
        answer = target.tokenize(text)
        if answer:
            rows.append((prompt, answer, draft_matches(draft, prompt, answer)))
    tokens = sum(len(a) for _, a, _ in rows)
    plain = tokens * cost_t[1]
    result: dict[str, Any] = {
        "bench": "speculative",
        "target": TARGET,
        "draft_model": DRAFT,
        "answers": len(rows),
        "answer_tokens_mean": round(tokens / len(rows), 1),
        "target_step_ms": {n: round(1000 * s, 1) for n, s in cost_t.items()},
        "draft_step_ms": round(1000 * cost_d[1], 1),
        "draft_0.5b_token_match": round(sum(sum(m) for *_, m in rows) / tokens, 3),
        "projected_generation_time_vs_plain": {},
    }
    for k in args.draft_tokens:
        for name in ("draft-0.5b", "prompt-lookup"):
            steps, seconds = 0, 0.0
            for prompt, answer, matches in rows:

                def propose(pos, k, prompt=prompt, answer=answer, matches=matches, name=name):
                    if name == "prompt-lookup":
                        return lookup(prompt + answer[:pos], k)
                    # k draft tokens: the target's while they match, then misses
                    run = 0
                    while run < k and pos + run < len(answer) and matches[pos + run]:
                        run += 1
                    return answer[pos : pos + run] + [-1] * (k - run)

                drafts = simulate(answer, propose, k)
                steps += len(drafts)
                # a step verifies its drafts plus one token; the draft model ran once per draft
                seconds += sum(cost_t[d + 1] for d in drafts)
                if name == "draft-0.5b":
                    seconds += sum(drafts) * cost_d[1]
            result["projected_generation_time_vs_plain"][f"{name}/k={k}"] = {
                "tokens_per_step": round(tokens / steps, 2),
                "ratio": round(seconds / plain, 2),
            }
    result["cpus"] = len(os.sched_getaffinity(0))
    result["load_avg_before"] = [round(x, 2) for x in load_before]
    result["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
