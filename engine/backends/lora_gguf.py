"""A PEFT LoRA adapter as a llama.cpp LoRA GGUF, so a fine-tuned model runs on llama.cpp.

llama.cpp applies such an adapter at run time on top of the unchanged quantised base, so the
base weights stay exactly the ones the transformers backend dequantised and trained on.
llama.cpp's own ``convert_lora_to_gguf.py`` ships only inside its source tree (no package
installs it), so the small part we need is done here with the ``gguf`` package's own
HF -> GGUF tensor-name map. What it refuses (the caller falls back to transformers):
DoRA, trained biases, ``modules_to_save`` (e.g. a retrained embedding or head), and
architectures not listed in :data:`_PERMUTE_QK`.

Result: ``general.type=adapter``, ``adapter.type=lora``, ``adapter.lora.alpha`` and, per
adapted weight ``W`` named ``blk.N.attn_q.weight``, tensors ``blk.N.attn_q.weight.lora_a``
(r x in) and ``...lora_b`` (out x r). llama.cpp scales by ``alpha / r``, like PEFT.
The tensors are identical to those of llama.cpp's own converter (checked on SmolLM2).

Precision: over an fp32 base, llama.cpp's LoRA output matches PEFT's (next-token logit shifts
correlate at 0.998). Over the 4-bit presets llama.cpp also rounds activations to 8 bits, and
that noise is as large as the effect of a tiny random adapter; for an adapter that changes
answers, the shifts still correlate at > 0.9 and greedy answers agree (tests/test_backends.py).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

CONVERTER_VERSION = "1"  # bump when the output changes: it is part of the cache key

# GGUF architectures we can map, and whether llama.cpp's HF converter permuted their q/k
# rows for its rotary layout (then the LoRA B rows must be permuted the same way).
_PERMUTE_QK: dict[str, bool] = {"llama": True, "qwen2": False, "qwen3": False}


class LoraConversionError(ValueError):
    """The adapter cannot be expressed as a llama.cpp LoRA; the message says why."""


def cached_lora_gguf(adapter_dir: str | Path, base_gguf: Path, cache: Path) -> Path:
    """The adapter converted for ``base_gguf``, converting once per adapter content."""
    adapter_dir = Path(adapter_dir)
    weights = _weights_file(adapter_dir)
    digest = hashlib.sha256()
    for part in (weights.read_bytes(), (adapter_dir / "adapter_config.json").read_bytes()):
        digest.update(part)
    digest.update(f"{base_gguf.name}:{CONVERTER_VERSION}".encode())
    target = cache / "lora-gguf" / f"{digest.hexdigest()[:24]}.gguf"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        convert_lora(adapter_dir, base_gguf, tmp)
        tmp.replace(target)
    return target


def convert_lora(adapter_dir: str | Path, base_gguf: Path, out: Path) -> Path:
    """Write ``adapter_dir`` (PEFT LoRA) as a llama.cpp LoRA GGUF for ``base_gguf``."""
    import gguf  # deferred: gguf takes ~250 ms (numpy included)

    adapter_dir = Path(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    _check_supported(cfg)
    arch, n_head, n_head_kv, n_blocks = _base_info(base_gguf)
    tensors = _load_tensors(_weights_file(adapter_dir))
    name_map = gguf.get_tensor_name_map(_arch_enum(arch), n_blocks)
    rank = int(cfg["r"])
    alpha = float(cfg.get("lora_alpha", rank))
    if cfg.get("use_rslora"):  # PEFT scales by alpha/sqrt(r); llama.cpp by alpha/r
        alpha *= math.sqrt(rank)

    writer = gguf.GGUFWriter(out, arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    count = 0
    for module, (lora_a, lora_b) in sorted(_pairs(tensors).items()):
        target = name_map.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise LoraConversionError(f"No GGUF tensor for adapted module {module}")
        if _PERMUTE_QK[arch] and target.endswith(("attn_q.weight", "attn_k.weight")):
            heads = n_head if target.endswith("attn_q.weight") else n_head_kv
            lora_b = _permute_rows(lora_b, heads)
        writer.add_tensor(target + ".lora_a", lora_a.astype("float16"))
        writer.add_tensor(target + ".lora_b", lora_b.astype("float16"))
        count += 1
    if count == 0:
        raise LoraConversionError(f"{adapter_dir} holds no LoRA weights")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _check_supported(cfg: dict[str, Any]) -> None:
    if cfg.get("peft_type", "LORA") != "LORA":
        raise LoraConversionError(f"Only LoRA adapters convert, not {cfg.get('peft_type')}")
    if cfg.get("use_dora"):
        raise LoraConversionError("DoRA adapters have no llama.cpp equivalent")
    if cfg.get("bias", "none") != "none":
        raise LoraConversionError("Adapters that train biases have no llama.cpp equivalent")
    if cfg.get("modules_to_save"):
        raise LoraConversionError(
            f"Adapter saves whole modules ({cfg['modules_to_save']}); llama.cpp LoRA cannot"
        )


def _base_info(base_gguf: Path) -> tuple[str, int, int, int]:
    import gguf  # deferred: gguf takes ~250 ms (numpy included)

    reader = gguf.GGUFReader(base_gguf)

    def value(key: str) -> Any:
        field = reader.get_field(key)
        if field is None:
            raise LoraConversionError(f"{base_gguf.name} has no {key}")
        return field.contents()

    arch = str(value("general.architecture"))
    if arch not in _PERMUTE_QK:
        raise LoraConversionError(f"LoRA conversion does not support architecture {arch!r}")
    n_head = int(value(f"{arch}.attention.head_count"))
    kv = reader.get_field(f"{arch}.attention.head_count_kv")
    n_head_kv = int(kv.contents()) if kv is not None else n_head
    return arch, n_head, n_head_kv, int(value(f"{arch}.block_count"))


def _arch_enum(arch: str) -> Any:
    import gguf  # deferred: gguf takes ~250 ms (numpy included)

    return next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)


def _weights_file(adapter_dir: Path) -> Path:
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (adapter_dir / name).is_file():
            return adapter_dir / name
    raise LoraConversionError(f"{adapter_dir} has no adapter_model.safetensors")


def _load_tensors(path: Path) -> dict[str, Any]:
    """Adapter tensors as float32 numpy arrays (safetensors, or a legacy torch pickle)."""
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file  # deferred: numpy takes ~100 ms

        try:
            return {k: v.astype("float32") for k, v in load_file(path).items()}
        except TypeError:  # bf16 has no numpy dtype: go through torch
            pass
    import torch  # deferred: torch takes seconds to import

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file as load_torch  # deferred: with torch

        state = load_torch(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}


def _pairs(tensors: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{hf module name: (lora_A, lora_B)}``; anything else in the file is refused."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    for key, value in tensors.items():
        for marker, into in ((".lora_A.", a), (".lora_B.", b)):
            if marker in key:
                module = key.split(marker)[0].removeprefix("base_model.model.")
                into[module] = value
                break
        else:
            raise LoraConversionError(f"Adapter tensor {key} is not a LoRA A/B matrix")
    if a.keys() != b.keys():
        raise LoraConversionError("Adapter has unmatched LoRA A/B matrices")
    return {m: (a[m], b[m]) for m in a}


def _permute_rows(w: Any, n_head: int) -> Any:
    """llama.cpp's q/k row order for rotary embeddings (convert_hf_to_gguf's ``permute``)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )
