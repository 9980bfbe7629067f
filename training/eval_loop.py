"""The steps of an evaluation run: choosing the questions, resuming, and one batch: database
and prompt per question, batched generation with optional self-correction, scoring.

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

from engine.executor import QueryResult
from engine.prompt import Message, build_messages, build_repair_messages
from engine.schema import Schema

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What batches of one run share: generated databases, schemas, indexed databases."""

    dbs: Any  # training.eval_dbs.SyntheticDatabases
    schemas: dict[Path, Schema] = field(default_factory=dict)
    indexed: set[Path] = field(default_factory=set)


@dataclass
class Item:
    index: int
    example: Any  # training.data.Example
    db_path: Path | None = None
    db_kind: str | None = None  # real | synthetic
    db_error: str | None = None
    schema: Schema | None = None
    gold_result: QueryResult | None = None
    messages: list[Message] = field(default_factory=list)
    raw_output: str = ""
    sql: str | None = None
    error: str | None = None
    result: QueryResult | None = None
    attempts: int = 0
    notes: list[str] = field(default_factory=list)


def select_examples(cfg: Any) -> Any:
    """A :class:`training.data.LoadReport` with the questions to evaluate (see EvalConfig)."""
    from training.data import load_examples, split_by_database

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
    from engine.config import ConfigError

    done: dict[int, dict] = {}
    if resume and run_file.is_file() and preds.is_file():
        previous = json.loads(run_file.read_text()).get("identity", {})
        if previous != identity:
            changed = sorted(k for k in identity if previous.get(k) != identity[k])
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


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:300]


def ensure_index(retriever: Any, db_path: Path, ctx: RunContext) -> None:
    """Index a database for RAG without question/SQL examples (the bundled sample pairs would
    hand the model the very answers being evaluated)."""
    from engine.rag.index import index_database
    from engine.rag.retriever import RagRetriever

    if db_path in ctx.indexed or not isinstance(retriever, RagRetriever):
        return
    if retriever.store.info(db_path) is None:
        with tempfile.TemporaryDirectory() as tmp:
            no_examples = Path(tmp) / "none.json"
            no_examples.write_text("[]")
            index_database(retriever.cfg, db_path, examples=no_examples, store=retriever.store)
    ctx.indexed.add(db_path)


def prepare(item: Item, engine: Any, ctx: RunContext, cfg: Any) -> None:
    """Find (or build) the database, run the gold query, build the first prompt."""
    from engine.schema import read_schema
    from training.metrics import run_query

    ex = item.example
    if ex.db_path:
        item.db_path, item.db_kind = Path(ex.db_path), "real"
    elif ex.ddl:
        item.db_path, item.db_error = ctx.dbs.path_for(ex.ddl, ex.sql)
        item.db_kind = "synthetic" if item.db_path else None
    else:
        item.db_error = "No database for this question"
    if item.db_path is not None:
        try:
            if item.db_path not in ctx.schemas:
                ctx.schemas[item.db_path] = read_schema(item.db_path)
            item.schema = ctx.schemas[item.db_path]
            item.gold_result = run_query(item.db_path, ex.sql, cfg.timeout_s, cfg.max_rows)
        except Exception as err:  # unreadable file: the question stays, unscored
            item.db_path, item.db_kind, item.db_error = None, None, _one_line(err)
    fmt = engine.backend.prompt_format
    if engine.retriever is not None and item.db_path is not None and item.schema is not None:
        try:
            ensure_index(engine.retriever, item.db_path, ctx)
            item.messages = engine.build_messages(ex.question, item.db_path, item.schema)[0]
            return
        except Exception as err:  # retrieval failed: fall back to the full schema
            item.notes.append(f"retrieval failed: {_one_line(err)}")
    item.messages = build_messages(ex.question, ex.schema, fmt=fmt)


def generate(backend: Any, prompts: list[str], gen: Any) -> list[tuple[str, str | None]]:
    """(text, error) per prompt; a batch that raises is retried one prompt at a time."""
    try:
        return [(text, None) for text in backend.generate(prompts, gen)]
    except Exception as err:
        if len(prompts) == 1:
            return [("", f"generation failed: {_one_line(err)}")]
        log.warning("batch generation failed (%s); retrying one by one", _one_line(err))
    return [generate(backend, [p], gen)[0] for p in prompts]


