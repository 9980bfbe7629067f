"""Errors every layer of the engine shares.

``ConfigError`` lives here, apart from the config loader, so that each stage's settings
(generation, retrieval, the engine) can validate themselves without importing the loader.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file, override or setting is wrong; the message names the key."""


class ModelLoadError(RuntimeError):
    """A model or adapter could not be loaded; the message says why in one line."""
