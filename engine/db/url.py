"""Database references: a SQLite or DuckDB file path, or a SQLAlchemy URL
(:func:`engine.db.open_database` classifies one, once, with :func:`parse`).

``postgresql+psycopg://user@host:5432/shop``, ``mysql+pymysql://user@host/shop``,
``duckdb:///path/to/file.duckdb`` and ``sqlite:///path.sqlite`` are understood; a plain path
is a SQLite file, or a DuckDB file when it ends in ``.duckdb``/``.ddb``.

Passwords never travel with the reference through the engine. A password comes from one of:

- :func:`remember_password` (the app's Connect form): kept in this process's memory only,
  keyed by the URL without its password, which is what the rest of the program sees;
- an environment variable named in the password's place: ``postgresql+psycopg://bob:${PGPW}@h/db``
  (the URL stays as written: the name is not a secret);
- the URL itself (the CLI): accepted, but :func:`redact` hides it in every message, and
  :func:`storable` drops it before anything is written to a file;
- the driver's own sources (``PGPASSWORD``, ``~/.pgpass``, ``MYSQL_PWD`` is *not* read).
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

from engine.db.result import DatabaseError
from engine.paths import db_drivers_hint

DUCKDB_SUFFIXES = (".duckdb", ".ddb")
# SQLAlchemy backend name -> sqlglot dialect
DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "duckdb": "duckdb"}
DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
_ENV_PASSWORD = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_passwords: dict[str, str] = {}  # URL without password -> password (process memory only)


class DatabaseURLError(DatabaseError):
    """A URL that cannot be used; the message never contains a password."""


def require(module: str) -> Any:
    """Import a database driver, or raise :class:`DatabaseError` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DatabaseError(f"The {module} driver is not installed: {db_drivers_hint()}") from None


def is_url(db: Any) -> bool:
    return isinstance(db, str) and bool(_SCHEME.match(db))


def parse(db: str) -> Any:
    """The ``sqlalchemy.URL`` of ``db``, with the driver this project pins filled in."""
    require("sqlalchemy")
    # optional: sqlalchemy (the db extra, ~350 ms) may be absent: require() above says so
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(db)
    except (ArgumentError, ValueError):
        raise DatabaseURLError(f"Not a database URL: {_mask(db)}") from None
    backend = url.get_backend_name()
    if backend not in (*DIALECTS, "sqlite"):
        raise DatabaseURLError(
            f"Unsupported database {backend!r}: use postgresql+psycopg://, mysql+pymysql://, "
            "duckdb:/// or a SQLite file"
        )
    driver = DRIVERS.get(backend)
    if driver and url.get_driver_name() != driver:
        if "+" in url.drivername:
            raise DatabaseURLError(
                f"Unsupported driver {url.drivername!r}: use {backend}+{driver}://"
            )
        url = url.set(drivername=f"{backend}+{driver}")
    if backend != "duckdb" and backend != "sqlite" and not url.database:
        raise DatabaseURLError(f"The URL names no database: {redact(db)}")
    return url


def redact(db: Any) -> str:
    """``db`` for messages: a literal password becomes ``***``; ``${VAR}`` names stay."""
    text = str(db)
    if not is_url(text):
        return text
    try:
        from sqlalchemy.engine import make_url  # optional: the db extra may be absent

        url = make_url(text)
    except Exception:
        return _mask(text)
    if url.password is None or _ENV_PASSWORD.match(str(url.password)):
        return text  # as written: rendering would %-encode ${VAR}
    return url.render_as_string(hide_password=True)


def storable(db: str, parsed: Any = None) -> str:
    """``db`` without a literal password: what may be written to a file or shown.
    ``parsed``: its :func:`parse` result, when the caller has it already."""
    if not is_url(db):
        return db
    url = parsed if parsed is not None else parse(db)
    if url.password is None or _ENV_PASSWORD.match(str(url.password)):
        return db  # as written: rendering would %-encode ${VAR}
    # URL.set(password=None) keeps the password (None means "unchanged" there)
    return url._replace(password=None).render_as_string(hide_password=False)


def remember_password(db: str, password: str | None) -> str:
    """Keep ``password`` (if any) in memory for ``db``; returns the URL to use from now on,
    which has no password in it."""
    public = storable(db)
    url = parse(db)
    secret = password or (
        None if url.password is None or _ENV_PASSWORD.match(str(url.password)) else url.password
    )
    if secret:
        _passwords[public] = str(secret)
    return public


def forget_password(db: str) -> None:
    _passwords.pop(storable(db), None)


def remembered(db: str) -> str | None:
    """The password kept in memory for ``db``, if any."""
    return _passwords.get(storable(db))


def restore_password(db: str, password: str | None) -> None:
    """Put back what :func:`remember_password` replaced (a failed connection attempt)."""
    if password is None:
        forget_password(db)
    else:
        _passwords[storable(db)] = password


def fill_password(url: Any, public: str) -> Any:
    """``url`` (parsed) to connect with: its password filled in from the environment
    (``${VAR}``) or from memory (kept under ``public``, the URL without its password)."""
    password = url.password
    match = _ENV_PASSWORD.match(str(password)) if password is not None else None
    if match:
        name = match.group(1)
        if name not in os.environ:
            raise DatabaseURLError(f"The URL names the environment variable {name}: it is not set")
        return url.set(password=os.environ[name])
    if password is None and public in _passwords:
        return url.set(password=_passwords[public])
    return url


def _mask(text: str) -> str:
    """Hide whatever sits between ``://user:`` and ``@`` in an unparsable URL."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)
