import dataclasses
from pathlib import Path

import pytest

from engine.config import ConfigError, EngineConfig, load_config, parse_overrides, read_yaml

REPO = Path(__file__).resolve().parent.parent


def test_overrides_win_over_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: smollm2-135m-instruct\ngeneration:\n  max_new_tokens: 64\n")
    cfg = load_config(
        EngineConfig, f, parse_overrides(["generation.temperature=0.5", "max_rows=10"])
    )
    assert cfg.model == "smollm2-135m-instruct"
    assert cfg.generation.max_new_tokens == 64 and cfg.generation.temperature == 0.5
    assert cfg.max_rows == 10


def test_unknown_key_and_bad_values_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="generation.tempo"):
        load_config(EngineConfig, None, {"generation.tempo": 1})
    with pytest.raises(ConfigError, match="max_attempts"):
        load_config(EngineConfig, None, {"max_attempts": 0})
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["oops"])


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs").glob("engine*.yaml")), ids=lambda p: p.name
)
def test_shipped_engine_configs_load(path):
    assert isinstance(load_config(EngineConfig, path), EngineConfig)


def test_the_shipped_engine_yaml_changes_nothing():
    """configs/engine.yaml, what evaluation evaluates, holds only what differs from the
    defaults, and nothing does: the app and ``engine ask`` serve the defaults without it."""
    assert read_yaml(REPO / "configs" / "engine.yaml") == {}
    assert load_config(EngineConfig, REPO / "configs" / "engine.yaml") == EngineConfig()


def test_the_quality_config_changes_only_the_sample_rows():
    """configs/engine_quality.yaml is an overlay: the defaults with what it changes, so a
    setting added to the engine reaches it without an edit (a full copy once missed two)."""
    quality = load_config(EngineConfig, REPO / "configs" / "engine_quality.yaml")
    default = EngineConfig()
    assert quality.rag.sample_rows == 3 != default.rag.sample_rows
    assert dataclasses.replace(quality, rag=default.rag) == default
    assert read_yaml(REPO / "configs" / "engine_quality.yaml") == {"rag": {"sample_rows": 3}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("generation.top_p=0", "top_p"),
        ("generation.top_p=1.5", "top_p"),
        ("generation.temperature=-0.1", "temperature"),
        ("generation.top_k=-1", "top_k"),
        ("generation.max_new_tokens=0", "max_new_tokens"),
        ("backend=vllm", "backend must be one of auto, llamacpp, transformers"),
        ("batch_size=0", "batch_size"),
        ("threads=0", "threads"),
        ("model=null", "adapter"),
        ("rag.k_tables=-1", "rag.k_tables"),
    ],
)
def test_each_setting_is_checked_where_it_is_declared(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(EngineConfig, None, parse_overrides([override]))


def test_a_key_written_twice_is_an_error(tmp_path):
    f = tmp_path / "twice.yaml"
    f.write_text("model: a\nrag:\n  enabled: true\n  k_docs: 2\nrag:\n  enabled: false\n")
    with pytest.raises(ConfigError, match=r"sets 'rag' twice \(line 5\)"):
        load_config(EngineConfig, f)
    f.write_text("rag:\n  k_docs: 2\n  k_docs: 3\n")
    with pytest.raises(ConfigError, match="'k_docs' twice"):
        load_config(EngineConfig, f)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_no_shipped_yaml_sets_a_key_twice(path):
    assert isinstance(read_yaml(path), dict)


def test_a_section_given_in_part_keeps_the_engine_defaults_of_the_rest(tmp_path):
    """engine.yaml's cascade (generation.retry_candidates 5) is the engine's default, not
    GenerationConfig's; a config that sets only the temperature keeps it."""
    path = tmp_path / "mine.yaml"
    path.write_text("generation:\n  temperature: 0.2\n")
    cfg = load_config(EngineConfig, path)
    assert cfg.generation.temperature == 0.2 and cfg.generation.retry_candidates == 5
    assert EngineConfig().generation.retry_candidates == 5
