"""Supervised fine-tuning recipe: data -> prompt/completion rows -> SFTTrainer + LoRA -> adapter.

    python -m training.train --config configs/train_cpu.yaml --data ../shared/data/spider_train
    python -m training.train --model smollm2-135m-instruct --max-steps 4 --output runs/demo
    accelerate launch -m training.train --config configs/train_gpu_qlora.yaml   # multi-GPU
    deepspeed --module training.train --config ... --set deepspeed=zero2

The same :func:`run` serves the CLI, the app's jobs (:mod:`training.jobs`) and tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import ConfigError, add_setting_flags, describe, flag_overrides
from engine.errors import ModelLoadError
from engine.presets import resolve_source
from engine.prompt import DEFAULT_FORMAT, ensure_chat_template
from training.config import TrainConfig, load_train_config, shipped_config
from training.lora import load_base_model, lora_config
from training.progress import ProgressEvent, ProgressFn

log = logging.getLogger("training")


class TrainingError(RuntimeError):
    """The run cannot go on; the message says why in one line."""


class TrainingCancelled(RuntimeError):
    """Cancelled on request; a checkpoint was saved, so ``resume`` continues from it."""


def run(
    cfg: TrainConfig,
    progress_callback: ProgressFn | None = None,
    *,
    resume: bool = False,
    should_cancel: Any = None,
    callbacks: list[Any] | None = None,
    progress_bar: bool = True,
) -> Path:
    """Fine-tune ``cfg.model`` on ``cfg.data``; returns the adapter folder.

    ``resume`` continues from the newest checkpoint in the output folder (same data order).
    ``should_cancel()`` is polled after every step; when true the run saves a checkpoint and
    raises :class:`TrainingCancelled`.
    """
    import torch  # deferred: torch takes seconds to import

    def say(message: str) -> None:
        log.info(message)
        if progress_callback is not None:
            progress_callback(ProgressEvent("info", message=message))

    cuda = torch.cuda.is_available()
    cfg = cfg.for_hardware(cuda, cuda and torch.cuda.is_bf16_supported())
    out = cfg.resolved_output_dir
    out.mkdir(parents=True, exist_ok=True)
    _setup_environment(cfg, out, say)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    # 1. data
    # deferred: training.data is off --help's start-up (~10 ms)
    from training.data import load_examples, split_by_database

    report = load_examples(cfg.data, split=cfg.split, limit=cfg.limit, seed=cfg.seed)
    say(f"Data: {report.summary()}")
    if not report.examples:
        raise TrainingError(f"No usable examples in {cfg.data}")
    if cfg.leave_out_slices:
        report.examples = _leave_out_slices(report.examples, cfg.data, say)
    train_ex, val_ex = split_by_database(report.examples, cfg.val_fraction, cfg.seed)
    val_ex = val_ex[: cfg.eval_limit]
    say(f"Split by database: {len(train_ex)} train, {len(val_ex)} validation examples")

    # 2. model + tokenizer
    from transformers import AutoTokenizer  # deferred: seconds to import

    source = resolve_source(cfg.model, progress=say)
    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(source))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    _check_stop_token(tokenizer, say)
    fmt = DEFAULT_FORMAT
    # deferred: retrieval and the llama.cpp backend's modules (~110 ms), not for --help
    from training.served_prompts import served_prompts

    prompts = served_prompts(cfg, tokenizer, fmt, train_ex + val_ex, say, progress_bar)
    retrieval = cfg.rag.prompt_settings() if prompts is not None else None
    say(
        "Prompts: as the engine serves them, with retrieved notes"
        if prompts is not None
        else "Prompts: the schema only (retrieval off, or no database files)"
    )
    say(f"Loading {cfg.model} for {cfg.method} on {cfg.device} ({cfg.precision})")
    model = load_base_model(cfg, source, local_rank=int(os.environ.get("LOCAL_RANK", 0)))

    # 3. train
    # deferred: training.callbacks imports torch and transformers
    from training.callbacks import CancelCallback, LossCurveCallback, ProgressCallback

    render = prompts.rows if prompts is not None else None
    trainer = build_trainer(
        cfg, model, tokenizer, train_ex, val_ex, fmt, progress_bar, render=render
    )
    trainer.add_callback(LossCurveCallback(out))
    if progress_callback is not None:
        trainer.add_callback(ProgressCallback(progress_callback))
    cancel = None
    if should_cancel is not None:
        cancel = CancelCallback(should_cancel)
        trainer.add_callback(cancel)
    for cb in callbacks or []:
        trainer.add_callback(cb)
    checkpoint = _last_checkpoint(out) if resume else None
    if resume:
        say(f"Resuming from {checkpoint}" if checkpoint else "No checkpoint to resume: starting")
    _record_run_config(cfg, out, checkpoint is not None, say)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    if cancel is not None and cancel.cancelled:
        raise TrainingCancelled(f"Cancelled at step {trainer.state.global_step}; resume to go on")

    # 4. save
    from training.artifacts import save_outputs  # deferred: yaml (~25 ms), not for --help

    return save_outputs(
        trainer, tokenizer, cfg, fmt, report, train_ex, val_ex, source, say, retrieval
    )


def build_trainer(
    cfg: TrainConfig,
    model: Any,
    tokenizer: Any,
    train_ex: list[Any],
    val_ex: list[Any],
    fmt: Any,
    progress_bar: bool = True,
    args: Any = None,
    render: Callable[[list[Any]], list[dict]] | None = None,
) -> Any:
    """SFTTrainer on conversational prompt/completion rows: loss on the SQL answer only.

    ``render`` turns examples into rows: :meth:`training.served_prompts.ServedPrompts.rows`
    for prompts as the engine serves them (what :func:`run` passes when retrieval is on);
    None: plain schema prompts. ``args`` replaces the SFTConfig built from ``cfg`` (the
    benchmark's baseline uses it)."""
    # deferred: datasets and trl take seconds to import; training.data: see run
    from datasets import Dataset
    from trl import SFTTrainer

    from training.data import to_prompt_completion

    def plain(examples: list[Any]) -> list[dict]:
        return [to_prompt_completion(e, fmt) for e in examples]

    train_rows = fitting_rows((render or plain)(train_ex), tokenizer, cfg)
    val_rows = fitting_rows((render or plain)(val_ex), tokenizer, cfg)
    if not train_rows:
        raise TrainingError(f"Every training example is longer than max_length={cfg.max_length}")
    train_ds = Dataset.from_list(train_rows)
    eval_ds = Dataset.from_list(val_rows) if val_rows else None
    return SFTTrainer(
        model=model,
        args=args or sft_config(cfg, has_eval=eval_ds is not None, progress_bar=progress_bar),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora_config(cfg, model.config.model_type),
    )


def fitting_rows(rows: list[dict], tokenizer: Any, cfg: TrainConfig) -> list[dict]:
    """Rows whose prompt + answer fit in ``max_length`` tokens.

    Packing and truncation cut long rows at the end, which is where the answer is: such rows
    would train on nothing, so they are dropped (and counted) here instead.
    """
    if not rows:
        return rows
    texts = [
        tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=False) for r in rows
    ]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    kept = [r for r, n in zip(rows, lengths, strict=True) if n <= cfg.max_length]
    if len(kept) < len(rows):
        log.warning(
            "Dropped %d of %d examples longer than max_length=%d tokens",
            len(rows) - len(kept), len(rows), cfg.max_length,
        )  # fmt: skip
    return kept


