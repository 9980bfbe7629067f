"""How a config dataclass declares a setting: ``setting(default, "help")``.

The field is the one declaration of a setting: its type (the annotation), its default and
its help text. :mod:`engine.config` builds the CLI flags, ``--help`` and ``python -m engine
config`` from it, as TRL's ``TrlParser`` builds them from ``field(metadata={"help": ...})``.
This module imports nothing of the engine, so every stage's config can use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    choices: Sequence[str] = (),
    aliases: Sequence[str] = (),
) -> Any:
    """A dataclass field with its help text. ``factory`` in place of ``default`` for a
    section or a mutable value; ``choices`` the values its flag accepts; ``aliases`` older
    names that saved configs and YAML files may still use."""
    metadata = {"help": help, "choices": tuple(choices), "aliases": tuple(aliases)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def help_of(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")
