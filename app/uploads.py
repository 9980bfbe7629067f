"""Turning uploads into SQLite databases in a user's data folder (:func:`upload_dir`).

A ``.sqlite``/``.db`` file is checked and copied; a ``.sql`` script of DDL (and INSERTs) is
run into a new database; CSV files become tables (sqlite-utils, types detected). The user's
original file is only ever read. Each database is built in a temporary file and renamed into
place once complete, so a failed upload leaves nothing behind.

CSV rows with fewer fields than the header are imported with NULLs and reported; a row with
more fields is refused with its line number (its values would not fit any column). Messages
name files, never their paths on the server.
"""

from __future__ import annotations

import csv
import re
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.catalog import upload_dir, uploaded_databases  # noqa: F401 - where uploads are listed
from engine.db import DatabaseError
from engine.db.sqlite import check as check_sqlite

DB_SUFFIXES = {".sqlite", ".sqlite3", ".db"}
CSV_DELIMITERS = ",;\t|"
_DELIMITER_NAMES = {",": "a comma", ";": "a semicolon", "\t": "a tab", "|": "a '|'"}


class UploadError(ValueError):
    """An upload was refused; the message is one line for the user."""


@dataclass(frozen=True)
class UploadLimits:
    max_db_bytes: int = 500 * 2**20
    max_sql_bytes: int = 50 * 2**20
    max_csv_bytes: int = 200 * 2**20
    max_tables: int = 2000

    def describe(self) -> str:
        mb = 2**20
        return (
            f"Limits: database ≤ {self.max_db_bytes // mb} MB, SQL script ≤ "
            f"{self.max_sql_bytes // mb} MB, each CSV ≤ {self.max_csv_bytes // mb} MB, "
            f"≤ {self.max_tables} tables."
        )


LIMITS = UploadLimits()


@dataclass(frozen=True)
class Imported:
    """A new database and what the user should know about its import."""

    path: Path
    notes: list[str] = field(default_factory=list)


def safe_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem).strip("_")[:60]
    return stem or "database"


def _target(dest_dir: Path, name: str) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    base = safe_name(name)
    path, n = dest_dir / f"{base}.sqlite", 2
    while path.exists():
        path, n = dest_dir / f"{base}_{n}.sqlite", n + 1
    return path


def _check_size(path: Path, limit: int, what: str) -> None:
    size = path.stat().st_size
    if size == 0:
        raise UploadError(f"{path.name} is empty.")
    if size > limit:
        raise UploadError(
            f"{path.name} is {size / 2**20:.0f} MB; the limit for {what} is {limit // 2**20} MB."
        )


def _finish(tmp: Path, target: Path, limits: UploadLimits) -> Path:
    """Validate the built database, then move it into place (or delete it)."""
    try:
        if tmp.stat().st_size == 0:  # SQLite writes nothing until a table exists
            raise UploadError("The upload holds no tables.")
        check_sqlite(tmp)
        con = sqlite3.connect(f"file:{tmp}?mode=ro", uri=True)
        try:
            n = con.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        finally:
            con.close()
        if n == 0:
            raise UploadError("The upload holds no tables.")
        if n > limits.max_tables:
            raise UploadError(f"The upload holds {n} tables; the limit is {limits.max_tables}.")
        tmp.replace(target)
        return target
    except DatabaseError as err:
        raise UploadError(str(err).replace(str(tmp), target.name)) from None
    finally:
        tmp.unlink(missing_ok=True)


def import_sqlite(src: Path, dest_dir: Path, limits: UploadLimits = LIMITS) -> Path:
    _check_size(src, limits.max_db_bytes, "databases")
    try:
        check_sqlite(src)
    except DatabaseError as err:
        raise UploadError(_named(str(err), src)) from None
    target = _target(dest_dir, src.name)
    tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
    shutil.copyfile(src, tmp)
    _normalise_journal(tmp)
    return _finish(tmp, target, limits)


def _normalise_journal(path: Path) -> None:
    """A WAL-mode copy would need -wal/-shm files to be read; switch the copy to DELETE."""
    con = sqlite3.connect(path)
    try:
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            con.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.DatabaseError as err:
        raise UploadError(f"Not a usable SQLite database: {err}") from None
    finally:
        con.close()


def _script_authorizer(action: int, arg1, arg2, dbname, source) -> int:
    """Scripts may create and fill tables, never reach outside the new file."""
    denied = {sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH}
    if action in denied or (action == sqlite3.SQLITE_FUNCTION and arg2 == "load_extension"):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def import_sql_script(src: Path, dest_dir: Path, limits: UploadLimits = LIMITS) -> Path:
    _check_size(src, limits.max_sql_bytes, "SQL scripts")
    try:
        script = src.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UploadError(f"{src.name} is not a UTF-8 text file.") from None
    target = _target(dest_dir, src.name)
    tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
    con = sqlite3.connect(tmp)
    try:
        con.set_authorizer(_script_authorizer)
        con.executescript(script)
        con.commit()
    except sqlite3.Error as err:
        con.close()
        tmp.unlink(missing_ok=True)
        raise UploadError(f"The SQL script failed: {err}") from None
    con.close()
    return _finish(tmp, target, limits)


