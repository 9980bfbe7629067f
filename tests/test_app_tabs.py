"""Training and evaluation tab handlers with the tiny random Llama (no browser)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app import eval_tab, train_tab
from app.model_choices import ADAPTER_PREFIX, model_choices, resolve
from engine.config import ConfigError, EngineConfig
from tests.helpers import seed_rows
from training.jobs import JobManager

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXT2SQL_DATA", str(tmp_path))
    return tmp_path


FORM = dict(data="samples", upload=None, method="LoRA", max_steps=2, learning_rate=1e-3,
            batch_size=2, lora_r=4, max_length=2048, save_steps=1, run_name="tiny")  # fmt: skip


def test_bad_form_values_are_refused_plainly(data_dir):
    with pytest.raises(ConfigError):
        train_tab.build_config("smollm2-135m-instruct", **{**FORM, "batch_size": 0})
    html, message, started = train_tab.start(
        JobManager(), False, "m", *{**FORM, "data": ""}.values()
    )
    assert not started and message.startswith("**Cannot start:**")


def test_form_leaves_lora_alpha_to_the_config(data_dir):
    cfg = train_tab.build_config("smollm2-135m-instruct", **FORM)
    assert (cfg.lora.r, cfg.lora.alpha) == (4, 8)
    cfg = train_tab.build_config("smollm2-135m-instruct", **{**FORM, "lora_r": 64})
    assert (cfg.lora.r, cfg.lora.alpha) == (64, 128)


def test_one_click_training_then_the_adapter_is_offered(tiny_llama, data_dir):
    manager = JobManager()
    html, message, started = train_tab.start(manager, False, str(tiny_llama), *FORM.values())
    assert started, message
    second = train_tab.start(manager, False, str(tiny_llama), *FORM.values())
    assert not second[2] and "already running" in second[1]
    updates = list(train_tab.follow(manager))
    html, plot, logs, final = updates[-1]
    assert final.startswith("Done."), logs
    assert "step 2/2" in html and len(plot) >= 1
    label = f"{ADAPTER_PREFIX}tiny"
    assert label in model_choices(data_dir)
    model, adapter = resolve(label, data_dir)
    assert model == str(tiny_llama) and adapter.endswith("tiny/adapter")


def test_the_form_starts_from_the_shipped_config_and_changes_only_its_fields(data_dir):
    from training.config import load_train_config, shipped_config

    shipped = load_train_config(shipped_config(False))
    start_with = train_tab.form_defaults(False)
    assert start_with["max_length"] == shipped.max_length == 2048
    assert start_with["lora_r"] == shipped.lora.r and start_with["save_steps"] == shipped.save_steps
    form = {**start_with, "upload": None, "run_name": "plain"}
    cfg = train_tab.build_config(**form, cuda=False)
    # what the form does not show is the file's: a one-click run is the documented run
    assert (cfg.grad_accum, cfg.lora.dropout, cfg.limit) == (2, 0.05, 2000)
    assert {**cfg.to_dict(), "output_dir": None, "max_steps": -1} == {
        **shipped.to_dict(),
        "output_dir": None,
    }


def test_a_run_from_the_tab_is_the_cli_run_with_the_same_values(tiny_llama, data_dir, tmp_path):
    """The Training tab and ``python -m training.train --config configs/train_cpu.yaml`` given
    the same values resolve to the same config: the runs' saved config.json files agree."""
    rows = seed_rows(tmp_path / "rows.json", per_table=3)
    form = {**FORM, "data": str(rows), "max_steps": 1, "max_length": 256, "run_name": "tab"}
    manager = JobManager()
    html, message, started = train_tab.start(manager, False, str(tiny_llama), *form.values())
    assert started, message
    *_, (html, plot, logs, final) = train_tab.follow(manager)
    assert final.startswith("Done."), logs

    cli_out = tmp_path / "cli-run"
    values = {"learning_rate": 1e-3, "batch_size": 2, "lora.r": 4, "max_length": 256,
              "save_steps": 1, "method": "lora"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "training.train", "--config", "configs/train_cpu.yaml",
         "--model", str(tiny_llama), "--data", str(rows), "--max-steps", "1",
         "--output", str(cli_out), *[f"--set={k}={v}" for k, v in values.items()]],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    tab_run = json.loads((data_dir / "runs" / "tab" / "run_config.json").read_text())
    cli_run = json.loads((cli_out / "run_config.json").read_text())
    assert tab_run.pop("output_dir") != cli_run.pop("output_dir")
    assert tab_run == cli_run


def test_evaluation_form_starts_from_the_chat_settings(data_dir):
    chat = EngineConfig(model="smollm2-135m-instruct", timeout_s=3.0)
    cfg = eval_tab.make_config(chat, chat.model, "samples", "", 5, True, 2, 0.0, 50, 1.0, 256)
    assert cfg.engine.model == chat.model and cfg.engine.rag.enabled
    assert cfg.engine.timeout_s == 3.0  # not on the form: the chat's value
    assert cfg.engine.max_rows == 100_000  # configs/eval.yaml: scoring compares whole results


def test_evaluation_runs_and_compares(tiny_llama, data_dir):
    settings = ("samples", "", 2, False, 1, 0.0, 50, 1.0, 8)
    base = EngineConfig(backend="transformers")
    updates = list(eval_tab.run_all(base, [str(tiny_llama), str(tiny_llama)], *settings))
    status, table, dirs, last = updates[-1]
    assert status == "Done: 2 run(s)." and len(dirs) == 2 and last == dirs[-1]
    assert list(table["n"]) == [2, 2]
    assert {"execution_accuracy", "exact_match", "bleu", "rougeL", "valid_sql_rate"} <= set(
        table.columns
    )
    every = eval_tab.examples(last, wrong_only=False)
    wrong = eval_tab.examples(last, wrong_only=True)
    assert len(every) == 2 and len(wrong) <= 2
    assert eval_tab.run_all(base, [], *settings).__next__()[0] == "Choose at least one model."
