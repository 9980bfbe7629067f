"""The steps of an evaluation run: choosing the questions, resuming, and one batch: the
database and gold result per question, the engine's own answer loop
(:meth:`engine.pipeline.TextToSQL.ask_batch`, exactly what the chat runs), scoring.

Within a batch every failure becomes a field of the record, never an exception: a missing
database, a gold query that fails, generation that raises, SQL that hangs (bounded by the
executor's timeout)."""

from __future__ import annotations

import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from engine.config import ConfigError
from engine.db import Database, QueryResult, open_database
from engine.pipeline import Answer, Request
from engine.rag.index import index_database
from engine.rag.retriever import RagRetriever
from engine.schema import Schema
from training.data import load_examples, split_by_database
from training.metrics import (
    METRICS,
    STRING_METRICS,
    GoldSQLError,
    dequote_string_operands,
    execution_match,
    hardness,
    run_query,
)

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What batches of one run share: generated databases, schemas, indexed databases."""

    dbs: Any  # training.eval_dbs.SyntheticDatabases
    schemas: dict[Database, Schema] = field(default_factory=dict)
    indexed: set[Database] = field(default_factory=set)
    db_urls: dict[str, str] = field(default_factory=dict)  # EvalConfig.db_urls


@dataclass
class Item:
    index: int
    example: Any  # training.data.Example
    db_path: Database | None = None  # a file, or a database URL (EvalConfig.db_urls), opened
    db_kind: str | None = None  # real | synthetic
    db_error: str | None = None
    schema: Schema | None = None
    gold_result: QueryResult | None = None
    answer: Answer | None = None  # what the engine served; None: not asked (no database)
    notes: list[str] = field(default_factory=list)


def select_examples(cfg: Any) -> Any:
    """A :class:`training.data.LoadReport` with the questions to evaluate (see EvalConfig)."""
    if cfg.holdout is None and not cfg.db_ids:
        return load_examples(cfg.data, split=cfg.split, limit=cfg.limit, seed=cfg.seed)
    loaded = load_examples(cfg.data, split=cfg.split, seed=cfg.seed)
    examples = loaded.examples
    if cfg.holdout is not None:
        examples = split_by_database(examples, cfg.holdout, cfg.seed)[1]
    if cfg.db_ids:
        wanted = set(cfg.db_ids)
        examples = [e for e in examples if e.db_id in wanted]
    if cfg.limit is not None and len(examples) > cfg.limit:
        keep = sorted(random.Random(cfg.seed).sample(range(len(examples)), cfg.limit))
        examples = [examples[i] for i in keep]
    loaded.examples = examples
    return loaded


def batches(todo: list[int], examples: list[Any], size: int) -> list[list[tuple[int, Any]]]:
    """``todo``'s questions in batches of at most ``size``, each on one database.

    The questions of a batch share the evaluation of their common prompt start (system
    prompt, schema, sample values: engine/backends/llamacpp_batch.py); two databases in one
    batch share only the system prompt, and every question would evaluate its whole schema
    again. Questions without a database id (seed-format rows, a small CREATE TABLE each)
    share nothing anyway and are batched as they come."""
    groups: dict[Any, list[int]] = {}
    for i in todo:
        groups.setdefault(examples[i].db_id or None, []).append(i)
    out = []
    for indices in groups.values():
        for start in range(0, len(indices), max(1, size)):
            out.append([(i, examples[i]) for i in indices[start : start + size]])
    return out


def read_records(path: Path) -> list[dict]:
    records = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the line being written when the run was interrupted
    return records


def resume_records(
    preds: Path,
    run_file: Path,
    identity: dict[str, Any],
    settings: dict[str, Any],
    resume: bool,
    examples: list[Any],
) -> dict[int, dict]:
    """Records already made for this exact run, by example index; rewrites ``preds`` clean.

    Raises ConfigError when the folder holds a run with other ``identity`` settings.
    """
    done: dict[int, dict] = {}
    if resume and run_file.is_file() and preds.is_file():
        previous = json.loads(run_file.read_text()).get("identity", {})
        if previous != identity:
            before, now = _flat(previous), _flat(identity)
            changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            raise ConfigError(
                f"{run_file.parent} holds a run with other settings ({', '.join(changed)}): "
                "use another --out, or --no-resume to start over"
            )
        for rec in read_records(preds):
            i = rec.get("index")
            if isinstance(i, int) and i < len(examples) and rec.get("gold") == examples[i].sql:
                done[i] = rec
    run_file.write_text(json.dumps({"identity": identity, "settings": settings}, indent=2))
    with open(preds, "w", encoding="utf-8") as f:  # drops a half-written last line
        for i in sorted(done):
            f.write(json.dumps(done[i], ensure_ascii=False) + "\n")
    return done


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (``engine.generation.temperature``)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:300]


def ensure_index(retriever: Any, db_path: Database, ctx: RunContext) -> None:
    """Index a database for RAG without question/SQL examples: neither the bundled sample
    pairs nor the pairs a user saved for it (either would hand the model the very answers
    being evaluated)."""
    if db_path in ctx.indexed or not isinstance(retriever, RagRetriever):
        return
    if retriever.store.info(db_path) is None:
        with tempfile.TemporaryDirectory() as tmp:
            no_examples = Path(tmp) / "none.json"
            no_examples.write_text("[]")
            index_database(
                retriever.cfg,
                db_path,
                examples=no_examples,
                store=retriever.store,
                examples_root=Path(tmp),  # no saved pairs here
            )
    ctx.indexed.add(db_path)


def prepare(item: Item, engine: Any, ctx: RunContext) -> None:
    """Find (or build) the database, run the gold query, index the database for retrieval."""
    ex = item.example
    gold = ex.sql
    url = db_url(ctx.db_urls, ex.db_id)
    ref: str | Path | None = None
    if url:
        ref, item.db_kind = url, "real"
    elif ex.db_path:
        ref, item.db_kind = Path(ex.db_path), "real"
    elif ex.ddl:
        ref, item.db_error = ctx.dbs.path_for(ex.ddl, ex.sql)
        item.db_kind = "synthetic" if ref else None
    else:
        item.db_error = "No database for this question"
    if ref is None:
        return
    item.db_path = open_database(ref)  # the question's database, opened once
    if url:
        gold = transpile_gold(ex.sql, item.db_path.dialect)
    try:
        if item.db_path not in ctx.schemas:
            ctx.schemas[item.db_path] = item.db_path.read_schema()
        item.schema = ctx.schemas[item.db_path]
        item.gold_result = run_query(item.db_path, gold, engine.timeout_s, engine.max_rows)
    except Exception as err:  # unreadable file: the question stays, unscored
        item.db_path, item.db_kind, item.db_error = None, None, _one_line(err)
        return
    if engine.retriever is not None:
        try:
            ensure_index(engine.retriever, item.db_path, ctx)
        except Exception as err:  # the engine answers from the whole schema then
            item.notes.append(f"indexing failed: {_one_line(err)}")


def db_url(db_urls: dict[str, str], db_id: str | None) -> str | None:
    """The URL ``db_urls`` gives ``db_id`` (its own entry, else ``"*"``), ``{db_id}`` filled."""
    url = db_urls.get(db_id or "") or db_urls.get("*")
    return url.replace("{db_id}", db_id or "") if url else None


def transpile_gold(sql: str, dialect: str) -> str:
    """Gold SQL written for SQLite, in ``dialect`` (sqlglot); as it was when that fails.

    Double-quoted strings ("France"), which SQLite reads as text, become string literals
    first: other engines would read them as column names. What sqlglot does not rewrite stays
    SQLite's: a bare column beside an aggregate fails on DuckDB (and on PostgreSQL unless it
    depends on the grouped key); such questions are recorded with their gold error, unscored."""
    if dialect == "sqlite":
        return sql
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
        dequote_string_operands(tree)
        # PostgreSQL (before 16) and MySQL want a name for every subquery in FROM
        for i, sub in enumerate(tree.find_all(exp.Subquery)):
            if not sub.alias and isinstance(sub.parent, exp.From | exp.Join):
                sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"_sub{i}")))
        return tree.sql(dialect=dialect)
    except SqlglotError:
        return sql


def _valid(item: Item) -> float:
    sql = item.answer.sql if item.answer else None
    if not sql:
        return 0.0
    if item.schema is not None:
        return METRICS["valid_sql"](sql, item.example.sql, schema=item.schema)
    try:
        return float(sqlglot.parse_one(sql, read="sqlite") is not None)
    except SqlglotError:
        return 0.0


def score(item: Item, engine: Any) -> dict[str, Any]:
    """The record of one question: what the engine served, scored against the gold query.

    Execution accuracy compares the rows the engine served; an answer the engine refused
    (failed checking or execution) is wrong, as it is for a chat user.
    """
    ex, answer = item.example, item.answer
    error = answer.error if answer is not None else item.db_error
    rec = _record(item, error=error, hardness=hardness(ex.sql))
    prediction = answer.sql if answer is not None else None
    rec.update({name: round(METRICS[name](prediction or "", ex.sql), 4) for name in STRING_METRICS})
    rec["valid_sql"] = _valid(item)
    if item.db_path is not None and item.gold_result is not None and answer is not None:
        served = QueryResult(answer.columns, [tuple(r) for r in answer.rows])
        try:
            rec["correct"] = bool(
                execution_match(
                    prediction if answer.ok else None,
                    ex.sql,
                    db_path=item.db_path,
                    gold_result=item.gold_result,
                    pred_result=served,
                )
            )
        except GoldSQLError as err:
            rec["gold_error"] = str(err)
    if item.notes:
        rec["notes"] = item.notes
    return rec


def evaluate_batch(engine: Any, batch: list[tuple[int, Any]], ctx: RunContext) -> list[dict]:
    """Records for ``batch`` ((index, Example) pairs), in order."""
    started = time.perf_counter()
    items = [Item(index=i, example=ex) for i, ex in batch]
    for item in items:
        try:
            prepare(item, engine, ctx)
        except Exception as err:
            item.db_path, item.db_error = None, item.db_error or _one_line(err)
    asked = [item for item in items if item.db_path is not None]
    answers = engine.ask_batch([Request(it.example.question, it.db_path) for it in asked])
    for item, answer in zip(asked, answers, strict=True):
        item.answer = answer
    records = []
    for item in items:
        try:
            records.append(score(item, engine))
        except Exception as err:  # a scorer bug must not end the run
            log.exception("scoring failed for question %d", item.index)
            records.append(_failed_record(item, err))
    per_question = (time.perf_counter() - started) / max(1, len(items))
    for rec in records:
        rec["seconds"] = round(per_question, 3)
    return records


def _record(item: Item, *, error: str | None, hardness: str) -> dict[str, Any]:
    """The fields every prediction record has, scored or not."""
    ex, answer = item.example, item.answer
    return {
        "index": item.index,
        "db_id": ex.db_id,
        "question": ex.question,
        "gold": ex.sql,
        "prediction": answer.sql if answer else None,
        "correct": None,
        "error": error,
        "gold_error": None,
        "db_error": item.db_error,
        "db_kind": item.db_kind,
        "attempts": answer.attempts if answer else 0,
        "candidates": answer.candidates if answer else 0,
        "votes": answer.votes if answer else 0,
        # mean token log-probabilities (None: unknown): the served answer's, and the first
        # greedy answer's, from which a confidence gate's threshold can be chosen offline
        "confidence": answer.confidence if answer else None,
        "greedy_confidence": answer.greedy_confidence if answer else None,
        "hardness": hardness,
        "raw_output": answer.raw_output if answer else "",
        "backend": answer.backend if answer else None,
    }


def _failed_record(item: Item, err: BaseException) -> dict[str, Any]:
    return {
        **_record(item, error=f"scoring failed: {_one_line(err)}", hardness="unknown"),
        "valid_sql": 0.0,
        **dict.fromkeys(STRING_METRICS, 0.0),
    }
