"""Where the LoRA / QLoRA pieces are built: the PEFT config, the 4-bit config, the base model."""

from __future__ import annotations

from typing import Any

from training.config import TrainConfig

# Attention projections per architecture (``lora.target_modules: attention``); the default,
# "all-linear", lets PEFT pick every linear layer except the output head, for any model.
ATTENTION_MODULES: dict[str, list[str]] = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi3": ["qkv_proj", "o_proj"],
    "gpt2": ["c_attn", "c_proj"],
    "gpt_neox": ["query_key_value", "dense"],
    "falcon": ["query_key_value", "dense"],
}


def target_modules(cfg: TrainConfig, model_type: str) -> str | list[str]:
    wanted = cfg.lora.target_modules
    if wanted != "attention":
        return wanted
    if model_type not in ATTENTION_MODULES:
        raise ValueError(
            f"No attention-module list for architecture '{model_type}': set "
            "lora.target_modules to all-linear or to a list of module names"
        )
    return ATTENTION_MODULES[model_type]


def lora_config(cfg: TrainConfig, model_type: str) -> Any:
    from peft import LoraConfig  # deferred: peft takes seconds to import

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=target_modules(cfg, model_type),
        bias=cfg.lora.bias,
        task_type="CAUSAL_LM",
    )


def torch_dtype(cfg: TrainConfig) -> Any:
    """Weights dtype for the base model: fp32 on CPU, the training precision on GPU."""
    import torch  # deferred: torch takes seconds to import

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.precision]


def quantization_config(cfg: TrainConfig) -> Any:
    """The seed's QLoRA setting: 4-bit NF4, double quantisation, fp16 compute (on GPU)."""
    # deferred: torch and transformers take seconds to import
    import torch
    from transformers import BitsAndBytesConfig

    compute = (
        torch_dtype(cfg)
        if cfg.quant.compute_dtype == "auto"
        else getattr(torch, cfg.quant.compute_dtype)
    )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.quant.quant_type,
        bnb_4bit_use_double_quant=cfg.quant.double_quant,
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_quant_storage=compute,  # lets ZeRO-2/FSDP treat the packed weights uniformly
    )


def load_base_model(cfg: TrainConfig, source: str, local_rank: int = 0) -> Any:
    """The base causal LM, full precision (LoRA) or 4-bit (QLoRA), on the config's device."""
    from transformers import AutoModelForCausalLM  # deferred: seconds to import

    kwargs: dict[str, Any] = {"dtype": torch_dtype(cfg)}
    if cfg.method == "qlora":
        kwargs["quantization_config"] = quantization_config(cfg)
        kwargs["dtype"] = kwargs["quantization_config"].bnb_4bit_compute_dtype
        # Each process holds a whole (quantised) copy on its own GPU.
        kwargs["device_map"] = {"": local_rank if cfg.device == "cuda" else "cpu"}
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and cfg.method != "qlora":  # a dequantised GGUF still carries a flag
        quantizer.remove_quantization_config(model)
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training  # deferred: seconds to import

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing
        )
    model.config.use_cache = (
        False  # the KV cache is useless in training and clashes with checkpointing
    )
    return model
