"""A workspace: data files (CSV/TSV, Parquet, Excel sheets, JSON/JSONL) read as the tables of
one DuckDB database, in place.

A workspace is a folder holding ``workspace.json`` (the manifest: per table its file, the
reader options and column types sniffed once when the file was added, its relations) and
``catalog.duckdb``, a DuckDB file of VIEWs only (``CREATE VIEW sales AS SELECT ... FROM
read_csv('/abs/sales.csv', auto_detect=false, columns={...})``), rebuilt from the manifest on
every change. The views carry the sniffed options, so a query never sniffs a file again.

Queries run as on any DuckDB file (:mod:`engine.db.duckdb`: the text guard, read-only,
one thread, a memory limit, the sandbox worker), with one difference: external access is
limited to the workspace's own files (``allowed_paths``), so a view can read its file while
a query cannot read any other path, write (``COPY ... TO``) or ``ATTACH``.

A file that is gone, or whose columns changed, after it was added gives one line naming
the file and what to do (:func:`problems`); messages name files by their name, never by a
server path. Editing a workspace (adding files, renaming, relations) is
:mod:`engine.db.workspace_edit`; the public API is :mod:`engine.workspace`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.db.result import DatabaseError, QueryResult
from engine.schema import ForeignKey, Schema, Table

MANIFEST = "workspace.json"
CATALOG = "catalog.duckdb"
VERSION = 1
READERS = {
    "csv": "read_csv",
    "parquet": "read_parquet",
    "json": "read_json",
    "xlsx": "read_parquet",
}


class WorkspaceError(ValueError):
    """A file or an edit that cannot be used; one line for the user, naming files by name."""


@dataclass
class Entry:
    """One table of a workspace, as the manifest stores it."""

    name: str  # the table
    file: str  # the user's file, by name (what messages say)
    format: str  # csv, parquet, json, xlsx (a sheet converted to Parquet)
    path: str  # the absolute file the view reads
    columns: list[list[str]]  # [name, DuckDB type], in the view's order
    options: str = ""  # the reader's arguments after the path (", auto_detect=false, ...")
    sheet: str | None = None
    source: str | None = None  # an .xlsx sheet: the workbook it was converted from
    size: int = 0  # of ``path`` when added: a changed file is told apart by these
    mtime_ns: int = 0
    rows: int | None = None
    header: list[str] | None = None  # CSV: the header's fields as written in the file


@dataclass
class Manifest:
    name: str
    tables: list[Entry] = field(default_factory=list)
    relations: list[list[str]] = field(default_factory=list)  # [table, column, ref, ref_col]
    origin: str | None = None  # a folder used in place (the CLI): that folder
    stamp: list[list[Any]] = field(default_factory=list)  # its files' [name, size, mtime_ns]
    version: int = VERSION

    def table(self, name: str) -> Entry | None:
        return next((t for t in self.tables if t.name.lower() == name.lower()), None)


def is_workspace(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def load(folder: Path) -> Manifest:
    """The manifest of the workspace in ``folder``; :class:`DatabaseError` if it has none."""
    try:
        raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        tables = [Entry(**t) for t in raw.pop("tables", [])]
        return Manifest(tables=tables, **raw)
    except FileNotFoundError:
        raise DatabaseError(f"No workspace in {folder.name}") from None
    except (ValueError, TypeError) as err:
        raise DatabaseError(f"The workspace {folder.name} cannot be read: {err}") from None


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(entry: Entry) -> str:
    cols = ", ".join(quote(c) for c, _ in entry.columns)
    reader = READERS[entry.format]
    return f"SELECT {cols} FROM {reader}({literal(entry.path)}{entry.options})"


def save(folder: Path, manifest: Manifest) -> None:
    """Write the catalog and then the manifest, each to a temporary file first and moved in
    place whole: a failure leaves the previous pair as it was."""
    catalog = _build_catalog(folder, manifest)
    text = json.dumps(asdict(manifest), indent=1, ensure_ascii=False)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".manifest-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(catalog, folder / CATALOG)
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        for leftover in (catalog, Path(tmp)):
            leftover.unlink(missing_ok=True)
        raise


def _build_catalog(folder: Path, manifest: Manifest) -> Path:
    import duckdb  # deferred: the db extra; a workspace is only built where it is installed

    tmp = folder / f".catalog-{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    conn = duckdb.connect(str(tmp), config={"autoinstall_known_extensions": False})
    try:
        for entry in manifest.tables:
            conn.execute(f"CREATE VIEW {quote(entry.name)} AS {view_sql(entry)}")
        conn.execute("CHECKPOINT")
    except duckdb.Error as err:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise WorkspaceError(scrub(f"Cannot build the workspace: {err}", manifest)) from None
    conn.close()
    Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return tmp


def allowed_paths(manifest: Manifest) -> list[str]:
    return sorted({t.path for t in manifest.tables})


def scrub(message: str, manifest: Manifest) -> str:
    """``message`` on one line, each of the workspace's paths replaced by its file's name."""
    text = " ".join(str(message).split())
    for entry in manifest.tables:
        text = text.replace(entry.path, entry.file)
    return re.sub(r"\s*(LINE \d+:.*)$", "", text)[:400]


def problems(folder: Path, manifest: Manifest | None = None) -> list[str]:
    """One line per table whose file is gone or no longer has the columns it was added with
    (only files whose size or time changed are looked at again)."""
    manifest = manifest or load(folder)
    out = []
    for entry in manifest.tables:
        what = entry.file if entry.sheet is None else f"{entry.file} (sheet {entry.sheet})"
        try:
            st = os.stat(entry.path)
        except OSError:
            out.append(
                f"{what} of table {entry.name} is gone: put it back, or remove the table "
                "from the workspace"
            )
            continue
        if (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
            reason = _changed_columns(entry)
            if reason:
                out.append(
                    f"{what} of table {entry.name} changed since it was added ({reason}): "
                    "add it to the workspace again"
                )
    return out


def _changed_columns(entry: Entry) -> str | None:
    """Why a changed file no longer fits its view, or None if it still does."""
    import duckdb  # deferred: the db extra

    if entry.format == "csv" and entry.header is not None:
        try:
            header = csv_header(Path(entry.path), entry.options)
        except (OSError, ValueError) as err:
            return str(err).split(": ", 1)[-1]
        return None if header == entry.header else "its header is not the one it had"
    conn = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        conn.execute(f"SELECT * FROM ({view_sql(entry)}) LIMIT 1").fetchall()
    except duckdb.Error as err:
        return scrub(str(err).split("\n")[0], Manifest("", [entry]))[:160]
    finally:
        conn.close()
    return None


def run(folder: Path, sql: str, timeout_s: float, max_rows: int) -> QueryResult:
    """One read-only query (:func:`engine.db.duckdb.run`) with external access limited to
    the workspace's files; a failure caused by a gone or changed file says which and what
    to do. Runs in a sandbox worker (:meth:`engine.db.Database.run_readonly`)."""
    from engine.db import duckdb  # deferred: off every CLI's start-up path

    try:
        manifest = load(folder)
    except DatabaseError as err:
        return QueryResult([], [], str(err))
    result = duckdb.run(folder / CATALOG, sql, timeout_s, max_rows, allowed_paths(manifest))
    failed = result.error and result.error.startswith("Query failed")
    if failed or any(e.path in (result.error or "") for e in manifest.tables):
        found = problems(folder, manifest)
        result.error = found[0] if found else scrub(result.error, manifest)
    return result


def connect(folder: Path) -> Any:
    """The catalog, read-only, able to read the workspace's files and nothing else."""
    from engine.db import duckdb  # deferred: off every CLI's start-up path

    return duckdb.connect(folder / CATALOG, allowed_paths(load(folder)))


