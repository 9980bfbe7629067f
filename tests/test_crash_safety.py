"""``kill -9`` of a real app process in the middle of work, then a restart on the same data.

Each test starts ``launch.py`` as a subprocess, gets it busy (an upload, indexing, a training
run, an evaluation), sends SIGKILL at a moment it can see on disk, starts the app again on
the same data folder and checks what the next start does: nothing half-built is listed,
temporary files are gone, the index is rebuilt and it says so, training and evaluation offer
to resume and the resumed runs finish. Killing the training or the evaluation child alone is
reported plainly while the app keeps serving. Logs are kept in test-artifacts/crash-*.log.
"""

import contextlib
import csv
import json
import os
import re
import signal
import sqlite3
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import browser_page, launch_app, screenshot, stop_app, wait_for
from tests.helpers import alive, seed_rows

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def kill9(proc) -> float:
    """SIGKILL the app; returns when it is gone (seconds taken)."""
    started = time.perf_counter()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return time.perf_counter() - started


def children(pid: int, running: str = "") -> list[int]:
    """The process's children, those whose command line contains ``running`` (the app also
    has query workers, engine.sandbox)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in out if running in _cmdline(c)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def page_config(url: str) -> str:
    return urllib.request.urlopen(f"{url}config", timeout=10).read().decode()


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


# --- uploads -----------------------------------------------------------------------------


def test_kill_during_an_upload_lists_nothing_half_built(tmp_path):
    big = tmp_path / "big.csv"
    with open(big, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "city", "amount", "day"])
        for i in range(400_000):
            writer.writerow([i, f"name {i}", f"city {i % 977}", i * 0.25, f"2024-01-{i % 28 + 1:02d}"])  # fmt: skip
    data = tmp_path / "data"
    uploads = data / "uploads"
    proc, url, _ = launch_app("--no-warm-up", data_dir=data, log_name="crash-upload")
    try:
        with browser_page() as page:
            page.goto(url, wait_until="load")
            page.get_by_role("tab", name="Schema").click()
            page.locator("#schema-upload input[type=file]").set_input_files(str(big))
            page.locator("#schema-import").click()
            temps = wait_for(lambda: list(uploads.glob(".*.tmp*")), 120, "the upload's temp file")
            took = kill9(proc)
    finally:
        if proc.poll() is None:
            stop_app(proc)
    print(f"killed during the upload ({temps[0].name} on disk) in {took:.2f} s")
    assert list(uploads.glob(".*.tmp*")), "the kill came after the import finished"
    assert not list(uploads.glob("*.sqlite"))

    proc, url, log = launch_app("--no-warm-up", data_dir=data, log_name="crash-upload-restart")
    try:
        assert not list(uploads.glob(".*.tmp*"))
        assert "big (uploaded)" not in _client(url).predict(api_name="/databases")
        assert "unfinished upload" in page_config(url)
    finally:
        stop_app(proc)
    assert "unfinished upload" in log.read_text()


# --- indexing ----------------------------------------------------------------------------

WIDE_TABLES = 400


def _wide_database(path: Path) -> None:
    """400 tables whose column names no earlier run has seen: the embedding cache
    (engine/rag/embedding_cache.py) would otherwise make indexing them too fast to interrupt."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    salt = uuid.uuid4().hex[:8]
    for t in range(WIDE_TABLES):
        con.execute(
            f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, label_{t}_{salt} TEXT, size_{t} REAL)"
        )
        con.execute(f"INSERT INTO t{t} VALUES (1, 'alpha {t}', {t}.5), (2, 'beta {t}', 1.5)")
    con.commit()
    con.close()


def _staging_collections(store: Path) -> list[str]:
    db = store / "chroma.sqlite3"
    if not db.is_file():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            rows = con.execute("SELECT name FROM collections WHERE name LIKE '%-new'").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    return [r[0] for r in rows]


def test_kill_during_indexing_rebuilds_the_index_and_says_so(tmp_path):
    from engine.rag.config import RagConfig
    from engine.rag.store import VectorStore

    data = tmp_path / "data"
    wide = data / "uploads" / "wide.sqlite"
    _wide_database(wide)
    store = data / "vector_db" / "chroma"
    args = ("--no-warm-up", "--model", "smollm2-135m-instruct")
    proc, url, _ = launch_app(*args, data_dir=data, log_name="crash-index")
    try:

        def ask():
            with contextlib.suppress(Exception):  # the app is killed under it
                _client(url).predict("How many t1?", "wide (uploaded)", api_name="/ask")

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()  # the first question on a database indexes it
        # Killed at the first sight of the staging collection: indexing 400 tables takes
        # seconds on a fast machine, the poll 20 ms.
        wait_for(lambda: _staging_collections(store), 300, "indexing to start", interval=0.02)
        took = kill9(proc)
    finally:
        if proc.poll() is None:
            stop_app(proc)
    print(f"killed during indexing in {took:.2f} s")
    assert _staging_collections(store), "the kill came after indexing finished"

    proc, url, log = launch_app(*args, data_dir=data, log_name="crash-index-restart")
    try:
        assert "Indexing of wide.sqlite was interrupted: rebuilding it." in page_config(url)
        wait_for(lambda: "Rebuilt the index of wide.sqlite" in log.read_text(), 300, "the rebuild")
    finally:
        stop_app(proc)
    assert "Indexing of wide.sqlite was interrupted" in log.read_text()
    vectors = VectorStore(RagConfig(store_dir=str(store)))
    assert _staging_collections(store) == []
    assert vectors.info(wide)["tables"] == WIDE_TABLES
    name = [c.name for c in vectors.client.list_collections() if c.name.startswith("wide-")]
    assert len(name) == 1
    assert vectors.client.get_collection(name[0]).count() == WIDE_TABLES


