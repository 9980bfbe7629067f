"""Changing a workspace (:mod:`engine.db.workspace`): creating it, adding files (all or
nothing), renaming and removing tables, relations (detected, then editable), and the
workspace a plain folder of files becomes for the CLI. The public names are in
:mod:`engine.workspace`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.db.workspace import (
    Entry,
    Manifest,
    WorkspaceError,
    is_workspace,
    load,
    problems,
    quote,
    save,
    view_sql,
)
from engine.db.workspace_files import (
    FILE_SUFFIXES,
    LIMITS,
    WorkspaceLimits,
    file_format,
    inspect_file,
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Relation:
    """``table.column`` holds values of ``ref_table.ref_column`` (a foreign key)."""

    table: str
    column: str
    ref_table: str
    ref_column: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column} -> {self.ref_table}.{self.ref_column}"


@dataclass(frozen=True)
class TableInfo:
    name: str
    file: str  # the user's file, by name
    sheet: str | None
    rows: int | None  # when the file was added
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)
    problem: str | None = None  # the file is gone or changed: what to do


@dataclass(frozen=True)
class WorkspaceInfo:
    name: str
    tables: list[TableInfo]
    relations: list[Relation]


def workspaces_dir(root: Path) -> Path:
    """The workspaces of the user whose data folder is ``root``."""
    return root / "workspaces"


def list_workspaces(root: Path) -> dict[str, Path]:
    """Name -> folder of the user's workspaces."""
    top = workspaces_dir(root)
    if not top.is_dir():
        return {}
    return {p.name: p for p in sorted(top.iterdir()) if is_workspace(p)}


def table_name(text: str) -> str:
    """A plain SQL name from a file or sheet name: ``Q1 Sales.csv`` -> ``q1_sales``."""
    name = re.sub(r"[^0-9a-z_]+", "_", text.strip().lower()).strip("_") or "table"
    return f"t_{name}" if name[0].isdigit() else name[:60]


def create_workspace(root: Path, name: str) -> Path:
    """The folder of a new, empty workspace called ``name`` (made a plain name: letters,
    digits, ``_`` and ``-``); an existing workspace of that name is returned as it is."""
    clean = re.sub(r"[^0-9A-Za-z_-]+", "_", (name or "").strip()).strip("_-")[:60]
    if not clean:
        raise WorkspaceError("Give the workspace a name (letters, digits, _ or -)")
    folder = workspaces_dir(root) / clean
    if not is_workspace(folder):
        folder.mkdir(parents=True, exist_ok=True)
        save(folder, Manifest(name=clean))
    return folder


def add_files(
    folder: Path,
    files: list[Path],
    *,
    copy: bool = True,
    names: dict[str, str] | None = None,
    limits: WorkspaceLimits = LIMITS,
) -> list[str]:
    """Add each file (each sheet of an .xlsx) as a table; the notes, one line each.

    ``copy``: copy the files into the workspace (uploads are temporary files); otherwise
    they are read where they are. ``names``: table names by file name (``orders.csv``) or
    ``book.xlsx:Sheet1``. All or nothing: a file that cannot be used raises
    :class:`WorkspaceError` and the workspace stays exactly as it was."""
    manifest = load(folder)
    created: list[Path] = []
    try:
        notes, new = [], []
        for file in map(Path, files):
            entries, file_notes = _one_file(folder, file, copy, limits, created)
            for entry in entries:
                wanted = (names or {}).get(_key(entry))
                entry.name = _unique(manifest.tables + new, entry.name, wanted)
                new.append(entry)
            notes += file_notes
        if len(manifest.tables) + len(new) > limits.max_tables:
            raise WorkspaceError(f"A workspace holds at most {limits.max_tables} tables")
        found = detect_relations(manifest.tables + new, {e.name for e in new})
        manifest.tables += new
        manifest.relations += [r for r in found if r not in manifest.relations]
        notes += [f"detected relation {Relation(*r)}" for r in found]
        save(folder, manifest)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return notes


