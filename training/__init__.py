"""Fine-tuning (LoRA / QLoRA with TRL's SFTTrainer) and evaluation of text-to-SQL models.

Importing this package is cheap: torch, transformers, TRL and PEFT load inside the functions
that need them. Entry points: ``python -m training.train`` (CLI), :func:`training.train.run`
(Python) and :mod:`training.jobs` (background jobs for the app).
"""
