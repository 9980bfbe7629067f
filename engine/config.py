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

from engine.backends.base import GenerationConfig, check_backend_kind
from engine.backends.openai_config import OpenAIConfig
from engine.errors import ConfigError
from engine.models import DEFAULT_MODEL
from engine.rag.config import RagConfig

__all__ = ["ConfigError", "EngineConfig", "load_config", "parse_overrides", "read_yaml"]
T = TypeVar("T")


@dataclass
class EngineConfig:
    model: str | None = DEFAULT_MODEL  # None: the adapter's base model
    adapter: str | None = None
    load_in_4bit: bool = False
    backend: str = "auto"  # auto (llama.cpp on CPU when it can) | llamacpp | transformers | openai
    threads: int | None = None  # CPU threads for generation; None: every core
    batch_size: int = 4  # questions answered together when several are asked at once
    max_attempts: int = 2  # self-correction: total tries per question
    timeout_s: float = 10.0
    max_rows: int = 1000
    # the cascade: after a failed answer, its repair and 4 fresh samples vote (bench/ablation)
    generation: GenerationConfig = field(
        default_factory=lambda: GenerationConfig(retry_candidates=5)
    )
    rag: RagConfig = field(default_factory=RagConfig)  # retrieval (engine.rag)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)  # the server for backend openai

    def __post_init__(self) -> None:
        check_backend_kind(self.backend)
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if self.timeout_s <= 0 or self.max_rows < 1:
            raise ConfigError("timeout_s must be > 0 and max_rows >= 1")
        if self.batch_size < 1 or (self.threads is not None and self.threads < 1):
            raise ConfigError("batch_size must be at least 1 and threads at least 1 (or null)")
        if self.model is None and self.adapter is None:
            raise ConfigError("model may be null only with an adapter (its base model is used)")
        if self.backend == "openai":
            if not self.openai.base_url:
                raise ConfigError(
                    "backend openai needs openai.base_url, the server's URL "
                    "(e.g. http://127.0.0.1:8000/v1); openai.model names its model"
                )
            if self.adapter or self.load_in_4bit:
                raise ConfigError(
                    "adapter and load_in_4bit are for local backends; with backend openai the "
                    "server serves the model (text2sql export gives a merged one to serve)"
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


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a dict; a key written twice in one mapping is an error (plain
    YAML would silently keep the last one)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"Config {path} sets {key!r} twice (line {line})")
            seen.add(key)
        return loader.construct_mapping(node)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        data = yaml.load(Path(path).read_text(), Loader=UniqueKeyLoader) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"Cannot read config {path}: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"Config {path} must be a mapping of keys to values")
    return data


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, Any] | None = None,
) -> T:
    """Build ``cls`` from ``base`` (a dict), then a YAML file (optional), then dotted-key
    overrides; each later layer wins key by key, nested sections merged."""
    data = _merge(base or {}, read_yaml(path) if path else {})
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(cls, data)


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"Unknown config key: {prefix}{unknown[0]}")
    kwargs = {}
    for key, value in data.items():
        hint = _nested_dataclass(hints[key])
        if hint is not None and isinstance(value, dict):
            default = fields[key].default_factory
            if default is not dataclasses.MISSING:  # a section given in part keeps the rest
                value = _merge(dataclasses.asdict(default()), value)
            value = from_dict(hint, value, prefix=f"{prefix}{key}.")
        kwargs[key] = value
    return cls(**kwargs)


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _nested_dataclass(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
    return None
