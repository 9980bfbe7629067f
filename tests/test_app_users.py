"""Users apart: sign-in settings, and two signed-in users of one real app who never see each
other's uploads, saved pairs or history."""

import ast
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.users import SIGNED_OUT, AuthError, exposure_warning, read_auth, user_folder

SHOP = "shop (sample)"
APP = Path(__file__).resolve().parent.parent / "app"


def test_a_password_on_the_command_line_is_refused(monkeypatch):
    monkeypatch.delenv("TEXT2SQL_PASSWORD", raising=False)
    with pytest.raises(AuthError, match="visible to every process"):
        read_auth("ann:secret", None)
    with pytest.raises(AuthError, match="TEXT2SQL_PASSWORD"):
        read_auth("ann", None)
    monkeypatch.setenv("TEXT2SQL_PASSWORD", "from-env")
    assert read_auth("ann", None) == [("ann", "from-env")]
    assert read_auth(None, None) is None


def test_auth_file_lines_and_their_mistakes(tmp_path):
    good = tmp_path / "users.txt"
    good.write_text("# name:password\nann:one:with:colons\n\nbo:two\n")
    assert read_auth(None, str(good)) == [("ann", "one:with:colons"), ("bo", "two")]
    for text, message in (("ann\n", "Line 1"), ("", "no name:password"), ("a:1\na:2\n", "twice")):
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(AuthError, match=message):
            read_auth(None, str(bad))
    with pytest.raises(AuthError, match="Cannot read"):
        read_auth(None, str(tmp_path / "missing.txt"))
    with pytest.raises(AuthError, match="not both"):
        read_auth("ann", str(good))


def test_only_loopback_without_sign_in_is_quiet():
    for host in ("127.0.0.1", "localhost", "::1"):
        assert exposure_warning(host, signed_in=False) is None
    assert "without sign-in" in exposure_warning("0.0.0.0", signed_in=False)
    assert "without sign-in" in exposure_warning("192.168.1.5", signed_in=False)
    assert exposure_warning("0.0.0.0", signed_in=True) is None


def test_user_folders_are_distinct_and_safe():
    assert user_folder("ann") != user_folder("Ann") != user_folder("a/n/n")
    assert "/" not in user_folder("../../etc") and not user_folder("..").startswith(".")


def _spaces(tmp_path, monkeypatch, signed_in: bool = True):
    from app.users import Spaces
    from engine.rag.config import RagConfig

    monkeypatch.setenv("TEXT2SQL_DATA", str(tmp_path / "data"))
    return Spaces(RagConfig(enabled=False), 5.0, signed_in=signed_in)


def test_each_app_knows_whether_its_users_sign_in(tmp_path, monkeypatch):
    """Outside any event (the page's first lists) an app with sign-in gives nobody's space and
    one without the local user's, whatever other app the same process built (an app built
    with sign-in once set a flag for the whole process)."""
    signed = _spaces(tmp_path, monkeypatch)
    local = _spaces(tmp_path, monkeypatch, signed_in=False)
    assert signed.current().name == SIGNED_OUT and local.current().name == ""
    ann = SimpleNamespace(username="ann")  # a gr.Request of hers
    assert signed.for_request(ann).name == "ann" and local.for_request(ann).name == ""


