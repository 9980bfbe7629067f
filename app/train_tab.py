"""Training tab: one-click LoRA/QLoRA fine-tuning in a child process, with live progress."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from app import export_panel
from app.messages import public
from app.model_choices import runs_dir
from app.recovery import interrupted_training, resume_offer
from app.users import root_of
from engine.config import ConfigError
from engine.paths import REPO_ROOT
from engine.presets import PRESETS
from training.config import load_train_config, shipped_config
from training.jobs import JOB_CONFIG_FILE, JobBusy, JobManager, JobStatus

SPIDER_DIR = REPO_ROOT.parent / "shared" / "data" / "spider_train"


def hardware() -> tuple[bool, str]:
    """(CUDA available, a one-line description shown in the tab).

    Without a GPU driver (no NVIDIA or ROCm device node) the answer is known without importing
    torch, which would add seconds to every start of the app on a CPU machine.
    """
    cpu_only = (
        "CPU only: training runs in fp32 (fp16/bf16 need a GPU). QLoRA works on CPU through "
        "bitsandbytes but is slower than LoRA; DeepSpeed offload is for multi-GPU machines."
    )
    if not any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd")):
        return False, cpu_only
    import torch  # deferred: torch takes seconds to import, and only a GPU machine needs it

    if torch.cuda.is_available():
        return True, f"GPU: {torch.cuda.get_device_name(0)} — LoRA, QLoRA, bf16/fp16 available."
    return False, cpu_only


def shipped_name(cuda: bool) -> str:
    return shipped_config(cuda).name


def dataset_choices() -> list[str]:
    choices = ["samples"]
    if SPIDER_DIR.is_dir():
        choices.append(str(SPIDER_DIR))
    return choices


# A run started from the tab is the shipped config of this machine (configs/train_cpu.yaml,
# or train_gpu_qlora.yaml with a GPU) with the form's values set (build_config): exactly what
# ``python -m training.train --config <that file> --set KEY=VALUE ...`` resolves to with the
# same values. Every other setting comes from the file.
ONE_CLICK_STEPS = 30  # the shipped configs train whole epochs (max_steps -1); a first run is short


def form_defaults(cuda: bool) -> dict[str, Any]:
    """The form's starting values: the shipped config's."""
    cfg = load_train_config(shipped_config(cuda))
    return {
        "model": cfg.model,
        "data": cfg.data,
        "method": "QLoRA" if cfg.method == "qlora" else "LoRA",
        "max_steps": cfg.max_steps if cfg.max_steps > 0 else ONE_CLICK_STEPS,
        "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size,
        "lora_r": cfg.lora.r,
        "max_length": cfg.max_length,
        "save_steps": cfg.save_steps,
    }


def build_config(
    model: str,
    data: str,
    upload: Any,
    method: str,
    max_steps: float,
    learning_rate: float,
    batch_size: float,
    lora_r: float,
    max_length: float,
    save_steps: float,
    run_name: str,
    *,
    cuda: bool | None = None,
    space: Any = None,
):
    """The form -> a checked TrainConfig: the shipped config of this machine with the form's
    values set, its run in the runs of ``space``'s user (app.users.UserSpace; None: the local
    user). Raises ConfigError with a readable message."""
    source = str(Path(getattr(upload, "name", upload))) if upload else (data or "").strip()
    if not source:
        raise ConfigError("Choose a dataset or upload a JSON/JSONL/CSV file.")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", (run_name or "").strip()) or time.strftime(
        "run-%Y%m%d-%H%M%S"
    )
    overrides = {
        "model": model,
        "data": source,
        "method": str(method).lower(),
        "max_steps": int(max_steps),
        "learning_rate": float(learning_rate),
        "batch_size": int(batch_size),
        "lora.r": int(lora_r),
        "max_length": int(max_length),
        "save_steps": int(save_steps),
        "output_dir": str(runs_dir(root_of(space)) / name),
    }
    if cuda is None:
        cuda = hardware()[0]
    return load_train_config(shipped_config(cuda), overrides)


def progress_html(status: JobStatus) -> str:
    pct = 100.0 * status.step / status.total if status.total else 0.0
    return (
        '<div style="border:1px solid #ccc;border-radius:4px;height:18px;width:100%">'
        f'<div id="train-bar" style="background:#f97316;height:100%;width:{pct:.1f}%"></div></div>'
        f"<p>{status.describe()}</p>"
    )


def start(
    manager: JobManager, resume: bool, *form: Any, space: Any = None
) -> tuple[str, str, bool]:
    """Start (or resume) a run of ``space``'s user; returns (progress html, message, started)."""
    try:
        cfg = build_config(*form, space=space)
        job = manager.resume(cfg) if resume else manager.start(cfg)
    except (ConfigError, JobBusy, ValueError, TypeError) as err:  # TypeError: an empty field
        return "", f"**Cannot start:** {public(err)}", False
    return progress_html(job.status()), f"Started run **{Path(job.output_dir).name}**.", True


