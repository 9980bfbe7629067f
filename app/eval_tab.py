"""Evaluation tab: run models on an evaluation set, see metrics, examples and comparisons.

Each evaluation runs in a child process (training.eval_jobs), as training does: the app keeps
serving meanwhile, and a child killed alone is reported in one line and can be resumed.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from app.messages import first_line, public
from app.model_choices import model_choices, resolve
from app.recovery import interrupted_evaluations, resume_offer
from app.users import root_of
from engine.config import EngineConfig, from_dict
from engine.paths import REPO_ROOT
from training.eval_config import RUN_FILE, EvalConfig
from training.eval_config import make_config as eval_config
from training.eval_jobs import EvalProcess, running_outputs
from training.eval_report import engine_settings

SHARED = REPO_ROOT.parent / "shared" / "data"
METRIC_COLUMNS = (
    "execution_accuracy", "exact_match", "bleu", "rouge1", "rouge2", "rougeL",
    "valid_sql_rate", "avg_attempts", "n", "seconds",
)  # fmt: skip


def evals_dir(root: Path) -> Path:
    """The evaluations of the user whose data folder is ``root`` (app.users)."""
    return root / "evals"


def dataset_choices() -> list[str]:
    choices = ["samples"]
    for sub in ("spider_train", "text_to_sql_v1/text-to-sql-v1-easy"):
        if (SHARED / sub).is_dir():
            choices.append(str(SHARED / sub))
    return choices


def make_config(base: EngineConfig, model_choice: str, data: str, split: str, limit: float,
                rag: bool, attempts: float, temperature: float, top_k: float, top_p: float,
                max_new_tokens: float, space: Any = None):  # fmt: skip
    """The form -> an EvalConfig of the chat's engine settings (``base``) with the form's
    changes, through the same loader as ``python -m training.evaluate``; its run is kept in
    the evaluations of ``space``'s user (app.users.UserSpace; None: the local user)."""
    model, adapter = resolve(model_choice, root_of(space))
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_choice)[:60]
    out = evals_dir(root_of(space)) / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"
    return eval_config(base, overrides={
        "data": (data or "samples").strip(),
        "split": (split or "").strip() or None,
        "limit": int(limit) if limit else None,
        "out": str(out),
        "engine.model": model,
        "engine.adapter": adapter,
        "engine.max_attempts": int(attempts),
        "engine.rag.enabled": bool(rag),
        "engine.generation.temperature": float(temperature),
        "engine.generation.top_k": int(top_k),
        "engine.generation.top_p": float(top_p),
        "engine.generation.max_new_tokens": int(max_new_tokens),
    })  # fmt: skip


def metrics_row(run_dir: Path) -> dict[str, Any]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    settings = engine_settings(metrics.get("settings", {}))
    label = settings.get("adapter") or settings.get("model") or run_dir.name
    row: dict[str, Any] = {
        "run": run_dir.name,
        "model": Path(str(label)).name if settings.get("adapter") else label,
    }
    for key in METRIC_COLUMNS:
        value = metrics.get(key)
        row[key] = round(value, 4) if isinstance(value, float) else value
    return row


def comparison(run_dirs: list[str]) -> Any:
    import pandas as pd  # deferred: pandas takes most of a second to import

    rows = [metrics_row(Path(d)) for d in run_dirs if (Path(d) / "metrics.json").is_file()]
    return pd.DataFrame(rows) if rows else None


def examples(run_dir: str | None, wrong_only: bool) -> Any:
    import pandas as pd  # deferred: pandas takes most of a second to import

    if not run_dir or not (Path(run_dir) / "predictions.jsonl").is_file():
        return None
    records = [
        json.loads(line)
        for line in (Path(run_dir) / "predictions.jsonl").read_text().splitlines()
        if line
    ]
    if wrong_only:
        records = [r for r in records if r.get("correct") is False or r.get("error")]
    cols = ["db_id", "question", "gold", "prediction", "correct", "error"]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in records], columns=cols)


