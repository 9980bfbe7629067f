"""Evaluate a text-to-SQL model: ``python -m training.evaluate`` (CLI), :func:`run` (Python),
:class:`EvalJob` (background thread for the app).

Examples come from :func:`training.data.load_examples` (the loaders training uses), prompts
from the engine's own prompt builder (with the RAG retriever when ``rag`` is on), SQL from
batched generation (left padding, greedy unless a temperature is set, stopping at the end of
the statement). Each prediction is checked and executed the way the engine does it
(extract_sql, validate_sql, then run_readonly with a timeout), optionally repaired
(``max_attempts`` > 1), scored with :mod:`training.metrics`, and appended to
``OUT/predictions.jsonl`` at once, so an interrupted run resumes where it stopped. At the
end ``OUT/metrics.json``, ``OUT/report.md`` and ``OUT/plot.png`` are written.

``python -m training.evaluate compare DIR1 DIR2 ...`` prints one table of several runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import ConfigError, load_config, parse_overrides
from engine.generate import GenerationConfig
from engine.models import DEFAULT_MODEL
from engine.rag.config import RagConfig

log = logging.getLogger(__name__)
PREDICTIONS = "predictions.jsonl"
RUN_FILE = "run.json"
# Settings that change predictions: a resumed run must match them.
IDENTITY_KEYS = (
    "data", "split", "limit", "seed", "model", "adapter", "load_in_4bit", "backend", "rag",
    "max_attempts", "synthetic_rows", "generation", "holdout", "db_ids",
)  # fmt: skip


@dataclass
class EvalRagConfig(RagConfig):
    """The engine's RAG settings, off unless asked for; ``store_dir`` empty: OUT/vector_db."""

    enabled: bool = False


@dataclass
class EvalConfig:
    data: str = "samples"  # Spider folder, seed-format folder/file, pairs JSON, or "samples"
    split: str | None = None
    limit: int | None = None  # a seeded random sample of this many questions
    seed: int = 0
    # Only databases training did not see: the validation side of
    # training.data.split_by_database(all examples, holdout, seed), as training splits.
    holdout: float | None = None
    db_ids: list[str] | None = None  # only these databases
    out: str = ""  # output folder (required to run)
    model: str | None = DEFAULT_MODEL  # preset, local folder or hub id; None: adapter's base
    adapter: str | None = None
    load_in_4bit: bool = False
    backend: str = "auto"  # auto (llama.cpp on CPU when installed) | llamacpp | transformers
    max_attempts: int = 1  # 1 = no self-correction
    batch_size: int = 4
    num_threads: int | None = None  # CPU threads (torch and llama.cpp); 1 can win when busy
    timeout_s: float = 5.0  # per query (gold and predicted)
    max_rows: int = 100_000
    synthetic_rows: int = 12  # rows per table in databases generated from DDL
    resume: bool = True
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    rag: EvalRagConfig = field(default_factory=EvalRagConfig)

    def __post_init__(self) -> None:
        g = self.generation
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit must be at least 1 (or null for all)")
        if self.holdout is not None and not 0 < self.holdout < 1:
            raise ConfigError("holdout is the validation fraction of training: 0 < holdout < 1")
        if isinstance(self.db_ids, str):
            self.db_ids = [d.strip() for d in self.db_ids.split(",") if d.strip()]
        if self.max_attempts < 1 or self.batch_size < 1 or self.synthetic_rows < 1:
            raise ConfigError("max_attempts, batch_size and synthetic_rows must be at least 1")
        if self.timeout_s <= 0 or self.max_rows < 1:
            raise ConfigError("timeout_s must be > 0 and max_rows >= 1")
        if g.temperature < 0 or g.top_k < 0 or not 0 < g.top_p <= 1 or g.max_new_tokens < 1:
            raise ConfigError(
                "generation: temperature >= 0, top_k >= 0, 0 < top_p <= 1, max_new_tokens >= 1"
            )
        if self.backend not in {"auto", "llamacpp", "transformers"}:
            raise ConfigError(
                f"backend must be auto, llamacpp or transformers, not {self.backend!r}"
            )
        if self.model is None and self.adapter is None:
            raise ConfigError("model may be null only with an adapter (its base model is used)")

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


