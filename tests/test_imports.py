"""Every ``from <our package> import name``, at the top of a file or inside a function, names
something that exists. Imports inside functions (they defer heavy libraries) run only when
the function does, and ruff does not resolve them: a name moved to another module would
fail only then, in a user's hands."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = ("app", "engine", "training", "text2sql", "tests")


def _imports() -> list[tuple[str, int, str, list[str]]]:
    files = list(REPO.glob("*.py"))
    for folder in (*OURS, "bench", "scripts"):
        files += (REPO / folder).rglob("*.py")
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and node.module
                and node.module.split(".")[0] in OURS
            ):
                names = [a.name for a in node.names if a.name != "*"]
                found.append((str(path.relative_to(REPO)), node.lineno, node.module, names))
    return found


def test_every_imported_name_exists():
    found = _imports()
    assert len(found) > 300  # the walk found the tree's imports
    missing = []
    for where, line, module, names in found:
        mod = importlib.import_module(module)
        for name in names:
            if hasattr(mod, name):
                continue
            try:  # a submodule: from engine.db import sql_guard
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{where}:{line}: {module} has no {name}")
    assert not missing, "\n".join(missing)
