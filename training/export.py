"""Export a fine-tuned adapter for serving: ``text2sql export`` / ``python -m training.export``.

    text2sql export --adapter runs/demo/adapter                 # -> runs/demo/export/
    text2sql export --adapter runs/demo/adapter --quant Q4_K_M --out exported/

Writes, under the output folder:

* ``merged/``: the base model with the adapter folded in, a Hugging Face folder (fp32),
  loadable by transformers, vLLM (``vllm serve merged/``) or ``--model merged/``;
* ``gguf/<name>-<QUANT>.gguf``: the merged model for llama.cpp, quantized (Q8_0 by default,
  or Q4_K_M, or F16 unquantized), which the engine loads as ``--model path/to/file.gguf``;
* ``gguf/Modelfile``: for Ollama (``ollama create NAME -f gguf/Modelfile``).

The GGUF is written here with the ``gguf`` package, as :mod:`engine.backends.lora_gguf` does
for adapters: the base model's own GGUF supplies the metadata (architecture, tokenizer, chat
template) and the tensor names, the merged weights replace every tensor (q/k rows permuted
back to llama.cpp's rotary layout where its converter permutes them), written as F16 and then
quantized by llama.cpp's own ``llama_model_quantize``. So the base must be one with a GGUF
file: a bundled preset (what this project trains) or a ``.gguf`` path; for other bases only
``merged/`` is written (llama.cpp's ``convert_hf_to_gguf.py`` converts that folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.backends.lora_gguf import (
    _PERMUTE_QK,
    LoraConversionError,
    _arch_enum,
    _base_info,
    _permute_rows,
)
from engine.config import ConfigError, load_config, parse_overrides
from engine.errors import ModelLoadError
from engine.models import read_adapter_meta
from engine.paths import llamacpp_hint
from engine.presets import PRESETS, preset_gguf, resolve_source
from engine.prompt import DEFAULT_FORMAT, SYSTEM_PROMPT

log = logging.getLogger("training.export")
# llama.cpp's llama_ftype values for what we offer
QUANTS = {"Q8_0": 7, "Q4_K_M": 15, "F16": 1}
EXPORT_META = "text2sql_export.json"


class ExportError(RuntimeError):
    """The export cannot go on; the message says why in one line."""


@dataclass
class ExportConfig:
    adapter: str = ""  # the adapter folder from training (its text2sql_adapter.json names the base)
    out: str = ""  # "" = <the adapter's run folder>/export
    model: str | None = None  # base model; None = the adapter's recorded base
    quant: str = "Q8_0"  # Q8_0 | Q4_K_M | F16 (unquantized)
    gguf: bool = True  # false: the merged Hugging Face folder only
    name: str = ""  # model name in the GGUF file names and the Modelfile; "" = from the folder
    threads: int | None = None  # quantization threads; None = every core

    def __post_init__(self) -> None:
        if not self.adapter:
            raise ConfigError("adapter is required: the adapter folder from training")
        if self.quant not in QUANTS:
            raise ConfigError(f"quant must be one of {', '.join(QUANTS)}; got {self.quant!r}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.adapter).resolve().parent / "export"


@dataclass
class ExportResult:
    merged: Path
    gguf: Path | None = None
    modelfile: Path | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def run(cfg: ExportConfig, progress: Callable[[str], None] | None = None) -> ExportResult:
    """Merge, then (``cfg.gguf``) convert and quantize; returns where everything went."""

    def say(message: str) -> None:
        log.info(message)
        if progress is not None:
            progress(message)

    started = time.perf_counter()
    adapter = Path(cfg.adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise ExportError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    meta = read_adapter_meta(adapter)
    base = cfg.model or meta.get("base_model")
    if not base:
        raise ExportError(f"{adapter} does not record its base model: pass --model")
    base_gguf = _base_gguf(base, say) if cfg.gguf else None
    out = cfg.out_dir
    try:
        source = resolve_source(base, progress=say)
    except ModelLoadError as err:
        raise ExportError(str(err)) from err
    say(f"Merging {adapter} into {base}")
    model, tokenizer = _merge(source, adapter)
    merged = out / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    model.save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    record = {"base_model": base, "adapter": str(adapter.resolve()), **_served_as(meta)}
    (merged / EXPORT_META).write_text(json.dumps(record, indent=2))
    result = ExportResult(merged=merged)
    say(f"Merged model: {merged}")
    if base_gguf is not None:
        name = cfg.name or _safe_name(adapter.resolve().parent.name)
        folder = out / "gguf"
        folder.mkdir(parents=True, exist_ok=True)
        result.gguf = folder / f"{name}-{cfg.quant}.gguf"
        f16 = result.gguf if cfg.quant == "F16" else folder / f".{name}-F16.gguf.part"
        say(f"Writing the merged weights as GGUF (F16) with {base_gguf.name}'s metadata")
        write_gguf(model.state_dict(), base_gguf, f16, name)
        del model
        if cfg.quant != "F16":
            say(f"Quantizing to {cfg.quant} with llama.cpp")
            quantize(f16, result.gguf, cfg.quant, cfg.threads)
            f16.unlink()
        result.modelfile = write_modelfile(folder, result.gguf, tokenizer)
        (folder / EXPORT_META).write_text(json.dumps({**record, "quant": cfg.quant}, indent=2))
        say(f"GGUF: {result.gguf} (Ollama: {result.modelfile})")
    result.seconds = round(time.perf_counter() - started, 1)
    return result


def _base_gguf(base: str, say: Callable[[str], None]) -> Path:
    if base in PRESETS:
        try:
            return preset_gguf(PRESETS[base], say)
        except ModelLoadError as err:
            raise ExportError(str(err)) from err
    path = Path(base).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    raise ExportError(
        f"GGUF export needs a base model with a GGUF file (a preset or a .gguf path), not "
        f"{base}: export with --no-gguf, then convert merged/ with llama.cpp's convert_hf_to_gguf.py"
    )


def _merge(source: str, adapter: Path) -> tuple[Any, Any]:
    """Base (fp32) + adapter folded in, as a plain transformers model, and its tokenizer."""
    # deferred: torch, peft and transformers take seconds to import
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    quantizer = getattr(base, "hf_quantizer", None)
    if quantizer is not None:  # a dequantised GGUF preset still carries the flag
        quantizer.remove_quantization_config(base)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.eval()
    has_tokenizer = (adapter / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(adapter if has_tokenizer else source)
    return merged, tokenizer


def _served_as(meta: dict[str, Any]) -> dict[str, Any]:
    """What the adapter was trained to see; the engine prompts a bare GGUF with the default
    prompt format, so a different one is recorded here and warned about."""
    fmt = meta.get("prompt_format")
    if fmt and fmt != DEFAULT_FORMAT.to_dict():
        log.warning("The adapter was trained with another prompt format than the default one")
    return {"prompt_format": fmt, "retrieval": meta.get("retrieval")}


def write_gguf(state: dict[str, Any], base_gguf: Path, out: Path, name: str) -> Path:
    """``state`` (a merged Hugging Face state dict) as an F16 GGUF with ``base_gguf``'s
    metadata and tensor names; 1-D tensors stay F32, as llama.cpp's converter keeps them."""
    import gguf  # deferred: gguf takes ~250 ms (numpy included)

    try:
        arch, n_head, n_head_kv, n_blocks = _base_info(base_gguf)
    except LoraConversionError as err:
        raise ExportError(str(err)) from err
    reader = gguf.GGUFReader(base_gguf)
    name_map = gguf.get_tensor_name_map(_arch_enum(arch), n_blocks)
    tensors: dict[str, Any] = {}
    for hf_name, value in state.items():
        target = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise ExportError(f"No GGUF tensor for {hf_name} in architecture {arch}")
        tensors[target] = value.detach().float().cpu().numpy()
    writer = gguf.GGUFWriter(out, arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in (
            gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.FILE_TYPE, gguf.Keys.General.NAME,
        ):  # fmt: skip
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_name(name)
    writer.add_file_type(QUANTS["F16"])
    for info in reader.tensors:  # the base's tensors, in its order; a tied head has none
        if info.name not in tensors:
            raise ExportError(f"The merged model has no weights for {info.name}")
        array = tensors[info.name]
        if _PERMUTE_QK[arch] and info.name.endswith(("attn_q.weight", "attn_k.weight")):
            array = _permute_rows(array, n_head if "attn_q" in info.name else n_head_kv)
        if tuple(reversed(array.shape)) != tuple(int(d) for d in info.shape):
            raise ExportError(f"{info.name}: merged shape {array.shape} does not fit the base")
        writer.add_tensor(info.name, array.astype("float16" if array.ndim > 1 else "float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def quantize(source: Path, out: Path, quant: str, threads: int | None = None) -> Path:
    """llama.cpp's own quantizer (``llama_model_quantize``), F16 GGUF in, ``quant`` out."""
    try:
        import llama_cpp  # optional: llama-cpp-python may be absent
    except ImportError as err:
        raise ExportError(
            f"Quantizing needs llama-cpp-python ({llamacpp_hint()}); or export with --quant F16"
        ) from err
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTS[quant]
    params.nthread = threads or 0  # 0: every core
    tmp = out.with_name(out.name + ".part")
    if llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), params) != 0:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"llama.cpp could not quantize {source.name} to {quant}")
    tmp.replace(out)
    return out


