"""Ask your files: a workspace of CSV/TSV, Parquet, Excel (.xlsx) and JSON/JSONL files,
queried in place through DuckDB as the tables of one database.

A workspace is a folder (``<user data folder>/workspaces/<name>``); ``open_database`` takes
it as a path or as ``workspace:<name>``, and a plain folder of data files (the CLI's ``--db
./myfiles/``) becomes a workspace kept under the cache. How it is stored and queried:
:mod:`engine.db.workspace`; how files are read and checked: :mod:`engine.db.workspace_files`;
edits: :mod:`engine.db.workspace_edit`.
"""

from __future__ import annotations

from engine.db.workspace import WorkspaceError
from engine.db.workspace_edit import (
    Relation,
    TableInfo,
    WorkspaceInfo,
    add_files,
    create_workspace,
    describe_workspace,
    list_workspaces,
    remove_table,
    rename_table,
    set_relations,
    table_name,
    workspaces_dir,
)
from engine.db.workspace_files import FILE_SUFFIXES, LIMITS, WorkspaceLimits

__all__ = [
    "FILE_SUFFIXES",
    "LIMITS",
    "Relation",
    "TableInfo",
    "WorkspaceError",
    "WorkspaceInfo",
    "WorkspaceLimits",
    "add_files",
    "create_workspace",
    "describe_workspace",
    "list_workspaces",
    "remove_table",
    "rename_table",
    "set_relations",
    "table_name",
    "workspaces_dir",
]