def _build_engine(cfg: EvalConfig, out: Path) -> Any:
    from engine.config import EngineConfig
    from engine.pipeline import engine_from_config

    # The run's own index: the app's store may hold the very questions being evaluated.
    rag = dataclasses.replace(cfg.rag, store_dir=cfg.rag.store_dir or str(out / "vector_db"))

    ecfg = EngineConfig(
        model=cfg.model,  # type: ignore[arg-type]  # None: the adapter's base model
        adapter=cfg.adapter,
        load_in_4bit=cfg.load_in_4bit,
        backend=cfg.backend,
        max_attempts=cfg.max_attempts,
        timeout_s=cfg.timeout_s,
        max_rows=cfg.max_rows,
        generation=cfg.generation,
        rag=rag,
    )
    if cfg.num_threads:
        import torch

        torch.set_num_threads(cfg.num_threads)
        os.environ["TEXT2SQL_THREADS"] = str(cfg.num_threads)  # read by the llama.cpp backend
    engine = engine_from_config(ecfg, progress=log.info)
    if hasattr(engine.backend, "batch_size"):
        engine.backend.batch_size = cfg.batch_size
    return engine


def run(
    cfg: EvalConfig,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    engine: Any = None,
) -> dict[str, Any]:
    """Evaluate and write OUT/metrics.json, report.md, plot.png; returns the metrics.

    ``should_stop`` is polled between batches: the run then stops, writes metrics for what
    is done (``complete: false``) and can be resumed. ``engine`` (a ``TextToSQL``) skips
    model loading, for tests and for the app's already-loaded model.
    """
    from training.eval_dbs import SyntheticDatabases
    from training.eval_loop import RunContext, evaluate_batch, resume_records, select_examples
    from training.eval_report import summarize, write_outputs

    if not cfg.out:
        raise ConfigError("out (the output folder) is required")
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    loaded = select_examples(cfg)
    examples = loaded.examples
    if cfg.rag.enabled and loaded.kind == "seed":
        raise ConfigError("RAG needs real databases: seed-format data has only CREATE TABLE text")
    settings = cfg.settings()
    identity = {k: settings[k] for k in IDENTITY_KEYS}
    done = resume_records(
        out / PREDICTIONS, out / RUN_FILE, identity, settings, cfg.resume, examples
    )
    todo = [i for i in range(len(examples)) if i not in done]
    state = EvalProgress(done=len(done), total=len(examples), _start_done=len(done))
    state.scored = sum(r["correct"] is not None for r in done.values())
    state.correct = sum(bool(r["correct"]) for r in done.values())
    _report(progress, state, started, f"{loaded.summary()}; {len(done)} done before")
    if todo and engine is None:
        _report(progress, state, started, "Loading the model")
        engine = _build_engine(cfg, out)
    _report(progress, state, started, f"Evaluating {len(todo)} questions")
    with (
        SyntheticDatabases(cfg.synthetic_rows, cfg.seed) as dbs,
        open(out / PREDICTIONS, "a", encoding="utf-8") as f,
    ):
        ctx = RunContext(dbs=dbs)
        for start in range(0, len(todo), cfg.batch_size):
            if should_stop is not None and should_stop():
                _report(progress, state, started, "Cancelled")
                break
            batch = [(i, examples[i]) for i in todo[start : start + cfg.batch_size]]
            for rec in evaluate_batch(engine, batch, ctx, cfg):
                rec["backend"] = engine.backend.name
                f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                done[rec["index"]] = rec
                state.done += 1
                state.scored += rec["correct"] is not None
                state.correct += bool(rec["correct"])
            f.flush()
            _report(progress, state, started, "")
    records = [done[i] for i in sorted(done)]
    data = {
        "source": cfg.data,
        "split": cfg.split,
        "kind": loaded.kind,
        "loaded": len(examples),
        "skipped": dict(loaded.skipped),
        "spider": loaded.kind == "spider" or "spider" in str(cfg.data).lower(),
    }
    backends = sorted({r["backend"] for r in records if r.get("backend")})
    settings["backend"] = " + ".join(backends) or None  # several after resuming elsewhere
    metrics = summarize(records, total=len(examples), settings=settings, data=data)
    metrics["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_outputs(out, metrics)
    return metrics


def _report(fn: ProgressFn | None, state: EvalProgress, started: float, message: str) -> None:
    state.elapsed_s = time.perf_counter() - started
    state.message = message
    if message:
        log.info(message)
    if fn is not None:
        fn(state)


class EvalJob:
    """An evaluation in a background thread: ``start()``, ``snapshot()``, ``cancel()``,
    ``wait()``; ``result`` holds the metrics and ``error`` a one-line failure."""

    def __init__(self, cfg: EvalConfig, engine: Any = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self._progress = EvalProgress()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> EvalJob:
        self._thread = threading.Thread(target=self._work, name="eval-job", daemon=True)
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            self.result = run(self.cfg, self._update, self._stop.is_set, engine=self.engine)
        except Exception as err:  # the UI shows it; the thread must not die silently
            log.exception("evaluation failed")
            self.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"

    def _update(self, state: EvalProgress) -> None:
        with self._lock:
            self._progress = dataclasses.replace(state)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snap = self._progress.to_dict()
        snap["running"] = self.running
        snap["cancelled"] = self._stop.is_set()
        snap["error"] = self.error
        return snap

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def cancel(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.result


# --- CLI ----------------------------------------------------------------------------------

_FLAGS = {  # CLI flag -> config key
    "data": "data", "split": "split", "limit": "limit", "seed": "seed", "out": "out",
    "holdout": "holdout", "db_ids": "db_ids",
    "model": "model", "adapter": "adapter", "backend": "backend", "rag": "rag.enabled",
    "rag_store": "rag.store_dir",
    "max_attempts": "max_attempts", "batch_size": "batch_size", "timeout": "timeout_s",
    "num_threads": "num_threads",
    "temperature": "generation.temperature", "top_k": "generation.top_k",
    "top_p": "generation.top_p", "max_new_tokens": "generation.max_new_tokens",
    "resume": "resume",
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--config", help="eval YAML (e.g. configs/eval.yaml)")
    p.add_argument("--data", help="Spider folder, seed-format folder/file, or 'samples'")
    p.add_argument("--split", help="split name (Spider file stem or datasets split)")
    p.add_argument("--limit", type=int, help="evaluate a seeded random sample of N questions")
    p.add_argument("--seed", type=int)
    p.add_argument("--holdout", type=float, metavar="FRACTION",
                   help="only the databases training held out with this val_fraction")  # fmt: skip
    p.add_argument("--db-ids", help="only these databases (comma-separated db_ids)")
    p.add_argument("--model", help="preset name, local model folder or hub id")
    p.add_argument("--adapter", help="LoRA adapter folder from training")
    p.add_argument("--backend", choices=("auto", "llamacpp", "transformers"))
    p.add_argument("--rag", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--rag-store", help="vector store folder (default: OUT/vector_db)")
    p.add_argument("--temperature", type=float, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--max-attempts", type=int, help="> 1 turns self-correction on")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--num-threads", type=int, help="torch CPU threads")
    p.add_argument("--timeout", type=float, help="seconds per query")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                   help="continue a run in OUT (default) or start over")  # fmt: skip
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", help="output folder")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    overrides = parse_overrides(args.set)
    for flag, key in _FLAGS.items():
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.adapter and args.model is None and "model" not in overrides:
        overrides["model"] = None  # the adapter's recorded base model
    return load_config(EvalConfig, args.config, overrides)


def _tqdm_progress() -> ProgressFn:
    from tqdm import tqdm

    bar: dict[str, Any] = {}

    def update(state: EvalProgress) -> None:
        if "bar" not in bar and state.message.startswith("Evaluating"):
            bar["bar"] = tqdm(total=state.total, initial=state.done, unit="q", dynamic_ncols=True)
        b = bar.get("bar")
        if b is not None:
            b.update(state.done - b.n)
            if state.scored:
                b.set_postfix(exec_acc=f"{state.correct / state.scored:.1%}", refresh=False)
            if state.done >= state.total or state.message == "Cancelled":
                b.close()

    return update


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        from training.eval_report import compare_runs

        cp = argparse.ArgumentParser(prog="python -m training.evaluate compare")
        cp.add_argument("dirs", nargs="+", help="evaluation output folders")
        cp.add_argument("--out", help="also write comparison.md/.csv here")
        cargs = cp.parse_args(argv[1:])
        print(compare_runs(cargs.dirs, cargs.out))
        return 0
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        cfg = config_from_args(args)
        metrics = run(cfg, progress=_tqdm_progress())
    except (ConfigError, ValueError, RuntimeError) as err:  # DataError, ModelLoadError
        print(f"Error: {err}", file=sys.stderr)
        return 2
    keys = ("n", "execution_accuracy", "exact_match", "bleu", "rougeL", "valid_sql_rate",
            "avg_attempts", "questions_per_minute")  # fmt: skip
    print(json.dumps({k: metrics[k] for k in keys}))
    print(f"Wrote {Path(cfg.out) / 'metrics.json'} and report.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
