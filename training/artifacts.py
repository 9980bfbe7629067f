"""What a finished run leaves behind, so chat and evaluation load it without guessing.

``<output>/adapter/`` holds the LoRA adapter, the tokenizer, ``text2sql_adapter.json`` (base
model, prompt format, the retrieval settings its prompts were rendered with, resolved config:
read by :func:`engine.models.read_adapter_meta`; the engine warns when it serves the adapter
with other retrieval settings, see :func:`engine.factory.adapter_retrieval_warning`),
``train_config.yaml``, ``loss_curve.png`` and a README (with the Spider credit and license
when the data came from Spider). ``<output>/merged/`` holds an optional merged full model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from engine.models import ADAPTER_META_FILE
from engine.prompt import PromptFormat
from training.config import TrainConfig

ADAPTER_SUBDIR = "adapter"
MERGED_SUBDIR = "merged"
SPIDER_CREDIT = """\
## Data credit and license

This adapter was trained on the **Spider** dataset: Tao Yu, Rui Zhang, Kai Yang, Michihiro
Yasunaga, Dongxu Wang, Zifan Li, James Ma, Irene Li, Qingning Yao, Shanelle Roman, Zilin
Zhang and Dragomir Radev. *Spider: A Large-Scale Human-Labeled Dataset for Complex and
Cross-Domain Semantic Parsing and Text-to-SQL Task.* EMNLP 2018.
https://yale-lily.github.io/spider

Spider is licensed under CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/).
This adapter is derived from it and is distributed under the same license: keep this credit
and license with any copy or further derivative.
"""


def write_adapter_folder(
    folder: Path, tokenizer: Any, cfg: TrainConfig, fmt: PromptFormat, data_info: dict[str, Any]
) -> Path:
    """Tokenizer + metadata beside the adapter weights (``trainer.save_model`` writes those,
    gathering ZeRO-3 shards), so ``load_model(adapter=folder)`` needs nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    meta = {
        "base_model": cfg.model,
        "prompt_format": fmt.to_dict(),
        # RagConfig.prompt_settings() of the served-format prompts; None: plain schema prompts
        "retrieval": data_info.get("retrieval"),
        "train_config": cfg.to_dict(),
        "data": data_info,
    }
    (folder / ADAPTER_META_FILE).write_text(json.dumps(meta, indent=2))
    (folder / "train_config.yaml").write_text(
        "# Resolved configuration of this run: python -m training.train --config THIS_FILE\n"
        + yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    )
    (folder / "README.md").write_text(model_card(cfg, data_info))
    return folder


def model_card(cfg: TrainConfig, data_info: dict[str, Any]) -> str:
    lines = [
        f"# Text-to-SQL LoRA adapter for {cfg.model}",
        "",
        f"- Method: {cfg.method} (r={cfg.lora.r}, alpha={cfg.lora.alpha}, "
        f"dropout={cfg.lora.dropout}, targets={cfg.lora.target_modules})",
        f"- Data: {data_info.get('source')} ({data_info.get('kind')}; "
        f"{data_info.get('train_examples')} train / {data_info.get('val_examples')} validation "
        "examples, split by database)",
        f"- Steps: {data_info.get('global_step')}; precision {cfg.precision} on {cfg.device}",
        f"- Prompts: {_prompts_line(data_info.get('retrieval'))}",
        "",
        "Load it with `python -m engine ask --adapter THIS_FOLDER ...` or "
        "`engine.models.load_model(adapter=THIS_FOLDER)`: the base model and the prompt format "
        f"are read from `{ADAPTER_META_FILE}`.",
        "",
    ]
    if data_info.get("kind") == "spider":
        lines.append(SPIDER_CREDIT)
    return "\n".join(lines)


def _prompts_line(retrieval: dict[str, Any] | None) -> str:
    if not retrieval:
        return "the schema only (no retrieval); serve it with rag.enabled false"
    keys = ("k_tables", "k_examples", "pool_examples", "sample_values", "sample_rows")
    shown = ", ".join(f"{k}={retrieval.get(k)}" for k in keys)
    return f"as the engine serves them, with retrieved notes ({shown}); serve it so"


def write_merged_model(folder: Path, source: str, adapter_dir: Path, cfg: TrainConfig) -> Path:
    """Base model (full precision, also after QLoRA) + adapter folded in, saved as one model."""
    # deferred: torch, peft and transformers take seconds to import
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if cfg.device == "cpu" else torch.float16
    base = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    quantizer = getattr(base, "hf_quantizer", None)
    if quantizer is not None:  # a dequantised GGUF preset still carries a flag
        quantizer.remove_quantization_config(base)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    folder.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(folder)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(folder)
    readme = adapter_dir / "README.md"
    if readme.is_file():
        (folder / "README.md").write_text(
            readme.read_text().replace("LoRA adapter", "merged model")
        )
    return folder


def save_outputs(
    trainer: Any,
    tokenizer: Any,
    cfg: TrainConfig,
    fmt: Any,
    report: Any,
    train_ex: list[Any],
    val_ex: list[Any],
    source: str,
    say: Any,
    retrieval: dict[str, Any] | None = None,
) -> Path:
    """Adapter (+ optional merged model) into the output folder; returns the adapter folder.

    ``retrieval``: the retrieval settings the prompts were rendered with (None: plain schema)."""
    from training.callbacks import LOSS_PLOT, plot_loss_curve  # deferred: loads torch

    out = cfg.resolved_output_dir
    adapter_dir = out / ADAPTER_SUBDIR
    trainer.save_model(str(adapter_dir))  # every rank: gathers ZeRO-3 shards
    if not trainer.is_world_process_zero():
        return adapter_dir
    data_info = {
        "source": str(cfg.data),
        "kind": report.kind,
        "split": cfg.split,
        "train_examples": len(train_ex),
        "val_examples": len(val_ex),
        "skipped": dict(report.skipped),
        "global_step": trainer.state.global_step,
        "retrieval": retrieval,
    }
    write_adapter_folder(adapter_dir, tokenizer, cfg, fmt, data_info)
    for folder in (out, adapter_dir):
        plot_loss_curve(trainer.state.log_history, folder / LOSS_PLOT)
    if report.kind == "spider":
        (out / "README.md").write_text((adapter_dir / "README.md").read_text())
    say(f"Adapter saved to {adapter_dir}")
    if cfg.merge:
        merged = write_merged_model(out / MERGED_SUBDIR, source, adapter_dir, cfg)
        say(f"Merged model saved to {merged}")
    return adapter_dir
