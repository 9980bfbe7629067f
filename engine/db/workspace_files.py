"""Reading one data file into workspace tables (:mod:`engine.db.workspace`): sniffed once,
checked whole, refused with one line when it cannot be a table.

- CSV/TSV: DuckDB's sniffer gives the dialect and the column types; one scan of the whole
  file with ``store_rejects`` then finds what the sniffer's sample missed. A row with too
  many fields, bytes that are not UTF-8 or a value that fits no type refuse the file (with
  its line); rows with too few fields are read with NULLs (``null_padding``) and noted.
- Parquet and JSON/JSONL: DuckDB's readers; nested columns (STRUCT, LIST, MAP) are left out
  with a note (a file of nested columns only is refused); a JSON file must be an array of
  objects, a JSONL file one object per line.
- Excel (.xlsx): :mod:`engine.db.workspace_xlsx` converts each sheet to Parquet, once.

Nothing is loaded whole into memory: DuckDB streams the files, openpyxl streams the rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.db.workspace import Entry, WorkspaceError, csv_header, literal

FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".xlsx", ".json", ".jsonl", ".ndjson")
_FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".xlsx": "xlsx"}
_FORMATS.update({".json": "json", ".jsonl": "json", ".ndjson": "json"})
_NESTED = re.compile(r"^(STRUCT|MAP|UNION)\(|\]$")
_MB = 2**20


@dataclass
class WorkspaceLimits:
    """What a workspace accepts. Files used in place are streamed by DuckDB and have no size
    limit; what is copied (uploads) and what is converted (.xlsx) does."""

    max_copy_bytes: int = 2048 * _MB  # a file copied into the workspace (an upload)
    max_xlsx_bytes: int = 50 * _MB  # an .xlsx workbook (its sheets are converted to Parquet)
    max_tables: int = 100

    def describe(self) -> str:
        return (
            f"files copied into a workspace up to {size_text(self.max_copy_bytes)}, Excel "
            f"workbooks up to {size_text(self.max_xlsx_bytes)}, at most {self.max_tables} tables"
        )


LIMITS = WorkspaceLimits()


def size_text(n: int) -> str:
    for unit, scale in (("GB", 2**30), ("MB", _MB), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def file_format(path: Path) -> str | None:
    return _FORMATS.get(path.suffix.lower())


def inspect_file(path: Path, shown: str) -> tuple[Entry, list[str]]:
    """The table of one CSV, Parquet or JSON file (named after the file, not yet unique)
    and notes; :class:`WorkspaceError` if it cannot be used (.xlsx: workspace_xlsx)."""
    fmt = file_format(path)
    if fmt is None or fmt == "xlsx":
        raise WorkspaceError(f"{shown}: not a supported file ({', '.join(FILE_SUFFIXES)})")
    if not path.is_file():
        raise WorkspaceError(f"{shown}: no such file")
    read = {"csv": _inspect_csv, "parquet": _inspect_parquet, "json": _inspect_json}[fmt]
    return read(path, shown)


def memory() -> Any:
    import duckdb  # deferred: the db extra

    return duckdb.connect(config={"autoinstall_known_extensions": False, "threads": 1})


def first_line(err: BaseException, path: Path | None = None, shown: str = "") -> str:
    """DuckDB's first error line, ``path`` (a server path) written as ``shown``."""
    text = " ".join(str(err).strip().split("\n")[0].split())
    return text.replace(str(path), shown) if path is not None else text


def columns_arg(columns: list[list[str]]) -> str:
    return "{" + ", ".join(f"{literal(c)}: {literal(t)}" for c, t in columns) + "}"


# --- CSV ------------------------------------------------------------------------------


