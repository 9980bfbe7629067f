"""Multi-process training: two CPU processes of distributed data parallel (gloo) on the tiny
random Llama, started by ``accelerate launch`` exactly as a multi-GPU run is.

accelerate 1.15 starts a single process for ``--cpu`` whatever ``--num_processes`` says
(several CPU processes need mpirun there); ``--multi_gpu`` starts them with torchrun, and
without CUDA each process joins a gloo process group on the CPU.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def seed_rows(tmp_path: Path) -> Path:
    rows = [
        {
            "instruction": f"How many {table} have id above {i}?",
            "input": f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT)",
            "response": f"SELECT count(*) FROM {table} WHERE id > {i}",
        }
        for table in ("customers", "orders", "products", "staff")
        for i in range(8)
    ]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    return path


def accelerate_launch(processes: int, *args: str) -> list[str]:
    launcher = Path(sys.executable).with_name("accelerate")
    return [str(launcher), "launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *args]  # fmt: skip


@pytest.mark.slow
def test_two_process_ddp_on_cpu_saves_one_adapter(tiny_llama: Path, seed_rows: Path, tmp_path):
    out = tmp_path / "run"
    cmd = accelerate_launch(
        2, "-m", "training.train", "--model", str(tiny_llama), "--data", str(seed_rows),
        "--max-steps", "3", "--output", str(out), "--set", "device=cpu", "--set", "lora.r=4",
        "--set", "max_length=512", "--set", "val_fraction=0", "--set", "batch_size=2",
        "--set", "num_threads=1", "--set", "save_steps=3",
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = out / "checkpoint-3"
    # The Trainer keeps one RNG state per process when there are several.
    assert sorted(p.name for p in checkpoint.glob("rng_state*.pth")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert all(math.isfinite(h["loss"]) for h in state["log_history"] if "loss" in h)
    adapter = out / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "text2sql_adapter.json"):
        assert (adapter / name).is_file(), name
