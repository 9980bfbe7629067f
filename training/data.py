"""Training data: rows from Spider, the seed's instruction/input/response format, or the
sample databases' pairs, turned into :class:`Example` objects and prompt/completion rows.

Bad rows (missing fields, SQL that sqlglot cannot parse, a missing database) are skipped and
counted in :class:`LoadReport`, never fatal. Train/validation splits group by database (or by
the schema text when there is none) so no schema is seen on both sides.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot.errors import SqlglotError

from engine.db import read_schema
from engine.paths import SAMPLE_DBS_DIR
from engine.prompt import DEFAULT_FORMAT, PromptFormat, build_training_example

SAMPLES = "samples"
SEED_FIELDS = ("instruction", "input", "response")
# sql-create-context style names for the same three fields
SEED_ALIASES = {"question": "instruction", "context": "input", "answer": "response"}


class DataError(ValueError):
    """The data source itself cannot be read (a bad row is skipped instead)."""


@dataclass
class Example:
    question: str
    sql: str
    schema: str  # schema text for the prompt (DDL)
    db_id: str | None = None
    db_path: Path | None = None  # a real SQLite file when the source has one
    ddl: str | None = None  # seed-format CREATE TABLE text when there is no database


@dataclass
class LoadReport:
    examples: list[Example]
    skipped: collections.Counter = field(default_factory=collections.Counter)
    kind: str = "seed"  # "spider" | "seed" | "pairs"

    def summary(self) -> str:
        text = f"{len(self.examples)} {self.kind} examples"
        if self.skipped:
            text += " (skipped: " + ", ".join(f"{n} {r}" for r, n in self.skipped.items()) + ")"
        return text


def load_examples(
    source: str | Path, split: str | None = None, limit: int | None = None, seed: int = 0
) -> LoadReport:
    """Read examples from ``source``; see the module docstring for the accepted formats.

    ``split`` picks a Spider file stem (``train``, ``dev``; by default ``train``, or the
    folder's only one) or a ``datasets`` split (``train``, ``valid``, ``test``). ``limit`` keeps a seeded random sample of valid rows (Spider files are
    sorted by database, so the first N would cover only a few schemas); rows are checked in
    sampled order until ``limit`` are kept, so ``skipped`` counts only the rows looked at.
    """
    kind, rows, db_root = _open_source(source, split)
    order = list(range(len(rows)))
    if limit is not None:
        random.Random(seed).shuffle(order)
    skipped: collections.Counter = collections.Counter()
    kept: list[tuple[int, Example]] = []
    schemas: dict[str, str | None] = {}
    for i in order:
        if limit is not None and len(kept) >= limit:
            break
        row = rows[i]
        if kind == "seed":
            example, reason = _seed_example(row)
        else:
            example, reason = _spider_example(row, db_root, schemas)
        if reason is None and example is not None:
            reason = _sql_problem(example.sql)
        if reason is not None:
            skipped[reason] += 1
        else:
            kept.append((i, example))  # type: ignore[arg-type]
    kept.sort(key=lambda pair: pair[0])
    return LoadReport(examples=[e for _, e in kept], skipped=skipped, kind=kind)


def split_by_database(
    examples: list[Example], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(train, validation), grouped by ``db_id`` (or by the schema text's hash).

    Whole groups go to validation, in a seeded random order, until it holds at least
    ``val_fraction`` of the examples; both sides keep at least one group when there are two.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    groups: dict[str, list[int]] = collections.defaultdict(list)
    for i, ex in enumerate(examples):
        groups[_group_key(ex)].append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    target = val_fraction * len(examples)
    val_idx: set[int] = set()
    for key in keys[:-1]:  # the last group always stays in train
        if len(val_idx) >= target or val_fraction == 0:
            break
        val_idx.update(groups[key])
    train = [e for i, e in enumerate(examples) if i not in val_idx]
    val = [e for i, e in enumerate(examples) if i in val_idx]
    return train, val


def to_prompt_completion(example: Example, fmt: PromptFormat = DEFAULT_FORMAT) -> dict:
    """A conversational prompt/completion row for TRL (loss on the completion only), with
    the plain schema prompt; :mod:`training.served_prompts` renders rows as the engine serves
    them (retrieved notes included), which is what training uses when retrieval is on."""
    return build_training_example(example.question, example.schema, example.sql, fmt=fmt)


# --- sources ------------------------------------------------------------------------------


def _open_source(source: str | Path, split: str | None) -> tuple[str, list[dict], Path | None]:
    """(kind, rows, folder where databases live) for any supported source."""
    if str(source) == SAMPLES:
        rows = []
        for f in sorted((SAMPLE_DBS_DIR / "pairs").glob("*.json")):
            rows.extend(_read_json_rows(f, split))
        return "pairs", rows, SAMPLE_DBS_DIR
    path = Path(source).expanduser().resolve()
    if path.is_dir():
        if (path / "database").is_dir():
            file = _spider_split_file(path, split)
            return "spider", _read_json_rows(file, None), path / "database"
        return "seed", _load_from_disk(path, split), None
    if path.is_file():
        rows = _read_file_rows(path, split)
        if rows and {"db_id", "query"} <= set(rows[0]):
            return "pairs", rows, _pairs_db_root(path)
        return "seed", rows, None
    if _looks_like_path(str(source)):
        raise DataError(f"Data source not found: {source}")
    return "seed", _load_hub(str(source), split), None


def _spider_split_file(folder: Path, split: str | None) -> Path:
    """The question file of a Spider folder: ``<split>.json``, else ``train.json``, else the
    only one there is (a folder holding just ``dev.json`` evaluates without ``--split``)."""
    found = sorted(p.stem for p in folder.glob("*.json") if p.stem != "tables")
    if split is None:
        if not found:
            raise DataError(f"No split file (train.json, dev.json) in {folder}")
        if "train" not in found and len(found) > 1:
            # guessing between dev and test would score the wrong questions without a word
            raise DataError(
                f"No train.json and several splits in {folder}: choose one of {', '.join(found)}"
            )
        split = "train" if "train" in found else found[0]
    file = folder / f"{split}.json"
    if not file.is_file():
        raise DataError(f"No split '{split}' in {folder} (found: {', '.join(found)})")
    return file


def _read_file_rows(path: Path, split: str | None) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if suffix == ".json":
        return _read_json_rows(path, split)
    raise DataError(f"Unsupported data file {path.name}: use .json, .jsonl or .csv")


def _read_json_rows(path: Path, split: str | None) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"Cannot read {path}: {err}") from err
    if isinstance(data, dict):  # {"train": [...], "test": [...]}
        key = split or ("train" if "train" in data else next(iter(data), None))
        if key not in data:
            raise DataError(f"No split '{key}' in {path} (found: {', '.join(data)})")
        data = data[key]
    if not isinstance(data, list):
        raise DataError(f"{path} must hold a list of rows")
    return [r for r in data if isinstance(r, dict)]


def _load_from_disk(path: Path, split: str | None) -> list[dict]:
    import datasets  # deferred: datasets takes ~1.5 s to import

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as err:
        raise DataError(f"{path} is neither a Spider folder nor a saved datasets folder") from err
    return _dataset_rows(ds, split, str(path))


def _load_hub(name: str, split: str | None) -> list[dict]:
    import datasets  # deferred: datasets takes ~1.5 s to import

    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as err:  # offline, unknown id, bad split: one clear line
        raise DataError(f"Cannot load dataset '{name}': {str(err).splitlines()[0]}") from err
    return _dataset_rows(ds, None, name)


def _dataset_rows(ds: Any, split: str | None, name: str) -> list[dict]:
    if hasattr(ds, "keys"):  # DatasetDict
        key = split or ("train" if "train" in ds else next(iter(ds.keys())))
        if key not in ds:
            raise DataError(f"No split '{key}' in {name} (found: {', '.join(ds.keys())})")
        ds = ds[key]
    return ds.to_list()


def _pairs_db_root(path: Path) -> Path:
    """Where a pairs file's databases live: beside it, one level up, or in ``database/``."""
    for root in (path.parent, path.parent.parent, path.parent / "database"):
        if any(root.glob("*.sqlite")) or (root / "database").is_dir():
            return root
    return path.parent.parent


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or text.count("/") > 1
        or "\\" in text
        or Path(text).suffix.lower() in {".json", ".jsonl", ".csv"}
    )


