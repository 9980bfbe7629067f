"""Model runtimes other than transformers, behind :class:`engine.generate.Backend`.

``llamacpp``: llama.cpp through llama-cpp-python, the default on CPU (see
:func:`engine.generate.load_backend`). ``lora_gguf`` converts PEFT LoRA adapters for it.
"""
