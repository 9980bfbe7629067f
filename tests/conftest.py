"""Shared fixtures: a tiny random Llama (no download), sample databases, shared data paths."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# Every test runs offline, and model conversions go to a per-run cache unless CI keeps one.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A test that names no data folder writes to one of the run's own, never to data_base/ of the
# checkout (indexes of the samples were left there), nor to another xdist worker's.
_DATA = tempfile.mkdtemp(prefix="text2sql-test-data-")
atexit.register(shutil.rmtree, _DATA, ignore_errors=True)
os.environ.setdefault("TEXT2SQL_DATA", _DATA)


def _pin_xdist_worker() -> None:
    """Under pytest-xdist (``make test`` runs ``-n`` one worker per core), worker *i* and every
    process it starts (apps, CLIs, training and evaluation children, llama.cpp, torch) run on
    core *i* alone. Each worker's tests then have a core to themselves: llama.cpp and torch
    size their thread pools to it, so two workers never fight over both cores (OpenMP threads
    that share a busy core wait for each other), and the single-threaded parts of the suite
    (imports, app starts, the browser) run two at a time instead of leaving a core idle.
    Done before anything imports torch: its thread pool is sized when it is loaded."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    cores = sorted(_ALL_CORES)
    if not worker.startswith("gw") or not 1 < count <= len(cores):
        return
    os.sched_setaffinity(0, cores[int(worker[2:]) :: count])


_ALL_CORES = os.sched_getaffinity(0)
_pin_xdist_worker()

# Files whose tests share a session fixture that is costly to start: under xdist, each group
# runs in one worker, so the fixture starts once (the default app loads the 1.5B and primes
# shop; the PostgreSQL and MariaDB servers take seconds each to initialise).
XDIST_GROUPS = {
    "test_app_browser.py": "default_app",
    "test_app_feedback_browser.py": "default_app",
    "test_db_engines.py": "db_servers",
    "test_db_safety.py": "db_servers",
    "test_app_connections.py": "db_servers",
}


# The files (and groups) that took longest in a cold run on a 2-core machine, longest first
# (test-artifacts/junit.xml: 718, 536, 363, 351, 348, 273, 264, 228, 184, 159, 154, 126 s).
# They are handed out first, so that no long one starts when the other worker is nearly done;
# the rest follow, most tests first. Only the order depends on this list, never a result.
LONGEST_FIRST = [
    "test_crash_safety.py", "default_app", "test_app_tabs.py", "test_train.py", "db_servers",
    "test_backends.py", "test_rag.py", "test_app_users.py", "test_train_jobs.py",
    "test_app_api.py", "test_export.py", "test_train_distributed.py",
]  # fmt: skip


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Hand out whole test files (module-scoped apps start once), the groups above as one,
    the longest first. (xdist's own ``--dist loadgroup`` marks tests by rewriting
    ``item._nodeid``, which pytest 9 no longer reads: every group would be split.)"""
    from xdist.scheduler import LoadScopeScheduling

    def rank(scope: str) -> int:
        name = Path(scope).name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    class FileGroups(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return XDIST_GROUPS.get(Path(file).name, file)

        def _assign_work_unit(self, node: object) -> None:
            if not self.ordered:  # the queue is complete before the first unit goes out
                units = sorted(self.workqueue.items(), key=lambda unit: rank(unit[0]))
                self.workqueue.clear()
                self.workqueue.update(units)
                self.ordered = True
            super()._assign_work_unit(node)

    return FileGroups(config, log)


_CORPUS = [
    "SELECT count(*) FROM customers;",
    "SELECT name, city FROM customers WHERE country = 'France' ORDER BY name;",
    "SELECT c.name, sum(o.total) FROM customers AS c JOIN orders AS o ON o.customer_id = c.id GROUP BY c.name;",
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT, country TEXT);",
    "SQL table: CREATE TABLE t (a INT)\n\nTask: How many customers are there?\nSQL query: ",
    "You are a helpful programmer assistant that excels at SQL. Don't explain your reasoning.",
    "[INST] <<SYS>> <</SYS>> [/INST] ``` sql ; , ( ) * = < > 0 1 2 3 4 5 6 7 8 9",
]


def build_tiny_llama(folder: Path) -> Path:
    """A 2-layer random Llama with a small BPE tokenizer trained here, saved to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from engine.prompt import LLAMA2_CHAT_TEMPLATE

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_CORPUS * 20, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tok.chat_template = LLAMA2_CHAT_TEMPLATE
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed-format rows over four one-table schemas (so the split has groups to hold out)."""
    from tests.helpers import seed_rows

    return seed_rows(tmp_path_factory.mktemp("data") / "rows.json")


@pytest.fixture(scope="session")
def default_app(tmp_path_factory: pytest.TempPathFactory):
    """``launch.py`` on the bundled defaults, one for the whole run: (URL, data folder).

    The browser tests that need no app of their own share it (tests/test_app_browser.py,
    tests/test_app_feedback_browser.py): the default model is loaded, and the shop sample
    indexed and primed, once instead of once per module. Their checks are written for a shared
    app: each asks about its own questions and databases, and what one leaves behind (an
    upload, a training run, saved pairs of other questions) is no other's concern."""
    from tests.browser import running_app

    data = tmp_path_factory.mktemp("appdata")
    with running_app(data_dir=data) as url:
        yield url, data