def _one_file(
    folder: Path, file: Path, copy: bool, limits: WorkspaceLimits, created: list[Path]
) -> tuple[list[Entry], list[str]]:
    shown = file.name
    copied = copy and file_format(file) not in (None, "xlsx") and file.is_file()
    if copied and file.stat().st_size > limits.max_copy_bytes:
        raise WorkspaceError(
            f"{shown} is larger than the limit for an uploaded file ({limits.describe()})"
        )
    if file_format(file) == "xlsx" and file.is_file():
        # deferred: openpyxl loads only for a workbook
        from engine.db.workspace_xlsx import inspect_xlsx

        entries, notes = inspect_xlsx(file, shown, folder / "sheets", limits)
    else:
        entry, notes = inspect_file(file, shown)
        entries = [entry]
    created += [Path(e.path) for e in entries if e.format == "xlsx"]
    target = file.resolve()
    if copy and file_format(file) != "xlsx":
        target = _free(folder / "files" / shown)
        target.parent.mkdir(parents=True, exist_ok=True)
        created.append(target)
        shutil.copyfile(file, target)
    for entry in entries:
        if entry.format == "xlsx":
            entry.source = None if copy else str(target)
        else:
            entry.path = str(target)
        st = os.stat(entry.path)
        entry.size, entry.mtime_ns = st.st_size, st.st_mtime_ns
    return entries, notes


def _key(entry: Entry) -> str:
    return entry.file if entry.sheet is None else f"{entry.file}:{entry.sheet}"


def _unique(entries: list[Entry], base: str, wanted: str | None) -> str:
    taken = {e.name.lower() for e in entries}
    if wanted:
        _check_name(wanted, taken)
        return wanted
    name, n = table_name(base), 2
    while name.lower() in taken:
        name, n = f"{table_name(base)}_{n}", n + 1
    return name


def _check_name(name: str, taken: set[str]) -> None:
    if not _NAME.match(name):
        raise WorkspaceError(f"{name!r} cannot name a table: use letters, digits and _")
    if name.lower() in taken:
        raise WorkspaceError(f"The workspace already has a table named {name}")


def _free(path: Path) -> Path:
    n = 2
    candidate = path
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def rename_table(folder: Path, old: str, new: str) -> None:
    manifest = load(folder)
    entry = _entry(manifest, old)
    _check_name(new, {e.name.lower() for e in manifest.tables if e is not entry})
    for rel in manifest.relations:
        for i in (0, 2):
            if rel[i] == entry.name:
                rel[i] = new
    entry.name = new
    save(folder, manifest)


def remove_table(folder: Path, name: str) -> None:
    """Remove a table; a copy the workspace made of its file is deleted with it."""
    manifest = load(folder)
    entry = _entry(manifest, name)
    manifest.tables.remove(entry)
    manifest.relations = [r for r in manifest.relations if entry.name not in (r[0], r[2])]
    save(folder, manifest)
    path = Path(entry.path)
    owned = path.parent in (folder / "files", folder / "sheets")
    if owned and all(e.path != entry.path for e in manifest.tables):
        path.unlink(missing_ok=True)


def set_relations(folder: Path, relations: list[Relation]) -> None:
    """Replace the workspace's relations; each must name existing tables and columns."""
    manifest = load(folder)
    checked = []
    for rel in relations:
        table, ref = _entry(manifest, rel.table), _entry(manifest, rel.ref_table)
        checked.append(
            [table.name, _column(table, rel.column), ref.name, _column(ref, rel.ref_column)]
        )
    manifest.relations = checked
    save(folder, manifest)


def _entry(manifest: Manifest, name: str) -> Entry:
    entry = manifest.table(name)
    if entry is None:
        raise WorkspaceError(f"The workspace has no table named {name}")
    return entry


