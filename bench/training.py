"""LoRA SFT throughput: the project's training path against a seed-style baseline.

    PYTHONPATH=. .venv/bin/python bench/training.py [--model smollm2-135m-instruct]
        [--data ../shared/data/spider_train] [--examples 8] [--max-length 1024] [--repeats 2]
    ... --max-length 2048 --baseline-batch 1     # the GPU config's length (4 x 2048 won't fit)

Both runs train the same LoRA (configs/train_cpu.yaml's adapter settings) on the same model
and the same seeded sample of Spider rows, for one epoch, on this machine's device:

- project: ``training.train`` as shipped: rows bin-packed (best-fit decreasing) into
  ``max_length``-token rows and fed padding-free (position ids mark the example boundaries);
- baseline: the seed's way: no packing, every example padded to ``max_length``, batch 4.

Tokens/s counts only real (non-pad) tokens: the same total for both runs. Wall time is the
``trainer.train()`` call (model loading and tokenisation excluded, the same for both); by
default each path is timed twice in ABBA order with one torch thread, because on a shared
2-core machine the load drifts by 2x within minutes. Prints one JSON line; progress goes to
stderr. Numbers depend on the machine's load (recorded).

The gain is bounded by how much padding the baseline carries: Spider prompts (schema + question)
average ~525 SmolLM2 tokens, so padding to 1024 doubles the work and padding to 2048
quadruples it (plus the quadratic attention over pad positions).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.paths import REPO_ROOT  # noqa: E402

log = logging.getLogger("bench.training")
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "spider_train"


def measure(mode: str, cfg: Any, examples: list[Any], max_length: int) -> dict[str, Any]:
    """One epoch over ``examples``; returns real tokens, padded tokens, steps and wall time."""
    from transformers import AutoTokenizer

    from engine.presets import resolve_source
    from engine.prompt import DEFAULT_FORMAT, ensure_chat_template
    from training.lora import load_base_model
    from training.train import build_trainer, sft_config

    source = resolve_source(cfg.model)
    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(source))
    model = load_base_model(cfg, source)
    args = sft_config(cfg, progress_bar=False)
    if mode == "baseline":  # pad every example to the fixed length, as the seed did
        args = dataclasses.replace(args, pad_to_multiple_of=max_length)
    args = dataclasses.replace(args, save_strategy="no", report_to=[], logging_steps=10**6)
    trainer = build_trainer(cfg, model, tokenizer, examples, [], DEFAULT_FORMAT, False, args)

    real = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    loader = trainer.get_train_dataloader()
    positions = sum(int(batch["input_ids"].numel()) for batch in loader)
    log.info("%s: %d real tokens in %d positions", mode, real, positions)
    started = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - started
    return {
        "mode": mode,
        "real_tokens": real,
        "positions": positions,
        "steps": trainer.state.global_step,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(real / wall, 1),
        "train_loss": round(float(result.training_loss), 4),
    }


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum of the repeated measurements of one path."""
    out = dict(runs[0])
    out["wall_s"] = round(sum(r["wall_s"] for r in runs), 2)
    out["real_tokens"] = sum(r["real_tokens"] for r in runs)
    out["positions"] = sum(r["positions"] for r in runs)
    out["tokens_per_s"] = round(out["real_tokens"] / out["wall_s"], 1)
    out["runs"] = len(runs)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--examples", type=int, default=8, help="seeded sample of Spider rows")
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--repeats", type=int, default=2, help="2: time each path twice, ABBA")
    parser.add_argument("--baseline-batch", type=int, default=4,
                        help="rows per step for the baseline (4 x 2048 padded rows need > 24 GB)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch
    from transformers import AutoTokenizer

    from engine.presets import resolve_source
    from engine.prompt import DEFAULT_FORMAT, ensure_chat_template
    from training.config import load_train_config
    from training.data import load_examples, to_prompt_completion
    from training.train import fitting_rows

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        base = load_train_config(
            REPO_ROOT / "configs" / "train_cpu.yaml",
            {"model": args.model, "max_length": args.max_length, "output_dir": tmp,
             "device": "cuda" if cuda else "cpu", "precision": "auto"},
        ).for_hardware(cuda, cuda and torch.cuda.is_bf16_supported())  # fmt: skip
        report = load_examples(args.data, limit=args.examples, seed=0)
        # Only rows that fit (the same set for both runs; the trainer drops the others too).
        tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(resolve_source(args.model)))
        rows = [to_prompt_completion(e, DEFAULT_FORMAT) for e in report.examples]
        keep = {id(r) for r in fitting_rows(rows, tokenizer, base)}
        examples = [e for e, r in zip(report.examples, rows, strict=True) if id(r) in keep]
        seed_cfg = dataclasses.replace(
            base, packing=False, batch_size=args.baseline_batch, grad_accum=1
        )
        runs: dict[str, list[dict[str, Any]]] = {"project": [], "baseline": []}
        # ABBA order (with --repeats 2) cancels a steady drift in the machine's load.
        order = (["project", "baseline", "baseline", "project"] * args.repeats)[: 2 * args.repeats]
        for mode in order:
            cfg = base if mode == "project" else seed_cfg
            runs[mode].append(measure(mode, cfg, examples, args.max_length))
        project, baseline = combine(runs["project"]), combine(runs["baseline"])
    out = {
        "bench": "training",
        "model": args.model,
        "device": "cuda" if cuda else "cpu",
        "threads": torch.get_num_threads(),
        "examples": len(examples),
        "max_length": args.max_length,
        "lora_r": base.lora.r,
        "project": {**project, "path": "packing=bfd, padding-free, batch 1 packed row"},
        "baseline": {
            **baseline,
            "path": f"no packing, padded to max_length, batch {args.baseline_batch}",
        },
        "speedup": round(project["tokens_per_s"] / baseline["tokens_per_s"], 2),
        "goal": 3.0,
        "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    out["goal_met"] = out["speedup"] >= out["goal"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