def interrupted_choices(space: Any = None) -> list[str]:
    """``space``'s runs cut short (the app was killed, or the machine stopped) that can be
    resumed."""
    return [r.folder.name for r in interrupted_training(runs_dir(root_of(space)), JOB_CONFIG_FILE)]


def resume_interrupted(
    manager: JobManager, run: str | None, space: Any = None
) -> tuple[str, str, bool]:
    """Resume a run of ``space``'s from its last checkpoint, with the settings it was started
    with."""
    config = runs_dir(root_of(space)) / Path(run or "").name / JOB_CONFIG_FILE
    if not run or not config.is_file():
        return "", "Choose an interrupted run to resume.", False
    try:
        job = manager.resume(load_train_config(config))
    except (ConfigError, JobBusy, ValueError, TypeError) as err:
        return "", f"**Cannot resume:** {public(err)}", False
    return progress_html(job.status()), f"Resuming run **{run}** from its last checkpoint.", True


def follow(manager: JobManager):
    """Yield (progress html, loss points, log tail, message) until the current job ends."""
    import pandas as pd  # deferred: pandas takes most of a second to import

    job = manager.current
    if job is None:
        yield "", None, "", "No training job yet."
        return
    points: dict[int, float] = {}
    for status in job.follow(interval=1.0):
        if status.loss is not None and status.step:
            points[status.step] = status.loss
        plot = pd.DataFrame({"step": list(points), "loss": list(points.values())})
        logs = "\n".join(status.logs[-25:])
        if status.state == "done":
            run = Path(status.adapter_dir).parent.name if status.adapter_dir else "the run"
            message = (
                f"Done. The adapter of **{run}** is now in the Chat and Evaluation model lists."
            )
        elif status.state == "failed":
            message = f"**Training failed:** {public(status.error)}"
        elif status.state == "cancelled":
            message = "Cancelled. Resume continues from the last checkpoint."
        else:
            message = "Training…"
        yield progress_html(status), plot, logs, message


def interrupted_update(space: Any = None) -> tuple[Any, Any]:
    """The tab's offer to resume ``space``'s interrupted runs, shown when there are some."""
    return resume_offer(interrupted_choices(space))


