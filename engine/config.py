"""Typed configs loaded from YAML and overridden from the command line.

One dataclass per stage; ``load_config(Cls, yaml_path, {"a.b": value})`` merges file, then
overrides, rejects unknown keys, and runs the dataclass's own ``__post_init__`` checks.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.generate import GenerationConfig
from engine.rag.config import RagConfig, RagConfigError

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the key."""


@dataclass
class EngineConfig:
    model: str = "qwen2.5-coder-0.5b-instruct"
    adapter: str | None = None
    load_in_4bit: bool = False
    backend: str = "auto"  # auto (llama.cpp on CPU when it can) | llamacpp | transformers
    max_attempts: int = 2  # self-correction: total tries per question
    timeout_s: float = 10.0
    max_rows: int = 1000
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rag: RagConfig = field(default_factory=RagConfig)  # retrieval (engine.rag)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if self.timeout_s <= 0 or self.max_rows < 1:
            raise ConfigError("timeout_s must be > 0 and max_rows >= 1")
        if self.backend not in {"auto", "llamacpp", "transformers"}:
            raise ConfigError(
                f"backend must be auto, llamacpp or transformers, not {self.backend!r}"
            )


def parse_value(text: str) -> Any:
    """``--set key=value`` values: YAML scalars (numbers, true/false, null, lists)."""
    import yaml

    return yaml.safe_load(text)


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> T:
    """Build ``cls`` from a YAML file (optional) plus dotted-key overrides."""
    import yaml

    data: dict[str, Any] = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"Cannot read config {path}: {str(err).splitlines()[0]}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"Config {path} must be a mapping of keys to values")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(cls, data)


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"Unknown config key: {prefix}{unknown[0]}")
    kwargs = {}
    for key, value in data.items():
        hint = _nested_dataclass(hints[key])
        if hint is not None and isinstance(value, dict):
            value = from_dict(hint, value, prefix=f"{prefix}{key}.")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except RagConfigError as err:
        raise ConfigError(str(err)) from err


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _nested_dataclass(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
    return None
