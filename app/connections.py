"""Saved connections to PostgreSQL, MySQL/MariaDB and DuckDB databases (the Schema tab's
Connect form).

A connection is a name and a database URL, kept without its password in the folder of the
user who made it (``<data dir>/connections.json``, or that of a signed-in user: the caller
passes it, see app.users). A password typed in the form lives in this process's memory only
(:func:`engine.db.url.remember_password`): after a restart the user types it again, or names
an environment variable in the URL's password place (``USER:${PGPASSWORD}@HOST``), which is
what the saved URL then keeps. Every message names the URL with its password hidden.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.catalog import CONNECTIONS_FILE, saved_connections
from engine.db import DatabaseError, is_url, open_database
from engine.db.url import forget_password, remember_password, remembered, restore_password

_NAME = re.compile(r"[^A-Za-z0-9 _.-]+")
_lock = threading.Lock()


class ConnectRefused(ValueError):
    """A connection was refused; the message is one line without any password."""


@dataclass(frozen=True)
class Connected:
    name: str
    url: str  # without its password
    warning: str | None = None  # e.g. the account can write


def connect(
    url: str, root: Path, password: str | None = None, name: str | None = None, user: str = ""
) -> Connected:
    """Check that ``url`` can be read (with ``password``, if given) and save it by name in
    ``root``, the data folder of ``user`` ("" for the local user, when there is no sign-in).

    Raises :class:`ConnectRefused` with a one-line message that hides the password.
    """
    url = (url or "").strip()
    if not is_url(url):
        raise ConnectRefused(
            "Give a database URL: postgresql+psycopg://USER@HOST:PORT/DB, "
            "mysql+pymysql://USER@HOST:PORT/DB or duckdb:///path/to/file.duckdb"
        )
    try:
        if open_database(url).dialect == "sqlite":
            raise ConnectRefused("SQLite files: use the upload above")
        password = password or None  # as typed: spaces may belong to it
        before = remembered(url)
        if password is None and user and before is not None:
            # another signed-in user's password is in memory: each types their own
            raise ConnectRefused("Type the password for this database")
        db = open_database(remember_password(url, password))  # no password in it now
        try:
            db.check()
        except DatabaseError:
            restore_password(db.public, before)  # a wrong password never replaces a right one
            raise
        writes = db.role_can_write()
    except DatabaseError as err:
        raise ConnectRefused(str(err)) from None
    warning = None
    if writes:
        warning = (
            "This account can change data. The workbench only ever reads, but a read-only "
            "account (see the README) is safer."
        )
    title = _NAME.sub("_", (name or "").strip())[:60] or db.label
    with _lock:
        saved = saved_connections(root)
        saved[title] = db.public
        _write(root, saved)
    return Connected(title, db.public, warning)


def forget(name: str, root: Path) -> bool:
    """Remove a connection saved in ``root`` (and the password remembered for it)."""
    with _lock:
        saved = saved_connections(root)
        url = saved.pop(name, None)
        if url is None:
            return False
        _write(root, saved)
    forget_password(url)
    return True


def _write(root: Path, saved: dict[str, str]) -> None:
    path = root / CONNECTIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rows = [{"name": n, "url": u} for n, u in saved.items()]
    tmp.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    tmp.replace(path)