def _inspect_csv(path: Path, shown: str) -> tuple[Entry, list[str]]:
    import duckdb  # deferred: the db extra

    conn = memory()
    try:
        sniffed = _sniff(conn, path, shown, full=False)
        count, bad = _scan_csv(conn, path, sniffed)
        if "CAST" in bad:  # the sniffer's sample missed a value: look at every row once
            sniffed = _sniff(conn, path, shown, full=True)
            count, bad = _scan_csv(conn, path, sniffed)
    except duckdb.Error as err:
        raise WorkspaceError(_csv_error(path, shown, err)) from None
    finally:
        conn.close()
    notes = _csv_refusal_or_notes(shown, bad, len(sniffed.columns))
    if "MISSING COLUMNS" in bad:
        sniffed.options += ", null_padding=true"
    header = csv_header(path, sniffed.options) if sniffed.has_header else None
    if header is not None:
        check_names(shown, header)
    entry = Entry(path.stem, shown, "csv", str(path), sniffed.columns, sniffed.options)
    entry.rows, entry.header = count + bad.get("MISSING COLUMNS", (0,))[0], header
    return entry, notes


@dataclass
class _Sniffed:
    options: str
    columns: list[list[str]]
    has_header: bool


def _sniff(conn: Any, path: Path, shown: str, *, full: bool) -> _Sniffed:
    extra = ", sample_size=-1" if full else ""
    row = conn.execute(
        "SELECT Delimiter, Quote, Escape, NewLineDelimiter, SkipRows, HasHeader, Columns, "
        f"DateFormat, TimestampFormat FROM sniff_csv({literal(str(path))}, ignore_errors=true"
        f"{extra})"
    ).fetchone()
    delim, quote_char, escape, new_line, skip, header, cols, date_fmt, ts_fmt = row
    # "(empty)": no quote seen in the sample; a quote further down is still the usual one
    quote_char = '"' if quote_char in (None, "", "(empty)") else quote_char
    escape = quote_char if escape in (None, "", "(empty)") else escape
    columns = [[c["name"], c["type"]] for c in cols]
    if len(columns) == 1 and path.suffix.lower() != ".txt" and header:
        raise WorkspaceError(
            f"{shown}: no delimiter found (one column only); is it a CSV or TSV file?"
        )
    options = (
        f", auto_detect=false, delim={literal(delim)}, quote={literal(quote_char)}, "
        f"escape={literal(escape)}, new_line={literal(new_line)}, "
        f"skip={int(skip)}, header={'true' if header else 'false'}, "
        f"columns={columns_arg(columns)}"
    )
    if date_fmt:
        options += f", dateformat={literal(date_fmt)}"
    if ts_fmt:
        options += f", timestampformat={literal(ts_fmt)}"
    return _Sniffed(options, columns, bool(header))


def _scan_csv(
    conn: Any, path: Path, sniffed: _Sniffed
) -> tuple[int, dict[str, tuple[int, int, str]]]:
    """(good rows, error type -> (rows, first line, message)) over the whole file;
    count(COLUMNS(*)) makes DuckDB convert every column (a bare count(*) would skip them)."""
    conn.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    count = conn.execute(
        f"SELECT count(*), count(COLUMNS(*)) FROM read_csv({literal(str(path))}"
        f"{sniffed.options}, store_rejects=true)"
    ).fetchall()[0][0]  # fetchall: the rejects table is written once the scan has finished
    found = conn.execute(
        "SELECT error_type, count(*), min(line), arg_min(error_message, line) "
        "FROM reject_errors GROUP BY error_type"
    ).fetchall()
    return count, {str(kind): (n, line, msg) for kind, n, line, msg in found}


def _csv_refusal_or_notes(shown: str, bad: dict[str, tuple[int, int, str]], n: int) -> list[str]:
    if "INVALID ENCODING" in bad:
        raise WorkspaceError(
            f"{shown} is not UTF-8 text (line {bad['INVALID ENCODING'][1]}): save it as "
            'UTF-8 ("CSV UTF-8" in Excel) and add it again'
        )
    if "TOO MANY COLUMNS" in bad:
        raise WorkspaceError(
            f"{shown}: line {bad['TOO MANY COLUMNS'][1]} has more fields than the header's "
            f"{n}: fix that row (a missing quote?) and add the file again"
        )
    if "CAST" in bad:
        first = bad["CAST"][2].split(".")[0]
        raise WorkspaceError(f"{shown}: line {bad['CAST'][1]}: {first}")
    other = [k for k in bad if k != "MISSING COLUMNS"]
    if other:
        kind, (count, line, _) = other[0], bad[other[0]]
        raise WorkspaceError(f"{shown}: line {line} cannot be read ({kind.lower()})")
    if "MISSING COLUMNS" in bad:
        count, line, _ = bad["MISSING COLUMNS"]
        rows = "1 row has" if count == 1 else f"{count} rows have"
        return [f"{shown}: {rows} fewer fields than the header (first: line {line}); "
                "the missing values are empty (NULL)"]  # fmt: skip
    return []


