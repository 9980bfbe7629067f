"""``text2sql doctor``: which bundled models are installed here, and which backend the
defaults will answer with, and why."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import sys
from pathlib import Path

from engine import model_packages as mp
from engine.paths import llamacpp_hint

# ENVIRONMENT.md, 2-core CPU: llama.cpp generates the 1.5B at 13-22 tokens/s; transformers
# (fp32, dequantised GGUF) about a third of the 0.5B's 3-5 tokens/s.
SLOWER = "roughly 10x slower per answer"


def _gpu_driver() -> bool:
    """A GPU driver is loaded (checked without importing torch, which takes seconds)."""
    return any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd"))


def backend_report() -> str:
    """One line: the backend the defaults (``backend: auto``) use here, and why."""
    if _gpu_driver():
        return "Backend: transformers on the GPU (a GPU driver is loaded; auto prefers it)"
    if importlib.util.find_spec("llama_cpp") is not None:  # as engine.backends.llamacpp
        version = importlib.metadata.version("llama_cpp_python")
        return f"Backend: llama.cpp (llama-cpp-python {version} is installed), the fast CPU one"
    return (
        "Backend: transformers on CPU, because llama-cpp-python is not installed: "
        f"{SLOWER} than llama.cpp; {llamacpp_hint()}"
    )


def report() -> tuple[str, bool]:
    """The whole report, and whether the defaults can answer (their models installed)."""
    try:
        version = importlib.metadata.version("text2sql-workbench")
    except importlib.metadata.PackageNotFoundError:
        version = "a checkout"
    lines = [f"text2sql-workbench {version}, Python {sys.version.split()[0]} in {sys.prefix}"]
    defaults = mp.default_names()
    lines.append("Bundled models:")
    for bundle in mp.bundles().values():
        absent = mp.missing_packages(bundle)
        if not absent:
            state = "installed"
        elif len(absent) == len(bundle.packages):
            state = f"not installed (about {bundle.size})"
        else:
            state = f"{len(absent)} of {len(bundle.packages)} packages missing"
        used = ", used by the defaults" if bundle.name in defaults else ""
        lines.append(f"  {bundle.name:30} {bundle.role}{used}: {state}")
    lines.append(backend_report())
    absent = [b for b in mp.bundles().values() if b.name in defaults and mp.missing_packages(b)]
    if absent:
        lines.append(mp.missing_message(absent))
    else:
        lines.append('The defaults can answer (text2sql ask --db shop "How many customers?").')
    return "\n".join(lines), not absent


def run(args: argparse.Namespace) -> int:
    text, ready = report()
    print(text)
    return 0 if ready else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="which bundled models are installed and which backend the defaults use",
    )
    p.set_defaults(func=run)
