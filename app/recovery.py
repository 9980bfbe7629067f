"""What an app killed mid-work (``kill -9``, a power cut) leaves behind, found at the next start.

- **Uploads** are built in ``.<hex>.tmp`` files beside the databases and renamed into place
  once complete, so a half-built one is never listed; the temporary files (and SQLite's
  ``-journal`` beside them) are removed here.
- **Indexes** are written to a staging collection (``<name>-new``) that replaces the
  database's collection only once complete (engine.rag.store). A staging collection left
  over means indexing was cut short: it is dropped, and when the database then has no index
  it is rebuilt in the background. A collection Chroma cannot read back is dropped and
  rebuilt the same way. Each step is said in the log and in the app.
- **Training runs** with a checkpoint but no adapter, and **evaluations** without final
  metrics, are listed so their tabs can offer to resume them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.rag.index import index_database
from engine.rag.store import StoreError, VectorStore
from training.eval_config import PREDICTIONS, RUN_FILE

REBUILD_THREAD = "index-rebuild"  # app.engines.EnginePool.busy looks for it
log = logging.getLogger(__name__)
STAGING_SUFFIX = "-new"  # engine.rag.store.VectorStore.replace writes here first


def clean_upload_temps(data: Path) -> list[str]:
    """Remove unfinished uploads of every user; returns the file names removed."""
    folders = [data / "uploads", *sorted((data / "users").glob("*/uploads"))]
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(".*.tmp*")):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    if removed:
        log.warning("Removed %d unfinished upload file(s) left by an interrupted import",
                    len(removed))  # fmt: skip
    return removed


@dataclass
class IndexCheck:
    """What :func:`check_indexes` found and did, in words for the log and the app."""

    notes: list[str]
    rebuilding: threading.Thread | None = None


def check_indexes(rag: Any, say: Callable[[str], None] | None = None) -> IndexCheck:
    """Drop interrupted or unreadable collections of the embedded store; rebuild their
    databases' indexes in the background. ``say`` hears how each rebuild ends."""
    if rag.chroma_host or not rag.store_path().is_dir():
        return IndexCheck([])
    try:
        store = VectorStore(rag)
    except StoreError as err:  # reported when retrieval is used; nothing to repair here
        return IndexCheck([f"Vector store not checked: {str(err).splitlines()[0]}"])
    notes: list[str] = []
    lost: dict[str, Path] = {}  # collection name -> database to re-index
    names = {c.name for c in store.client.list_collections()}
    for name in sorted(names):
        collection = store.client.get_collection(name, embedding_function=None)
        db = Path(str((collection.metadata or {}).get("db_path", "")))
        final = name.removesuffix(STAGING_SUFFIX)
        if name.endswith(STAGING_SUFFIX):
            store.client.delete_collection(name)
            if final not in names:
                notes.append(f"Indexing of {db.name or final} was interrupted: rebuilding it.")
                lost[final] = db
            else:
                notes.append(f"Indexing of {db.name or final} was interrupted; its previous "
                             "index is intact and kept.")  # fmt: skip
            continue
        problem = _unreadable(collection)
        if problem:
            store.client.delete_collection(name)
            notes.append(f"The index of {db.name or name} could not be read ({problem}): "
                         "rebuilding it.")  # fmt: skip
            lost[name] = db
    for note in notes:
        log.warning(note)
    todo = [db for db in lost.values() if db.name and db.is_file()]
    thread = None
    if todo:
        thread = threading.Thread(target=_rebuild, args=(rag, todo, say), name=REBUILD_THREAD,
                                  daemon=True)  # fmt: skip
        thread.start()
    return IndexCheck(notes, thread)


def _unreadable(collection: Any) -> str | None:
    """None when the collection reads back (count, a stored vector, a query with it)."""
    try:
        if collection.count() == 0:
            return "it is empty"
        got = collection.get(limit=1, include=["embeddings"])
        vector = got["embeddings"][0]
        collection.query(query_embeddings=[list(vector)], n_results=1)
    except Exception as err:
        text = str(err).strip().splitlines()
        return text[0] if text else type(err).__name__
    return None


def _rebuild(rag: Any, dbs: list[Path], say: Callable[[str], None] | None) -> None:
    for db in dbs:
        try:
            report = index_database(rag, db)
            message = (
                f"Rebuilt the index of {db.name} after an interrupted run ({report.seconds:.1f} s)."
            )
        except Exception as err:  # the first question on it will try again
            message = f"Could not rebuild the index of {db.name}: {str(err).splitlines()[0]}"
        log.warning(message)
        if say is not None:
            say(message)


# --- jobs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interrupted:
    """A training run or evaluation that stopped before its end and can be resumed."""

    folder: Path
    done: int  # training: the last checkpoint's step; evaluation: questions answered
    total: int | None

    def describe(self) -> str:
        of = f" of {self.total}" if self.total else ""
        return f"{self.folder.name} (stopped at {self.done}{of})"


def interrupted_training(runs: Path, job_config: str = "job_config.yaml") -> list[Interrupted]:
    """Runs started from the app with a complete checkpoint and no adapter, newest first."""
    found = []
    for config in runs.glob(f"*/{job_config}"):
        run = config.parent
        if (run / "adapter" / "adapter_config.json").is_file():
            continue
        steps = [_checkpoint_step(c) for c in run.glob("checkpoint-*")]
        steps = [s for s in steps if s is not None]
        if steps:
            found.append((config.stat().st_mtime, Interrupted(run, max(steps), _max_steps(config))))
    return [r for _, r in sorted(found, key=lambda x: -x[0])]


def _checkpoint_step(folder: Path) -> int | None:
    """The step of a complete checkpoint (the Trainer writes trainer_state.json last)."""
    try:
        return int(json.loads((folder / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _max_steps(config: Path) -> int | None:
    try:
        steps = (yaml.safe_load(config.read_text()) or {}).get("max_steps")
    except (OSError, yaml.YAMLError):
        return None
    return int(steps) if isinstance(steps, int) and steps > 0 else None


def interrupted_evaluations(evals: Path) -> list[Interrupted]:
    """Evaluations with a run file and no final metrics, newest first."""
    found = []
    for run_file in evals.glob(f"*/{RUN_FILE}"):
        run = run_file.parent
        metrics = run / "metrics.json"
        try:
            if metrics.is_file() and json.loads(metrics.read_text()).get("complete", True):
                continue
        except (OSError, ValueError):
            pass
        preds = run / PREDICTIONS
        done = (
            sum(1 for line in preds.read_text().splitlines() if line.strip())
            if preds.is_file()
            else 0
        )
        limit = json.loads(run_file.read_text()).get("settings", {}).get("limit")
        found.append((run_file.stat().st_mtime, Interrupted(run, done, limit)))
    return [r for _, r in sorted(found, key=lambda x: -x[0])]


def resume_offer(choices: list[str]) -> tuple[Any, Any]:
    """Gradio updates for a tab's resume offer (its row, its dropdown): shown, with the first
    choice picked, when there is something to resume."""
    import gradio as gr  # deferred: gradio takes seconds; the app starts by recovering without it

    value = choices[0] if choices else None
    return gr.update(visible=bool(choices)), gr.update(choices=choices, value=value)