@pytest.fixture
def small_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every retriever of the test draws from a cut of the shipped example pool: every 15th
    pair (about 380, from every kind of database). What the pool does is the same at any
    size; the whole one (5,700 questions) costs one to three minutes to embed on a cold run."""
    import functools

    import engine.rag.pool as pool_module

    path = tmp_path / "pool.jsonl"
    pool_module.write_pool(pool_module.read_pool()[::15], path)
    pools = functools.cache(lambda embedder: pool_module.ExamplePool(embedder, path))
    monkeypatch.setattr(pool_module, "example_pool", pools)
    return path


@pytest.fixture(scope="session")
def shop_db() -> Path:
    path = REPO / "sample_dbs" / "shop.sqlite"
    if not path.is_file():
        pytest.skip("sample_dbs/shop.sqlite missing: run python sample_dbs/build.py")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (see README: Data)")
    return SHARED_DATA


@pytest.fixture
def small_db(tmp_path) -> Path:
    """A two-table zoo database (keepers, animals with a foreign key) in ``tmp_path``."""
    import sqlite3

    path = tmp_path / "zoo.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE keepers (id INTEGER PRIMARY KEY, name TEXT, shift TEXT);"
        "CREATE TABLE animals (id INTEGER PRIMARY KEY, species TEXT, keeper_id INTEGER "
        "REFERENCES keepers(id));"
        "INSERT INTO keepers VALUES (1,'Ann','Morning'),(2,'Bo','Evening');"
        "INSERT INTO animals VALUES (1,'Zebra',1),(2,'Lion',2),(3,'Zebra',2);"
    )
    con.commit()
    con.close()
    return path


# DeepSpeed's CPU Adam, ZeRO offload's optimizer, and its shared-memory communication op (for
# the CPU accelerator) compile the first time they are used: about four minutes on a fresh
# 2-core machine, kept in TORCH_EXTENSIONS_DIR afterwards. When a collected test asks
# for it (the ``cpu_adam`` fixture), the compile starts in the background at once, at the
# lowest priority, on the core that the tests before it leave idle; the test then finds it
# built, or waits for the rest.
_cpu_adam_build: subprocess.Popen | None = None


def _torch_extensions_dir() -> Path:
    from engine.paths import cache_dir

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cache_dir() / "torch_extensions")


def pytest_collection_finish(session: pytest.Session) -> None:
    global _cpu_adam_build
    wanted = any("cpu_adam" in getattr(item, "fixturenames", ()) for item in session.items)
    if not wanted or importlib.util.find_spec("deepspeed") is None or not _first_to_build():
        return
    log = REPO / "test-artifacts" / "cpu-adam-build.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as out:
        _cpu_adam_build = subprocess.Popen(
            [sys.executable, "-c", _LOAD_OPS],
            env={**os.environ, "TORCH_EXTENSIONS_DIR": str(_torch_extensions_dir())},
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=_idle_priority_on_any_core,
        )  # fmt: skip


def _idle_priority_on_any_core() -> None:
    os.nice(19)
    os.sched_setaffinity(0, _ALL_CORES)  # an xdist worker's pin would hold it to one core


def _first_to_build() -> bool:
    """True in a plain run, and in the first xdist worker to ask (each worker collects every
    test): one background build per run. Another worker's ``cpu_adam`` fixture loads the ops
    itself, which waits for torch's build lock while the first worker's build runs."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        return True
    marker = Path(tempfile.gettempdir()) / f"text2sql-cpu-adam-{run}"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    atexit.register(marker.unlink, missing_ok=True)
    return True


_LOAD_OPS = ("from deepspeed.ops.op_builder import CPUAdamBuilder, ShareMemCommBuilder; "
             "CPUAdamBuilder().load(); ShareMemCommBuilder().load()")  # fmt: skip


def pytest_sessionfinish(session: pytest.Session) -> None:
    if "tests.browser" in sys.modules:
        sys.modules["tests.browser"].close_browser()
    if _cpu_adam_build is not None and _cpu_adam_build.poll() is None:
        _cpu_adam_build.kill()  # the run ended before the test that needed it
        _cpu_adam_build.wait()
        # torch's build lock, left behind, would make the next build wait for ever
        for op in ("cpu_adam", "deepspeed_shm_comm"):
            (_torch_extensions_dir() / op / "lock").unlink(missing_ok=True)


@pytest.fixture
def cpu_adam() -> dict[str, str]:
    """Environment under which DeepSpeed finds its CPU ops compiled (waits for the background
    build; if that failed, the test's own load compiles again and shows the error)."""
    env = {"TORCH_EXTENSIONS_DIR": str(_torch_extensions_dir())}
    if _cpu_adam_build is not None:
        _cpu_adam_build.wait()
    elif os.environ.get("PYTEST_XDIST_TESTRUNUID"):
        # another worker builds: loading waits for its build lock, then finds the ops built
        subprocess.run([sys.executable, "-c", _LOAD_OPS], env={**os.environ, **env},
                       capture_output=True, timeout=1800)  # fmt: skip
    return env


# Throwaway PostgreSQL and MariaDB servers and DuckDB files with the samples loaded (each
# started once per session, only by the tests that use them).
from tests.db_servers import duck_samples, maria_server, pg_server  # noqa: E402, F401
