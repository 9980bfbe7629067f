"""Inference speed and answer quality of every available backend, side by side.

    PYTHONPATH=. .venv/bin/python bench/inference.py [--questions 60] [--backends ...] [--no-rag]

Prints one JSON line (progress goes to stderr). Per backend: model load seconds,
prompt-processing tokens/s (cold prompt, time to the first token), generation tokens/s (after
the first token), end-to-end seconds per answer through :class:`engine.pipeline.TextToSQL`
(p50/p95 over a fixed set of sample-DB questions, the engine's default settings including
self-correction), execution accuracy on those questions (result rows compared with the gold
query's rows as bags), and for llama.cpp the ratio of our generation tokens/s to llama.cpp's
own decode timer over the whole end-to-end run. RAG is on when engine.rag works: each database
is indexed into a temporary store with its example pairs minus the benchmark questions (no gold
answers leak). The default 60 questions (20 per database) make one question 1.7 points of
execution accuracy; comparing backends within a couple of points needs at least that many.

This is a benchmark whose output is quoted in notes, not a test: numbers depend on the load
of the machine, which the output records (load average before and after).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Before torch loads OpenMP: idle threads sleep (see engine/backends/llamacpp.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from engine.backends.base import GenerationConfig  # noqa: E402
from engine.paths import sample_databases, sample_pairs_file  # noqa: E402
from engine.presets import DEFAULT_MODEL  # noqa: E402

log = logging.getLogger("bench.inference")
PER_DB = 20  # questions per sample database, spread evenly over its pairs file
SPEED_PROMPTS = 3  # prompts for the pp/gen tokens-per-second measurements


def fixed_questions(n: int) -> list[dict[str, Any]]:
    """``n`` questions spread evenly over each sample DB's pairs (same set every run)."""
    dbs = sample_databases()
    per_db = max(1, -(-n // len(dbs)))
    out: list[dict[str, Any]] = []
    for name, path in dbs.items():
        pairs = json.loads(sample_pairs_file(name).read_text())
        step = max(1, len(pairs) // per_db)
        for row in pairs[::step][:per_db]:
            out.append({"db": str(path), "question": row["question"], "gold": row["query"]})
    return out[:n]


def make_retriever(
    questions: list[dict[str, Any]], store: Path, settings: dict[str, Any] | None = None
) -> tuple[Any, str]:
    """A RAG retriever over a temporary store, the benchmark questions held out; ``rag.*``
    keys of ``settings`` (e.g. ``rag.pool_examples``) configure it."""
    try:
        from engine.rag.config import RagConfig
        from engine.rag.index import index_database
        from engine.rag.retriever import RagRetriever
    except ImportError as err:
        return None, f"off: engine.rag unavailable ({err})"
    rag = {k.removeprefix("rag."): v for k, v in (settings or {}).items() if k.startswith("rag.")}
    cfg = RagConfig(**{**rag, "store_dir": str(store / "store"), "auto_index": False})
    asked = {q["question"] for q in questions}
    try:
        retriever = RagRetriever(cfg)
        for name, path in sample_databases().items():
            pairs = json.loads(sample_pairs_file(name).read_text())
            kept = store / f"{name}-examples.json"
            kept.write_text(json.dumps([p for p in pairs if p["question"] not in asked]))
            index_database(cfg, path, examples=kept, store=retriever.store)
    except Exception as err:  # the benchmark still runs, with the full schema, and says so
        return None, f"off: RAG failed ({type(err).__name__}: {err})"
    return retriever, "on (tables + held-out example pairs)"


def result_bag(db: str, sql: str | None) -> Counter | None:
    from engine.db import run_readonly

    if not sql:
        return None
    result = run_readonly(db, sql, timeout_s=10.0, max_rows=100_000)
    return Counter(tuple(r) for r in result.rows) if result.ok else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def speed(backend: Any, prompts: list[str]) -> dict[str, Any]:
    """Cold-prompt pp tokens/s and generation tokens/s (plus llama.cpp's own decode rate)."""
    one = GenerationConfig(max_new_tokens=1, stop_at_statement_end=False)
    long = GenerationConfig(max_new_tokens=64, stop_at_statement_end=False)
    clear = getattr(backend, "clear_cache", lambda: None)
    own_clock = hasattr(backend, "runtime_timings")  # llama.cpp: per-token stats + perf timer
    backend.generate(prompts[:1], one)  # warm-up
    pp_tokens, pp_s, gen_tokens, gen_s, raw_tokens, raw_ms = 0, 0.0, 0, 0.0, 0, 0.0
    for prompt in prompts:
        clear()
        started = time.perf_counter()
        backend.generate([prompt], one)
        ttft = time.perf_counter() - started
        pp_tokens += backend.count_tokens(prompt)
        pp_s += ttft
        clear()
        if own_clock:
            backend.reset_timings()
        started = time.perf_counter()
        text = backend.generate([prompt], long)[0]
        total = time.perf_counter() - started
        if own_clock:
            gen_tokens += backend.stats.generated_tokens - 1  # the first came with the prompt
            gen_s += backend.stats.generate_seconds
            raw = backend.runtime_timings()
            raw_tokens += raw["eval_tokens"]
            raw_ms += raw["eval_ms"]
        else:  # like llama.cpp's count: every token produced, an end-of-turn token included
            produced = backend.count_tokens(text)
            gen_tokens += max(0, produced + (produced < long.max_new_tokens) - 1)
            gen_s += max(1e-6, total - ttft)
    out: dict[str, Any] = {
        "pp_tok_s": round(pp_tokens / pp_s, 1),
        "gen_tok_s": round(gen_tokens / gen_s, 2),
        "speed_prompt_tokens_mean": round(pp_tokens / len(prompts)),
        "speed_gen_tokens_mean": round(gen_tokens / len(prompts) + 1),
    }
    if own_clock and raw_ms > 0:
        out["speed_runtime_gen_tok_s"] = round(raw_tokens / (raw_ms / 1000), 2)
    return out


def generation_vs_runtime(backend: Any, calls: int) -> dict[str, Any]:
    """Over the end-to-end run: our generation tokens/s and llama.cpp's own decode timer's.

    Ours is wall time from each answer's first token to its last, everything in our loop
    included; llama.cpp's counts its single-token decodes only. The first token of each call
    came with its prompt, so it is not a generation token.
    """
    stats, raw = backend.stats, backend.runtime_timings()
    ours = (stats.generated_tokens - calls) / max(stats.generate_seconds, 1e-9)
    runtime = raw["eval_tokens"] / max(raw["eval_ms"] / 1000, 1e-9)
    return {
        "e2e_gen_tokens": stats.generated_tokens - calls,
        "e2e_gen_tok_s": round(ours, 2),
        "runtime_gen_tok_s": round(runtime, 2),
        "gen_vs_runtime": round(ours / runtime, 3),
    }


def run_backend(
    kind: str,
    model: str,
    questions: list[dict[str, Any]],
    retriever: Any,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from engine.backends.loader import load_backend
    from engine.config import EngineConfig, load_config
    from engine.factory import engine_from_config
    from engine.paths import REPO_ROOT

    # rag.enabled off: the benchmark's own retriever (or none, with --no-rag) is passed in
    overrides = {**(settings or {}), "model": model, "rag.enabled": False}
    cfg = load_config(EngineConfig, REPO_ROOT / "configs" / "engine.yaml", overrides)
    started = time.perf_counter()
    backend = load_backend(model, kind=kind.removesuffix("-int8"))
    if kind == "transformers-int8":  # candidate runtime: PyTorch int8 dynamic quantisation
        import torch

        loaded = backend.loaded
        loaded.model = torch.ao.quantization.quantize_dynamic(
            loaded.model, {torch.nn.Linear}, dtype=torch.qint8
        )
        backend.name = f"transformers-int8:{loaded.name}"
    load_s = time.perf_counter() - started
    engine = engine_from_config(cfg, retriever, backend=backend)
    from engine.db import read_schema

    prompts = []
    for q in questions[:: max(1, len(questions) // SPEED_PROMPTS)][:SPEED_PROMPTS]:
        messages, _ = engine.build_messages(q["question"], Path(q["db"]), read_schema(q["db"]))
        prompts.append(backend.render(messages))
    log.info("%s: measuring pp/gen speed on %d prompts", backend.name, len(prompts))
    result: dict[str, Any] = {"backend": backend.name, "load_s": round(load_s, 2)}
    result.update(speed(backend, prompts))
    if hasattr(backend, "reset_timings"):
        backend.reset_timings()
    seconds, correct, answers, calls = [], 0, [], 0
    for i, q in enumerate(questions, 1):
        answer = engine.ask(q["question"], q["db"])
        calls += answer.attempts
        gold = result_bag(q["db"], q["gold"])
        ok = answer.ok and gold is not None and Counter(tuple(r) for r in answer.rows) == gold
        if ok and answer.truncated:
            ok = False
        correct += ok
        seconds.append(answer.seconds)
        answers.append(answer.sql)
        log.info(
            "%s [%d/%d] %.2fs %d attempt(s) %s %s",
            kind,
            i,
            len(questions),
            answer.seconds,
            answer.attempts,
            "OK " if ok else "BAD",
            (answer.sql or answer.error or "")[:100],
        )
    result.update(
        e2e_p50_s=round(statistics.median(seconds), 2),
        e2e_p95_s=round(percentile(seconds, 0.95), 2),
        e2e_mean_s=round(statistics.fmean(seconds), 2),
        execution_accuracy=round(correct / len(questions), 4),
    )
    stats = getattr(backend, "stats", None)
    if stats is not None and stats.prompt_tokens:
        result["prompt_cache_reused"] = round(stats.prompt_tokens_reused / stats.prompt_tokens, 3)
    if hasattr(backend, "runtime_timings"):
        result.update(generation_vs_runtime(backend, calls))
    result["_sql"] = answers
    return result


def available_backends() -> list[str]:
    from engine.backends import llamacpp

    return (["llamacpp"] if llamacpp.is_installed() else []) + ["transformers"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--questions", type=int, default=3 * PER_DB)
    parser.add_argument(
        "--backends",
        nargs="*",
        help="llamacpp, transformers, transformers-int8 (candidate); default: every installed one",
    )
    parser.add_argument("--no-rag", action="store_true", help="full schema in every prompt")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="engine setting, e.g. generation.candidates=5",
    )
    args = parser.parse_args(argv)
    from engine.config import parse_overrides

    settings = parse_overrides(args.set)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    questions = fixed_questions(args.questions)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-rag-") as tmp:
        retriever, rag = (None, "off (--no-rag)")
        if not args.no_rag:
            retriever, rag = make_retriever(questions, Path(tmp), settings)
        results = {
            kind: run_backend(kind, args.model, questions, retriever, settings)
            for kind in (args.backends or available_backends())
        }
    out: dict[str, Any] = {
        "bench": "inference",
        "model": args.model,
        "questions": len(questions),
        "rag": rag,
        "settings": settings,
        "cpus": len(os.sched_getaffinity(0)),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }
    sqls = {k: r.pop("_sql") for k, r in results.items()}
    out["backends"] = results
    if "llamacpp" in results and "transformers" in results:
        fast, ref = results["llamacpp"], results["transformers"]
        out["ex_diff_points"] = round(
            100 * (fast["execution_accuracy"] - ref["execution_accuracy"]), 1
        )
        out["same_sql"] = round(
            sum(a == b for a, b in zip(sqls["llamacpp"], sqls["transformers"], strict=True))
            / len(questions),
            3,
        )
        out["e2e_p50_speedup"] = round(ref["e2e_p50_s"] / fast["e2e_p50_s"], 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