def import_csvs(
    srcs: list[Path], dest_dir: Path, name: str, limits: UploadLimits = LIMITS
) -> Imported:
    """Each CSV becomes a table named after its file, with column types detected."""
    # deferred: sqlite-utils takes most of a second to import; only CSV uploads need it
    import sqlite_utils
    from sqlite_utils.utils import TypeTracker

    for src in srcs:
        _check_size(src, limits.max_csv_bytes, "CSV files")
    target = _target(dest_dir, name)
    tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
    db = sqlite_utils.Database(tmp)
    notes: list[str] = []
    try:
        for src in srcs:
            tracker = TypeTracker()
            table = db[safe_name(src.name)]
            table.insert_all(tracker.wrap(csv_rows(src, notes)), batch_size=1000, alter=True)
            if not table.exists() or table.count == 0:
                raise UploadError(f"{src.name} has no data rows.")
            table.transform(types=tracker.types)
    except UploadError:
        db.close()
        tmp.unlink(missing_ok=True)
        raise
    except UnicodeDecodeError:
        db.close()
        tmp.unlink(missing_ok=True)
        raise UploadError(f"{src.name} is not UTF-8 text: save it as a UTF-8 CSV.") from None
    except Exception as err:  # csv.Error, sqlite errors: all one message
        db.close()
        tmp.unlink(missing_ok=True)
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UploadError(f"Cannot read {src.name}: {_named(first, src)}") from None
    db.close()
    return Imported(_finish(tmp, target, limits), notes)


def csv_rows(src: Path, notes: list[str]) -> Iterator[dict[str, str | None]]:
    """The data rows of a CSV file as dicts keyed by its header.

    The delimiter is the one of ``,;<tab>|`` the header uses most. Short rows get NULLs for
    their missing fields (noted in ``notes``); a row with more fields than the header raises
    :class:`UploadError` naming its line.
    """
    with open(src, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        f.seek(0)
        delimiter = max(CSV_DELIMITERS, key=first.count) if first.strip() else ","
        delimiter = delimiter if delimiter in first else ","
        reader = csv.reader(f, delimiter=delimiter)
        names = _header(src, next(reader, []), notes)
        short: list[int] = []
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip() and len(names) > 1):
                continue  # a blank line
            if len(row) > len(names):
                raise UploadError(
                    f"Line {reader.line_num} of {src.name} has {len(row)} fields; the header "
                    f"has {len(names)}. Put values that contain {_DELIMITER_NAMES[delimiter]} "
                    "in double quotes, or fix that line."
                )
            if len(row) < len(names):
                short.append(reader.line_num)
            yield dict(zip(names, [*row, *[None] * (len(names) - len(row))], strict=True))
    if short:
        lines = ", ".join(map(str, short[:5])) + (" …" if len(short) > 5 else "")
        notes.append(
            f"{src.name}: {len(short)} row(s) had fewer fields than the header (line "
            f"{lines}); their missing values were imported as NULL."
        )


def _header(src: Path, header: list[str], notes: list[str]) -> list[str]:
    names = [h.strip() for h in header]
    if not any(names):
        raise UploadError(f"{src.name} has no header row (the first line names the columns).")
    unnamed = [i for i, n in enumerate(names) if not n]
    for i in unnamed:
        names[i] = f"column_{i + 1}"
    if unnamed:
        notes.append(
            f"{src.name}: unnamed header column(s) named "
            + ", ".join(names[i] for i in unnamed)
            + "."
        )
    seen: dict[str, str] = {}
    for n in names:
        if n.lower() in seen:
            raise UploadError(f"Column '{n}' appears twice in the header of {src.name}.")
        seen[n.lower()] = n
    return names


def _named(message: str, path: Path) -> str:
    """``message`` naming ``path`` by its file name only."""
    for form in {str(path), str(path.resolve())}:
        message = message.replace(form, path.name)
    return message


def import_upload(files: list[str | Path], dest_dir: Path, name: str | None = None) -> Imported:
    """Dispatch on the files' type; returns the new database in ``dest_dir`` (a user's
    :func:`upload_dir`)."""
    paths = [Path(f) for f in files or []]
    if not paths:
        raise UploadError("Please choose a file to upload.")
    suffixes = {p.suffix.lower() for p in paths}
    if suffixes <= {".csv"}:
        return import_csvs(paths, dest_dir, name or paths[0].stem)
    if len(paths) > 1:
        raise UploadError("Upload one database or SQL script at a time (or several CSV files).")
    src = paths[0]
    if src.suffix.lower() in DB_SUFFIXES:
        return Imported(import_sqlite(src, dest_dir))
    if src.suffix.lower() == ".sql":
        return Imported(import_sql_script(src, dest_dir))
    raise UploadError(
        f"Unsupported file type {src.suffix or '(none)'}: use .sqlite/.db, .sql or .csv."
    )
