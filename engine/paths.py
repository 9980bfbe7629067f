"""Where things live: the repository, the bundled sample databases and the user cache.

In an installed package (``pip install .``) ``REPO_ROOT`` is the folder holding the packages;
the sample databases and ``configs/`` are installed beside them as package data, so the
same paths hold there.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DBS_DIR = REPO_ROOT / "sample_dbs"
DATA_BASE_DIR = REPO_ROOT / "data_base"


def cache_dir() -> Path:
    """Folder for converted model weights and other derived files.

    ``TEXT2SQL_CACHE`` wins; otherwise ``$XDG_CACHE_HOME/text2sql`` or ``~/.cache/text2sql``.
    """
    env = os.environ.get("TEXT2SQL_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "text2sql"
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Runtime data (uploads, vector DB, runs): ``TEXT2SQL_DATA``, else ``data_base/`` in a
    checkout; an installed package (no ``data_base/`` beside it) uses ``$XDG_DATA_HOME/text2sql``
    or ``~/.local/share/text2sql``, never its own install folder."""
    env = os.environ.get("TEXT2SQL_DATA")
    if env:
        return Path(env).expanduser()
    if DATA_BASE_DIR.is_dir():
        return DATA_BASE_DIR
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "text2sql"


def is_checkout() -> bool:
    """A clone of the repository (its Makefile beside the packages), not an installed package."""
    return (REPO_ROOT / "Makefile").is_file()


def install_hint(names: list[str] | tuple[str, ...] = ()) -> str:
    """The exact command that installs missing bundled models: ``make setup`` in a checkout
    (it installs every pinned package), ``text2sql install-models [NAME...]`` otherwise."""
    if is_checkout():
        return "run `make setup` (or `python -m engine install-models`)"
    return "run `" + " ".join(["text2sql install-models", *names]) + "`"


_LLAMACPP_BUILD = "compiles it (a C++ compiler and CMake; about 10 minutes on 2 cores)"


def llamacpp_hint() -> str:
    """How to get llama-cpp-python here: the checkout's script, or pip for an installed package."""
    if is_checkout():
        return "scripts/install_llamacpp.sh builds it (make setup runs it)"
    return f"pip install {_llamacpp_pin()} {_LLAMACPP_BUILD}"


def db_drivers_hint() -> str:
    """How to get the database drivers (PostgreSQL, MySQL, DuckDB): ``make setup`` in a
    checkout; for an installed package, pip install of the drivers its ``db`` extra pins (the
    package is not on PyPI, so ``text2sql-workbench[db]`` would not resolve)."""
    if is_checkout():
        return "run `make setup` (requirements.txt pins the drivers)"
    pins = extra_pins("db") or ["psycopg[binary]", "pymysql", "duckdb", "sqlalchemy"]
    return "run `pip install " + " ".join(shlex.quote(pin) for pin in pins) + "`"


def _llamacpp_pin() -> str:
    """The ``llamacpp`` extra's requirement, as this installed version pins it."""
    pins = [p for p in extra_pins("llamacpp") if p.startswith("llama-cpp-python")]
    return pins[0] if pins else "llama-cpp-python"


def extra_pins(extra: str) -> list[str]:
    """The requirements one of this installed version's extras pins (``psycopg[binary]==3.3.9``),
    read from its metadata; none in a checkout (requirements.txt pins everything there)."""
    try:
        requires = importlib.metadata.requires("text2sql-workbench") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    wanted = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    pins = []
    for req in requires:
        pin, _, marker = req.partition(";")
        if wanted.search(marker):
            pins.append(pin.strip().replace(" ", ""))
    return pins


def sample_databases() -> dict[str, Path]:
    """The bundled sample databases, by name (``shop`` -> ``sample_dbs/shop.sqlite``)."""
    return {p.stem: p for p in sorted(SAMPLE_DBS_DIR.glob("*.sqlite"))}


def sample_pairs_file(db_name: str) -> Path:
    return SAMPLE_DBS_DIR / "pairs" / f"{db_name}.json"
