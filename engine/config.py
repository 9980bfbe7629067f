"""Typed configs loaded from YAML and overridden from the command line.

One dataclass per stage; each field is the one declaration of a setting (type, default, help
text: :func:`engine.setting.setting`). ``load_config(Cls, yaml_path, {"a.b": value})`` merges
file, then overrides, rejects unknown keys, and runs the dataclass's own ``__post_init__``
checks. The CLIs' setting flags are generated from the fields (:func:`add_setting_flags`,
:func:`flag_overrides`), and ``python -m engine config`` prints every setting (:func:`describe`).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.backends.base import BACKEND_KINDS, GenerationConfig, check_backend_kind
from engine.backends.openai_config import OpenAIConfig
from engine.conversation import FollowupConfig
from engine.errors import ConfigError
from engine.pipeline import MAX_ATTEMPTS, MAX_ROWS, TIMEOUT_S
from engine.presets import DEFAULT_MODEL
from engine.rag.config import RagConfig
from engine.setting import help_of, setting

__all__ = [
    "ConfigError",
    "EngineConfig",
    "add_setting_flags",
    "describe",
    "flag_overrides",
    "load_config",
    "parse_overrides",
    "read_yaml",
    "setting_field",
]
T = TypeVar("T")


@dataclass
class EngineConfig:
    model: str | None = setting(
        DEFAULT_MODEL, "preset name, local model folder or hub id (null: the adapter's base model)"
    )
    adapter: str | None = setting(None, "LoRA adapter folder (from training)")
    load_in_4bit: bool = setting(False, "4-bit NF4 weights via bitsandbytes (transformers)")
    backend: str = setting(
        "auto",
        "auto (llama.cpp on CPU when it can serve the model) | llamacpp | transformers | openai",
        choices=BACKEND_KINDS,
    )
    threads: int | None = setting(None, "CPU threads for generation (null: every core)")
    batch_size: int = setting(4, "questions answered together when several are asked at once")
    max_attempts: int = setting(
        MAX_ATTEMPTS, "self-correction: total tries per question (1: no retry)"
    )
    timeout_s: float = setting(TIMEOUT_S, "wall-clock limit per query, in seconds")
    max_rows: int = setting(MAX_ROWS, "row cap per query")
    relink_literals: bool = setting(
        True,
        "a text compared to a column that never holds it moves to the one column of that "
        "table that does (engine.literals)",
    )
    # The cascade: after a failed answer, its repair and 4 fresh samples vote (bench/ablation).
    # GenerationConfig's own 0 (as many as candidates) is for a TextToSQL built without an
    # EngineConfig, whose callers (tests, benchmarks) count the answers it draws.
    generation: GenerationConfig = setting(
        factory=lambda: GenerationConfig(retry_candidates=5), help="decoding"
    )
    rag: RagConfig = setting(factory=RagConfig, help="retrieval-augmented prompts (engine.rag)")
    followup: FollowupConfig = setting(
        factory=FollowupConfig, help="questions asked after others (engine.conversation)"
    )
    openai: OpenAIConfig = setting(
        factory=OpenAIConfig, help="the server of backend openai (an OpenAI-compatible API)"
    )

    def __post_init__(self) -> None:
        check_backend_kind(self.backend)
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        if self.generation.vote_below is not None and self.max_attempts < 2:
            raise ConfigError(
                "generation.vote_below draws its voters as a second attempt: it "
                "needs max_attempts >= 2"
            )
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
    import yaml  # deferred: ~25 ms on every CLI's start-up, and --help reads no YAML

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
    import yaml  # deferred: ~25 ms on every CLI's start-up, and --help reads no YAML

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
    data = _merge(_renamed(cls, base or {}), _renamed(cls, read_yaml(path) if path else {}))
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = _canonical_key(cls, dotted).split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(cls, data)


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    data = _renamed(cls, data, prefix)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"Unknown config key: {prefix}{unknown[0]}")
    kwargs = {}
    for key, value in data.items():
        hint = _nested_dataclass(hints[key])
        if hint is not None and isinstance(value, dict):
            # A section given in part keeps the rest of its default: the section's own
            # defaults (its constructor's, so that values derived in __post_init__, such as
            # lora.alpha from lora.r, are derived again) and what the field's factory changes.
            factory = fields[key].default_factory
            if factory not in (dataclasses.MISSING, hint):
                value = _merge(_changes(factory(), hint()), value)
            value = from_dict(hint, value, prefix=f"{prefix}{key}.")
        kwargs[key] = value
    return cls(**kwargs)


def _changes(cfg: Any, default: Any) -> dict[str, Any]:
    """The settings in which ``cfg`` differs from ``default``."""
    low = dataclasses.asdict(default)
    return {k: v for k, v in dataclasses.asdict(cfg).items() if v != low[k]}


def _aliases(cls: type) -> dict[str, str]:
    return {
        old: f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        for old in f.metadata.get("aliases", ())
    }


def _renamed(cls: type, data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``data`` with the fields' older names replaced by their names (setting(aliases=...)),
    so that configs saved by earlier versions still load (num_threads is now threads)."""
    aliases = _aliases(cls)
    out = {aliases.get(k, k): v for k, v in data.items()}
    if len(out) < len(data):
        old = next(k for k in data if k in aliases and aliases[k] in data)
        raise ConfigError(f"{prefix}{old} is the old name of {prefix}{aliases[old]}: set one")
    return out


