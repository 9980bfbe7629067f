"""Export: an adapter merged into its base, as a Hugging Face folder and as a quantized GGUF
(+ Ollama Modelfile) that the engine loads with ``--model file.gguf`` and that answers like
base + adapter (SmolLM2, the smallest bundled model, with a random LoRA strong enough to
change an answer)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.backends import llamacpp
from engine.backends.base import GenerationConfig
from engine.config import ConfigError
from engine.paths import sample_pairs_file
from engine.pipeline import Request, TextToSQL
from tests.helpers import SQL_MESSAGES, next_token_logits, random_adapter
from training.export import ExportConfig, ExportError, quantize, run

REPO = Path(__file__).resolve().parent.parent
SMOL = "smollm2-135m-instruct"
needs_llamacpp = pytest.mark.skipif(
    not llamacpp.is_installed(),
    reason="llama-cpp-python is not installed (scripts/setup.sh builds it; CI installs it)",
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(adapter, F16 GGUF, Q8_0 GGUF, export result) for a random SmolLM2 adapter."""
    from engine.presets import prepare_preset

    run_dir = tmp_path_factory.mktemp("run")
    adapter = random_adapter(prepare_preset(SMOL), run_dir / "adapter", scale=0.05)
    (adapter / "text2sql_adapter.json").write_text(json.dumps({"base_model": SMOL}))
    result = run(ExportConfig(adapter=str(adapter), quant="F16", name="smol-sql"))
    q8 = quantize(result.gguf, result.gguf.with_name("smol-sql-Q8_0.gguf"), "Q8_0")
    return adapter, result.gguf, q8, result


def test_export_config_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="adapter is required"):
        ExportConfig()
    with pytest.raises(ConfigError, match="quant must be one of"):
        ExportConfig(adapter="a", quant="Q3")
    with pytest.raises(ExportError, match="not a LoRA adapter folder"):
        run(ExportConfig(adapter=str(tmp_path)))


@pytest.mark.slow
@needs_llamacpp
def test_export_writes_merged_folder_gguf_and_modelfile(exported):
    import gguf

    adapter, f16, q8, result = exported
    assert result.merged == adapter.parent / "export" / "merged"
    assert (result.merged / "model.safetensors").is_file()
    assert (result.merged / "tokenizer_config.json").is_file()
    assert f16.parent == result.merged.parent / "gguf"
    reader = gguf.GGUFReader(q8)
    assert reader.get_field("general.name").contents() == "smol-sql"
    assert reader.get_field("general.file_type").contents() == 7  # llama.cpp's MOSTLY_Q8_0
    assert reader.get_field("tokenizer.chat_template") is not None
    assert q8.stat().st_size < 0.6 * f16.stat().st_size
    modelfile = result.modelfile.read_text()
    assert f"FROM ./{f16.name}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile


@pytest.mark.slow
@needs_llamacpp
def test_exported_gguf_answers_like_base_plus_adapter(exported, shop_db):
    """The F16 GGUF is the merged model (next-token logits within 0.1 of transformers' on the
    merged folder) and gives base + adapter's greedy SQL; Q8_0 is that model quantized.

    The reference, base + adapter on llama.cpp, is the 4-bit base with the LoRA applied at
    run time, which rounds activations to 8 bits in its matmuls; SmolLM2 with a random
    adapter has many near-ties, so over 48 greedy tokens an answer may part ways (measured
    here: F16 4-5 of 6 the same; Q8_0, whose weights are rounded again, 3 of 6).
    """
    import numpy as np

    from engine.backends.loader import load_backend

    adapter, f16, q8, result = exported
    merged = load_backend(str(result.merged), kind="transformers")
    prompt = merged.render(SQL_MESSAGES)
    merged_logits = next_token_logits(merged, prompt)
    greedy = GenerationConfig(max_new_tokens=16, stop_at_statement_end=False)
    from_f16 = load_backend(str(f16), kind="llamacpp")  # what --model FILE does
    assert np.abs(next_token_logits(from_f16, prompt) - merged_logits).max() < 0.1
    assert from_f16.generate([prompt], greedy) == merged.generate([prompt], greedy)
    from_q8 = load_backend(str(q8), kind="llamacpp")
    assert np.corrcoef(next_token_logits(from_q8, prompt), merged_logits)[0, 1] > 0.99

    questions = [p["question"] for p in json.loads(sample_pairs_file("shop").read_text())[:6]]
    gen = GenerationConfig(max_new_tokens=48)

    def sql(backend):
        engine = TextToSQL(backend, generation=gen, max_attempts=1)
        return [a.sql for a in engine.ask_batch([Request(q, shop_db) for q in questions])]

    reference = load_backend(adapter=str(adapter), kind="llamacpp")  # base + adapter
    base = load_backend(SMOL, kind="llamacpp")
    shift = next_token_logits(reference, prompt) - next_token_logits(base, prompt)
    assert np.abs(shift).max() > 1.0  # the adapter matters
    expected = sql(reference)
    got = sql(from_f16)
    same = sum(a == b for a, b in zip(got, expected, strict=True))
    assert same >= 4, (got, expected)


@pytest.mark.slow
@needs_llamacpp
def test_engine_cli_loads_the_exported_gguf(exported, shop_db):
    _, _, q8, _ = exported
    cmd = [sys.executable, "-m", "engine", "ask", "--db", str(shop_db), "--model", str(q8),
           "--no-rag", "--json", "How many products do we sell?"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: the answer failed its checks
    answer = json.loads(done.stdout)
    assert answer["backend"] == f"llamacpp:{q8}" and answer["attempts"] >= 1, answer


def test_training_tab_export_asks_for_an_adapter():
    from app import export_panel

    assert list(export_panel.export(None, "Q8_0")) == ["Choose a finished run's adapter to export."]