def _check(item: Item, raw: str, cfg: Any) -> None:
    """The engine's checks (``TextToSQL.check_and_run``) with the evaluation's timeout/row cap."""
    from engine.sql_check import extract_sql, validate_sql
    from training.metrics import run_query

    item.sql, item.error, item.result = extract_sql(raw), None, None
    if item.sql is None:
        item.error = "The model's answer contains no SQL query."
    elif item.db_path is not None and item.schema is not None:
        check = validate_sql(item.sql, item.schema)
        if not check.ok:
            item.error = check.message
        else:
            item.result = run_query(item.db_path, item.sql, cfg.timeout_s, cfg.max_rows)
            item.error = item.result.error


def run_attempts(engine: Any, items: list[Item], cfg: Any) -> None:
    """Generate for all items in one batch; re-ask the failed ones up to ``max_attempts``."""
    backend = engine.backend
    pending = items
    for attempt in range(1, cfg.max_attempts + 1):
        if not pending:
            break
        prompts = [backend.render(it.messages) for it in pending]
        retry = []
        for item, (raw, gen_error) in zip(
            pending, generate(backend, prompts, cfg.generation), strict=True
        ):
            item.attempts, item.raw_output = attempt, raw
            if gen_error:
                item.sql, item.error, item.result = None, gen_error, None
                continue
            _check(item, raw, cfg)
            if item.error and attempt < cfg.max_attempts:
                failed = item.sql or raw.strip()[:500]
                item.messages = build_repair_messages(
                    item.messages, failed, item.error, backend.prompt_format
                )
                retry.append(item)
        pending = retry


def _valid(item: Item) -> float:
    from training.metrics import METRICS

    if not item.sql:
        return 0.0
    if item.schema is not None:
        return METRICS["valid_sql"](item.sql, item.example.sql, schema=item.schema)
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        return float(sqlglot.parse_one(item.sql, read="sqlite") is not None)
    except SqlglotError:
        return 0.0


def score(item: Item, cfg: Any) -> dict[str, Any]:
    from training.metrics import METRICS, STRING_METRICS, GoldSQLError, execution_match, hardness

    ex = item.example
    rec = _record(item, error=item.error, hardness=hardness(ex.sql))
    rec.update({name: round(METRICS[name](item.sql or "", ex.sql), 4) for name in STRING_METRICS})
    rec["valid_sql"] = _valid(item)
    if item.db_path is not None and item.gold_result is not None:
        try:
            rec["correct"] = bool(
                execution_match(
                    item.sql,
                    ex.sql,
                    db_path=item.db_path,
                    timeout_s=cfg.timeout_s,
                    max_rows=cfg.max_rows,
                    gold_result=item.gold_result,
                    pred_result=item.result,
                )
            )
        except GoldSQLError as err:
            rec["gold_error"] = str(err)
    if item.notes:
        rec["notes"] = item.notes
    return rec


def evaluate_batch(
    engine: Any, batch: list[tuple[int, Any]], ctx: RunContext, cfg: Any
) -> list[dict]:
    """Records for ``batch`` ((index, Example) pairs), in order."""
    started = time.perf_counter()
    items = [Item(index=i, example=ex) for i, ex in batch]
    for item in items:
        try:
            prepare(item, engine, ctx, cfg)
        except Exception as err:
            item.db_error = item.db_error or _one_line(err)
            item.messages = build_messages(item.example.question, item.example.schema)
    run_attempts(engine, items, cfg)
    records = []
    for item in items:
        try:
            records.append(score(item, cfg))
        except Exception as err:  # a scorer bug must not end the run
            log.exception("scoring failed for question %d", item.index)
            records.append(_failed_record(item, err))
    per_question = (time.perf_counter() - started) / max(1, len(items))
    for rec in records:
        rec["seconds"] = round(per_question, 3)
    return records


def _record(item: Item, *, error: str | None, hardness: str) -> dict[str, Any]:
    """The fields every prediction record has, scored or not."""
    ex = item.example
    return {
        "index": item.index,
        "db_id": ex.db_id,
        "question": ex.question,
        "gold": ex.sql,
        "prediction": item.sql,
        "correct": None,
        "error": error,
        "gold_error": None,
        "db_error": item.db_error,
        "db_kind": item.db_kind,
        "attempts": item.attempts,
        "hardness": hardness,
        "raw_output": item.raw_output,
    }


def _failed_record(item: Item, err: BaseException) -> dict[str, Any]:
    from training.metrics import STRING_METRICS

    return {
        **_record(item, error=f"scoring failed: {_one_line(err)}", hardness="unknown"),
        "valid_sql": 0.0,
        **dict.fromkeys(STRING_METRICS, 0.0),
    }
