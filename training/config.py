"""The one typed config for a fine-tuning run, loaded from YAML and overridden from the CLI.

Every conflicting combination is rejected here, in ``__post_init__``, with a message that
says what to change. Settings that depend on the machine (``device: auto``, ``precision:
auto``) are fixed by :meth:`TrainConfig.for_hardware`, which runs the same checks again on
the concrete values, so "fp16 on a CPU" fails the same way whether it came from a YAML file,
a flag or the app.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ConfigError, load_config, parse_overrides
from engine.paths import REPO_ROOT
from engine.rag.config import RagConfig
from engine.setting import setting

METHODS = ("lora", "qlora")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda")
REPORTERS = ("none", "tensorboard", "wandb")
COMPUTE_DTYPES = ("auto", "float32", "float16", "bfloat16")
# Shortcuts for the DeepSpeed configs shipped in configs/.
DEEPSPEED_PRESETS = {
    "zero2": REPO_ROOT / "configs" / "deepspeed_zero2.json",
    "zero3": REPO_ROOT / "configs" / "deepspeed_zero3.json",
}


@dataclass
class LoraSettings:
    r: int = setting(64, "LoRA rank")
    # None: 2 × r, resolved in __post_init__ so every reader (PEFT, the model card, the saved
    # config) sees the same int. Declared here once so the YAML files and the Training tab
    # cannot drift apart; an explicit value (the seed's r=64, alpha=16) still wins.
    # Once resolved it is a plain value: replace(lora, r=8) keeps it unless alpha=None too.
    alpha: int | None = setting(None, "LoRA scaling numerator; null: 2 × r")
    dropout: float = setting(0.1, "dropout on the LoRA path")
    # "all-linear" (every linear layer but the output head), "attention" (the architecture's
    # attention projections, see training/lora.py) or an explicit list of module names.
    target_modules: str | list[str] = setting(
        "all-linear", "all-linear | attention | a list of module names"
    )
    bias: str = setting("none", "PEFT's bias training: none | all | lora_only")

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"lora.r must be >= 1; got {self.r}")
        if self.alpha is None:
            self.alpha = 2 * self.r
        if self.alpha < 1:
            raise ConfigError(f"lora.alpha must be >= 1 (or null for 2 × r); got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"lora.dropout must be in [0, 1); got {self.dropout}")


@dataclass
class QuantSettings:
    """bitsandbytes 4-bit settings, used when ``method: qlora``."""

    quant_type: str = setting("nf4", "bitsandbytes 4-bit type: nf4 | fp4")
    double_quant: bool = setting(True, "quantize the quantization constants too")
    compute_dtype: str = setting(
        "auto", "dtype of the 4-bit matmuls; auto: the training precision (fp32 on CPU)"
    )


@dataclass
class TrainConfig:
    model: str = setting("smollm2-135m-instruct", "preset name, model folder or hub id")
    data: str = setting(
        "samples", "Spider folder, datasets folder, JSON/CSV file or 'samples' (training.data)"
    )
    split: str | None = setting(None, "split or file stem (train, dev, valid, ...)")
    limit: int | None = setting(None, "train on a seeded random sample of this many examples")
    val_fraction: float = setting(0.05, "validation share, held out by database, not question")
    leave_out_slices: bool = setting(
        False,
        "leave out the databases of the held-out slices (training.slices: tune, final, "
        "world; a Spider folder), so that the fine-tune can be measured on them",
    )
    # Prompts as the engine serves them (training.served_prompts): the engine's retrieval
    # settings by default; rag.enabled false trains on plain schema prompts. Rows without a
    # database file (seed format) always get those. Training indexes into a store of its
    # own: rag.store_dir (default: OUTPUT/vector_db), never the app's.
    rag: RagConfig = setting(factory=RagConfig, help="retrieval in the training prompts")
    output_dir: str | None = setting(
        None, "output folder (checkpoints, adapter/); null: runs/<model>-<method>"
    )
    method: str = setting("lora", "lora | qlora (4-bit base weights)", choices=METHODS)
    lora: LoraSettings = setting(factory=LoraSettings, help="the adapter")
    quant: QuantSettings = setting(factory=QuantSettings, help="4-bit weights, for qlora")
    max_length: int = setting(1024, "tokens per training row")
    packing: bool = setting(True, "bin-pack examples into max_length rows, padding-free")
    epochs: float = setting(1.0, "passes over the data")
    max_steps: int = setting(-1, "optimizer steps; > 0 overrides epochs")
    batch_size: int = setting(4, "rows per device per step")
    grad_accum: int = setting(1, "gradient accumulation steps")
    learning_rate: float = setting(2e-4, "peak learning rate")
    lr_scheduler: str = setting("cosine", "transformers' scheduler name")
    warmup: float = setting(0.03, "warm-up: a ratio in [0, 1) or a number of steps")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    max_grad_norm: float = setting(0.3, "gradient clipping norm")
    optim: str = setting("adamw_torch", "transformers' optimizer name")
    gradient_checkpointing: bool = setting(False, "recompute activations: less memory, slower")
    device: str = setting("auto", "auto | cpu | cuda", choices=DEVICES)
    precision: str = setting(
        "auto", "auto (fp32 on CPU, bf16 or fp16 on a GPU) | fp32 | fp16 | bf16", choices=PRECISIONS
    )
    deepspeed: str | None = setting(None, "zero2 | zero3 | path to a DeepSpeed JSON")
    report_to: str = setting("none", "none | tensorboard | wandb", choices=REPORTERS)
    wandb_project: str = setting("text2sql", "Weights & Biases project")
    wandb_mode: str = setting("offline", "offline | online | disabled")
    logging_steps: int = setting(1, "log the loss every this many steps")
    eval_steps: int | None = setting(None, "validate every this many steps; null: at save_steps")
    eval_limit: int = setting(64, "validation examples scored (forward passes are slow on CPU)")
    save_steps: int = setting(50, "checkpoint every this many steps")
    save_total_limit: int = setting(2, "checkpoints kept")
    merge: bool = setting(False, "also write a merged full model")
    seed: int = setting(42, "data sampling, split and initialisation")
    # Named num_threads until it took the engine's name: configs saved with that still load.
    threads: int | None = setting(
        None, "torch CPU threads; null: torch's default", aliases=("num_threads",)
    )

    def __post_init__(self) -> None:
        _one_of("method", self.method, METHODS)
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("device", self.device, DEVICES)
        _one_of("report_to", self.report_to, REPORTERS)
        _one_of("quant.compute_dtype", self.quant.compute_dtype, COMPUTE_DTYPES)
        _one_of("wandb_mode", self.wandb_mode, ("offline", "online", "disabled"))
        if self.max_length < 16 or self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("max_length must be >= 16, batch_size and grad_accum >= 1")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ConfigError("Set max_steps > 0 or epochs > 0")
        if self.save_steps < 1 or self.save_total_limit < 1:
            raise ConfigError("save_steps and save_total_limit must be >= 1")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("val_fraction must be in [0, 1)")
        if self.rag.chroma_host is not None:
            raise ConfigError(
                "rag.chroma_host: training indexes its data into a folder of its own; leave "
                "it null (rag.store_dir chooses the folder)"
            )
        if self.device == "cpu":
            self._check_cpu()
        if self.deepspeed is not None:
            stage = self.deepspeed_stage()
            if stage == 3 and self.method == "qlora":
                raise ConfigError(
                    "QLoRA (4-bit bitsandbytes) does not work with DeepSpeed ZeRO-3: ZeRO-3 shards "
                    "parameters and cannot partition 4-bit weights. Use method: lora with ZeRO-3, "
                    "or QLoRA with ZeRO-2 (deepspeed: zero2) or without DeepSpeed."
                )

    def _check_cpu(self) -> None:
        if self.precision == "fp16":
            raise ConfigError(
                "precision fp16 needs a CUDA GPU and none is available here: use precision: fp32 "
                "(or auto) on CPU"
            )
        if self.method == "qlora" and self.quant.compute_dtype == "float16":
            raise ConfigError(
                "quant.compute_dtype float16 needs a CUDA GPU: use quant.compute_dtype: float32 "
                "(or auto) for QLoRA on CPU"
            )
        if self.optim.startswith("paged_"):
            raise ConfigError(f"optim {self.optim} pages memory to a GPU: use adamw_torch on CPU")

    @property
    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir).expanduser()
        slug = Path(self.model.rstrip("/")).name.replace("/", "-")
        return Path("runs") / f"{slug}-{self.method}"

    def deepspeed_config(self) -> dict[str, Any] | None:
        """The DeepSpeed JSON as a dict (presets by name, else a file path)."""
        if self.deepspeed is None:
            return None
        path = DEEPSPEED_PRESETS.get(self.deepspeed, Path(self.deepspeed).expanduser())
        try:
            return json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"Cannot read DeepSpeed config {self.deepspeed}: {err}") from err

    def deepspeed_stage(self) -> int:
        ds = self.deepspeed_config() or {}
        return int(ds.get("zero_optimization", {}).get("stage", 0))

    def for_hardware(self, cuda_available: bool, bf16_supported: bool = False) -> TrainConfig:
        """A copy with ``auto`` device/precision made concrete, checked again."""
        device = self.device if self.device != "auto" else ("cuda" if cuda_available else "cpu")
        if device == "cuda" and not cuda_available:
            raise ConfigError("device cuda was requested but no CUDA GPU is available here")
        precision = self.precision
        if precision == "auto":
            precision = "fp32" if device == "cpu" else ("bf16" if bf16_supported else "fp16")
        if device == "cuda" and precision == "bf16" and not bf16_supported:
            raise ConfigError("This GPU does not support bf16: use precision: fp16 (or auto)")
        return dataclasses.replace(self, device=device, precision=precision)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _one_of(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def shipped_config(cuda: bool) -> Path:
    """The config shipped for a machine (QLoRA on a CUDA GPU, LoRA on CPU): what
    ``python -m training.train`` uses without ``--config``, and what the app's Training tab
    starts from."""
    return REPO_ROOT / "configs" / ("train_gpu_qlora.yaml" if cuda else "train_cpu.yaml")


def load_train_config(
    path: str | Path | None = None, overrides: dict[str, Any] | list[str] | None = None
) -> TrainConfig:
    """YAML file (optional) + ``key=value`` overrides (a dict, or ``--set`` strings)."""
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    return load_config(TrainConfig, path, overrides)
