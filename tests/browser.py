"""Helpers for browser tests: start the app on a free port, drive Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_app(
    *args: str,
    data_dir: Path,
    env: dict[str, str] | None = None,
    ready_timeout: float = 120,
    log_name: str | None = None,
) -> tuple[subprocess.Popen, str, Path]:
    """Start ``python launch.py`` with its own data folder; returns (process, URL, log file)
    once it answers. The caller stops it (or kills it: the crash-safety tests)."""
    port = free_port()
    env = {
        "TEXT2SQL_DATA": str(data_dir),
        **(env or {}),
    }
    log = ARTIFACTS / f"{log_name or 'app'}-{port}.log"
    ARTIFACTS.mkdir(exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "launch.py", "--port", str(port), *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + ready_timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited early; see {log}:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url, log
        except OSError:
            if time.time() > deadline:
                stop_app(proc)
                raise TimeoutError(f"app not ready after {ready_timeout} s") from None
            time.sleep(0.5)


# launch.py arguments for apps whose tests check plumbing, not answers: the small model,
# one repair (no four extra samples) after a failed answer, short answers
CHEAP_ANSWERS = ("--model", "smollm2-135m-instruct", "--set", "generation.retry_candidates=1",
                 "--set", "generation.max_new_tokens=96")  # fmt: skip


def wait_for(check, timeout: float, what: str, interval: float = 0.1):
    """Poll ``check`` until it returns something true (returned), or raise after ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


@contextmanager
def running_app(
    *args: str, data_dir: Path, env: dict[str, str] | None = None, ready_timeout: float = 120
):
    """``python launch.py`` in a subprocess with its own data folder; yields its URL once up."""
    proc, url, _ = launch_app(*args, data_dir=data_dir, env=env, ready_timeout=ready_timeout)
    try:
        yield url
    finally:
        stop_app(proc)


_playwright = None
_browser = None


# Playwright's default for an action (a click, a fill): the page's own work (Gradio's
# scripts) can take long on a slow machine whose cores are busy with models
ACTION_TIMEOUT_MS = 120_000


def _chromium():
    """One Chromium for the whole run, started when a test first needs one (each launch took
    1.3 s, 28 times); :func:`close_browser` ends it after the last test."""
    global _playwright, _browser
    if _browser is None or not _browser.is_connected():
        from playwright.sync_api import sync_playwright

        with _on_every_core():
            if _playwright is None:
                _playwright = sync_playwright().start()
            _browser = _playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
    return _browser


@contextmanager
def _on_every_core():
    """Processes started inside run on every core, even from an xdist worker pinned to one
    (tests/conftest.py): Chromium lowers its renderers' priority (nice 5), and pinned beside a
    model at full load, a page took over 30 s to take a click."""
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        yield
    finally:
        os.sched_setaffinity(0, pinned)


def close_browser() -> None:
    global _playwright, _browser
    if _browser is not None:
        _browser.close()
    if _playwright is not None:
        _playwright.stop()
    _playwright = _browser = None


# Gradio animates a pending event (pulsing borders, spinners) for as long as it runs: Chromium
# drew those frames in software at up to 60 a second, as much CPU as the training it waited on
# (44 s against 47 in the crash-and-resume test). The tests check text and elements, never a
# frame of an animation: pages open with animations and transitions off, and an animation
# loop (a requestAnimationFrame callback that asks for the next frame: Gradio's elapsed-time
# counter of a pending event) gets 4 frames a second. A first request, which a page makes to
# act on what just happened, gets its frame at once.
_NO_ANIMATIONS = """
addEventListener("DOMContentLoaded", () => {
  const style = document.createElement("style");
  style.textContent = "*, *::before, *::after { animation: none !important;"
    + " transition: none !important; }";
  document.head.appendChild(style);
});
(() => {
  const frame = window.requestAnimationFrame.bind(window);
  const cancel = window.cancelAnimationFrame.bind(window);
  const delayed = new Map();  // id handed out -> {timer, frame}
  let inside = false, next = 1e9;
  const wrap = (callback) => (time) => {
    inside = true;
    try { callback(time); } finally { inside = false; }
  };
  window.requestAnimationFrame = (callback) => {
    if (!inside) return frame(wrap(callback));
    const id = next++, entry = {};
    entry.timer = setTimeout(() => {
      entry.frame = frame((time) => { delayed.delete(id); wrap(callback)(time); });
    }, 250);
    delayed.set(id, entry);
    return id;
  };
  window.cancelAnimationFrame = (id) => {
    const entry = delayed.get(id);
    if (!entry) return cancel(id);
    clearTimeout(entry.timer);
    if (entry.frame) cancel(entry.frame);
    delayed.delete(id);
  };
})();
"""


@contextmanager
def browser_page():
    """A page in a context of its own: no cookies, storage or cache from another test."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    context = _chromium().new_context(
        viewport={"width": 1280, "height": 1100}, reduced_motion="reduce"
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.add_init_script(script=_NO_ANIMATIONS)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
