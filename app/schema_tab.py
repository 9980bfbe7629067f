"""Schema tab: upload a database (file, SQL script or CSVs), put files in a workspace
(app.workspace_panel) or connect to one (PostgreSQL, MySQL/MariaDB, DuckDB), inspect it,
manage its solved example pairs, index its documentation for RAG."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import workspace_panel
from app.connections import ConnectRefused, connect
from app.databases import databases_of, default_database, frame
from app.engines import EnginePool
from app.messages import first_line, public
from app.uploads import LIMITS, UploadError, import_upload, upload_dir
from app.users import root_of
from engine.db import DatabaseError, open_database
from engine.db.inspect import quote
from engine.rag.index import index_database

if TYPE_CHECKING:
    from app.examples_panel import ExamplesPanel

PREVIEW_ROWS = 20
MAX_OVERVIEW_TABLES = 200


def import_files(
    files: list[Any] | None, name: str | None, space: Any = None
) -> tuple[str, str | None]:
    """Upload into the uploads of ``space`` (app.users.UserSpace; None: the local user) ->
    (status line, label of the new database or None)."""
    paths = [Path(getattr(f, "name", f)) for f in files or []]
    dest = upload_dir(root_of(space))
    try:
        imported = import_upload(paths, dest, name=(name or "").strip() or None)
    except UploadError as err:
        return f"**Upload refused:** {public(err)}", None
    label = next(label for label, p in databases_of(space).items() if p == imported.path)
    notes = "".join(f"\n\n{public(n)}" for n in imported.notes)
    return f"Imported **{label}**.{notes}", label


def describe(db_label: str | None, space: Any = None) -> tuple[str, list[str]]:
    """Markdown overview of tables, columns and keys, plus the table names."""
    dbs = databases_of(space)
    if db_label not in dbs:
        return "Choose a database.", []
    try:
        schema = open_database(dbs[db_label]).read_schema(count_rows=True)
    except DatabaseError as err:
        return f"**Cannot read it:** {public(err)}", []
    lines = [
        f"**{len(schema.tables)} table(s)**",
        "",
        "| table | rows | columns | keys |",
        "|---|---|---|---|",
    ]
    for table in list(schema.tables.values())[:MAX_OVERVIEW_TABLES]:
        cols = ", ".join(f"{c.name} {c.type}".strip() for c in table.columns)
        keys = [f"PK {c.name}" for c in table.columns if c.primary_key]
        keys += [
            f"{fk.column} → {fk.ref_table}.{fk.ref_column or '?'}" for fk in table.foreign_keys
        ]
        lines.append(f"| {table.name} | {table.row_count} | {cols} | {'; '.join(keys)} |")
    if len(schema.tables) > MAX_OVERVIEW_TABLES:
        lines.append(f"\n… and {len(schema.tables) - MAX_OVERVIEW_TABLES} more tables.")
    return "\n".join(lines), list(schema.tables)


def preview(db_label: str | None, table: str | None, space: Any = None) -> Any:
    dbs = databases_of(space)
    if db_label not in dbs or not table:
        return None
    db = open_database(dbs[db_label])
    result = db.run_readonly(f"SELECT * FROM {quote(table, db.dialect)} LIMIT {PREVIEW_ROWS}")
    return frame(result.columns, [list(r) for r in result.rows]) if result.ok else None


def connect_database(
    url: str, password: str, name: str, space: Any = None
) -> tuple[str, str | None]:
    """Connect form -> (status line, label of the connection or None), saved for ``space``'s
    user (app.users.UserSpace; None: the local user). The password is kept in memory only;
    the saved connection has none."""
    user = space.name if space is not None else ""
    try:
        done = connect(url, root_of(space), password, name, user)
    except ConnectRefused as err:
        return f"**Cannot connect:** {public(err)}", None
    label = f"{done.name} (connection)"
    note = f"\n\n⚠ {done.warning}" if done.warning else ""
    return f"Connected **{label}** (read-only).{note}", label


def index(
    db_label: str | None,
    doc_files: list[Any] | None,
    pool: EnginePool,
    progress: Any = None,
    space: Any = None,
) -> str:
    """Index the tables, the docs and the saved example pairs of one database (a full
    rebuild of its index; saved pairs are added one by one without it) into ``space``'s
    index (app.users.UserSpace; None: the local user's, the app's store)."""
    dbs = databases_of(space)
    if db_label not in dbs:
        return "Choose a database first."
    docs_dir = None
    tmp = None
    try:
        if doc_files:
            tmp = Path(tempfile.mkdtemp(prefix="docs-"))
            for f in doc_files:
                src = Path(getattr(f, "name", f))
                shutil.copyfile(src, tmp / src.name)
            docs_dir = tmp

        def say(message: str) -> None:
            if progress is not None:
                progress(None, desc=message)

        rag = space.rag if space is not None and space.rag is not None else pool.base.rag
        report = index_database(
            rag,
            dbs[db_label],
            docs_dir,
            progress=say,
            # the retriever that answers the user reads this store: write through it
            store=space.retriever.store if space is not None and space.retriever else None,
            examples_root=space.root if space is not None else None,
        )
    except Exception as err:  # every index failure is a one-line message, the app keeps serving
        return f"**Indexing failed:** {first_line(err)}"
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    text = (
        f"Indexed **{db_label}**: {report.tables} tables, {report.doc_chunks} doc chunks from "
        f"{report.doc_files} file(s), {report.examples} example pairs ({report.saved_examples} "
        f"saved) in {report.seconds:.1f} s."
    )
    if report.skipped:
        text += " Skipped " + ", ".join(f"{n} ({why})" for why, n in report.skipped.items()) + "."
    return text


def build(
    pool: EnginePool, examples: Any, database_dropdowns: list[Any], demo: Any, spaces: Any = None
) -> ExamplesPanel:
    """Lay out the tab; uploads also refresh ``database_dropdowns`` of other tabs. Returns
    the examples manager (refreshed when the tab is opened). ``spaces`` (app.users.Spaces)
    gives each event its caller's databases and index; None: the local user's."""
    # deferred: gradio takes seconds to import (this module's functions run without it)
    import gradio as gr

    from app.examples_panel import ExamplesPanel

    def space() -> Any:
        return spaces.current() if spaces is not None else None

    dbs = list(databases_of(space()))
    gr.Markdown(
        "Upload a SQLite file (`.sqlite`/`.db`), a `.sql` script of DDL and INSERTs, or CSV "
        f"files (each becomes a table). Uploads are copied into the app's data folder and "
        f"opened read-only; your file is never changed. {LIMITS.describe()}"
    )
    with gr.Row():
        files = gr.File(
            label="Database, SQL script or CSV files",
            file_count="multiple",
            file_types=[".sqlite", ".sqlite3", ".db", ".sql", ".csv"],
            elem_id="schema-upload",
        )
        with gr.Column():
            name = gr.Textbox(label="Name for CSV uploads (optional)", elem_id="schema-name")
            upload = gr.Button("Import", variant="primary", elem_id="schema-import")
    upload_status = gr.Markdown(elem_id="schema-upload-status")
    db = gr.Dropdown(
        dbs, value=default_database(dbs), label="Database", elem_id="schema-db", render=False
    )
    with gr.Accordion("Files workspace: CSV, Parquet, Excel, JSON", open=False):
        edited = workspace_panel.build(space, [db, *database_dropdowns], demo)
    with gr.Accordion("Connect: PostgreSQL, MySQL/MariaDB or DuckDB", open=False):
        gr.Markdown(
            "A URL such as `postgresql+psycopg://USER@HOST:5432/DB`, "
            "`mysql+pymysql://USER@HOST:3306/DB` or `duckdb:///path/to/file.duckdb`. The "
            "password stays in memory (never saved or logged); or write `${ENV_VAR}` in its "
            "place in the URL. Queries run read-only: use an account that can only read."
        )
        with gr.Row():
            conn_url = gr.Textbox(label="Database URL", scale=3, elem_id="schema-conn-url")
            conn_password = gr.Textbox(
                label="Password (optional)", type="password", scale=1, elem_id="schema-conn-pw"
            )
            conn_name = gr.Textbox(label="Name (optional)", scale=1, elem_id="schema-conn-name")
        conn_button = gr.Button("Connect", elem_id="schema-connect")
        conn_status = gr.Markdown(elem_id="schema-conn-status")
    db.render()
    overview = gr.Markdown(elem_id="schema-overview")
    with gr.Row():
        table = gr.Dropdown([], label="Preview table", elem_id="schema-table")
    rows = gr.Dataframe(
        label=f"First {PREVIEW_ROWS} rows", interactive=False, elem_id="schema-preview"
    )
    with gr.Accordion("Example questions: solved pairs retrieved for similar questions"):
        panel = ExamplesPanel(examples, lambda: databases_of(space()))
        panel.build(db)
    with gr.Accordion("Documentation (for retrieval)", open=False):
        docs = gr.File(
            label="Docs (.md, .txt, .pdf)",
            file_count="multiple",
            file_types=[".md", ".txt", ".pdf"],
            elem_id="schema-docs",
        )
        index_btn = gr.Button("Rebuild the index with these docs", elem_id="schema-index")
        index_status = gr.Markdown(elem_id="schema-index-status")

    def on_describe(label):
        text, tables = describe(label, space())
        first = tables[0] if tables else None
        return text, gr.update(choices=tables, value=first), preview(label, first, space())

    def on_preview(label, name):
        return preview(label, name, space())

    def on_upload(fs, n):
        status, label = import_files(fs, n, space())
        choices = list(databases_of(space()))
        # The new database is selected here and in the chat, ready for a question. One update
        # object per output: Gradio consumes them.
        n = 1 + len(database_dropdowns)
        if label:
            return [status, *(gr.update(choices=choices, value=label) for _ in range(n))]
        return [status, *(gr.update(choices=choices) for _ in range(n))]

    def on_connect(url, password, n):
        status, label = connect_database(url, password, n, space())
        choices = list(databases_of(space()))
        n = 1 + len(database_dropdowns)
        # the password box is emptied either way: the value lives in memory only
        if label:
            return [status, "", *(gr.update(choices=choices, value=label) for _ in range(n))]
        return [status, "", *(gr.update(choices=choices) for _ in range(n))]

    def on_index(label, d, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        return index(label, d, pool, progress, space())

    def on_load():  # the caller's databases, uploaded since the app started included
        return gr.update(choices=list(databases_of(space())))

    upload.click(on_upload, [files, name], [upload_status, db, *database_dropdowns])
    conn_button.click(
        on_connect,
        [conn_url, conn_password, conn_name],
        [conn_status, conn_password, db, *database_dropdowns],
    )
    db.change(on_describe, db, [overview, table, rows])
    for event in edited:  # a workspace's tables renamed or removed, its relations edited
        event.then(on_describe, db, [overview, table, rows])
    table.change(on_preview, [db, table], rows)
    index_btn.click(on_index, [db, docs], index_status)
    demo.load(on_load, None, db).then(on_describe, db, [overview, table, rows])
    # the list only: a form blanked at page load lost what a quick hand had typed into it
    demo.load(panel.refresh, db, panel.outputs)
    return panel
