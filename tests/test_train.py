"""Fine-tuning on the tiny random Llama: masking, LoRA/QLoRA steps, resume, saved folder, CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError
from engine.models import ADAPTER_META_FILE, read_adapter_meta
from engine.prompt import DEFAULT_FORMAT
from tests.helpers import tiny_config
from training.config import LoraSettings, TrainConfig, load_train_config

REPO = Path(__file__).resolve().parent.parent


def _state(out: Path, step: int) -> dict:
    return json.loads((out / f"checkpoint-{step}" / "trainer_state.json").read_text())


def _losses(state: dict) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}


# --- configs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs").glob("train*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_train_config_loads(path: Path) -> None:
    cfg = load_train_config(path)
    assert cfg.method in ("lora", "qlora")
    if cfg.deepspeed:
        assert cfg.deepspeed_stage() in (2, 3)


def test_shipped_configs_keep_the_seed_defaults() -> None:
    gpu = load_train_config(REPO / "configs" / "train_gpu_qlora.yaml")
    assert (gpu.method, gpu.quant.quant_type, gpu.quant.double_quant) == ("qlora", "nf4", True)
    assert gpu.quant.compute_dtype == "float16"
    assert (gpu.lora.r, gpu.lora.alpha, gpu.lora.dropout) == (64, 16, 0.1)
    assert gpu.lora.target_modules == "all-linear"
    cpu = load_train_config(REPO / "configs" / "train_cpu.yaml")
    assert cpu.for_hardware(cuda_available=False).precision == "fp32"
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        gpu.for_hardware(cuda_available=False)


def test_lora_alpha_defaults_to_twice_the_rank() -> None:
    assert (LoraSettings().r, LoraSettings().alpha) == (64, 128)
    assert LoraSettings(r=8).alpha == 16
    cpu = load_train_config(REPO / "configs" / "train_cpu.yaml")
    assert (cpu.lora.r, cpu.lora.alpha) == (8, 16)
    assert cpu.to_dict()["lora"]["alpha"] == 16  # the saved run config carries the int
    assert load_train_config(REPO / "configs" / "train_cpu.yaml", ["lora.r=2"]).lora.alpha == 4


def test_explicit_lora_alpha_is_kept() -> None:
    assert LoraSettings(r=64, alpha=16).alpha == 16
    assert load_train_config(None, {"lora.r": 8, "lora.alpha": 3}).lora.alpha == 3


def test_peft_gets_the_resolved_alpha() -> None:
    from training.lora import lora_config

    peft = lora_config(TrainConfig(lora=LoraSettings(r=4)), "llama")
    assert (peft.r, peft.lora_alpha) == (4, 8)


@pytest.mark.parametrize(
    ("lora", "message"),
    [
        ({"r": 0}, "lora.r must be >= 1"),
        ({"r": 4, "alpha": 0}, "lora.alpha must be >= 1"),
        ({"alpha": -16}, "lora.alpha must be >= 1"),
        ({"dropout": 1.0}, r"lora.dropout must be in \[0, 1\)"),
        ({"dropout": -0.1}, r"lora.dropout must be in \[0, 1\)"),
    ],
)
def test_invalid_lora_settings_are_rejected(lora: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, {f"lora.{key}": value for key, value in lora.items()})


def test_shipped_deepspeed_configs() -> None:
    z2 = TrainConfig(deepspeed="zero2")
    ds = z2.deepspeed_config()
    zero = ds["zero_optimization"]
    assert zero["stage"] == 2 and zero["offload_optimizer"]["device"] == "cpu"
    assert zero["overlap_comm"] and zero["contiguous_gradients"]
    assert zero["reduce_bucket_size"] == zero["allgather_bucket_size"] == 5e8
    assert TrainConfig(deepspeed="zero3").deepspeed_stage() == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"device": "cpu", "precision": "fp16"}, "fp16 needs a CUDA GPU"),
        ({"method": "qlora", "deepspeed": "zero3"}, "QLoRA .* ZeRO-3"),
        ({"method": "dora"}, "method must be one of"),
        ({"report_to": "mlflow"}, "report_to must be one of"),
        ({"device": "cpu", "optim": "paged_adamw_32bit"}, "adamw_torch on CPU"),
    ],
)
def test_conflicting_settings_are_rejected(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_fp16_on_a_cpu_machine_is_rejected_after_auto_device() -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        TrainConfig(precision="fp16").for_hardware(cuda_available=False)


def test_overrides_and_unknown_keys() -> None:
    cfg = load_train_config(REPO / "configs" / "train_cpu.yaml", ["lora.r=2", "max_steps=7"])
    assert cfg.lora.r == 2 and cfg.max_steps == 7
    with pytest.raises(ConfigError, match="Unknown config key: lora.rank"):
        load_train_config(None, {"lora.rank": 2})


def test_cli_reports_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from training.train import main

    assert main(["--set", "method=bogus"]) == 2
    assert "method must be one of" in capsys.readouterr().err


def test_model_card_credits_spider() -> None:
    from training.artifacts import model_card

    card = model_card(TrainConfig(), {"kind": "spider", "source": "spider_train"})
    assert "EMNLP 2018" in card and "CC BY-SA 4.0" in card and "Tao Yu" in card
    assert "CC BY-SA" not in model_card(TrainConfig(), {"kind": "seed"})


# --- data -> tokens ---------------------------------------------------------------------------


def test_labels_mask_the_prompt_and_keep_the_answer_and_eos(
    tiny_llama: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    from training.data import load_examples, split_by_database, to_prompt_completion
    from training.lora import load_base_model
    from training.train import build_trainer

    cfg = tiny_config(tiny_llama, tiny_data, tmp_path, packing=False).for_hardware(False)
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    train, val = split_by_database(load_examples(tiny_data).examples, 0.25)
    trainer = build_trainer(
        cfg, load_base_model(cfg, str(tiny_llama)), tok, train, val, DEFAULT_FORMAT
    )
    row = trainer.train_dataset[0]
    prompt = tok.apply_chat_template(to_prompt_completion(train[0])["prompt"], tokenize=False,
                                     add_generation_prompt=True)  # fmt: skip
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    labels, ids = row["labels"], row["input_ids"]
    assert all(label == -100 for label in labels[:n_prompt])
    assert labels[n_prompt:] == ids[n_prompt:]
    answer = tok.decode([t for t in labels if t != -100])
    assert answer.strip() == train[0].sql + " </s>"
    assert labels[-1] == tok.eos_token_id

    packed = build_trainer(
        tiny_config(tiny_llama, tiny_data, tmp_path).for_hardware(False),
        load_base_model(cfg, str(tiny_llama)), tok, train, val, DEFAULT_FORMAT,
    )  # fmt: skip
    batch = next(iter(packed.get_train_dataloader()))
    assert "attention_mask" not in batch and "position_ids" in batch  # padding-free rows
    assert (batch["labels"] == -100).float().mean() > 0.5  # prompts are most of each row


# --- runs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_run(tiny_llama: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):
    from training.train import run

    out = tmp_path_factory.mktemp("lora-run")
    events: list = []
    cfg = tiny_config(tiny_llama, tiny_data, out, report_to="tensorboard", merge=True)
    adapter = run(cfg, events.append, progress_bar=False)
    return out, adapter, events


def test_three_step_lora_run_leaves_a_complete_adapter_folder(lora_run, tiny_llama: Path) -> None:
    out, adapter, events = lora_run
    state = _state(out, 3)
    assert state["global_step"] == 3
    losses = _losses(state)
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) and v > 0 for v in losses.values())
    assert any("eval_loss" in h for h in state["log_history"])
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2, 3] and steps[-1].total == 3
    assert steps[-1].eta_s == 0
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json",
                 ADAPTER_META_FILE, "train_config.yaml", "loss_curve.png", "README.md"):  # fmt: skip
        assert (adapter / name).is_file(), name
    assert (out / "loss_curve.png").stat().st_size > 1000
    meta = read_adapter_meta(adapter)
    assert meta["base_model"] == str(tiny_llama)
    assert meta["prompt_format"] == DEFAULT_FORMAT.to_dict()
    assert meta["train_config"]["precision"] == "fp32" and meta["data"]["kind"] == "seed"
    assert meta["retrieval"] is None  # seed rows have no database: plain schema prompts
    again = load_train_config(adapter / "train_config.yaml")
    assert again.lora.r == 4 and again.max_steps == 3
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))


def test_merge_writes_a_full_model(lora_run) -> None:
    from transformers import AutoModelForCausalLM

    out, _, _ = lora_run
    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert not hasattr(merged, "peft_config") and (out / "merged" / "tokenizer.json").is_file()


def test_saved_adapter_loads_in_the_engine_and_answers(lora_run, shop_db: Path) -> None:
    from engine.backends.base import GenerationConfig
    from engine.backends.transformers_backend import TransformersBackend
    from engine.models import load_model
    from engine.pipeline import TextToSQL

    _, adapter, _ = lora_run
    loaded = load_model(adapter=adapter, device="cpu")  # base model read from the adapter folder
    assert loaded.adapter == str(adapter) and loaded.prompt_format == DEFAULT_FORMAT
    engine = TextToSQL(TransformersBackend(loaded), generation=GenerationConfig(max_new_tokens=8))
    answer = engine.ask("How many customers are there?", shop_db)
    assert answer.attempts >= 1 and answer.raw_output is not None  # random weights: any text


def test_resume_after_a_crash_continues_the_same_run(
    tiny_llama: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from transformers import TrainerCallback

    from training.train import run

    class Killed(Exception):
        pass

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if state.global_step == 3:
                raise Killed("simulated kill at step 3")

    straight = tmp_path / "straight"
    run(tiny_config(tiny_llama, tiny_data, straight, max_steps=4), progress_bar=False)
    crashed = tmp_path / "crashed"
    cfg = tiny_config(tiny_llama, tiny_data, crashed, max_steps=4)
    with pytest.raises(Killed):
        run(cfg, callbacks=[Crash()], progress_bar=False)
    assert (crashed / "checkpoint-2").is_dir() and not (crashed / "adapter").exists()
    adapter = run(cfg, resume=True, progress_bar=False)
    assert adapter.is_dir()
    resumed, reference = _state(crashed, 4), _state(straight, 4)
    assert resumed["global_step"] == 4
    assert sorted(_losses(resumed)) == [1, 2, 3, 4]  # the curve goes on from the checkpoint
    for step, loss in _losses(reference).items():
        assert _losses(resumed)[step] == pytest.approx(loss, rel=1e-4), step  # same data order


def test_qlora_step_on_cpu(tiny_llama: Path, tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    from training.train import run

    cfg = tiny_config(tiny_llama, tiny_data, tmp_path, method="qlora", max_steps=1, val_fraction=0)
    adapter = run(cfg, progress_bar=False)
    assert math.isfinite(_losses(_state(tmp_path, 1))[1])
    assert read_adapter_meta(adapter)["train_config"]["method"] == "qlora"


def test_wandb_checkpoint_upload_is_off_under_deepspeed(tmp_path: Path, monkeypatch) -> None:
    from training.train import _setup_environment

    for key in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_DIR", "WORLD_SIZE"):
        monkeypatch.setenv(key, "1" if key == "WORLD_SIZE" else "x")  # restored afterwards
    monkeypatch.setenv("WANDB_LOG_MODEL", "checkpoint")
    said: list[str] = []
    _setup_environment(TrainConfig(report_to="wandb", deepspeed="zero2"), tmp_path, said.append)
    assert os.environ["WANDB_LOG_MODEL"] == "false" and "ignored" in said[0]


@pytest.mark.slow
def test_wandb_offline_run(tiny_llama: Path, tiny_data: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    from training.train import run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_LOG_MODEL", "checkpoint")  # ignored: would upload checkpoints
    cfg = tiny_config(tiny_llama, tiny_data, tmp_path, report_to="wandb", max_steps=1,
                      val_fraction=0)  # fmt: skip
    run(cfg, progress_bar=False)
    assert list((tmp_path / "wandb").glob("offline-run-*"))
    assert os.environ["WANDB_LOG_MODEL"] == "checkpoint"  # no DeepSpeed: left as the user set it


@pytest.mark.slow
def test_deepspeed_zero2_offload_step_on_cpu(
    tiny_llama: Path, tiny_data: Path, tmp_path: Path, cpu_adam: dict[str, str]
):
    """ZeRO-2 with the optimizer offloaded to CPU, one process, through the CLI.

    The first run JIT-builds DeepSpeedCPUAdam (about 3 minutes on 2 cores); the ``cpu_adam``
    fixture (conftest.py) starts that build in the background when the test run begins and
    keeps it in TORCH_EXTENSIONS_DIR (default ~/.cache/text2sql/torch_extensions).
    """
    pytest.importorskip("deepspeed")
    env = dict(os.environ, PYTHONPATH=str(REPO), **cpu_adam)
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "training.train", "--model", str(tiny_llama), "--data",
           str(tiny_data), "--max-steps", "1", "--output", str(tmp_path), "--set", "device=cpu",
           "--set", "deepspeed=zero2", "--set", "lora.r=4", "--set", "max_length=512",
           "--set", "val_fraction=0", "--set", "batch_size=2"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert math.isfinite(_losses(_state(tmp_path, 1))[1])
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.gpu
@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU"
)  # fmt: skip
def test_qlora_gpu_config_runs_on_cuda(tiny_llama: Path, tiny_data: Path, tmp_path: Path) -> None:
    from training.train import run

    cfg = load_train_config(
        REPO / "configs" / "train_gpu_qlora.yaml",
        {"model": str(tiny_llama), "data": str(tiny_data), "output_dir": str(tmp_path),
         "max_steps": 2, "lora.r": 8, "max_length": 512, "report_to": "none"},
    )  # fmt: skip
    adapter = run(cfg, progress_bar=False)
    assert all(math.isfinite(v) for v in _losses(_state(tmp_path, 2)).values())
    assert read_adapter_meta(adapter)["train_config"]["device"] == "cuda"


def _spider_folder(root: Path, databases: int) -> Path:
    """A Spider-shaped folder: ``databases`` one-table SQLite files, three questions each."""
    import sqlite3

    rows = []
    for k in range(databases):
        db_id = f"db{k:02d}"
        (root / "database" / db_id).mkdir(parents=True)
        con = sqlite3.connect(root / "database" / db_id / f"{db_id}.sqlite")
        con.execute(f"CREATE TABLE t{k} (a INTEGER)")
        con.commit()
        con.close()
        rows += [
            {
                "db_id": db_id,
                "question": f"Question {i} on {db_id}?",
                "query": f"SELECT {i} FROM t{k}",
            }
            for i in range(3)
        ]
    (root / "train.json").write_text(json.dumps(rows))
    return root


def test_leave_out_slices_drops_every_database_the_ablation_measures_on(tmp_path: Path) -> None:
    """``leave_out_slices``: a fine-tune measured on the held-out slices must not have trained
    on their databases (tune and final come from the same split as bench/ablation.py's)."""
    from training.data import load_examples
    from training.slices import held_out_slices
    from training.train import _leave_out_slices

    spider = _spider_folder(tmp_path / "spider", 20)
    slices = held_out_slices(spider)
    held = set(slices["tune"]) | set(slices["final"])
    assert held  # the fake data has databases in both halves
    said: list[str] = []
    examples = load_examples(spider).examples
    kept = _leave_out_slices(examples, str(spider), said.append)
    assert {e.db_id for e in kept} == {e.db_id for e in examples} - held
    assert len(kept) == len(examples) - 3 * len(held)
    assert f"{3 * len(held)} of {len(examples)} examples" in said[0]


def test_leave_out_slices_needs_a_spider_folder(
    tiny_llama: Path, tiny_data: Path, tmp_path: Path
) -> None:
    from training.train import TrainingError, run

    cfg = tiny_config(tiny_llama, tiny_data, tmp_path / "out", leave_out_slices=True)
    with pytest.raises(TrainingError, match="needs a Spider folder") as err:
        run(cfg, progress_bar=False)
    assert "\n" not in str(err.value)