def test_the_space_a_tab_passes_decides_whose_data_a_call_sees(tmp_path, monkeypatch, shop_db):
    """Uploads, connections, adapters, training runs and evaluations of two users, reached
    through the space each call is given (as the tabs pass it), never through who Gradio says
    is calling."""
    duckdb = pytest.importorskip("duckdb")
    from app import eval_tab, schema_tab, train_tab
    from app.databases import databases_of
    from app.model_choices import model_choices, resolve
    from engine.config import EngineConfig

    spaces = _spaces(tmp_path, monkeypatch)
    ann, bo = spaces.get("ann"), spaces.get("bo")
    status, upload = schema_tab.import_files([str(shop_db)], "", ann)
    assert upload == "shop (uploaded)", status
    notes = tmp_path / "notes.duckdb"
    with duckdb.connect(str(notes)) as con:
        con.execute("CREATE TABLE notes (body TEXT)")
    status, connection = schema_tab.connect_database(f"duckdb:///{notes}", "", "notes", bo)
    assert connection == "notes (connection)", status
    assert upload in databases_of(ann) and connection not in databases_of(ann)
    assert connection in databases_of(bo) and upload not in databases_of(bo)
    assert not {upload, connection} & set(databases_of())  # the local user's
    assert schema_tab.describe(upload, bo)[0] == "Choose a database."
    assert "notes" in schema_tab.describe(connection, bo)[1]

    (ann.root / "runs" / "tuned" / "adapter").mkdir(parents=True)
    (ann.root / "runs" / "tuned" / "adapter" / "adapter_config.json").write_text("{}")
    assert "adapter: tuned" in model_choices(ann.root)
    assert "adapter: tuned" not in model_choices(bo.root)
    with pytest.raises(ValueError, match="not in"):
        resolve("adapter: tuned", bo.root)
    form = ("smollm2-135m-instruct", "samples", None, "LoRA", 2, 1e-3, 2, 4, 512, 1, "mine")
    run = train_tab.build_config(*form, cuda=False, space=bo)
    assert Path(run.output_dir) == bo.root / "runs" / "mine"
    settings = ("samples", "", 5, False, 1, 0.0, 50, 1.0, 64)
    evaluation = eval_tab.make_config(EngineConfig(), "smollm2-135m-instruct", *settings, space=ann)
    assert Path(evaluation.out).parent == ann.root / "evals"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def test_only_app_users_asks_gradio_who_is_calling():
    """The tabs pass the caller's space down. The modules keeping a user's data take it as an
    argument: they do not import app.users back (they once did, inside functions: a circle
    with app.databases no import contract saw), and none but app.users reads Gradio's
    request context."""
    for leaf in ("uploads.py", "connections.py", "model_choices.py", "history_panel.py"):
        assert "app.users" not in _imports(APP / leaf), leaf
    readers = [p.name for p in APP.glob("*.py") if "gradio.context" in _imports(p)]
    assert readers == ["users.py"]


def test_a_signed_in_users_database_is_primed_from_their_own_index(tmp_path, monkeypatch):
    """Choosing a database gets it ready in the background (indexing it on first use): for a
    signed-in user, in their own store, never in the one everyone else's answers read."""
    from app import chat
    from app.engines import EnginePool
    from app.users import Spaces
    from engine.config import EngineConfig
    from engine.pipeline import TextToSQL
    from engine.rag.config import RagConfig
    from engine.rag.retriever import RagRetriever
    from tests.helpers import PrefillingBackend

    monkeypatch.setenv("TEXT2SQL_DATA", str(tmp_path / "data"))
    shared = tmp_path / "data" / "vector_db" / "chroma"
    rag = RagConfig(store_dir=str(shared))
    pool = EnginePool(EngineConfig(rag=rag))
    backend = PrefillingBackend([])
    pool.put("scripted", None, TextToSQL(backend, retriever=RagRetriever(rag)))
    ann = Spaces(rag, 5.0, signed_in=True).get("ann")
    ann.upload_dir.mkdir(parents=True)
    db = ann.upload_dir / "annsnotes.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    chat.prime("annsnotes (uploaded)", "scripted", pool, ann).join(timeout=120)
    assert "CREATE TABLE notes" in backend.prefilled[0]
    assert _collection_info(ann.root / "vector_db" / "chroma", db) is not None
    assert _collection_info(shared, db) is None


# --- a real app with two users -----------------------------------------------------------