def build(manager: JobManager, demo: Any = None, spaces: Any = None) -> list[Any]:
    """Lay out the tab; returns the events that end with a run, so the app can refresh the
    other tabs' model lists after them. ``spaces`` (app.users.Spaces) gives each event its
    caller's runs (None: the local user's); each page of ``demo`` sees its user's
    interrupted runs."""
    import gradio as gr  # deferred: gradio takes seconds (the tab's functions run without it)

    def space() -> Any:
        return spaces.current() if spaces is not None else None

    cuda, hw = hardware()
    start_with = form_defaults(cuda)
    gr.Markdown(
        f"**Hardware.** {hw} Every setting not on this form comes from "
        f"`configs/{shipped_name(cuda)}`, as for `python -m training.train`."
    )
    with gr.Row():
        model = gr.Dropdown(
            list(PRESETS),
            value=start_with["model"],
            label="Base model",
            allow_custom_value=True,
            elem_id="train-model",
        )
        data = gr.Dropdown(
            dataset_choices(),
            value=start_with["data"],
            label="Dataset (or a path)",
            allow_custom_value=True,
            elem_id="train-data",
        )
        upload = gr.File(
            label="…or upload JSON/JSONL/CSV pairs", file_types=[".json", ".jsonl", ".csv"]
        )
    with gr.Row():
        method = gr.Radio(
            ["LoRA", "QLoRA"],
            value=start_with["method"],
            label="Method",
            info=None if cuda else "QLoRA on CPU is slow (bitsandbytes CPU backend)",
        )

        def whole(name: str, label: str, minimum: int = 1, elem_id: str | None = None):
            return gr.Number(
                value=start_with[name], precision=0, minimum=minimum, label=label, elem_id=elem_id
            )

        max_steps = whole("max_steps", "Max steps", elem_id="train-steps")
        lr = gr.Number(value=start_with["learning_rate"], label="Learning rate")
        batch = whole("batch_size", "Batch size")
        lora_r = whole("lora_r", "LoRA rank r")
        max_len = whole("max_length", "Max length (tokens)", minimum=64, elem_id="train-maxlen")
        save_steps = whole("save_steps", "Checkpoint every (steps)", elem_id="train-save")
    run_name = gr.Textbox(
        label="Run name (folder under runs/)", placeholder="auto", elem_id="train-name"
    )
    with gr.Row():
        start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
        cancel_btn = gr.Button("Cancel", elem_id="train-cancel")
        resume_btn = gr.Button("Resume", elem_id="train-resume")
    interrupted = interrupted_choices(space())
    with gr.Row(visible=bool(interrupted), elem_id="train-interrupted-box") as interrupted_box:
        gr.Markdown(
            "**Interrupted runs.** These runs stopped before their end (the app or the "
            "machine stopped); resume one from its last checkpoint."
        )
        interrupted_run = gr.Dropdown(
            interrupted,
            value=interrupted[0] if interrupted else None,
            label="Run",
            elem_id="train-interrupted",
        )
        resume_old_btn = gr.Button("Resume interrupted run", elem_id="train-resume-interrupted")
    message = gr.Markdown(elem_id="train-message")
    bar = gr.HTML(elem_id="train-progress")
    plot = gr.LinePlot(x="step", y="loss", title="Training loss", elem_id="train-loss")
    logs = gr.Textbox(label="Log", lines=10, max_lines=10, autoscroll=True, elem_id="train-log")

    form = [
        model,
        data,
        upload,
        method,
        max_steps,
        lr,
        batch,
        lora_r,
        max_len,
        save_steps,
        run_name,
    ]

    started = gr.State(False)

    def on_follow(was_started):
        if was_started:
            yield from follow(manager)

    finished = []
    for btn, resume in ((start_btn, False), (resume_btn, True)):
        event = btn.click(
            lambda *f, r=resume: start(manager, r, *f, space=space()), form, [bar, message, started]
        )
        finished.append(event.then(on_follow, started, [bar, plot, logs, message]))
    event = resume_old_btn.click(
        lambda r: resume_interrupted(manager, r, space()), interrupted_run, [bar, message, started]
    ).then(lambda ok: gr.update(visible=not ok), started, interrupted_box)
    finished.append(event.then(on_follow, started, [bar, plot, logs, message]))
    cancel_btn.click(lambda: _cancel(manager, space()), None, message)
    if demo is not None:
        demo.load(lambda: interrupted_update(space()), None, [interrupted_box, interrupted_run])
    export_panel.build(space)
    return finished


def _cancel(manager: JobManager, space: Any = None) -> str:
    job = manager.current
    if job is None or not job.running:
        return "No job is running."
    if job.output_dir.parent != runs_dir(root_of(space)).resolve():  # another user's run
        return "The running job is not one of your runs."
    status = manager.cancel(grace_s=30)
    return "No job is running." if status is None else f"Stopping: {status.describe()}"
