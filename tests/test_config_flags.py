"""Every setting declared once: the dataclass field gives the CLI flags, their help, --set,
``python -m engine config``; the shipped YAML files hold only what differs from it."""

import argparse
import dataclasses
import json
import shlex
from pathlib import Path

import pytest
import yaml

from engine.config import (
    ConfigError,
    EngineConfig,
    add_setting_flags,
    describe,
    flag_overrides,
    load_config,
    parse_overrides,
    read_yaml,
    setting_field,
)
from training.config import TrainConfig, load_train_config
from training.eval_config import EvalConfig, make_config

REPO = Path(__file__).resolve().parent.parent
CONFIGS = [EngineConfig, TrainConfig, EvalConfig]


def leaf_keys(cls, prefix=""):
    """Every setting of ``cls`` as a dotted key (sections opened)."""
    keys = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            keys += leaf_keys(type(default), f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def value_of(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


# --- the field is the declaration -----------------------------------------------------------


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_setting_has_help_text(cls):
    missing = [key for key in leaf_keys(cls) if not setting_field(cls, key)[0].metadata.get("help")]
    assert missing == []


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_setting_is_reachable_by_set(cls):
    """``--set KEY=VALUE`` reaches each setting: numbers and switches set to another value
    arrive (or are refused by the setting's own check, not as unknown), every key loads."""
    default = cls()
    for key in leaf_keys(cls):
        value = value_of(default, key)
        assert load_config(cls, None, {key: value}) == default, key
        if isinstance(value, bool | int | float):
            new = (not value) if isinstance(value, bool) else value + 1
            try:
                cfg = load_config(cls, None, parse_overrides([f"{key}={json.dumps(new)}"]))
            except ConfigError as err:
                assert "Unknown config key" not in str(err)
                continue
            assert value_of(cfg, key) == new, key


def test_flags_are_typed_and_helped_from_the_fields():
    parser = argparse.ArgumentParser()
    add_setting_flags(
        parser, EvalConfig, ["engine.max_attempts", ("engine.rag.enabled", "--rag"), "db_ids"]
    )
    actions = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    field, _ = setting_field(EngineConfig, "max_attempts")
    assert field.metadata["help"] in actions["--max-attempts"].help
    assert "engine.max_attempts" in actions["--max-attempts"].help  # the key --set takes
    assert actions["--max-attempts"].type is int
    assert "--no-rag" in actions["--rag"].option_strings
    args = parser.parse_args(shlex.split("--max-attempts 3 --no-rag --db-ids a,b --set seed=4"))
    assert flag_overrides(args) == {
        "engine.max_attempts": 3,
        "engine.rag.enabled": False,
        "db_ids": ["a", "b"],
        "seed": 4,
    }
    assert flag_overrides(parser.parse_args([])) == {}  # a flag left out: the file decides
    # a flag wins over --set
    args = parser.parse_args(["--set", "engine.max_attempts=5", "--max-attempts", "1"])
    assert flag_overrides(args) == {"engine.max_attempts": 1}


def test_a_setting_without_a_flag_type_is_refused_when_a_flag_is_asked_for():
    with pytest.raises(TypeError, match="use --set"):
        add_setting_flags(argparse.ArgumentParser(), TrainConfig, ["lora.target_modules"])


# --- every flag users' scripts have -----------------------------------------------------------

ENGINE_FLAGS = {
    "ask": (
        "--db x.sqlite --model m --adapter ad --load-in-4bit --max-attempts 3 --store s "
        "--no-rag --config c.yaml --set rag.k_docs=1 --json Q",
        {
            "model": "m",
            "adapter": "ad",
            "load_in_4bit": True,
            "max_attempts": 3,
            "rag.store_dir": "s",
            "rag.enabled": False,
            "rag.k_docs": 1,
        },
    ),
    "index": (
        "--db x.sqlite --store s --set rag.k_docs=5",
        {"rag.store_dir": "s", "rag.k_docs": 5},
    ),
    "run-sql": (
        "--db x.sqlite --timeout 2.5 --max-rows 7 --set max_rows=9 SQL",
        {"timeout_s": 2.5, "max_rows": 7},
    ),
    "examples list": (
        "--db x.sqlite --store s --set timeout_s=3",
        {"rag.store_dir": "s", "timeout_s": 3},
    ),
    "config": ("--set max_attempts=4", {"max_attempts": 4}),
}


@pytest.mark.parametrize("command", ENGINE_FLAGS)
def test_the_engine_cli_keeps_its_flags(command):
    from engine.cli import build_parser

    argv, expected = ENGINE_FLAGS[command]
    args = build_parser().parse_args([*command.split(), *shlex.split(argv)])
    assert flag_overrides(args) == expected


def test_the_evaluation_cli_keeps_its_flags():
    from training.evaluate import build_parser, config_from_args

    argv = (
        "--data d --split test --limit 30 --seed 3 --holdout 0.1 --db-ids a,b --model m "
        "--adapter ad --backend transformers --rag --rag-store rs --temperature 0.7 --top-k 20 "
        "--top-p 0.9 --max-new-tokens 64 --max-attempts 3 --batch-size 2 --num-threads 1 "
        "--timeout 5 --no-resume --out o --set engine.generation.candidates=2"
    )
    cfg = config_from_args(build_parser().parse_args(shlex.split(argv)))
    e, g = cfg.engine, cfg.engine.generation
    assert (cfg.data, cfg.split, cfg.limit, cfg.seed, cfg.holdout) == ("d", "test", 30, 3, 0.1)
    assert (cfg.db_ids, cfg.rag_store, cfg.resume, cfg.out) == (["a", "b"], "rs", False, "o")
    assert (e.model, e.adapter, e.backend, e.rag.enabled) == ("m", "ad", "transformers", True)
    assert (g.temperature, g.top_k, g.top_p, g.max_new_tokens, g.candidates) == (
        0.7,
        20,
        0.9,
        64,
        2,
    )
    assert (e.max_attempts, e.batch_size, e.threads, e.timeout_s) == (3, 2, 1, 5.0)
    threads = config_from_args(build_parser().parse_args(["--threads", "2"])).engine.threads
    assert threads == 2  # the one name, --num-threads its alias


def test_the_app_and_training_clis_keep_their_flags():
    from app.main import parse_args

    args = parse_args(["--model", "m", "--config", "c.yaml", "--set", "max_rows=5"])
    assert (args.config, flag_overrides(args)) == ("c.yaml", {"model": "m", "max_rows": 5})

    from training import train

    seen = {}

    def fake_run(cfg, *a, **k):
        seen["cfg"] = cfg
        return "adapter"

    argv = "--model m --data d --split s --limit 5 --max-steps 3 --output o --merge --set lora.r=4"
    config = ["--config", str(REPO / "configs" / "train_cpu.yaml")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "run", fake_run)
        assert train.main([*config, *shlex.split(argv)]) == 0
    cfg = seen["cfg"]
    assert (cfg.model, cfg.data, cfg.split, cfg.limit) == ("m", "d", "s", 5)
    assert (cfg.max_steps, cfg.output_dir, cfg.merge, cfg.lora.r) == (3, "o", True, 4)


# --- one name for the thread count ------------------------------------------------------------


def test_the_thread_count_is_threads_everywhere():
    for cls in CONFIGS:
        assert not any(key.endswith("num_threads") for key in leaf_keys(cls)), cls
    assert "threads" in leaf_keys(TrainConfig) and "threads" in leaf_keys(EngineConfig)


def test_a_saved_run_config_with_num_threads_still_loads(tmp_path):
    """run_config.json / job_config.yaml of earlier versions say num_threads."""
    saved = TrainConfig(threads=3).to_dict()
    saved["num_threads"] = saved.pop("threads")
    (tmp_path / "run_config.json").write_text(json.dumps(saved))
    (tmp_path / "job_config.yaml").write_text(yaml.safe_dump(saved))
    for name in ("run_config.json", "job_config.yaml"):
        assert load_train_config(tmp_path / name).threads == 3
    assert load_train_config(None, ["num_threads=2"]).threads == 2
    assert load_train_config(tmp_path / "run_config.json", ["num_threads=4"]).threads == 4
    both = tmp_path / "both.yaml"
    both.write_text("threads: 1\nnum_threads: 2\n")
    with pytest.raises(ConfigError, match="num_threads is the old name of threads"):
        load_train_config(both)


# --- the shipped YAML files hold only what differs ------------------------------------------


def leaves(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


SHIPPED = {
    "engine.yaml": EngineConfig,
    "engine_quality.yaml": EngineConfig,
    "eval.yaml": EvalConfig,
    "train_cpu.yaml": TrainConfig,
    "train_gpu_qlora.yaml": TrainConfig,
}


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_yaml_sets_only_what_differs_from_the_defaults(name):
    cls = SHIPPED[name]
    repeated = [
        key
        for key, value in leaves(read_yaml(REPO / "configs" / name))
        if value == setting_field(cls, key)[0].default or value == value_of(cls(), key)
    ]
    assert repeated == [], f"{name} repeats the defaults of {repeated}"


def test_a_partial_section_derives_what_its_defaults_derive():
    """train_cpu.yaml's lora: section gives r without alpha: alpha is 2 × r again."""
    assert load_train_config(None, {"lora.r": 8}).lora.alpha == 16
    cpu = load_train_config(REPO / "configs" / "train_cpu.yaml")
    assert (cpu.lora.r, cpu.lora.alpha) == (8, 16)
    assert load_config(EngineConfig, None, {"generation.top_k": 3}).generation.retry_candidates == 5


# --- every setting printed with its help ----------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [EngineConfig(), load_train_config(REPO / "configs" / "train_cpu.yaml"), make_config()],
    ids=lambda c: type(c).__name__,
)
def test_describe_lists_every_setting_and_reads_back(cfg):
    text = describe(cfg)
    assert load_config(type(cfg), None, base=yaml.safe_load(text)) == cfg
    for key in leaf_keys(type(cfg)):
        assert setting_field(type(cfg), key)[0].metadata["help"] in text, key


def test_engine_config_command_prints_the_settings(capsys):
    from engine.cli import main

    assert main(["config", "--set", "max_attempts=3", "--set", "rag.k_docs=1"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["max_attempts"] == 3 and printed["rag"]["k_docs"] == 1
    assert load_config(EngineConfig, None, base=printed) == load_config(
        EngineConfig, None, {"max_attempts": 3, "rag.k_docs": 1}
    )
