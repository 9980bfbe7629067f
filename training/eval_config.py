"""What an evaluation run is: :class:`EvalConfig` (data, engine, output; which settings a
resumed run must match), its progress (:class:`EvalProgress`), the files it writes, and
:func:`make_config`, which layers the chat's engine settings, the eval YAML and overrides
the way every caller does (the CLI, the Evaluation tab, benchmarks).

The run itself is :func:`training.evaluate.run`; this module imports nothing heavy, so the
app reads a run's settings without loading the evaluation code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ConfigError, EngineConfig, load_config, read_yaml
from engine.db.url import redact, storable
from engine.paths import REPO_ROOT
from engine.setting import setting

PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"
# The chat's settings, which evaluation starts from, and evaluation's own defaults.
ENGINE_CONFIG = REPO_ROOT / "configs" / "engine.yaml"
EVAL_CONFIG = REPO_ROOT / "configs" / "eval.yaml"
# Settings that change predictions: a resumed run must match them (and the engine section,
# less its thread count).
IDENTITY_KEYS = ("data", "split", "limit", "seed", "synthetic_rows", "holdout", "db_ids")


@dataclass
class EvalConfig:
    data: str = setting(
        "samples", "Spider folder, seed-format folder/file, pairs JSON, or 'samples'"
    )
    split: str | None = setting(None, "split name (Spider file stem or datasets split)")
    limit: int | None = setting(None, "evaluate a seeded random sample of this many questions")
    seed: int = setting(0, "the sample's seed (and holdout's split)")
    # The validation side of training.data.split_by_database(all examples, holdout, seed),
    # as training splits.
    holdout: float | None = setting(
        None, "only the databases training held out with this val_fraction"
    )
    db_ids: list[str] | None = setting(None, "only these databases (db_ids)")
    out: str = setting("", "output folder (required to run)")
    # The CLI reads the chat's settings, configs/engine.yaml; engine.batch_size questions
    # are asked per call.
    engine: EngineConfig = setting(factory=EngineConfig, help="the engine evaluated")
    rag_store: str = setting("", "vector store folder; empty: OUT/vector_db, the run's own")
    synthetic_rows: int = setting(12, "rows per table in databases generated from DDL")
    resume: bool = setting(True, "continue a run already in out (false: start over)")
    # "*" covers every db_id and "{db_id}" in a URL is replaced, so
    # {"*": "postgresql+psycopg://USER@HOST:PORT/{db_id}"} is a server + database name.
    # Gold SQL is transpiled from SQLite to that dialect. No literal passwords: ${ENV_VAR}.
    db_urls: dict[str, str] = setting(
        factory=dict, help="db_id -> database URL (or DuckDB file) in place of its SQLite file"
    )

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit must be at least 1 (or null for all)")
        if self.holdout is not None and not 0 < self.holdout < 1:
            raise ConfigError("holdout is the validation fraction of training: 0 < holdout < 1")
        if isinstance(self.db_ids, str):
            self.db_ids = [d.strip() for d in self.db_ids.split(",") if d.strip()]
        if self.synthetic_rows < 1:
            raise ConfigError("synthetic_rows must be at least 1")
        self.db_urls = dict(self.db_urls or {})
        for db_id, url in self.db_urls.items():
            if "://" in url and storable(url) != url:  # run.json records the settings
                raise ConfigError(
                    f"db_urls.{db_id}: no password in the URL ({redact(url)}); name an "
                    "environment variable in its place: USER:${VAR}@HOST"
                )

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        settings = self.settings()
        engine = {k: v for k, v in settings["engine"].items() if k != "threads"}
        # Older runs have neither; at these defaults they change no answer, so a run begun
        # before they existed resumes.
        generation = engine["generation"]
        for key, default in (("selector", "majority"), ("vote_below", None)):
            if generation.get(key) == default:
                generation.pop(key)
        extra = {"db_urls": self.db_urls} if self.db_urls else {}  # older runs have none
        return {**{k: settings[k] for k in IDENTITY_KEYS}, **extra, "engine": engine}


@dataclass
class EvalProgress:
    done: int = 0
    total: int = 0
    correct: int = 0
    scored: int = 0
    elapsed_s: float = 0.0
    message: str = ""

    @property
    def eta_s(self) -> float | None:
        new = self.done - self._start_done
        if new <= 0 or self.elapsed_s <= 0:
            return None
        return (self.total - self.done) * self.elapsed_s / new

    _start_done: int = 0  # resumed questions do not count towards the speed

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("_")}
        d["eta_s"] = self.eta_s
        return d


ProgressFn = Callable[[EvalProgress], None]


def make_config(
    engine: EngineConfig | dict[str, Any] | str | Path | None = ENGINE_CONFIG,
    path: str | Path | None = EVAL_CONFIG,
    overrides: dict[str, Any] | None = None,
) -> EvalConfig:
    """The evaluation config: ``engine`` (the chat's settings: a config, a dict or a YAML
    file) under the eval YAML ``path`` (configs/eval.yaml), then dotted-key ``overrides``."""
    if isinstance(engine, EngineConfig):
        engine = dataclasses.asdict(engine)
    elif isinstance(engine, (str, Path)):
        engine = read_yaml(engine)
    return load_config(EvalConfig, path, overrides, base={"engine": engine or {}})
