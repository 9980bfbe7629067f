"""``python -m engine ask|index|run-sql|examples|config|install-models|doctor|mcp``: JSON on stdout, logs on stderr,
non-zero exit on error. The settings' flags are generated from EngineConfig's fields; ``config``
prints every setting with its value and what it does."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine import doctor, install_models
from engine.config import (
    ConfigError,
    EngineConfig,
    add_setting_flags,
    describe,
    flag_overrides,
    load_config,
)
from engine.conversation import HISTORY_SHAPE, HistoryError, parse_history, same_question
from engine.db import DatabaseError, check_database, redact, run_readonly
from engine.errors import ModelLoadError
from engine.mcp_server import add_parser as add_mcp_parser
from engine.model_packages import missing_for
from engine.paths import data_dir


def _table(columns: list[str], rows: list[list[Any]], limit: int = 50) -> str:
    cells = [[str(c) for c in columns]] + [
        ["NULL" if v is None else str(v) for v in r] for r in rows[:limit]
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows")
    return "\n".join(lines)


def read_history(value: str | None) -> list[tuple[str, str]]:
    """``--history``: a JSON file's path, or the JSON list itself."""
    if not value:
        return []
    path = Path(value)
    if not value.lstrip().startswith(("[", "{")) and path.is_file():
        try:
            value = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise HistoryError(f"cannot read the history file {path}: {err}") from None
    elif not value.lstrip().startswith(("[", "{")):
        raise HistoryError(f"--history {value!r} is neither a file nor {HISTORY_SHAPE}")
    return parse_history(value)


def _print_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def cmd_ask(args: argparse.Namespace) -> int:
    # deferred: the model and retrieval modules load only to answer (not for --help)
    from engine.factory import engine_from_config

    overrides = flag_overrides(args)
    if overrides.get("adapter") and "model" not in overrides:
        overrides["model"] = None  # the adapter's recorded base model
    cfg = load_config(EngineConfig, args.config, overrides)
    question = (args.question or "").strip()
    error, history = _check_ask(args, question)
    if error:
        return _fail(args, question, error)
    error = missing_for(cfg)  # before any loading: every missing model in one line
    if error:
        return _fail(args, question, error)
    say = logging.getLogger("engine").info
    retriever = None
    if cfg.rag.enabled:
        error, retriever = _prepare_retriever(cfg, args.db, say)
        if error:
            return _fail(args, question, error)
    engine = engine_from_config(cfg, retriever=retriever, progress=say)
    answer = engine.ask(question, args.db, history)
    if args.json:
        _print_json(answer.to_dict())
    else:
        _print_answer(answer)
    return 0 if answer.ok else 1


def _check_ask(args: argparse.Namespace, question: str) -> tuple[str | None, list]:
    """(error or None, the conversation's earlier turns) of ``ask``'s arguments."""
    if not question:
        return "Please give a question.", []
    try:
        history = read_history(args.history)
        check_database(args.db)
    except (HistoryError, DatabaseError) as err:
        return str(err), []
    return None, history


def _print_answer(answer: Any) -> None:
    """An answer as text: how a follow-up was understood, the SQL, what it does, the rows
    (on stdout); the error and the summary line on stderr."""
    if answer.understood and not same_question(answer.understood, answer.question):
        print(f"Understood as: {answer.understood}")
    print(answer.sql or "(no SQL)")
    if answer.explanation:
        print(answer.explanation)
    if answer.ok:
        print(_table(answer.columns, answer.rows))
    else:
        print(f"Error: {answer.error}", file=sys.stderr)
    print(
        f"({answer.attempts} attempt(s), {answer.seconds:.1f} s, {answer.backend}, "
        f"{len(answer.sources)} retrieved source(s))",
        file=sys.stderr,
    )


def _prepare_retriever(cfg: EngineConfig, db: str, say: Any) -> tuple[str | None, Any]:
    """Open the store and index the database if it has no index yet: (error, retriever)."""
    # deferred: the RAG modules (langchain_core: ~400 ms) load only for the commands that use them
    from engine.rag.documents import RagInputError
    from engine.rag.embeddings import EmbedderError
    from engine.rag.retriever import RagRetriever
    from engine.rag.store import StoreError

    retriever = RagRetriever(cfg.rag, progress=say, show_bar=True)
    try:
        retriever.prepare(db)
    except (StoreError, EmbedderError, RagInputError, DatabaseError) as err:
        return f"{err} (or ask with --no-rag)", None
    return None, retriever


def _fail(args: argparse.Namespace, question: str, error: str) -> int:
    if args.json:
        _print_json(
            {
                "question": question,
                "sql": None,
                "columns": [],
                "rows": [],
                "error": error,
                "sources": [],
                "attempts": 0,
            }
        )
    print(f"Error: {error}", file=sys.stderr)
    return 1


