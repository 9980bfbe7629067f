from pathlib import Path

import pytest

from engine.config import ConfigError, EngineConfig, load_config, parse_overrides

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
