"""Schema tab, "Files workspace": CSV/TSV, Parquet, Excel and JSON files queried in place as
the tables of one DuckDB database (engine.workspace does the work; this module lays out the
section and turns its answers and refusals into one line each).

The handlers take the caller's space (app.users.UserSpace; None: the local user) and return
plain values, so tests call them without a browser; :func:`build` wires them to Gradio.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from app.databases import databases_of
from app.messages import public
from app.users import root_of
from engine import workspace as ws

FILE_TYPES = list(ws.FILE_SUFFIXES)
TABLE_HEADERS = ["table", "file", "sheet", "rows", "columns", "problem"]
RELATION_HEADERS = ["table", "column", "ref_table", "ref_column"]
DEFAULT_NAME = "files"


def workspace_names(space: Any = None) -> list[str]:
    return list(ws.list_workspaces(root_of(space)))


def label_of(name: str, space: Any = None) -> str | None:
    """The database dropdowns' label of workspace ``name`` (None: no such workspace)."""
    folder = ws.list_workspaces(root_of(space)).get(name)
    if folder is None:
        return None
    return next((label for label, p in databases_of(space).items() if p == folder), None)


def add(
    files: list[Any] | None, chosen: str | None, new_name: str | None, space: Any = None
) -> tuple[str, str | None]:
    """Add the uploaded ``files`` to the workspace named ``new_name`` (created) or else
    ``chosen`` -> (status line, the workspace's name or None when refused). All or nothing:
    a refused file leaves the workspace as it was, and a workspace made for it is not kept."""
    # Gradio hands over paths (str); older versions, objects whose .name is the path
    paths = [Path(f if isinstance(f, str | Path) else f.name) for f in files or []]
    if not paths:
        return "**Not added:** choose one or more files first.", None
    name = (new_name or "").strip() or (chosen or "").strip() or DEFAULT_NAME
    root = root_of(space)
    folder = ws.list_workspaces(root).get(name)
    try:
        made = folder is None
        if made:
            folder = ws.create_workspace(root, name)
        try:
            notes = ws.add_files(folder, paths, copy=True)
        except ws.WorkspaceError:
            if made:
                _discard(folder)
            raise
    except ws.WorkspaceError as err:
        return f"**Not added:** {public(err)}", None
    info = ws.describe_workspace(folder)
    added = ", ".join(p.name for p in paths)
    text = f"Added {added} to **{info.name}**: {len(info.tables)} table(s)."
    return text + "".join(f"\n- {public(n)}" for n in notes), info.name


def _discard(folder: Path) -> None:
    """A workspace made for files that were then refused: nothing half-made is kept."""
    shutil.rmtree(folder, ignore_errors=True)


def view(name: str | None, space: Any = None) -> tuple[Any, Any, list[str]]:
    """(tables frame, relations frame, table names) of workspace ``name``."""
    import pandas as pd  # deferred: pandas takes most of a second to import

    folder = ws.list_workspaces(root_of(space)).get(name or "")
    if folder is None:
        return (
            pd.DataFrame([], columns=TABLE_HEADERS),
            pd.DataFrame([], columns=RELATION_HEADERS),
            [],
        )
    info = ws.describe_workspace(folder)
    tables = [
        [t.name, t.file, t.sheet or "", t.rows, _columns(t.columns), public(t.problem or "")]
        for t in info.tables
    ]
    relations = [[r.table, r.column, r.ref_table, r.ref_column] for r in info.relations]
    frame = pd.DataFrame(tables, columns=TABLE_HEADERS)
    if not any(t.problem for t in info.tables):  # a column of blanks only takes room
        frame = frame.drop(columns="problem")
    return (
        frame,
        pd.DataFrame(relations, columns=RELATION_HEADERS),
        [t.name for t in info.tables],
    )


def _columns(columns: Any) -> str:
    """A table's columns as one cell: ``name TYPE, ...``."""
    return ", ".join(f"{name} {kind}" for name, kind in columns)


def _folder(name: str | None, space: Any) -> Path:
    folder = ws.list_workspaces(root_of(space)).get(name or "")
    if folder is None:
        raise ws.WorkspaceError("Choose a workspace first.")
    return folder


def rename(name: str | None, old: str | None, new: str | None, space: Any = None) -> str:
    try:
        if not old or not (new or "").strip():
            raise ws.WorkspaceError("Choose a table and type its new name.")
        ws.rename_table(_folder(name, space), old, new.strip())
    except ws.WorkspaceError as err:
        return f"**Not renamed:** {public(err)}"
    return f"Renamed **{old}** to **{new.strip()}**."


def remove(name: str | None, table: str | None, space: Any = None) -> str:
    try:
        if not table:
            raise ws.WorkspaceError("Choose a table to remove.")
        ws.remove_table(_folder(name, space), table)
    except ws.WorkspaceError as err:
        return f"**Not removed:** {public(err)}"
    return f"Removed **{table}** from the workspace (its file was not touched)."