def sft_config(cfg: TrainConfig, has_eval: bool = False, progress_bar: bool = True) -> Any:
    from trl import SFTConfig  # deferred: trl takes seconds to import

    eval_steps = cfg.eval_steps or cfg.save_steps
    return SFTConfig(
        output_dir=str(cfg.resolved_output_dir),
        max_length=cfg.max_length,
        # bin-packing (bfd) makes the batch padding-free: no compute spent on pad tokens
        packing=cfg.packing,
        packing_strategy="bfd",
        completion_only_loss=True,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim=cfg.optim,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        use_cpu=cfg.device == "cpu",
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name
        activation_checkpointing_kwargs={"use_reentrant": False}
        if cfg.gradient_checkpointing
        else None,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        run_name=cfg.resolved_output_dir.name,
        seed=cfg.seed,
        data_seed=cfg.seed,
        deepspeed=cfg.deepspeed_config(),
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=not progress_bar,
        dataloader_num_workers=0,
    )


def _setup_environment(cfg: TrainConfig, out: Path, say: Any) -> None:
    """Tracking and single-process DeepSpeed settings, which the libraries read from env."""
    if cfg.report_to == "tensorboard":  # this run's folder, also for a second run in-process
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
    if cfg.report_to == "wandb":  # the wandb callback logs in lazily, at the first step
        os.environ.setdefault("WANDB_MODE", cfg.wandb_mode)
        os.environ.setdefault("WANDB_PROJECT", cfg.wandb_project)
        os.environ["WANDB_DIR"] = str(out)
        if cfg.deepspeed and os.environ.get("WANDB_LOG_MODEL", "false") not in ("false", ""):
            # Uploading checkpoints from the wandb callback crashes under DeepSpeed (seed bug).
            say("WANDB_LOG_MODEL is ignored with DeepSpeed: checkpoints stay local")
        if cfg.deepspeed or "WANDB_LOG_MODEL" not in os.environ:
            os.environ["WANDB_LOG_MODEL"] = "false"
    if cfg.deepspeed and "WORLD_SIZE" not in os.environ:
        # Not started by a launcher: run DeepSpeed as a one-process group on this machine.
        os.environ.update(
            RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(_free_port()),
        )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint. The Trainer writes ``trainer_state.json`` last, so a
    folder without a readable one was cut short (kill -9 while saving) and is passed over."""
    folders = [p for p in out.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name[11:]), reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            log.warning("Skipping incomplete checkpoint %s", folder)
            continue
        return folder
    return None


# Settings that change the data order or the model: resuming with other values is not a resume.
_RESUME_KEYS = ("model", "data", "split", "limit", "seed", "val_fraction", "leave_out_slices",
                "method", "lora", "max_length", "packing", "batch_size", "grad_accum",
                "rag")  # fmt: skip


def _leave_out_slices(examples: list, data: str, say: Any) -> list:
    """``examples`` without those of the databases bench/ablation.py measures on (the
    slices of training.slices, found in ``data`` as the ablation finds them)."""
    # deferred: training.data loads sqlglot and the prompt module, off --help's start-up
    from training.data import DataError
    from training.slices import held_out_databases  # deferred: with training.data

    if not (Path(data) / "database").is_dir():
        raise TrainingError(
            f"leave_out_slices needs a Spider folder (database/): {data} is not one"
        )
    try:
        gone = held_out_databases(Path(data))
    except (DataError, OSError) as err:
        raise TrainingError(
            f"leave_out_slices needs a Spider folder with the held-out databases: {err}"
        ) from err
    kept = [e for e in examples if e.db_id not in gone]
    say(
        f"Left out the {len(gone)} databases of the held-out slices (tune, final, world): "
        f"{len(examples) - len(kept)} of {len(examples)} examples"
    )
    if not kept:
        raise TrainingError("leave_out_slices left no examples to train on")
    return kept


def _record_run_config(cfg: TrainConfig, out: Path, resuming: bool, say: Any) -> None:
    path = out / "run_config.json"
    now = cfg.to_dict()
    if resuming and path.is_file():
        before = json.loads(path.read_text())
        changed = [k for k in _RESUME_KEYS if before.get(k) != now.get(k)]
        if changed:
            say(f"Warning: resuming with different {', '.join(changed)}: data order will differ")
    path.write_text(json.dumps(now, indent=2))


def _check_stop_token(tokenizer: Any, say: Any) -> None:
    """The chat template must end the answer with EOS, or the model never learns to stop."""
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "SELECT 1"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    if tokenizer.eos_token and tokenizer.eos_token not in text.split("SELECT 1")[-1]:
        say(
            f"Warning: the chat template does not end an answer with {tokenizer.eos_token!r}; "
            "generation may not stop where training ended"
        )


# The settings with a flag of their own; --set KEY=VALUE reaches every other one.
_FLAGS = ["model", "data", "split", "limit", "max_steps", ("output_dir", "--output"), "merge"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", help="YAML file (configs/train_cpu.yaml, ...)")
    add_setting_flags(parser, TrainConfig, _FLAGS)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--print-config", action="store_true",
                        help="print every setting with its value and what it does, and stop")  # fmt: skip
    # for training.jobs: JSON events on stdout, and a file whose existence cancels the run
    parser.add_argument("--events-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cancel-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # accelerate's INFO lines ("The used dataset had no length ...", one per evaluation) are
    # about its internals; in the app's log view they push the run's own lines out of sight
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    emit = _print_event if args.events_json else None
    cancel_file = Path(args.cancel_file) if args.cancel_file else None
    from training.data import DataError  # deferred: off --help's start-up (~10 ms)

    try:
        cfg = load_train_config(args.config or default_config_file(), flag_overrides(args))
        if args.print_config:
            print(describe(cfg))
            return 0
        adapter = run(
            cfg,
            emit,
            resume=args.resume,
            should_cancel=cancel_file.exists if cancel_file else None,
            progress_bar=not args.events_json,
        )
    except (ConfigError, DataError, ModelLoadError, TrainingError) as err:
        return _fail(emit, f"error: {err}", 2)
    except TrainingCancelled as err:
        if emit:
            emit(ProgressEvent("cancelled", message=str(err)))
        print(str(err), file=sys.stderr)
        return 3
    except Exception as err:  # the app shows one line; the traceback goes to stderr
        log.exception("Training failed")
        return _fail(
            emit, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}", 1
        )
    if emit:
        emit(ProgressEvent("done", message=str(adapter)))
    print(f"Adapter: {adapter}", file=sys.stderr if emit else sys.stdout)
    return 0


def default_config_file() -> Path:
    """Without ``--config``: the shipped config for this machine (GPU QLoRA, else CPU LoRA)."""
    import torch  # deferred: torch takes seconds to import

    path = shipped_config(torch.cuda.is_available())
    log.info("No --config given: using configs/%s", path.name)
    return path


def _print_event(event: ProgressEvent) -> None:
    print(json.dumps(dataclasses.asdict(event)), flush=True)


def _fail(emit: ProgressFn | None, message: str, code: int) -> int:
    if emit:
        emit(ProgressEvent("error", message=message))
    print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