# --- rows ---------------------------------------------------------------------------------


def _seed_example(row: dict) -> tuple[Example | None, str | None]:
    values = {SEED_ALIASES.get(k, k): v for k, v in row.items()}
    if not all(isinstance(values.get(f), str) and values[f].strip() for f in SEED_FIELDS):
        return None, "missing field"
    ddl = values["input"].strip()
    return Example(
        question=values["instruction"].strip(),
        sql=values["response"].strip(),
        schema=ddl,
        ddl=ddl,
    ), None


def _spider_example(
    row: dict, db_root: Path | None, schemas: dict[str, str | None]
) -> tuple[Example | None, str | None]:
    fields = ("db_id", "question", "query")
    if not all(isinstance(row.get(f), str) and row[f].strip() for f in fields):
        return None, "missing field"
    db_id = row["db_id"]
    db_path = _db_path(db_root, db_id)
    if db_path is None:
        return None, "database missing"
    if db_id not in schemas:
        schemas[db_id] = _schema_text(db_path)
    schema = schemas[db_id]
    if not schema:
        return None, "database unreadable"
    return Example(
        question=row["question"].strip(),
        sql=row["query"].strip(),
        schema=schema,
        db_id=db_id,
        db_path=db_path,
    ), None


def _db_path(root: Path | None, db_id: str) -> Path | None:
    if root is None:
        return None
    for candidate in (root / db_id / f"{db_id}.sqlite", root / f"{db_id}.sqlite"):
        if candidate.is_file():
            return candidate
    return None


def _schema_text(db_path: Path) -> str | None:
    try:
        return read_schema(db_path).ddl() or None
    except Exception:  # a corrupt file is a skipped row, not a crash
        return None


def _sql_problem(sql: str) -> str | None:
    try:
        trees = [t for t in sqlglot.parse(sql, read="sqlite") if t is not None]
    except SqlglotError:
        return "sql does not parse"
    return None if trees else "sql does not parse"


def _group_key(example: Example) -> str:
    if example.db_id:
        return "db:" + example.db_id
    return "ddl:" + hashlib.sha1(example.schema.encode("utf-8")).hexdigest()