PASSWORDS = {"ann": "ann-pass-1", "bo": "bo-pass-2"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from tests.browser import CHEAP_ANSWERS, launch_app, stop_app

    folder = tmp_path_factory.mktemp("users")
    auth = folder / "users.txt"
    auth.write_text("".join(f"{u}:{p}\n" for u, p in PASSWORDS.items()))
    data = folder / "data"
    (data / "uploads").mkdir(parents=True)  # the local user's, from a run without sign-in
    sqlite3.connect(data / "uploads" / "localonly.sqlite").execute("CREATE TABLE t (a)").close()
    # what is checked is whose answers they are, not how good
    proc, url, log = launch_app("--auth-file", str(auth), *CHEAP_ANSWERS, "--no-warm-up",
                                data_dir=data, log_name="users")  # fmt: skip
    try:
        yield url, data, proc
    finally:
        stop_app(proc)


def _client(url, user):
    from gradio_client import Client

    return Client(url, auth=(user, PASSWORDS[user]), verbose=False)


def _sign_in(page, url, user):
    page.goto(url, wait_until="load")
    page.locator("input[type=text], input:not([type])").first.fill(user)
    page.locator("input[type=password]").fill(PASSWORDS[user])
    page.get_by_role("button", name="Login").click()
    page.locator("#chat-question textarea").wait_for(timeout=60_000)


@pytest.mark.slow
@pytest.mark.browser
def test_each_user_keeps_uploads_pairs_and_history_apart(app, tmp_path):
    from tests.browser import browser_page, screenshot

    url, data, proc = app
    assert not any(p in Path(f"/proc/{proc.pid}/cmdline").read_text() for p in PASSWORDS.values())
    with pytest.raises(Exception):  # noqa: B017 - no sign-in, no API
        _client_without_auth(url)

    ann, bo = _client(url, "ann"), _client(url, "bo")
    asked = ann.predict("How many customers are there?", SHOP, api_name="/ask")
    assert "How many customers are there?" in [h["question"] for h in asked["history"]]
    other = bo.predict("How many orders are there?", SHOP, api_name="/ask")
    assert [h["question"] for h in other["history"]] == ["How many orders are there?"]

    script = tmp_path / "annsbooks.sql"
    script.write_text("CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT);\n"
                      "INSERT INTO books VALUES (1, 'Notes'), (2, 'Compilers');\n")  # fmt: skip
    with browser_page() as page:
        _sign_in(page, url, "ann")
        # A pair saved by hand: write the SQL, run it, save it as correct.
        page.locator("#chat-write-sql").click()
        editor = page.locator("#chat-sql .cm-content")
        editor.wait_for(timeout=30_000)
        editor.click()
        editor.fill("SELECT count(*) FROM customers")
        page.locator("#chat-rerun").click()
        page.locator("#chat-status").get_by_text("1 row(s)").wait_for(timeout=60_000)
        page.locator("#chat-save-question textarea").fill("How many customers do we have?")
        page.locator("#chat-save").click()
        page.locator("#chat-feedback").get_by_text("Saved").wait_for(timeout=120_000)
        screenshot(page, "users-ann-saved-pair")
        page.get_by_role("tab", name="Schema").click()
        page.locator("#schema-upload input[type=file]").set_input_files(str(script))
        page.locator("#schema-import").click()
        page.locator("#schema-upload-status").get_by_text("Imported").wait_for(timeout=60_000)

    assert "annsbooks (uploaded)" in ann.predict(api_name="/databases")
    assert "annsbooks (uploaded)" not in bo.predict(api_name="/databases")
    refused = bo.predict("SELECT * FROM books", "annsbooks (uploaded)", api_name="/run_sql")
    assert refused["error"] == "Please choose a database."
    ann_root, bo_root = (data / "users" / user_folder(u) for u in ("ann", "bo"))
    assert (ann_root / "uploads" / "annsbooks.sqlite").is_file()
    assert list((ann_root / "examples").glob("shop-*.json"))
    assert not (bo_root / "examples").exists() and not (bo_root / "uploads").exists()
    assert (bo_root / "history.sqlite").is_file()
    # Nothing of theirs lands in the local (no sign-in) user's folders, nor the reverse.
    assert [p.name for p in (data / "uploads").iterdir()] == ["localonly.sqlite"]
    assert not (data / "examples").exists()
    for client in (ann, bo):
        assert "localonly" not in json.dumps(client.config)
        assert "localonly (uploaded)" not in client.predict(api_name="/databases")
    assert not (data / "history.sqlite").exists()


def _client_without_auth(url):
    from gradio_client import Client

    return Client(url, verbose=False).predict(api_name="/databases")


@pytest.mark.slow
def test_env_password_reaches_the_app_not_its_command_line(tmp_path):
    """--auth NAME with the password in the environment: the sign-in works."""
    from tests.browser import launch_app, stop_app

    proc, url, _ = launch_app("--auth", "cy", "--no-warm-up", data_dir=tmp_path / "data",
                              env={"TEXT2SQL_PASSWORD": "cy-pass-3"}, log_name="users-env")  # fmt: skip
    try:
        assert "cy-pass-3" not in Path(f"/proc/{proc.pid}/cmdline").read_text()
        from gradio_client import Client

        labels = Client(url, auth=("cy", "cy-pass-3"), verbose=False).predict(api_name="/databases")
        assert SHOP in labels
    finally:
        stop_app(proc)


def _open_page(page, url) -> None:
    """A new page of the signed-in user, its first lists loaded (the Schema tab describes
    its database once the list is refreshed)."""
    page.goto(url, wait_until="load")
    page.locator("#chat-question textarea").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Schema").click()
    page.locator("#schema-overview").get_by_text("table(s)").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Chat").click()


def _choices(page, elem_id: str) -> list[str]:
    """The labels a dropdown offers (opened, read, closed)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator(f"#{elem_id} input")
    options = page.get_by_role("option")
    for tries in range(3):  # a loaded CI worker has taken over 15 s; a click can go unheard
        box.click()
        try:
            options.first.wait_for(timeout=30_000)
            break
        except PlaywrightTimeout:
            if tries == 2:
                raise
            box.press("Escape")
    labels = [o.strip().splitlines()[-1] for o in options.all_inner_texts()]  # less "✓"
    box.press("Escape")
    return labels


def _collection_info(store: Path, db: Path) -> dict | None:
    """What the store at ``store`` holds for ``db`` (None: no index there)."""
    from engine.rag.config import RagConfig
    from engine.rag.store import VectorStore

    if not store.is_dir():
        return None
    return VectorStore(RagConfig(store_dir=str(store))).info(db)


@pytest.mark.slow
@pytest.mark.browser
def test_schema_tab_and_chat_list_the_callers_databases_and_index_into_their_store(app, tmp_path):
    from tests.browser import browser_page, screenshot

    url, data, _ = app
    script = tmp_path / "annsnotes.sql"
    script.write_text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n"
                      "INSERT INTO notes VALUES (1, 'buy milk');\n")  # fmt: skip
    guide = tmp_path / "notes-guide.md"
    guide.write_text("# Notes\n\nA note's body is free text written by its author.\n")
    label = "annsnotes (uploaded)"
    ann_root = data / "users" / user_folder("ann")
    db = ann_root / "uploads" / "annsnotes.sqlite"
    with browser_page() as page:
        _sign_in(page, url, "ann")
        page.get_by_role("tab", name="Schema").click()
        page.locator("#schema-upload input[type=file]").set_input_files(str(script))
        page.locator("#schema-import").click()
        page.locator("#schema-upload-status").get_by_text("Imported").wait_for(timeout=60_000)
        page.get_by_text("Documentation (for retrieval)").click()
        page.locator("#schema-docs input[type=file]").set_input_files(str(guide))
        page.locator("#schema-index").click()
        status = page.locator("#schema-index-status")
        status.get_by_text("Indexed").wait_for(timeout=300_000)
        screenshot(page, "users-ann-indexed-with-docs")
        assert "doc chunks from 1 file(s)" in status.inner_text()
        # The index with the docs is ann's, not in the store everyone else's answers read.
        own = _collection_info(ann_root / "vector_db" / "chroma", db)
        assert own is not None and own["doc_chunks"] >= 1 and own["tables"] == 1
        assert _collection_info(data / "vector_db" / "chroma", db) is None
        # A new page of ann's lists the upload in the chat and in the Schema tab.
        _open_page(page, url)
        assert label in _choices(page, "chat-db")
        page.get_by_role("tab", name="Schema").click()
        assert label in _choices(page, "schema-db")
    with browser_page() as page:
        _sign_in(page, url, "bo")
        _open_page(page, url)
        chat_list = _choices(page, "chat-db")
        page.get_by_role("tab", name="Schema").click()
        schema_list = _choices(page, "schema-db")
        assert SHOP in chat_list and SHOP in schema_list
        assert label not in chat_list and label not in schema_list


def _seed_runs(root: Path, name: str) -> None:
    """Under ``root``: an interrupted training run, a finished adapter and an interrupted
    evaluation, each named after ``name``."""
    run = root / "runs" / f"{name}-run"
    (run / "checkpoint-2").mkdir(parents=True)
    (run / "job_config.yaml").write_text("max_steps: 8\n")
    (run / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (root / "runs" / f"{name}-tuned" / "adapter").mkdir(parents=True)
    (root / "runs" / f"{name}-tuned" / "adapter" / "adapter_config.json").write_text("{}")
    evaluation = root / "evals" / f"20250101-000000-{name}-eval"
    evaluation.mkdir(parents=True)
    (evaluation / "run.json").write_text('{"settings": {"limit": 5}}')


def _offered(page, tab: str, box: str, dropdown: str, expected: str | None = None) -> str | None:
    """The run a tab offers to resume, or None when its offer is hidden; waits a while for
    ``expected`` (the page's first lists load after it shows)."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name=tab).click()
    if expected is not None:
        expect(page.locator(f"#{dropdown} input")).to_have_value(expected, timeout=15_000)
    page.wait_for_timeout(500)
    if not page.locator(f"#{box}").is_visible():
        return None
    return page.locator(f"#{dropdown} input").input_value()


@pytest.mark.slow
@pytest.mark.browser
def test_training_runs_and_evaluations_are_each_users_own(tmp_path, tiny_llama):
    from tests.browser import browser_page, launch_app, screenshot, stop_app

    auth = tmp_path / "users.txt"
    auth.write_text("".join(f"{u}:{p}\n" for u, p in PASSWORDS.items()))
    data = tmp_path / "data"
    ann_root, bo_root = (data / "users" / user_folder(u) for u in ("ann", "bo"))
    _seed_runs(ann_root, "ann")
    _seed_runs(data, "local")  # the local user's, from a run without sign-in
    proc, url, _ = launch_app(
        "--auth-file", str(auth), "--no-warm-up", "--model", str(tiny_llama),
        "--set", "backend=transformers", "--set", "rag.enabled=false",
        "--set", "max_attempts=1", "--set", "generation.max_new_tokens=16",
        data_dir=data, log_name="users-runs",
    )  # fmt: skip
    try:
        with browser_page() as page:
            _sign_in(page, url, "ann")
            models = _choices(page, "chat-model")
            assert "adapter: ann-tuned" in models and "adapter: local-tuned" not in models
            run = _offered(
                page, "Training", "train-interrupted-box", "train-interrupted", "ann-run"
            )
            assert run == "ann-run"
            ann_eval = "20250101-000000-ann-eval"
            offer = _offered(
                page, "Evaluation", "eval-interrupted-box", "eval-interrupted", ann_eval
            )
            assert offer == ann_eval
            # An evaluation ann runs is stored in her folder.
            box = page.locator("#eval-limit input").first
            box.fill("2")
            box.press("Tab")
            page.locator("#eval-run").click()
            page.locator("#eval-status").get_by_text("Done: 1 run(s).").wait_for(timeout=300_000)
            screenshot(page, "users-ann-evaluation")
        [done] = [p.parent for p in (ann_root / "evals").glob("*/metrics.json")]
        assert json.loads((done / "metrics.json").read_text())["n"] == 2
        assert not list((data / "evals").glob("*/metrics.json"))
        with browser_page() as page:
            _sign_in(page, url, "bo")
            models = _choices(page, "chat-model")
            assert not [m for m in models if m.startswith("adapter: ")], models
            assert _offered(page, "Training", "train-interrupted-box", "train-interrupted") is None
            assert _offered(page, "Evaluation", "eval-interrupted-box", "eval-interrupted") is None
    finally:
        stop_app(proc)
    assert not (bo_root / "evals").exists() and not (bo_root / "runs").exists()
