"""Every ``from <our package> import name``, at the top of a file or inside a function, names
something that exists. Imports inside functions (they defer heavy libraries) run only when
the function does, and ruff does not resolve them: a name moved to another module would
fail only then, in a user's hands.

An import inside a function hides what a module depends on (and any import circle), so it
stays there only for a reason, written beside it: a comment on its line or on the line just
above its block of imports, starting with one of :data:`REASONS`."""

from __future__ import annotations

import ast
import importlib
import io
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = ("app", "engine", "training", "text2sql", "tests")
# Where an import inside a function must say why (folders, and files at the repository root).
SAYS_WHY = ("engine", "training", "app", "text2sql", "launch.py")
# deferred: a heavy library, or one a start-up path must not load; optional: a dependency that
# may be absent; late: looked up at call time (a test replaces it); cycle: a circular import.
REASONS = ("deferred:", "optional:", "late:", "cycle:")


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


def _comments(source: str) -> tuple[dict[int, str], set[int]]:
    """The comment of each line, and the lines that hold nothing else."""
    comments, alone = {}, set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
            if not token.line[: token.start[1]].strip():
                alone.add(token.start[0])
    return comments, alone


def _function_import_blocks(tree: ast.Module) -> list[list[ast.stmt]]:
    """Runs of consecutive import statements in a function's body (nested blocks included)."""
    blocks: list[list[ast.stmt]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        in_function = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            statements = getattr(node, field, None)
            run: list[ast.stmt] = []
            for child in statements if isinstance(statements, list) else []:
                if isinstance(child, ast.Import | ast.ImportFrom):
                    run.append(child)
                    continue
                if run and in_function:
                    blocks.append(run)
                run = []
            if run and in_function:
                blocks.append(run)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return blocks


def test_imports_inside_functions_say_why():
    files: list[Path] = []
    for name in SAYS_WHY:
        path = REPO / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    unexplained, seen = [], 0
    for path in files:
        source = path.read_text(encoding="utf-8")
        comments, alone = _comments(source)
        for block in _function_import_blocks(ast.parse(source)):
            above, line = [], block[0].lineno - 1  # the comment lines right above the block
            while line in alone:
                above.append(comments[line])
                line -= 1
            for node in block:
                seen += 1
                lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
                said = above + [comments.get(n, "") for n in lines]
                if not any(c.startswith(REASONS) for c in said):
                    unexplained.append(
                        f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}"
                    )
    assert seen > 10  # the walk found imports inside functions
    assert not unexplained, (
        f"{len(unexplained)} imports inside functions without a reason beside them (a comment "
        f"starting with one of {', '.join(REASONS)}); move them to the top of the module, or "
        "say why they wait:\n" + "\n".join(unexplained)
    )
