"""Helpers shared by the suite: one fake backend, the small customers database, the CLI,
seed-format training rows and a tiny run's config, a random LoRA adapter and the logits of
either real backend.

:class:`FakeBackend` has the engine's Backend interface (``engine.backends.base``) with the
answers a test chooses: prompts are the chat messages as JSON, tokens are words. It records
every prompt and the size of every ``generate`` call. The suite's kinds of it:
:class:`ScriptedBackend` (canned outputs, in order), :class:`PrefillingBackend` (with a prompt
cache to fill, like llama.cpp's), :class:`OracleBackend` (SQL by question, for evaluations)
and :class:`EchoBackend` (slow, each answer naming its question, for batching).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.prompt import DEFAULT_FORMAT

REPO = Path(__file__).resolve().parent.parent


class FakeBackend:
    """Answers each prompt with ``answer(prompt)``, ``delay`` seconds per call."""

    name = "fake"
    prompt_format = DEFAULT_FORMAT
    context_length = 4096

    def __init__(self, answer: Callable[[str], str], delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.prompts: list[str] = []  # every prompt, in order
        self.calls: list[int] = []  # prompts per generate() call
        self.batches: list[list[str]] = []  # the prompts of each call

    def render(self, messages):
        return json.dumps(messages)

    def count_tokens(self, text):
        return len(text.split())

    def generate(self, prompts, cfg):
        time.sleep(self.delay)
        out = [self.answer(p) for p in prompts]  # an answer may raise: nothing is recorded
        self.prompts.extend(prompts)
        self.calls.append(len(prompts))
        self.batches.append(list(prompts))
        return out


class ScriptedBackend(FakeBackend):
    """Returns canned outputs in order."""

    name = "scripted"

    def __init__(self, outputs):
        self.outputs = list(outputs)
        super().__init__(lambda prompt: self.outputs.pop(0))


class PrefillingBackend(ScriptedBackend):
    """A scripted backend with a prompt cache to fill (like llama.cpp's)."""

    def __init__(self, outputs):
        super().__init__(outputs)
        self.prefilled = []

    def prefill(self, prompt):
        self.prefilled.append(prompt)
        return self.count_tokens(prompt)


def task_of(prompt: str) -> str:
    """The question a prompt asks (its "Task:" line)."""
    return re.search(r"Task: (.*?)\n", json.loads(prompt)[1]["content"]).group(1)


class OracleBackend(FakeBackend):
    """Answers from a question -> SQL table; ``repair`` answers repair turns; questions in
    ``explode`` make generate() raise."""

    name = "oracle"

    def __init__(self, answers, repair=None, explode=(), delay=0.0):
        self.answers, self.repair, self.explode = answers, repair or {}, set(explode)
        super().__init__(self._answer, delay)

    def _answer(self, prompt):
        question = task_of(prompt)
        if question in self.explode:
            raise RuntimeError("CUDA out of memory (simulated)")
        table = self.repair if len(json.loads(prompt)) > 2 else self.answers
        return f"```sql\n{table.get(question, 'SELECT 1 FROM nowhere')};\n```"


class EchoBackend(FakeBackend):
    """Answers each prompt with SQL that selects the prompt's own question tag, slowly, so
    that other questions arrive while it works."""

    name = "echo"

    def __init__(self):
        super().__init__(self._answer, delay=0.3)

    @staticmethod
    def _answer(prompt):
        tag = re.findall(r"question-\d+", json.loads(prompt)[-1]["content"])[-1]
        return f"SELECT '{tag}' AS tag"


def customers_db(path: Path, orders: bool = False) -> Path:
    """customers(id, name, country): Ann and Cy in France, Bo in Spain; with ``orders``,
    orders(id, customer_id, total) too, four of them."""
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, country TEXT);"
        "INSERT INTO customers VALUES (1,'Ann','France'),(2,'Bo','Spain'),(3,'Cy','France');"
    )
    if orders:
        con.executescript(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL);"
            "INSERT INTO orders VALUES (1,1,10),(2,1,5),(3,2,7),(4,3,100);"
        )
    con.commit()
    con.close()
    return path


