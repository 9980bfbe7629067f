"""Training rows in the format the engine serves: each prompt is the one the engine builds
for the row's question on the row's database, minus the row's own answer.

No second prompt format lives here. The engine's own pieces write the prompt: the retriever
(:meth:`engine.rag.retriever.RagRetriever.retrieve`) picks the schema and the notes (sample
values, documentation, the database's solved examples, solved questions of other databases
when ``rag.pool_examples`` > 0) and fits them into the prompt budget;
:class:`engine.prompt.Prompter`, the answer loop's own renderer, writes the messages. What
training adds:

- **an index of its own**: each database of the data is indexed once, its tables with sample
  values and, as its solved examples, the data's pairs of that database, into
  ``<store>/train-<digest>`` (``rag.store_dir``, by default ``OUTPUT/vector_db``). The digest
  covers the pairs and the index settings, so a resumed run (or another run over the same
  data) reuses the index, and other data never finds a stale one;
- **the leakage rule**: a row's own pair never appears in its prompt. ``retrieve(...,
  leave_out=question)`` drops it from the database's examples and from the pool (which never
  holds the database's own pairs anyway), and the next-best example takes its place, exactly
  as if the pair had not been indexed.

Rows without a database file (the seed format's CREATE TABLE text) and runs with
``rag.enabled: false`` get the plain schema prompt, which is what the engine builds without a
retriever. The prompt budget is that of the default backend (llama.cpp's 8192-token context,
``generation.max_new_tokens`` of 256): far above any prompt that fits training's
``max_length``, so the whole schema and every note that fits are shown, as when served.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.backends.base import GenerationConfig
from engine.backends.llamacpp import MAX_CONTEXT
from engine.db import Database, open_database
from engine.prompt import Prompter, PromptFormat, prompt_budget
from engine.rag.config import RagConfig
from engine.rag.index import index_database
from engine.rag.retriever import RagRetriever
from engine.rag.saved_pairs import pair_id
from engine.rag.store import VectorStore
from training.data import Example, to_prompt_completion

log = logging.getLogger(__name__)
Renderer = Callable[[Example], dict]
STORE_SUBDIR = "vector_db"


class ServedPrompts:
    """Renders :class:`training.data.Example` rows as the engine serves them.

    :meth:`index` first (each database once), then :meth:`row` per example.
    """

    def __init__(
        self,
        rag: RagConfig,
        tokenizer: Any,
        fmt: PromptFormat,
        store_root: str | Path,
        *,
        progress: Callable[[str], None] | None = None,
        show_bar: bool = False,
    ) -> None:
        self.rag = rag
        self.store_root = Path(store_root)
        self.progress = progress
        self.show_bar = show_bar
        budget = prompt_budget(MAX_CONTEXT, GenerationConfig().max_new_tokens)  # as served

        def count_tokens(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        self.prompter = Prompter(fmt, budget, count_tokens)
        self.store_dir: Path | None = None
        self._schemas: dict[Database, Any] = {}

    @property
    def retriever(self) -> Any:
        return self.prompter.retriever

    def index(self, examples: list[Example]) -> Path:
        """Index every database of ``examples`` that the run's store lacks; returns the store.

        Each database's solved examples are the pairs of ``examples`` on it (the first of a
        question when it repeats), nothing the app saved and nothing bundled.
        """
        by_db = pairs_by_database(examples)
        self.store_dir = self.store_root / f"train-{index_digest(self.rag, by_db)}"
        cfg = dataclasses.replace(self.rag, store_dir=str(self.store_dir), auto_index=False)
        store = VectorStore(cfg)
        todo = [db for db in by_db if store.info(db) is None]
        self._say(
            f"Retrieval index for served prompts: {len(by_db)} databases in {self.store_dir}, "
            f"{len(by_db) - len(todo)} already indexed"
        )
        bar = _bar(len(todo)) if self.show_bar and todo else None
        with tempfile.TemporaryDirectory() as tmp:
            for i, db in enumerate(todo, 1):
                pairs = Path(tmp) / "pairs.json"
                pairs.write_text(json.dumps(by_db[db], ensure_ascii=False))
                index_database(cfg, db, examples=pairs, store=store, examples_root=Path(tmp))
                if bar is not None:
                    bar.update(1)
                if i % 10 == 0 or i == len(todo):
                    self._say(f"Indexed {i}/{len(todo)} databases ({db.stem})")
        if bar is not None:
            bar.close()
        self.prompter.retriever = RagRetriever(cfg, store=store)
        return self.store_dir

    def row(self, example: Example) -> dict:
        """The conversational prompt/completion row of ``example`` (see the module docstring)."""
        fmt = self.prompter.fmt
        if example.db_path is None or self.retriever is None:
            return to_prompt_completion(example, fmt)
        db = open_database(example.db_path)
        schema = self._schema(db)
        ctx = self.retriever.retrieve(
            example.question,
            db,
            schema,
            self.prompter.budget_tokens,
            self.prompter.count_tokens,
            leave_out=example.question,
        ).context
        messages, _ = self.prompter.messages(example.question, db, schema, context=ctx)
        return {
            "prompt": messages,
            "completion": [{"role": "assistant", "content": example.sql.strip()}],
        }

    def rows(self, examples: list[Example], what: str = "examples") -> list[dict]:
        """:meth:`row` of each example, with progress (a retrieval per row takes a while)."""
        self._say(f"Rendering {len(examples)} {what} as the engine serves them")
        bar = _bar(len(examples), f"Rendering {what}", "row") if self.show_bar else None
        out = []
        for i, example in enumerate(examples, 1):
            out.append(self.row(example))
            if bar is not None:
                bar.update(1)
            elif i % 500 == 0:
                self._say(f"Rendered {i}/{len(examples)} {what}")
        if bar is not None:
            bar.close()
        return out

    def _schema(self, db: Database) -> Any:
        if db not in self._schemas:
            self._schemas[db] = db.read_schema()
        return self._schemas[db]

    def _say(self, message: str) -> None:
        log.info(message)
        if self.progress is not None:
            self.progress(message)


def served_prompts(
    cfg: Any,
    tokenizer: Any,
    fmt: PromptFormat,
    examples: list[Example],
    progress: Callable[[str], None] | None = None,
    show_bar: bool = False,
) -> ServedPrompts | None:
    """The renderer for a run (:class:`training.config.TrainConfig`) with its databases
    indexed; None when its prompts are plain schema prompts (retrieval off, or no example has
    a database file)."""
    if not cfg.rag.enabled or not any(e.db_path for e in examples):
        return None
    root = Path(cfg.rag.store_dir).expanduser() if cfg.rag.store_dir else None
    root = root or cfg.resolved_output_dir / STORE_SUBDIR
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # one Chroma folder per process: an embedded store is not shared between processes
        root = root / f"rank{os.environ.get('RANK', '0')}"
    prompts = ServedPrompts(cfg.rag, tokenizer, fmt, root, progress=progress, show_bar=show_bar)
    prompts.index(examples)
    return prompts


def pairs_by_database(examples: list[Example]) -> dict[Path, list[dict[str, str]]]:
    """Question/SQL rows per database file, the first of each question (as the index keeps)."""
    out: dict[Path, list[dict[str, str]]] = {}
    seen: set[tuple[Path, str]] = set()
    for e in examples:
        if e.db_path is None:
            continue
        db = Path(e.db_path).resolve()
        key = (db, pair_id(e.question))
        if key not in seen:
            seen.add(key)
            out.setdefault(db, []).append({"question": e.question, "query": e.sql})
    return out


def index_digest(rag: RagConfig, by_db: dict[Path, list[dict[str, str]]]) -> str:
    """What an index depends on: the pairs of each database and the settings of indexing."""
    settings = {k: getattr(rag, k) for k in ("embedder", "sample_values", "chunk_tokens")}
    data = {str(db): rows for db, rows in sorted(by_db.items())}
    blob = json.dumps({"settings": settings, "pairs": data}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _bar(total: int, desc: str = "Indexing databases", unit: str = "db") -> Any:
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)