# --- training ----------------------------------------------------------------------------

# a checkpoint every 4 steps (train-save); 32 steps leave the resumed run (from step 4)
# seconds after its next checkpoint even on an idle machine, to be killed in
STEPS, RUN = 32, "crash-run"


def _checkpoints(run: Path) -> list[int]:
    return sorted(
        int(c.name.split("-")[1])
        for c in run.glob("checkpoint-*")
        if (c / "trainer_state.json").is_file()
    )


def _fill_training_form(page, tiny_llama, rows: Path) -> None:
    for elem_id, value in (("train-model", tiny_llama), ("train-data", rows)):
        box = page.locator(f"#{elem_id} input")
        box.fill(str(value))
        box.press("Enter")
    # the rows are at most 275 tokens of the tiny tokenizer: packed to 512, a step is a
    # fraction of a second (packed to 2048, seconds: attention over 2048 positions)
    for elem_id, value in (("train-steps", STEPS), ("train-maxlen", 512), ("train-save", 4)):
        box = page.locator(f"#{elem_id} input").first
        box.fill(str(value))
        box.press("Tab")
    page.locator("#train-name textarea, #train-name input").first.fill(RUN)


def test_kill_during_training_then_resume_and_kill_the_child_alone(tmp_path, tiny_llama):
    data = tmp_path / "data"
    run = data / "runs" / RUN
    rows = seed_rows(tmp_path / "rows.json")  # plain prompts: no indexing at each restart
    proc, url, _ = launch_app("--no-warm-up", data_dir=data, log_name="crash-train")
    try:
        with browser_page() as page:
            page.goto(url, wait_until="load")
            page.get_by_role("tab", name="Training").click()
            _fill_training_form(page, tiny_llama, rows)
            page.locator("#train-start").click()
            wait_for(lambda: _checkpoints(run), 600, "a first checkpoint", interval=0.2)
            jobs = children(proc.pid, "training.guard")
            took = kill9(proc)
    finally:
        if proc.poll() is None:
            stop_app(proc)
    print(f"killed the app at checkpoint {_checkpoints(run)} in {took:.2f} s")
    assert jobs, "no training process was running"
    wait_for(lambda: not any(alive(p) for p in jobs), 30, "the training process to stop")
    assert not (run / "adapter" / "adapter_config.json").is_file()
    stopped_at = _checkpoints(run)[-1]
    assert stopped_at < STEPS

    proc, url, _ = launch_app("--no-warm-up", data_dir=data, log_name="crash-train-restart")
    try:
        with browser_page() as page:
            page.goto(url, wait_until="load")
            page.get_by_role("tab", name="Training").click()
            offer = page.locator("#train-interrupted-box")
            offer.wait_for(timeout=30_000)
            screenshot(page, "training-resume-offer")
            assert RUN in page.locator("#train-interrupted input").input_value()
            page.locator("#train-resume-interrupted").click()
            # said when the handler returns: once not within a minute on a loaded machine
            page.locator("#train-message").get_by_text("Resuming run").wait_for(timeout=180_000)
            # Kill the training process alone once it has saved a later checkpoint (its
            # process taken first: an idle machine runs the remaining steps in seconds).
            [job] = wait_for(lambda: children(proc.pid, "training.guard"), 60, "the run's child")
            wait_for(lambda: _checkpoints(run)[-1] > stopped_at, 600, "a resumed checkpoint",
                     interval=0.05)  # fmt: skip
            assert alive(job), (
                f"the resumed run finished before it could be killed: {_checkpoints(run)}"
            )
            os.kill(job, signal.SIGKILL)
            message = page.locator("#train-message")
            message.get_by_text("stopped from outside").wait_for(timeout=60_000)
            screenshot(page, "training-child-killed")
            assert "SIGKILL" in message.inner_text()
            ran = _client(url).predict("SELECT count(*) FROM customers", "shop (sample)",
                                       api_name="/run_sql")  # fmt: skip
            assert ran["error"] is None  # the app keeps serving
            # The form's Resume finishes the run.
            _fill_training_form(page, tiny_llama, rows)
            page.locator("#train-resume").click()
            # said before the first step (the log view keeps the last lines, the steps follow)
            expect(page.locator("#train-log textarea")).to_have_value(
                re.compile(r"Resuming from \S*checkpoint-\d+"), timeout=120_000
            )
            message.get_by_text("Done.").wait_for(timeout=600_000)
            screenshot(page, "training-resumed-done")
            assert f"step {STEPS}/{STEPS}" in page.locator("#train-progress").inner_text()
    finally:
        stop_app(proc)
    assert (run / "adapter" / "adapter_config.json").is_file()


