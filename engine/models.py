"""Loading a causal LM + tokenizer with transformers: a bundled preset (:mod:`engine.presets`,
converted once and cached as safetensors, so later loads take seconds), a local folder or a
hub id, with a LoRA adapter on top; the device it runs on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError
from engine.presets import DEFAULT_MODEL, resolve_source
from engine.progress import Progress, say
from engine.prompt import DEFAULT_FORMAT, PromptFormat, ensure_chat_template

log = logging.getLogger(__name__)
ADAPTER_META_FILE = "text2sql_adapter.json"


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    name: str
    source: str
    device: str
    adapter: str | None = None
    prompt_format: PromptFormat = field(default_factory=lambda: DEFAULT_FORMAT)

    @property
    def context_length(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "max_position_embeddings", None) or 2048)


def pick_device() -> str:
    import torch  # deferred: torch takes seconds to import

    return "cuda" if torch.cuda.is_available() else "cpu"


def read_adapter_meta(adapter_dir: str | Path) -> dict[str, Any]:
    """What training saved beside an adapter: base model, prompt format, config."""
    meta = Path(adapter_dir) / ADAPTER_META_FILE
    return json.loads(meta.read_text()) if meta.is_file() else {}


def load_model(
    name_or_path: str | None = None,
    adapter: str | Path | None = None,
    *,
    load_in_4bit: bool = False,
    device: str | None = None,
    progress: Progress | None = None,
) -> LoadedModel:
    """Load tokenizer + model (+ optional PEFT adapter) ready for generation.

    Without ``name_or_path`` the adapter's recorded base model is used, else the default.
    """
    # deferred: torch and transformers take seconds to import
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = read_adapter_meta(adapter) if adapter else {}
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelLoadError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    name = name_or_path or meta.get("base_model") or DEFAULT_MODEL
    device = device or pick_device()
    source = resolve_source(name, progress)
    say(progress, f"Loading {name} on {device}", log)
    kwargs: dict[str, Any] = {}
    if device == "cuda":
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        kwargs["dtype"] = torch.float32
    if load_in_4bit:
        from transformers import BitsAndBytesConfig  # deferred: seconds to import

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=kwargs["dtype"],
        )
        kwargs["device_map"] = {"": 0 if device == "cuda" else "cpu"}
    try:
        tokenizer = AutoTokenizer.from_pretrained(adapter if _has_tokenizer(adapter) else source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as err:
        raise ModelLoadError(f"Cannot load model '{name}': {str(err).splitlines()[0]}") from err
    if not load_in_4bit:
        model.to(device)
    if adapter:
        from peft import PeftModel  # deferred: peft takes seconds to import

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    ensure_chat_template(tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    fmt = (
        PromptFormat.from_dict(meta["prompt_format"]) if "prompt_format" in meta else DEFAULT_FORMAT
    )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        source=source,
        device=device,
        adapter=str(adapter) if adapter else None,
        prompt_format=fmt,
    )


def _has_tokenizer(folder: str | Path | None) -> bool:
    return bool(folder) and (Path(folder) / "tokenizer_config.json").is_file()
