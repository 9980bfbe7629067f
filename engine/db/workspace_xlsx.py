"""Excel workbooks (.xlsx) in a workspace: openpyxl streams each sheet (read-only mode, so
a sheet is never held whole in memory) through a temporary CSV file into a Parquet copy in
the workspace's folder, once, with the types its values have. DuckDB's own Excel extension
is not used: it is not in the wheel, and a workspace installs no extension at query time.

Refused with one line: a workbook over the stated size, merged cells in a header row, an
empty or duplicate header name, values beyond the header's columns.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import iterparse

from engine.db.workspace import Entry, WorkspaceError, literal
from engine.db.workspace_files import (
    WorkspaceLimits,
    check_names,
    columns_arg,
    first_line,
    memory,
    size_text,
)

# Sheets named like this are named after their file instead.
_DEFAULT_SHEET = re.compile(r"^(sheet|feuil|tabelle|hoja|foglio|blad)\s*\d*$", re.IGNORECASE)


def inspect_xlsx(
    path: Path, shown: str, sheets_dir: Path, limits: WorkspaceLimits
) -> tuple[list[Entry], list[str]]:
    try:
        from openpyxl import load_workbook  # deferred: the db extra, only for .xlsx files
    except ImportError:
        raise WorkspaceError(
            f"{shown}: reading .xlsx files needs openpyxl (pip install openpyxl)"
        ) from None
    if path.stat().st_size > limits.max_xlsx_bytes:
        raise WorkspaceError(
            f"{shown} is larger than {size_text(limits.max_xlsx_bytes)}, the limit for Excel "
            "files: save its sheets as CSV and add those"
        )
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many kinds for a damaged or foreign file
        raise WorkspaceError(
            f"{shown} cannot be read as an .xlsx workbook ({first_line(err, path, shown)[:120]})"
        ) from None
    entries, notes = [], []
    try:
        sheets = [ws for ws in book.worksheets if hasattr(ws, "iter_rows")]
        for ws in sheets:
            base = path.stem if _DEFAULT_SHEET.match(ws.title) and len(sheets) == 1 else ws.title
            if _DEFAULT_SHEET.match(ws.title) and len(sheets) > 1:
                base = f"{path.stem}_{ws.title}"
            entry, note = _sheet(ws, shown, base, sheets_dir)
            if entry is not None:
                entries.append(entry)
            notes += note
    finally:
        book.close()
    if not entries:
        raise WorkspaceError(f"{shown} has no sheet with a header row and data")
    return entries, notes


def _sheet(ws: Any, shown: str, base: str, sheets_dir: Path) -> tuple[Entry | None, list[str]]:
    """One sheet streamed to a CSV file (temporary) and then to Parquet with the types its
    values have; (None, note) for an empty sheet."""
    where = f"{shown} (sheet {ws.title})"
    rows = ws.iter_rows(values_only=True)
    header_at, header = 0, None
    for i, row in enumerate(rows, start=1):
        if any(v is not None and str(v).strip() for v in row):
            header_at, header = i, list(row)
            break
    if header is None:
        return None, [f"{where}: empty, left out"]
    merged = _merged_ranges(ws)
    in_header = [r for r, (top, bottom) in merged.items() if top <= header_at <= bottom]
    if in_header:
        raise WorkspaceError(
            f"{where}: the header row has merged cells ({in_header[0]}); unmerge them so each "
            "column has its own name, then add the file again"
        )
    while header and (header[-1] is None or not str(header[-1]).strip()):
        header.pop()
    names = ["" if v is None else str(v).strip() for v in header]
    check_names(where, names)
    kinds: list[set[str]] = [set() for _ in names]
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "sheet.csv"
        count = _write_rows(rows, len(names), kinds, text, where)
        columns = [[n, _duck_type(k)] for n, k in zip(names, kinds, strict=True)]
        sheets_dir.mkdir(parents=True, exist_ok=True)
        target = (
            sheets_dir
            / f"{re.sub(r'[^A-Za-z0-9_]+', '_', base)[:40]}-{uuid.uuid4().hex[:8]}.parquet"
        )
        conn = memory()
        try:
            conn.execute(
                f"COPY (SELECT * FROM read_csv({literal(str(text))}, auto_detect=false, "
                f"header=true, delim=',', quote='\"', escape='\"', "
                f"columns={columns_arg(columns)})) TO {literal(str(target))} (FORMAT parquet)"
            )
        finally:
            conn.close()
    entry = Entry(base, shown, "xlsx", str(target), columns, sheet=ws.title)
    entry.rows = count
    notes = (
        [f"{where}: {len(merged)} merged cell range(s); only their first cell holds the value"]
        if merged
        else []
    )
    return entry, notes


def _write_rows(rows: Any, width: int, kinds: list[set[str]], target: Path, where: str) -> int:
    count = 0
    with open(target, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([f"c{i}" for i in range(width)])
        for row in rows:
            values = list(row)
            if any(v is not None and str(v).strip() for v in values[width:]):
                raise WorkspaceError(
                    f"{where}: row {count + 2} has values beyond the header's columns"
                )
            values = (values + [None] * width)[:width]
            if all(v is None for v in values):
                continue
            writer.writerow([_cell(v, kinds[i]) for i, v in enumerate(values)])
            count += 1
    return count


def _cell(value: Any, kinds: set[str]) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        kinds.add("bool")
        return "true" if value else "false"
    if isinstance(value, int):
        kinds.add("int")
    elif isinstance(value, float):
        kinds.add("float")
    elif isinstance(value, dt.datetime):
        kinds.add("datetime")
        return value.isoformat(sep=" ")
    elif isinstance(value, dt.date):
        kinds.add("date")
        return value.isoformat()
    elif isinstance(value, dt.time):
        kinds.add("time")
        return value.isoformat()
    else:
        kinds.add("str")
    return str(value)


def _duck_type(kinds: set[str]) -> str:
    if kinds <= {"int"} and kinds:
        return "BIGINT"
    if kinds <= {"int", "float"} and kinds:
        return "DOUBLE"
    for one, name in (("bool", "BOOLEAN"), ("date", "DATE"), ("time", "TIME")):
        if kinds == {one}:
            return name
    if kinds and kinds <= {"datetime", "date"}:
        return "TIMESTAMP"
    return "VARCHAR"


def _merged_ranges(ws: Any) -> dict[str, tuple[int, int]]:
    """Merged ranges (``A1:C1`` -> (first row, last row)) of a read-only sheet: openpyxl's
    read-only mode does not parse them, so the sheet's XML is streamed for its mergeCell
    elements (they follow the rows)."""
    found = {}
    try:
        source = ws._get_source()  # the sheet's XML in the archive (openpyxl's read-only API)
    except Exception:
        return {}
    with source:
        for _, elem in iterparse(source):
            if elem.tag.endswith("}mergeCell"):
                ref = elem.get("ref", "")
                nums = [int(n) for n in re.findall(r"\d+", ref)]
                if nums:
                    found[ref] = (min(nums), max(nums))
            elif elem.tag.endswith("}row") or elem.tag.endswith("}c"):
                elem.clear()
    return found
