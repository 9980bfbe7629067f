"""Model runtimes behind one interface (:mod:`engine.backends.base`).

- ``base``: the :class:`Backend` protocol and :class:`GenerationConfig`;
- ``transformers_backend``: any causal LM transformers can load (GPU, 4-bit, PEFT);
- ``llamacpp`` (+ ``llamacpp_batch``, its batched decoder): llama.cpp, the default on CPU;
- ``lora_gguf``: converts PEFT LoRA adapters for llama.cpp;
- ``loader``: :func:`load_backend` picks and loads one of them.
"""
