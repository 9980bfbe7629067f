"""The installable package: pyproject.toml pins agree with requirements.txt, and ``pip install .``
into a new virtual environment outside the checkout gives a working ``text2sql`` command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
# In requirements.txt for `make setup` and the tests, but no dependency of the package itself.
DEV_ONLY = {"pytest", "ruff", "import-linter", "playwright"}


def _name(req: Requirement) -> str:
    return re.sub(r"[-_.]+", "-", req.name).lower()


def requirements_txt() -> dict[str, Requirement]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            pins[_name(req)] = req
    return pins


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_pyproject_pins_agree_with_requirements_txt():
    project = pyproject()
    core = {_name(r): r for r in map(Requirement, project["dependencies"])}
    extras = {
        _name(r): r
        for reqs in project["optional-dependencies"].values()
        for r in map(Requirement, reqs)
    }
    pinned = requirements_txt()
    for name, req in pinned.items():
        ours = core.get(name) or extras.get(name)
        assert ours is not None, (
            f"requirements.txt pins {req}, which pyproject.toml neither depends on nor offers "
            "as an extra: add it to [project] dependencies or an optional-dependencies group"
        )
        assert str(ours.specifier) == str(req.specifier), f"pyproject {ours} != requirements {req}"
        if name in DEV_ONLY:
            assert name not in core, f"{name} is for development only"
    for name, req in core.items():
        assert name in pinned, f"pyproject.toml depends on {req}, not pinned in requirements.txt"
    for req in [*core.values(), *extras.values()]:
        assert str(req.specifier).startswith("=="), f"{req} is not pinned"
    script = (REPO / "scripts" / "install_llamacpp.sh").read_text()
    version = re.search(r"^VERSION=(\S+)$", script, re.M).group(1)
    assert str(extras["llama-cpp-python"].specifier) == f"=={version}"


def test_console_script_lists_every_subcommand(capsys):
    from text2sql.cli import COMMANDS, main

    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    for name in ("app", "ask", "run-sql", "index", "examples", "train", "evaluate", "export"):
        assert name in COMMANDS and f"  {name} " in usage
    assert "shop" in usage
    assert main(["nonsense"]) == 2


def _source_copy(dest: Path) -> Path:
    """What a clone holds (tracked files, and new ones not ignored), without build leftovers."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files belong to the package")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.mark.slow
def test_pip_install_outside_the_checkout_answers(tmp_path, shop_db):
    """A fresh venv that sees this environment's packages (so nothing is downloaded), the
    project installed into it from a copy of the checkout, run from an unrelated folder."""
    src = _source_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "_deps_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TEXT2SQL_DATA"] = str(tmp_path / "data")
    pip = [py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(src)]
    done = subprocess.run(pip, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    for data in ("sample_dbs/shop.sqlite", "configs/engine.yaml", "engine/rag/pool/examples.jsonl"):
        assert (site / data).is_file(), data
    assert not (site / "tests").exists() and not (site / "bench").exists()

    work = tmp_path / "elsewhere"
    work.mkdir()
    text2sql = str(venv / "bin" / "text2sql")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [text2sql, *args], capture_output=True, text=True, env=env, cwd=work, timeout=600
        )

    where = subprocess.run(
        [py, "-c", "import engine; print(engine.__file__)"],
        capture_output=True, text=True, env=env, cwd=work, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(site))
    done = run("run-sql", "--db", "shop", "--json", "SELECT count(*) AS n FROM customers")
    assert done.returncode == 0, done.stderr[-2000:]
    count = json.loads(done.stdout)["rows"][0][0]
    done = run("ask", "--db", "shop", "--model", "smollm2-135m-instruct", "--no-rag", "--json",
               "How many customers are there?")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["rows"] == [[count]]