def _canonical_key(cls: type | None, dotted: str) -> str:
    """A dotted key with older names replaced: ``num_threads`` -> ``threads``."""
    parts = []
    for part in dotted.split("."):
        if cls is not None:
            part = _aliases(cls).get(part, part)
            cls = _nested_dataclass(typing.get_type_hints(cls).get(part))
        parts.append(part)
    return ".".join(parts)


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


# --- the CLIs' setting flags, generated from the fields ---------------------------------------

# A setting flag: a dotted key ("engine.max_attempts" -> --max-attempts), or the key and its
# flag names when they differ from the key's last part (("rag.store_dir", "--store")).
Flag = str | tuple[str, ...]
_DEST = "setting:"  # the flags' argparse dest: this prefix and the dotted key
_METAVARS = {int: "N", float: "X", list: "A,B"}


def add_setting_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, flags: Sequence[Flag]
) -> None:
    """Add ``flags`` (settings of ``cls``) to ``parser``, each typed and helped from its
    field, and ``--set KEY=VALUE`` for every other setting; :func:`flag_overrides` collects
    the given ones. A flag left out stays out of the overrides (the config file decides)."""
    for flag in flags:
        key, *names = (flag,) if isinstance(flag, str) else flag
        f, hint = setting_field(cls, key)
        names = names or ["--" + key.rsplit(".", 1)[-1].replace("_", "-")]
        kwargs: dict[str, Any] = {"help": f"{help_of(f)} [{key}]", "default": None}
        scalar = _scalar_type(hint)
        if scalar is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _comma_list if scalar is list else scalar
            if f.metadata.get("choices"):
                kwargs["choices"] = f.metadata["choices"]
            else:
                flag_name = names[0].lstrip("-").upper().replace("-", "_")
                kwargs["metavar"] = _METAVARS.get(scalar, flag_name)
        parser.add_argument(*names, dest=_DEST + key, **kwargs)
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="KEY=VALUE for any setting, section.key=VALUE inside a section (repeatable; "
        "a flag wins)",
    )


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--set`` items, then the setting flags given (a flag wins): ``{"a.b": value}``."""
    out = parse_overrides(getattr(args, "set", None))
    for dest, value in vars(args).items():
        if dest.startswith(_DEST) and value is not None:
            out[dest.removeprefix(_DEST)] = value
    return out


def setting_field(cls: type, key: str) -> tuple[dataclasses.Field, Any]:
    """The field a dotted key names, and its type."""
    *sections, leaf = key.split(".")
    for name in sections:
        nested = _nested_dataclass(typing.get_type_hints(cls).get(name))
        if nested is None:
            raise KeyError(f"{key}: {name} is not a section of {cls.__name__}")
        cls = nested
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return fields[leaf], typing.get_type_hints(cls)[leaf]


def _scalar_type(hint: Any) -> Any:
    """bool, int, float, str or list for a flag; ``X | None`` is X."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if len(args) != 1:
            raise TypeError(f"no flag for a setting of type {hint}: use --set")
        hint = args[0]
    if typing.get_origin(hint) is list:
        return list
    if hint not in (bool, int, float, str):
        raise TypeError(f"no flag for a setting of type {hint}: use --set")
    return hint


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def describe(cfg: Any, indent: str = "") -> str:
    """``cfg`` as a YAML file that comments every setting with its help: what ``python -m
    engine config`` prints (the defaults, or a config file's values)."""
    lines = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        note = f"  # {help_of(f)}" if help_of(f) else ""
        if dataclasses.is_dataclass(value):
            lines += [f"{indent}{f.name}:{note}", describe(value, indent + "  ")]
        else:
            text = f"{indent}{f.name}: {_yaml_scalar(value)}"
            lines.append(f"{text:<34}{note}".rstrip() if note else text)
    return "\n".join(lines)


def _yaml_scalar(value: Any) -> str:
    import yaml  # deferred: ~25 ms on every CLI's start-up, and --help reads no YAML

    return yaml.safe_dump([value], default_flow_style=True, width=1000).strip()[1:-1]
