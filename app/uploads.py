"""Turning uploads into SQLite databases in the app's data folder.

A ``.sqlite``/``.db`` file is checked and copied; a ``.sql`` script of DDL (and INSERTs) is
run into a new database; CSV files become tables (sqlite-utils, types detected). The user's
original file is only ever read. Each database is built in a temporary file and renamed into
place once complete, so a failed upload leaves nothing behind.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.executor import DatabaseError, check_database
from engine.paths import data_dir

DB_SUFFIXES = {".sqlite", ".sqlite3", ".db"}


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
        check_database(tmp)
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
        check_database(src)
    except DatabaseError as err:
        raise UploadError(str(err)) from None
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


def import_csvs(srcs: list[Path], dest_dir: Path, name: str, limits: UploadLimits = LIMITS) -> Path:
    """Each CSV becomes a table named after its file, with column types detected."""
    import sqlite_utils
    from sqlite_utils.utils import TypeTracker, rows_from_file

    for src in srcs:
        _check_size(src, limits.max_csv_bytes, "CSV files")
    target = _target(dest_dir, name)
    tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
    db = sqlite_utils.Database(tmp)
    try:
        for src in srcs:
            tracker = TypeTracker()
            with open(src, "rb") as f:
                rows, _ = rows_from_file(f, encoding="utf-8-sig")
                table = db[safe_name(src.name)]
                table.insert_all(tracker.wrap(rows), batch_size=1000, alter=True)
            if not table.exists() or table.count == 0:
                raise UploadError(f"{src.name} has no data rows.")
            table.transform(types=tracker.types)
    except UploadError:
        db.close()
        tmp.unlink(missing_ok=True)
        raise
    except Exception as err:  # csv.Error, UnicodeDecodeError, sqlite errors: all one message
        db.close()
        tmp.unlink(missing_ok=True)
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UploadError(f"Cannot read the CSV upload: {first}") from None
    db.close()
    return _finish(tmp, target, limits)


def upload_dir() -> Path:
    return data_dir() / "uploads"


def import_upload(
    files: list[str | Path], dest_dir: Path | None = None, name: str | None = None
) -> Path:
    """Dispatch on the files' type; returns the new database in ``dest_dir``."""
    dest_dir = dest_dir or upload_dir()
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
        return import_sqlite(src, dest_dir)
    if src.suffix.lower() == ".sql":
        return import_sql_script(src, dest_dir)
    raise UploadError(
        f"Unsupported file type {src.suffix or '(none)'}: use .sqlite/.db, .sql or .csv."
    )


def uploaded_databases(dest_dir: Path | None = None) -> dict[str, Path]:
    dest_dir = dest_dir or upload_dir()
    return {p.stem: p for p in sorted(dest_dir.glob("*.sqlite"))} if dest_dir.is_dir() else {}