# --- evaluation --------------------------------------------------------------------------

LIMIT = 48  # a kill of the child after the first answers, a kill of the app after more


def _records(evals: Path) -> list[dict]:
    files = list(evals.glob("*/predictions.jsonl"))
    if not files:
        return []
    lines = files[0].read_text().splitlines()
    return [json.loads(x) for x in lines[:-1] if x.strip()]  # the last may be half-written


def test_evaluation_resumes_after_a_kill_of_its_child_then_of_the_app(tmp_path, tiny_llama):
    """The Evaluation tab runs in a child process. A SIGKILL of that child alone is said in
    one line, the app keeps serving, and the tab resumes the run; a ``kill -9`` of the app
    then stops the resumed child too, and the next start offers the run again and finishes
    it, keeping every answer recorded before either kill. (What is measured does not matter
    here: a tiny random Llama without retrieval answers in a fraction of a second.)"""
    data = tmp_path / "data"
    evals = data / "evals"
    args = ("--no-warm-up", "--model", str(tiny_llama), "--set", "backend=transformers",
            "--set", "rag.enabled=false", "--set", "max_attempts=1",
            "--set", "generation.max_new_tokens=96")  # fmt: skip
    proc, url, _ = launch_app(*args, data_dir=data, log_name="crash-eval")
    try:
        with browser_page() as page:
            page.goto(url, wait_until="load")
            page.get_by_role("tab", name="Evaluation").click()
            box = page.locator("#eval-limit input").first
            box.fill(str(LIMIT))
            box.press("Tab")
            page.locator("#eval-run").click()
            wait_for(lambda: len(_records(evals)) >= 2, 300, "two answers recorded")
            [child] = children(proc.pid, "training.evaluate")
            os.kill(child, signal.SIGKILL)
            before_child_kill = _records(evals)
            status = page.locator("#eval-status")
            status.get_by_text("stopped from outside").wait_for(timeout=60_000)
            screenshot(page, "evaluation-child-killed")
            status.get_by_text("run(s) finished").wait_for(timeout=30_000)  # and stays
            said = status.inner_text().strip()
            assert "SIGKILL" in said and "\n" not in said, said
            assert len(before_child_kill) < LIMIT, "the evaluation finished before the kill"
            ran = _client(url).predict("SELECT count(*) FROM customers", "shop (sample)",
                                       api_name="/run_sql")  # fmt: skip
            assert ran["error"] is None and ran["rows"]  # the app keeps serving
            # The tab offers the killed run for resuming; the resumed run is killed with the app.
            page.locator("#eval-interrupted-box").wait_for(timeout=30_000)
            page.locator("#eval-resume").click()
            more = len(before_child_kill) + 2
            wait_for(lambda: len(_records(evals)) >= more, 300, "answers after the resume")
            jobs = children(proc.pid, "training.evaluate")
            took = kill9(proc)
    finally:
        if proc.poll() is None:
            stop_app(proc)
    # the evaluation process stops by itself once its app is gone (within a second or two,
    # longer on a loaded machine); what it recorded until then is what a resume starts from
    assert jobs, "no evaluation process was running"
    wait_for(lambda: not any(alive(p) for p in jobs), 60, "the evaluation process to stop")
    before = _records(evals)
    print(f"killed the app after {len(before)} of {LIMIT} answers in {took:.2f} s")
    assert len(before) < LIMIT, "the resumed evaluation finished before the app was killed"

    proc, url, _ = launch_app(*args, data_dir=data, log_name="crash-eval-restart")
    try:
        with browser_page() as page:
            page.goto(url, wait_until="load")
            page.get_by_role("tab", name="Evaluation").click()
            page.locator("#eval-interrupted-box").wait_for(timeout=30_000)
            screenshot(page, "evaluation-resume-offer")
            page.locator("#eval-resume").click()
            page.locator("#eval-status").get_by_text("Done:").wait_for(timeout=600_000)
            screenshot(page, "evaluation-resumed-done")
            assert page.locator("#eval-metrics table tbody tr").count() == 1
    finally:
        stop_app(proc)
    [run] = [p.parent for p in evals.glob("*/metrics.json")]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["complete"] and metrics["n"] == LIMIT
    after = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines() if x]
    assert sorted(r["index"] for r in after) == list(range(LIMIT))
    kept = {r["index"]: r for r in after}
    assert all(kept[r["index"]] == r for r in before_child_kill + before)  # none re-answered