def save_relations(name: str | None, frame: Any, space: Any = None) -> str:
    """The relations table as edited -> status line; blank rows are dropped, a half-filled
    row or one the engine refuses is one line and nothing is saved."""
    try:
        folder = _folder(name, space)
        relations = []
        for number, row in enumerate(_rows(frame), 1):
            cells = [str(v).strip() if v is not None else "" for v in row[:4]]
            cells += [""] * (4 - len(cells))
            if not any(cells):
                continue
            if not all(cells):
                raise ws.WorkspaceError(
                    f"Relation {number}: fill in table, column, ref_table and ref_column."
                )
            relations.append(ws.Relation(*cells))
        ws.set_relations(folder, relations)
    except ws.WorkspaceError as err:
        return f"**Relations not saved:** {public(err)}"
    return f"Saved {len(relations)} relation(s)."


def _rows(frame: Any) -> list[list[Any]]:
    """Rows of what a gr.Dataframe hands over (a DataFrame) or of a plain list of lists."""
    if frame is None:
        return []
    if hasattr(frame, "values") and hasattr(frame, "columns"):
        return [[None if _blank(v) else v for v in row] for row in frame.values.tolist()]
    return [list(r) for r in frame]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # NaN


def build(space: Any, database_dropdowns: list[Any], demo: Any) -> list[Any]:
    """Lay out the section inside the Schema tab. ``space()`` gives the caller's space;
    adding files refreshes ``database_dropdowns`` (the Schema tab's and the chat's) and
    selects the workspace in them. Returns the events after which a workspace's tables
    changed (the tab shows its schema again)."""
    import gradio as gr  # deferred: gradio takes seconds to import

    gr.Markdown(
        "Put CSV/TSV, Parquet, Excel (each sheet a table) and JSON/JSONL files in one "
        "workspace: they are queried in place, read-only, and join like the tables of one "
        f"database. Limits: {ws.LIMITS.describe()}."
    )
    with gr.Row():
        files = gr.File(
            label="Files",
            file_count="multiple",
            file_types=FILE_TYPES,
            elem_id="workspace-files",
        )
        with gr.Column():
            names = workspace_names(space())
            chosen = gr.Dropdown(
                names,
                value=names[0] if names else None,
                label="Workspace",
                elem_id="workspace-choice",
            )
            new_name = gr.Textbox(
                label="or a new workspace's name", placeholder=DEFAULT_NAME, elem_id="workspace-new"
            )
            add_btn = gr.Button("Add to workspace", variant="primary", elem_id="workspace-add")
    status = gr.Markdown(elem_id="workspace-status")
    tables = gr.Dataframe(
        headers=TABLE_HEADERS, label="Tables", interactive=False, elem_id="workspace-tables"
    )
    with gr.Row():
        table = gr.Dropdown([], label="Table", elem_id="workspace-table")
        table_name = gr.Textbox(label="New name", elem_id="workspace-table-name")
        with gr.Column():
            rename_btn = gr.Button("Rename", elem_id="workspace-rename")
            remove_btn = gr.Button("Remove from workspace", elem_id="workspace-remove")
    relations = gr.Dataframe(
        headers=RELATION_HEADERS,
        label="Relations (edit, add or clear rows, then save)",
        interactive=True,
        row_count=(1, "dynamic"),
        elem_id="workspace-relations",
    )
    save_btn = gr.Button("Save relations", elem_id="workspace-save-relations")
    shown = [tables, relations, table]

    def on_view(name):
        t, r, names_ = view(name, space())
        return t, r, gr.update(choices=names_, value=names_[0] if names_ else None)

    def on_add(fs, picked, typed):
        text, name = add(fs, picked, typed, space())
        choices = workspace_names(space())
        dbs = list(databases_of(space()))
        label = label_of(name, space()) if name else None
        if name is None:
            return [text, gr.update(choices=choices), gr.update(), gr.update(),
                    *(gr.update(choices=dbs) for _ in database_dropdowns)]  # fmt: skip
        # one update object per output: Gradio consumes them
        return [text, gr.update(choices=choices, value=name), "", None,
                *(gr.update(choices=dbs, value=label) for _ in database_dropdowns)]  # fmt: skip

    def on_rename(name, old, new):
        return rename(name, old, new, space()), ""

    def on_remove(name, old):
        return remove(name, old, space())

    def on_save(name, frame):
        return save_relations(name, frame, space())

    def on_load():
        return gr.update(choices=workspace_names(space()))

    outputs = [status, chosen, new_name, files, *database_dropdowns]
    add_btn.click(on_add, [files, chosen, new_name], outputs).then(on_view, chosen, shown)
    chosen.change(on_view, chosen, shown)
    edits = [
        rename_btn.click(on_rename, [chosen, table, table_name], [status, table_name]),
        remove_btn.click(on_remove, [chosen, table], status),
        save_btn.click(on_save, [chosen, relations], status),
    ]
    demo.load(on_load, None, chosen).then(on_view, chosen, shown)
    return [edit.then(on_view, chosen, shown) for edit in edits]