def check(folder: Path) -> None:
    connect(folder).close()


def read_schema(folder: Path, *, count_rows: bool = False) -> Schema:
    """The views as tables, the manifest's relations as foreign keys; a gone or changed file
    raises :class:`DatabaseError` naming it (one line)."""
    from engine.db import duckdb  # deferred: off every CLI's start-up path

    manifest = load(folder)
    found = problems(folder, manifest)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise DatabaseError(found[0] + more)
    try:
        schema = duckdb.read_schema(
            folder / CATALOG, count_rows=count_rows, allowed=allowed_paths(manifest)
        )
    except DatabaseError as err:
        raise DatabaseError(scrub(str(err), manifest)) from None
    fks: dict[str, list[ForeignKey]] = {}
    for table, column, ref_table, ref_column in manifest.relations:
        fks.setdefault(table, []).append(ForeignKey(column, ref_table, ref_column))
    tables = {
        name: Table(t.name, t.columns, fks.get(name, []), t.row_count, t.comment)
        for name, t in schema.tables.items()
    }
    return Schema(tables=tables, dialect="duckdb")


def csv_header(path: Path, options: str) -> list[str]:
    """The header's fields as written (read with the sniffed delimiter and quote); DuckDB
    renames duplicates (id, id_1), so duplicates are looked for here."""
    delim = re.search(r"delim='((?:[^']|'')*)'", options)
    quote_char = re.search(r"quote='((?:[^']|'')*)'", options)
    skip = re.search(r"skip=(\d+)", options)
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            for _ in range(int(skip.group(1)) if skip else 0):
                text.readline()
            line = text.readline(1_000_000)
        except UnicodeDecodeError:
            raise ValueError(f"{path.name}: not UTF-8 text") from None
    fields = next(
        csv.reader(
            [line],
            delimiter=(delim.group(1).replace("''", "'") if delim else ",")[:1] or ",",
            quotechar=(quote_char.group(1) if quote_char else '"')[:1] or '"',
        ),
        [],
    )
    return [f.strip() for f in fields]