def run_all(base: EngineConfig, models: list[str], *settings: Any, space: Any = None):
    """Evaluate each chosen model in turn, as ``space``'s user (None: the local user); yields
    (status, comparison, run dirs, last run)."""
    if not models:
        yield "Choose at least one model.", None, [], None
        return
    dirs: list[str] = []
    failed: list[str] = []  # one line per model that did not finish, kept to the end
    for i, choice in enumerate(models, 1):
        try:
            cfg = make_config(base, choice, *settings, space=space)
        except Exception as err:  # ConfigError, bad adapter: one line, next model
            failed.append(f"**{public(choice)}:** {first_line(err)}")
            yield failed[-1], comparison(dirs), dirs, None
            continue
        job = EvalProcess(cfg).start()
        while job.running:
            snap = job.snapshot()
            eta = f", ETA {snap['eta_s']:.0f} s" if snap.get("eta_s") else ""
            acc = (
                f", execution accuracy so far {snap['correct'] / snap['scored']:.0%}"
                if snap.get("scored")
                else ""
            )
            text = f"Model {i}/{len(models)} ({choice}): {snap['done']}/{snap['total']} questions{eta}{acc}. {snap.get('message') or ''}"
            yield text, gr_skip(), dirs, gr_skip()
            time.sleep(1.0)
        if job.error:  # e.g. its process was killed: said in one line, resumable
            failed.append(f"**{public(choice)} failed:** {public(job.error)}")
            yield failed[-1], comparison(dirs), dirs, None
            continue
        dirs.append(cfg.out)
        yield f"Finished {i}/{len(models)}: {choice}", comparison(dirs), dirs, cfg.out
    end = " ".join(failed) + f" ({len(dirs)} of {len(models)} run(s) finished.)"
    yield (
        end if failed else f"Done: {len(dirs)} run(s).",
        comparison(dirs),
        dirs,
        dirs[-1] if dirs else None,
    )


def interrupted_choices(space: Any = None) -> list[str]:
    """``space``'s evaluations cut short (the app, the machine or the evaluation's process
    stopped) that can be resumed; not those running now."""
    running = running_outputs()
    found = interrupted_evaluations(evals_dir(root_of(space)))
    return [r.folder.name for r in found if r.folder.resolve() not in running]


def interrupted_update(space: Any = None) -> tuple[Any, Any]:
    """The tab's resume offer of ``space``'s evaluations, shown when there is something to
    resume."""
    return resume_offer(interrupted_choices(space))


def resume(run: str | None, space: Any = None):
    """Resume an interrupted evaluation of ``space``'s where it stopped (its recorded answers
    are kept); yields what :func:`run_all` yields."""
    folder = evals_dir(root_of(space)) / Path(run or "").name
    if not run or not (folder / RUN_FILE).is_file():
        yield "Choose an interrupted evaluation to resume.", None, [], None
        return
    try:
        settings = json.loads((folder / RUN_FILE).read_text())["settings"]
        cfg = from_dict(EvalConfig, {**settings, "out": str(folder), "resume": True})
    except Exception as err:  # a damaged run file: say so
        yield f"**Cannot resume {run}:** {first_line(err)}", None, [], None
        return
    job = EvalProcess(cfg).start()
    while job.running:
        snap = job.snapshot()
        text = (
            f"Resuming {run}: {snap['done']}/{snap['total']} questions. {snap.get('message') or ''}"
        )
        yield text, gr_skip(), [], gr_skip()
        time.sleep(1.0)
    if job.error:
        yield f"**{run} failed:** {public(job.error)}", None, [], None
        return
    yield f"Done: {run} resumed and finished.", comparison([cfg.out]), [cfg.out], cfg.out


def gr_skip() -> Any:
    import gradio as gr  # deferred: gradio takes seconds (the tab's functions run without it)

    return gr.skip()