def cmd_index(args: argparse.Namespace) -> int:
    # deferred: the RAG modules (langchain_core: ~400 ms) load only for the commands that use them
    from engine.rag.documents import RagInputError
    from engine.rag.embeddings import EmbedderError
    from engine.rag.index import index_database
    from engine.rag.store import StoreError

    cfg = load_config(EngineConfig, args.config, flag_overrides(args))
    try:
        report = index_database(
            cfg.rag,
            args.db,
            args.docs,
            args.examples,
            rebuild=args.rebuild,
            show_bar=not args.quiet,
        )
    except (DatabaseError, RagInputError, StoreError, EmbedderError) as err:
        if args.json:
            _print_json({"db": redact(args.db), "error": str(err)})
        print(f"Error: {err}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.summary())
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(describe(load_config(EngineConfig, args.config, flag_overrides(args))))
    return 0


def cmd_run_sql(args: argparse.Namespace) -> int:
    cfg = load_config(EngineConfig, args.config, flag_overrides(args))
    result = run_readonly(args.db, args.sql, timeout_s=cfg.timeout_s, max_rows=cfg.max_rows)
    if args.json:
        _print_json(result.to_dict())
    elif result.ok:
        print(_table(result.columns, [list(r) for r in result.to_dict()["rows"]]))
    if not result.ok:
        print(f"Error: {result.error}", file=sys.stderr)
        return 1
    return 0


def cmd_examples(args: argparse.Namespace) -> int:
    """``examples list|add|remove|import|export``: the pairs saved for one database."""
    # deferred: the RAG modules (langchain_core: ~400 ms) load only for the commands that use them
    from engine.rag.documents import RagInputError
    from engine.rag.embeddings import EmbedderError
    from engine.rag.saved_pairs import PairError, SavedPairs
    from engine.rag.store import StoreError

    cfg = load_config(EngineConfig, args.config, flag_overrides(args))
    examples = SavedPairs(cfg.rag, data_dir(), timeout_s=cfg.timeout_s)
    try:
        check_database(args.db)
        out, text = _EXAMPLE_ACTIONS[args.action](examples, args)
    except (DatabaseError, PairError, RagInputError, StoreError, EmbedderError) as err:
        if args.json:
            _print_json({"db": redact(args.db), "error": str(err)})
        print(f"Error: {err}", file=sys.stderr)
        return 1
    if args.json:
        _print_json({"db": redact(args.db), **out})
    elif text:
        print(text)
    return 0


def _pair_dict(pair: Any) -> dict[str, str]:
    return {"id": pair.id, "question": pair.question, "query": pair.query}


def _examples_list(examples: Any, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    pairs = examples.list(args.db, args.search or "")
    rows = [[p.id, p.question, p.query] for p in pairs]
    text = _table(["id", "question", "query"], rows, len(rows)) if rows else "(no saved pairs)"
    return {"examples": [_pair_dict(p) for p in pairs]}, text


def _examples_add(examples: Any, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    saved = examples.add(args.db, args.question, args.sql)
    where = (
        "added to the database's index at once"
        if saved.indexed
        else "the database has no index yet; indexing it will include the pair"
    )
    verb = "Updated" if saved.replaced else "Saved"
    out = {
        "added": _pair_dict(saved.pair),
        "replaced": [_pair_dict(p) for p in saved.replaced],
        "indexed": saved.indexed,
        "seconds": round(saved.seconds, 3),
    }
    return out, f"{verb} pair {saved.pair.id}: {where}"


def _examples_remove(examples: Any, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    # deferred: the RAG modules load only for the commands that use them (see cmd_examples)
    from engine.rag.saved_pairs import PairError, pair_id

    ids = list(args.id or []) + [pair_id(q) for q in args.question or []]
    if not ids:
        raise PairError("Say which pair: --id ID or --question TEXT", "no pair given")
    removed = examples.remove(args.db, ids)
    if not removed:
        raise PairError(f"No saved pair matches {', '.join(ids)}", "not found")
    return {"removed": [_pair_dict(p) for p in removed]}, f"Removed {len(removed)} pair(s)"


def _examples_import(examples: Any, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    report = examples.import_file(args.db, args.file)
    return {"imported": asdict(report)}, report.summary(Path(args.file).name)


def _examples_export(examples: Any, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    # deferred: the RAG modules load only for the commands that use them (see cmd_examples)
    from engine.rag.saved_pairs import dump

    if not args.out:  # the pairs themselves on stdout, Spider's JSON shape
        sys.stdout.write(dump(examples.book.pairs(args.db)))
        args.json = False
        return {}, ""
    n = examples.export(args.db, args.out)
    return {"exported": n, "file": args.out}, f"Exported {n} pair(s) to {args.out}"


_EXAMPLE_ACTIONS = {
    "list": _examples_list,
    "add": _examples_add,
    "remove": _examples_remove,
    "import": _examples_import,
    "export": _examples_export,
}


def _add_examples_parser(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", required=True, help="SQLite database file")
    common.add_argument("--json", action="store_true", help="one JSON object on stdout")
    common.add_argument("--config", help="engine YAML config (rag: section, timeout_s)")
    add_setting_flags(common, EngineConfig, [("rag.store_dir", "--store")])
    examples = sub.add_parser(
        "examples",
        help="the solved question/SQL pairs saved for a database (retrieved for similar questions)",
    )
    actions = examples.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="list (and search) the pairs")
    listing.add_argument("--search", metavar="TEXT", help="only pairs containing these words")
    add = actions.add_parser(
        "add", parents=[common], help="save a pair (its SQL must run) and index it at once"
    )
    add.add_argument("--question", required=True)
    add.add_argument("--sql", required=True)
    remove = actions.add_parser("remove", parents=[common], help="delete pairs")
    remove.add_argument("--id", action="append", help="a pair's id (from list); repeatable")
    remove.add_argument("--question", action="append", help="a pair's question; repeatable")
    imp = actions.add_parser("import", parents=[common], help="save the pairs of a file")
    imp.add_argument("file", help="question/SQL pairs: .json list, .jsonl or .csv")
    export = actions.add_parser("export", parents=[common], help="write the pairs out")
    export.add_argument(
        "--out", metavar="FILE", help=".json, .jsonl or .csv (default: JSON on stdout)"
    )
    examples.set_defaults(func=cmd_examples)


# The settings ``ask`` has a flag for; --set KEY=VALUE reaches every other one.
_ASK_FLAGS = [
    "model",
    "adapter",
    "load_in_4bit",
    "max_attempts",
    ("rag.store_dir", "--store"),
    ("rag.enabled", "--rag"),  # and --no-rag: the whole schema, no retrieval
]

_DB_HELP = (
    "SQLite or DuckDB file, a database URL: postgresql+psycopg://USER@HOST:PORT/DB, "
    "mysql+pymysql://USER@HOST:PORT/DB, duckdb:///FILE (a password: ${ENV_VAR} in its place), "
    "a workspace (workspace:NAME) or a folder of CSV/Parquet/Excel/JSON files (read in place)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question about a database")
    ask.add_argument("question", nargs="?", default="")
    ask.add_argument("--db", required=True, help=_DB_HELP)
    ask.add_argument("--config", help="engine YAML config (python -m engine config lists all)")
    ask.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ask.add_argument(
        "--history",
        metavar="FILE_OR_JSON",
        help="the conversation so far, so QUESTION may follow up on it: a JSON file or the "
        'JSON itself, a list of earlier turns, each {"question": ..., "sql": ...} or '
        "[question, sql]",
    )
    add_setting_flags(ask, EngineConfig, _ASK_FLAGS)
    ask.set_defaults(func=cmd_ask)

    index = sub.add_parser("index", help="build the RAG index of a database")
    index.add_argument("--db", required=True, help=_DB_HELP)
    index.add_argument("--docs", metavar="DIR", help="folder of .md/.txt/.pdf documentation")
    index.add_argument(
        "--examples", metavar="FILE", help="question/SQL pairs (.json list, .jsonl or .csv)"
    )
    index.add_argument(
        "--rebuild",
        action="store_true",
        help="move an unreadable or old-format store aside and start a new one",
    )
    index.add_argument("--config", help="engine YAML config (its rag: section)")
    add_setting_flags(index, EngineConfig, [("rag.store_dir", "--store")])
    index.add_argument("--json", action="store_true", help="the report as one JSON object")
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    index.set_defaults(func=cmd_index)

    run = sub.add_parser("run-sql", help="run SQL read-only with the engine's safety rules")
    run.add_argument("sql")
    run.add_argument("--db", required=True, help=_DB_HELP)
    run.add_argument("--config", help="engine YAML config (its timeout_s and max_rows)")
    add_setting_flags(run, EngineConfig, [("timeout_s", "--timeout"), "max_rows"])
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=cmd_run_sql)

    _add_examples_parser(sub)
    add_mcp_parser(sub)  # python -m engine mcp: engine/mcp_server.py
    install_models.add_parser(sub)
    doctor.add_parser(sub)

    config = sub.add_parser(
        "config",
        help="print every setting with its value and what it does (YAML: the defaults, or "
        "--config FILE and --set applied)",
    )
    config.add_argument("--config", help="engine YAML config to apply to the defaults")
    add_setting_flags(config, EngineConfig, [])
    config.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    except ModelLoadError as err:  # one line, not a traceback, for a CLI user
        print(f"Error: {err}", file=sys.stderr)
        return 1