def _csv_error(path: Path, shown: str, err: BaseException) -> str:
    text = str(err)
    if "utf-8" in text.lower() or "unicode" in text.lower():
        return (
            f'{shown} is not UTF-8 text: save it as UTF-8 ("CSV UTF-8" in Excel) and add it again'
        )
    line = re.search(r"Line: (\d+)", text)
    where = f" (line {line.group(1)})" if line else ""
    return f"{shown} cannot be read as CSV{where}: {first_line(err, path, shown)[:200]}"


def check_names(shown: str, names: list[str]) -> None:
    seen: dict[str, str] = {}
    for i, name in enumerate(names):
        if not name.strip():
            raise WorkspaceError(f"{shown}: column {i + 1} has no name in the header")
        if name.lower() in seen:
            raise WorkspaceError(
                f"{shown}: the column name {name!r} appears twice; rename one and add it again"
            )
        seen[name.lower()] = name


# --- Parquet and JSON -------------------------------------------------------------------


def _flat(shown: str, described: list[tuple]) -> tuple[list[list[str]], list[str]]:
    """(flat columns, notes): nested ones are left out, with a note."""
    columns = [[str(r[0]), str(r[1])] for r in described if not _NESTED.search(str(r[1]))]
    nested = [str(r[0]) for r in described if _NESTED.search(str(r[1]))]
    if not columns:
        raise WorkspaceError(
            f"{shown}: every column is nested (STRUCT, LIST or MAP); flatten it into plain "
            "columns first"
        )
    check_names(shown, [c for c, _ in columns])
    notes = []
    if nested:
        notes.append(
            f"{shown}: left out nested column(s) {', '.join(nested)} "
            "(STRUCT, LIST and MAP values cannot be queried here)"
        )
    return columns, notes


def _inspect_parquet(path: Path, shown: str) -> tuple[Entry, list[str]]:
    import duckdb  # deferred: the db extra

    conn = memory()
    source = f"read_parquet({literal(str(path))})"
    try:
        described = conn.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        rows = conn.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    except duckdb.Error as err:
        raise WorkspaceError(
            f"{shown} cannot be read as Parquet: {first_line(err, path, shown)[:200]}"
        ) from None
    finally:
        conn.close()
    columns, notes = _flat(shown, described)
    entry = Entry(path.stem, shown, "parquet", str(path), columns)
    entry.rows = rows
    return entry, notes


def _inspect_json(path: Path, shown: str) -> tuple[Entry, list[str]]:
    import duckdb  # deferred: the db extra

    lines = path.suffix.lower() in (".jsonl", ".ndjson")
    first = _first_char(path)
    if first != "{" and (lines or first != "["):
        what = "one JSON object per line" if lines else "a JSON array of objects ([{...}, ...])"
        raise WorkspaceError(f"{shown} is not a list of records: it must hold {what}")
    fmt = "array" if first == "[" else "newline_delimited"
    conn = memory()
    try:
        source = f"read_json({literal(str(path))}, format={literal(fmt)}, records=true"
        described = conn.execute(f"DESCRIBE SELECT * FROM {source})").fetchall()
        columns, notes = _flat(shown, described)
        options = f", format={literal(fmt)}, records=true, columns={columns_arg(columns)}"
        checked = f"read_json({literal(str(path))}{options})"
        rows = conn.execute(f"SELECT count(*), count(COLUMNS(*)) FROM {checked}").fetchone()[0]
    except duckdb.Error as err:
        raise WorkspaceError(
            f"{shown} is not a list of records ({first_line(err, path, shown)[:160]})"
        ) from None
    finally:
        conn.close()
    if fmt == "newline_delimited" and not lines and rows == 1:
        raise WorkspaceError(
            f"{shown} is one JSON object, not a list of records: put the records in an array"
        )
    entry = Entry(path.stem, shown, "json", str(path), columns, options)
    entry.rows = rows
    return entry, notes


def _first_char(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1].decode("latin-1")