def build(base: EngineConfig, demo: Any = None, spaces: Any = None) -> Any:
    """Lay out the tab, its defaults the chat's settings (``base``); returns its model
    selector (refreshed when training finishes, following the chat's model choice).
    ``spaces`` (app.users.Spaces) gives each event its caller's models and evaluations
    (None: the local user's); each page of ``demo`` sees its user's interrupted evaluations."""
    import gradio as gr  # deferred: gradio takes seconds (the tab's functions run without it)

    def space() -> Any:
        return spaces.current() if spaces is not None else None

    def on_run(models: list[str], *settings: Any):  # generators: Gradio streams them
        yield from run_all(base, models, *settings, space=space())

    def on_resume(run: str | None):
        yield from resume(run, space())

    gen = base.generation
    # any model path, as the chat's model (which it starts with) may be
    models = gr.Dropdown(model_choices(root_of(space())), value=[base.model], multiselect=True,
                         allow_custom_value=True, label="Models / adapters to compare",
                         elem_id="eval-models")  # fmt: skip
    with gr.Row():
        data = gr.Dropdown(dataset_choices(), value="samples", allow_custom_value=True,
                           label="Evaluation set (or a path)", elem_id="eval-data")  # fmt: skip
        split = gr.Textbox(label="Split (e.g. test, train)", placeholder="default")
        limit = gr.Number(
            value=10,
            precision=0,
            minimum=1,
            label="Questions (seeded sample)",
            elem_id="eval-limit",
        )
    with gr.Row():
        rag = gr.Checkbox(value=base.rag.enabled, label="Retrieval (RAG)", elem_id="eval-rag")
        attempts = gr.Number(value=base.max_attempts, precision=0, minimum=1, maximum=5,
                             label="Attempts (self-correction)",
                             elem_id="eval-attempts")  # fmt: skip
        temperature = gr.Slider(0, 1.5, value=gen.temperature, step=0.05,
                                label="Temperature (0 = greedy)")  # fmt: skip
        top_k = gr.Slider(0, 200, value=gen.top_k, step=1, label="Top-k")
        top_p = gr.Slider(0.05, 1.0, value=gen.top_p, step=0.05, label="Top-p")
        max_new = gr.Number(value=gen.max_new_tokens, precision=0, minimum=8,
                            label="Max new tokens")  # fmt: skip
    run_btn = gr.Button("Run evaluation", variant="primary", elem_id="eval-run")
    interrupted = interrupted_choices(space())
    with gr.Row(visible=bool(interrupted), elem_id="eval-interrupted-box") as interrupted_box:
        gr.Markdown(
            "**Interrupted evaluations** (the app or the evaluation stopped): resume where "
            "they stopped."
        )
        interrupted_run = gr.Dropdown(interrupted, value=interrupted[0] if interrupted else None,
                                      label="Evaluation", elem_id="eval-interrupted")  # fmt: skip
        resume_btn = gr.Button("Resume evaluation", elem_id="eval-resume")
    status = gr.Markdown(elem_id="eval-status")
    table = gr.Dataframe(label="Metrics (one row per run: compare base vs fine-tuned)", interactive=False,
                         elem_id="eval-metrics")  # fmt: skip
    run_dirs = gr.State([])
    last_run = gr.State(None)
    wrong_only = gr.Checkbox(value=False, label="Wrong answers only")
    per_example = gr.Dataframe(label="Per-example results (last run)", interactive=False, wrap=True,
                               elem_id="eval-examples")  # fmt: skip

    settings = [data, split, limit, rag, attempts, temperature, top_k, top_p, max_new]
    offer = [interrupted_box, interrupted_run]
    ran = run_btn.click(on_run, [models, *settings], [status, table, run_dirs, last_run])
    resumed = resume_btn.click(on_resume, interrupted_run, [status, table, run_dirs, last_run])
    for event in (ran, resumed):  # a run stopped from outside is offered for resuming
        event.then(examples, [last_run, wrong_only], per_example)
        event.then(lambda: interrupted_update(space()), None, offer)
    wrong_only.change(examples, [last_run, wrong_only], per_example)
    if demo is not None:
        demo.load(lambda: interrupted_update(space()), None, offer)
    return models