CHATML = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
)


def write_modelfile(folder: Path, gguf_file: Path, tokenizer: Any) -> Path:
    """An Ollama Modelfile beside the GGUF: greedy decoding, the chat template's stop token."""
    template = getattr(tokenizer, "chat_template", None) or ""
    lines = [
        "# Ollama: ollama create NAME -f Modelfile, then ask through its OpenAI-compatible API:",
        "#   text2sql ask --db shop --set backend=openai "
        '--set openai.base_url=http://127.0.0.1:11434/v1 --set openai.model=NAME "..."',
        f"FROM ./{gguf_file.name}",
    ]
    if "<|im_start|>" in template:  # ChatML (Qwen2.5, SmolLM2); others: Ollama reads the GGUF's
        lines += [f'TEMPLATE """{CHATML}"""', 'PARAMETER stop "<|im_end|>"']
    lines += [f'SYSTEM """{SYSTEM_PROMPT}"""', "PARAMETER temperature 0"]
    path = folder / "Modelfile"
    path.write_text("\n".join(lines) + "\n")
    return path


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "text2sql"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="text2sql export", description=__doc__.split("\n")[0])
    p.add_argument("--adapter", required=True, help="adapter folder from training")
    p.add_argument("--out", help="output folder (default: <run folder>/export)")
    p.add_argument("--model", help="base model (default: the adapter's recorded base)")
    p.add_argument("--quant", choices=list(QUANTS), help="GGUF quantization (default Q8_0)")
    p.add_argument("--no-gguf", action="store_true", help="the merged folder only")
    p.add_argument("--name", help="model name for the GGUF file and the Modelfile")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    overrides = parse_overrides(args.set)
    for key in ("adapter", "out", "model", "quant", "name"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.no_gguf:
        overrides["gguf"] = False
    try:
        result = run(load_config(ExportConfig, None, overrides))
    except (ConfigError, ExportError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"Merged: {result.merged}")
        if result.gguf:
            print(f"GGUF: {result.gguf}\nModelfile: {result.modelfile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
