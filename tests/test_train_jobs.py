"""training.jobs: a child-process run with streamed progress, one job at a time, cancel, resume."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import tiny_config
from training.jobs import JobBusy, JobManager


@pytest.mark.slow
def test_job_streams_progress_refuses_a_second_and_hands_back_the_adapter(
    tiny_llama: Path,
    tiny_data: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    jobs = JobManager()
    cfg = tiny_config(tiny_llama, tiny_data, tmp_path / "a", max_steps=2, val_fraction=0)
    job = jobs.start(cfg)
    with pytest.raises(JobBusy, match="already running"):
        jobs.start(cfg)
    seen = list(job.follow(interval=0.2))
    final = seen[-1]
    assert final.state == "done", final.logs[-20:]
    assert final.step == final.total == 2 and final.loss is not None
    assert Path(final.adapter_dir).joinpath("adapter_model.safetensors").is_file()
    assert any("Data:" in line for line in final.logs)  # log lines from the child


@pytest.mark.slow
def test_cancel_saves_a_checkpoint_and_resume_finishes(
    tiny_llama: Path,
    tiny_data: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    jobs = JobManager()
    cfg = tiny_config(tiny_llama, tiny_data, tmp_path, max_steps=400, save_steps=1000)
    job = jobs.start(cfg)
    deadline = time.monotonic() + 300
    while job.status().step < 1 and time.monotonic() < deadline and job.running:
        time.sleep(0.2)
    status = job.cancel(grace_s=120)
    assert status.state == "cancelled", status.logs[-20:]
    checkpoints = sorted(tmp_path.glob("checkpoint-*"))
    assert checkpoints, "cancel must leave a checkpoint to resume from"
    step = int(checkpoints[-1].name.split("-")[1])
    assert 1 <= step < 400
    resumed = jobs.resume(replace(cfg, max_steps=step + 1))  # the manager is free again
    final = resumed.wait(timeout=300)
    assert final.state == "done", final.logs[-20:]
    assert final.step == step + 1