def _column(entry: Entry, name: str) -> str:
    for column, _ in entry.columns:
        if column.lower() == name.lower():
            return column
    raise WorkspaceError(f"Table {entry.name} has no column named {name}")


def describe_workspace(folder: Path) -> WorkspaceInfo:
    manifest = load(folder)
    found = {
        line.split(" of table ", 1)[1].split(" ", 1)[0]: line for line in problems(folder, manifest)
    }
    tables = [
        TableInfo(
            e.name, e.file, e.sheet, e.rows, tuple((c, t) for c, t in e.columns), found.get(e.name)
        )
        for e in manifest.tables
    ]
    return WorkspaceInfo(manifest.name, tables, [Relation(*r) for r in manifest.relations])


# --- relations ----------------------------------------------------------------------------


def detect_relations(entries: list[Entry], new: set[str]) -> list[list[str]]:
    """``[table, column, ref_table, ref_column]`` where a column is named for another table
    (``customer_id`` -> ``customers.id``) or shares a ``*_id`` key column with it, and
    every value it holds is in that table's unique column. Only pairs with a new table."""
    import duckdb  # deferred: the db extra

    conn = duckdb.connect(config={"autoinstall_known_extensions": False, "threads": 1})
    found = []
    try:
        for entry in entries:
            try:
                conn.execute(f"CREATE VIEW {quote(entry.name)} AS {view_sql(entry)}")
            except duckdb.Error:
                continue  # a gone file: nothing to relate it by
        for a in entries:
            for column, _ in a.columns:
                for b in entries:
                    if a is b or not ({a.name, b.name} & new):
                        continue
                    ref = _candidate(a, column, b)
                    if ref and _contained(conn, a.name, column, b.name, ref):
                        found.append([a.name, column, b.name, ref])
                        break
    finally:
        conn.close()
    return found


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _candidate(a: Entry, column: str, b: Entry) -> str | None:
    col = column.lower()
    cols = {c.lower(): c for c, _ in b.columns}
    names = {b.name.lower(), _singular(b.name.lower())}
    if col in {f"{n}_id" for n in names} | {f"{n}id" for n in names}:
        return cols.get("id") or cols.get(col)
    own = {a.name.lower(), _singular(a.name.lower())}
    if col.endswith("_id") and col in cols and col[:-3] not in own:
        return cols[col]
    return None


def _contained(conn: Any, table: str, column: str, ref_table: str, ref: str) -> bool:
    import duckdb  # deferred: the db extra

    t, c, rt, rc = quote(table), quote(column), quote(ref_table), quote(ref)
    try:
        unique, some, missing = conn.execute(
            f"SELECT (SELECT count({rc}) = count(*) AND count(DISTINCT {rc}) = count(*) "
            f"AND count(*) > 0 FROM {rt}), (SELECT count({c}) > 0 FROM {t}), "
            f"(SELECT count(*) FROM {t} WHERE {c} IS NOT NULL AND {c} NOT IN "
            f"(SELECT {rc} FROM {rt}))"
        ).fetchone()
    except duckdb.Error:  # types that do not compare
        return False
    return bool(unique and some and missing == 0)


# --- a folder of files, in place (the CLI) -----------------------------------------------


def folder_workspace(folder: Path, cache: Path) -> Path:
    """The workspace (under ``cache``) of the data files in ``folder``, read in place and
    made again whenever the folder's files change; nothing is written into ``folder``."""
    folder = folder.resolve()
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and file_format(p) and not p.name.startswith(".")
    )  # fmt: skip
    if not files:
        raise WorkspaceError(f"{folder.name} holds no data files ({', '.join(FILE_SUFFIXES)})")
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    target = cache / "workspaces" / hashlib.sha1(str(folder).encode()).hexdigest()[:16]
    if is_workspace(target):
        known = load(target)
        if known.origin == str(folder) and known.stamp == stamp:
            return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    try:
        save(target, Manifest(name=table_name(folder.name), origin=str(folder), stamp=stamp))
        add_files(target, files, copy=False)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target
