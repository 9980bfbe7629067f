"""Evaluate a text-to-SQL model: ``python -m training.evaluate`` (CLI), :func:`run` (Python),
:class:`EvalJob` (a background thread). The app runs the CLI in a child process
(training.eval_jobs, ``--events-json``). What a run is, its config and the files it writes,
is :mod:`training.eval_config`.

What is evaluated is what the chat serves: the engine is built from the chat's own settings
(``configs/engine.yaml``: model, retrieval, attempts, generation; flags and the ``engine:``
section of an eval YAML override them) and every question goes through the engine's answer
loop, :meth:`engine.pipeline.TextToSQL.ask_batch`, several questions per call. Only the
scoring is evaluation's own. Examples come from :func:`training.data.load_examples` (the
loaders training uses). Retrieval reads the run's own index (``OUT/vector_db``, tables and
docs but no question/SQL pairs, which would hand the model the answers being evaluated).
Records are appended to ``OUT/predictions.jsonl`` at once, so an interrupted run resumes
where it stopped. At the end ``OUT/metrics.json``, ``OUT/report.md`` and ``OUT/plot.png``
are written.

``python -m training.evaluate compare DIR1 DIR2 ...`` prints one table of several runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import ConfigError, add_setting_flags, describe, flag_overrides
from engine.model_packages import require as require_models
from training.eval_config import (
    ENGINE_CONFIG,
    EVAL_CONFIG,
    PREDICTIONS,
    RUN_FILE,
    EvalConfig,
    EvalProgress,
    ProgressFn,
    make_config,
)
from training.run_lock import run_lock

if TYPE_CHECKING:
    from engine.pipeline import TextToSQL

log = logging.getLogger(__name__)


def build_engine(
    cfg: EvalConfig, out: Path, backend: Any = None, retriever: Any = None
) -> TextToSQL:
    """The engine ``cfg.engine`` describes; ``backend``/``retriever`` reuse loaded ones.

    Retrieval reads the run's own index, filled by ``eval_loop.ensure_index`` without
    question/SQL pairs (the app's store may hold the very questions being evaluated) and
    never indexed on the fly.
    """
    # deferred: the model and retrieval modules (~90 ms) load to evaluate, not for --help
    from engine.factory import engine_from_config

    rag = dataclasses.replace(
        cfg.engine.rag, store_dir=cfg.rag_store or str(out / "vector_db"), auto_index=False
    )
    engine_cfg = dataclasses.replace(cfg.engine, rag=rag)
    return engine_from_config(engine_cfg, retriever, progress=log.info, backend=backend)


def run(
    cfg: EvalConfig,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    backend: Any = None,
    retriever: Any = None,
) -> dict[str, Any]:
    """Evaluate and write OUT/metrics.json, report.md, plot.png; returns the metrics.

    ``should_stop`` is polled between batches: the run then stops, writes metrics for what
    is done (``complete: false``) and can be resumed. ``backend`` (an already-loaded model)
    skips model loading and ``retriever`` replaces the run's own; every other setting of
    the answer loop is ``cfg.engine``'s. One process at a time writes a run folder: a resumed
    run waits for an earlier process of it to stop (:mod:`training.run_lock`).
    """
    if not cfg.out:
        raise ConfigError("out (the output folder) is required")
    if backend is None and retriever is None:  # every missing model named before loading one
        require_models(cfg.engine)
    out = Path(cfg.out).expanduser()
    with run_lock(out, say=log.info):
        return _run(cfg, out, progress, should_stop, backend, retriever)


def _run(
    cfg: EvalConfig,
    out: Path,
    progress: ProgressFn | None,
    should_stop: Callable[[], bool] | None,
    backend: Any,
    retriever: Any,
) -> dict[str, Any]:
    # deferred: the run's modules (retrieval, scoring: ~120 ms) load to evaluate, not for --help
    from training.eval_dbs import SyntheticDatabases
    from training.eval_loop import (
        RunContext,
        batches,
        evaluate_batch,
        resume_records,
        select_examples,
    )
    from training.eval_report import summarize, write_outputs

    started = time.perf_counter()
    loaded = select_examples(cfg)
    examples = loaded.examples
    if cfg.engine.rag.enabled and loaded.kind == "seed":
        # Each question brings its own CREATE TABLE text: nothing to retrieve from.
        log.info("Seed-format data: evaluating without retrieval (one small schema per question)")
        rag = dataclasses.replace(cfg.engine.rag, enabled=False)
        cfg = dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, rag=rag))
    settings = cfg.settings()
    done = resume_records(
        out / PREDICTIONS, out / RUN_FILE, cfg.identity(), settings, cfg.resume, examples
    )
    todo = [i for i in range(len(examples)) if i not in done]
    state = EvalProgress(done=len(done), total=len(examples), _start_done=len(done))
    state.scored = sum(r["correct"] is not None for r in done.values())
    state.correct = sum(bool(r["correct"]) for r in done.values())
    _report(progress, state, started, f"{loaded.summary()}; {len(done)} done before")
    engine = None
    if todo:
        _report(progress, state, started, "Loading the model")
        engine = build_engine(cfg, out, backend, retriever)
    _report(progress, state, started, f"Evaluating {len(todo)} questions")
    with (
        SyntheticDatabases(cfg.synthetic_rows, cfg.seed) as dbs,
        open(out / PREDICTIONS, "a", encoding="utf-8") as f,
    ):
        ctx = RunContext(dbs=dbs, db_urls=cfg.db_urls)
        for batch in batches(todo, examples, cfg.engine.batch_size):
            if should_stop is not None and should_stop():
                _report(progress, state, started, "Cancelled")
                break
            for rec in evaluate_batch(engine, batch, ctx):
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
    settings["served_by"] = " + ".join(backends) or None  # several after resuming elsewhere
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

    def __init__(self, cfg: EvalConfig, backend: Any = None) -> None:
        self.cfg = cfg
        self.backend = backend
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
            self.result = run(self.cfg, self._update, self._stop.is_set, backend=self.backend)
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

# The settings with a flag of their own; --set KEY=VALUE reaches every other one.
_FLAGS = [
    "data", "split", "limit", "seed", "holdout", "db_ids",
    "engine.model", "engine.adapter", "engine.backend", ("engine.rag.enabled", "--rag"),
    "rag_store", "engine.generation.temperature", "engine.generation.top_k",
    "engine.generation.top_p", "engine.generation.max_new_tokens", "engine.max_attempts",
    "engine.batch_size", ("engine.threads", "--threads", "--num-threads"),
    ("engine.timeout_s", "--timeout"), "resume", "out",
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--config", default=str(EVAL_CONFIG),
                   help="evaluation YAML (default: configs/eval.yaml)")  # fmt: skip
    p.add_argument("--engine-config", default=str(ENGINE_CONFIG),
                   help="the engine settings evaluated (default: the chat's, configs/engine.yaml)")  # fmt: skip
    p.add_argument("--db-url", action="append", metavar="DB_ID=URL",
                   help="evaluate DB_ID on this database URL instead of its SQLite file; "
                   "'*=postgresql+psycopg://USER@HOST:PORT/{db_id}' for all (repeatable)")  # fmt: skip
    add_setting_flags(p, EvalConfig, _FLAGS)
    p.add_argument("--print-config", action="store_true",
                   help="print every setting with its value and what it does, and stop")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--events-json", action="store_true",
                   help="progress as JSON lines on stdout (the app's child process)")  # fmt: skip
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """configs/engine.yaml (or --engine-config) under the eval YAML, then flags and --set."""
    overrides = flag_overrides(args)
    if overrides.get("engine.adapter") and "engine.model" not in overrides:
        overrides["engine.model"] = None  # the adapter's recorded base model
    if args.db_url:
        pairs = [item.partition("=") for item in args.db_url]
        bad = [
            item for item, (_, eq, url) in zip(args.db_url, pairs, strict=True) if not (eq and url)
        ]
        if bad:
            raise ConfigError(f"--db-url takes DB_ID=URL, got {bad[0]!r}")
        overrides["db_urls"] = {db_id.strip(): url.strip() for db_id, _, url in pairs}
    return make_config(args.engine_config, args.config, overrides)


def _tqdm_progress() -> ProgressFn:
    from tqdm import tqdm  # deferred: ~20 ms, for a run in a terminal only (not --help)

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
        from training.eval_report import compare_runs  # deferred: ~15 ms, not for --help

        cp = argparse.ArgumentParser(prog="python -m training.evaluate compare")
        cp.add_argument("dirs", nargs="+", help="evaluation output folders")
        cp.add_argument("--out", help="also write comparison.md/.csv here")
        cargs = cp.parse_args(argv[1:])
        print(compare_runs(cargs.dirs, cargs.out))
        return 0
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    if args.events_json:
        return _run_with_events(args)
    try:
        cfg = config_from_args(args)
        if args.print_config:
            print(describe(cfg))
            return 0
        metrics = run(cfg, progress=_tqdm_progress())
    except (ConfigError, ValueError, RuntimeError) as err:  # DataError, ModelLoadError
        print(f"Error: {err}", file=sys.stderr)
        return 2
    keys = ("n", "execution_accuracy", "exact_match", "bleu", "rougeL", "valid_sql_rate",
            "avg_attempts", "questions_per_minute")  # fmt: skip
    print(json.dumps({k: metrics[k] for k in keys}))
    print(f"Wrote {Path(cfg.out) / 'metrics.json'} and report.md", file=sys.stderr)
    return 0


def _run_with_events(args: argparse.Namespace) -> int:
    """As main, for the app (training.eval_jobs): JSON lines, every failure one of them."""

    def print_progress(state: EvalProgress) -> None:
        print(json.dumps({"kind": "progress", **state.to_dict()}), flush=True)

    try:
        cfg = config_from_args(args)
        metrics = run(cfg, progress=print_progress)
    except Exception as err:  # the app shows it in one line
        log.exception("evaluation failed")
        message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        print(json.dumps({"kind": "error", "message": message}), flush=True)
        return 2
    print(json.dumps({"kind": "done", "out": cfg.out, "complete": metrics.get("complete")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