def engine_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m engine ARGS`` from the repository, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,  # a first call may also index the database for RAG
    )


def eval_config(engine=None, **settings):
    """Evaluation settings over an engine without retrieval (the oracle needs none)."""
    from engine.config import EngineConfig
    from engine.rag.config import RagConfig
    from training.eval_config import EvalConfig

    return EvalConfig(
        engine=EngineConfig(rag=RagConfig(enabled=False), **(engine or {})), **settings
    )


# Four one-table schemas for seed-format training rows (instruction, input DDL, response).
SEED_TABLES = {
    "customers": "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT)",
    "orders": "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INT, total REAL)",
    "products": "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL)",
    "staff": "CREATE TABLE staff (id INTEGER PRIMARY KEY, name TEXT, country TEXT)",
}


def seed_rows(path: Path, per_table: int = 8) -> Path:
    """A JSON file of seed-format pairs, ``per_table`` over each of ``SEED_TABLES``: plain
    schema prompts (no database to index), a few hundred tokens of the tiny tokenizer each,
    and four groups for a split by database to hold out."""
    rows = [
        {"instruction": f"How many {table} have id above {i}?", "input": ddl,
         "response": f"SELECT count(*) FROM {table} WHERE id > {i}"}
        for table, ddl in SEED_TABLES.items() for i in range(per_table)
    ]  # fmt: skip
    path.write_text(json.dumps(rows))
    return path


def tiny_config(model: Path, data: Path, out: Path, **changes: object):
    """A 3-step LoRA run on CPU, small enough for the tiny random Llama."""
    from training.config import LoraSettings, TrainConfig

    values: dict = dict(
        model=str(model),
        data=str(data),
        output_dir=str(out),
        device="cpu",
        max_steps=3,
        batch_size=2,
        max_length=512,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        learning_rate=1e-3,
        save_steps=2,
        eval_limit=4,
        val_fraction=0.25,
        threads=1,
    )
    values.update(changes)
    return TrainConfig(**values)


# --- models: a random LoRA adapter, logits on either backend ------------------------------

SQL_MESSAGES = [
    {"role": "system", "content": "You write SQLite queries."},
    {"role": "user", "content": "Table: customers(id, name, country).\nCount the customers."},
]


def random_adapter(base_dir: Path, out: Path, scale: float, **lora_kwargs) -> Path:
    """A PEFT LoRA on ``base_dir`` with non-zero random B matrices, saved to ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", **lora_kwargs)
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, scale)
    model.save_pretrained(out)
    return out


def logits_along(backend, prompt, continuation=()):
    """Next-token logits after ``prompt`` and after each token of ``continuation`` fed in turn
    (teacher forcing), on either backend: one row per step, ``len(continuation) + 1`` rows."""
    import numpy as np
    import torch

    from engine.backends.transformers_backend import TransformersBackend

    if isinstance(backend, TransformersBackend):
        ids = backend.loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = backend.loaded.model(torch.tensor([ids + list(continuation)])).logits
        return logits[0, len(ids) - 1 :].numpy()
    import llama_cpp

    llm = backend.llm  # llama-cpp-python's own context, which generation does not use
    llm.reset()
    rows = []
    for tokens in [backend.tokenize(prompt), *([t] for t in continuation)]:
        llm.eval(tokens)
        logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        rows.append(np.ctypeslib.as_array(logits, shape=(llm.n_vocab(),)).copy())
    return np.stack(rows)


def next_token_logits(backend, prompt):
    """Next-token logits after ``prompt`` on either backend."""
    return logits_along(backend, prompt)[-1]


def alive(pid: int) -> bool:
    """The process runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def run_async(func, *args):
    """``anyio.run(func, *args)`` in a thread of its own: a worker process that ran a
    Playwright test before keeps that test's event loop set as running in its main thread
    (pytest-xdist ran both in one worker), where a second loop cannot start."""
    from concurrent.futures import ThreadPoolExecutor

    import anyio

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, func, *args).result()
