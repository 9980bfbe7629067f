"""The databases a user has, by name: the bundled samples, the files they uploaded and the
connections they saved. The app's lists (app.databases) and the MCP server (engine.mcp_tools)
both name databases from here, so a name means the same database everywhere.

Uploads live in ``<user data folder>/uploads/*.sqlite`` (app.uploads writes them), workspaces
of files in ``<user data folder>/workspaces/<name>/`` (engine.workspace), saved
connections in ``<user data folder>/connections.json`` as URLs without passwords
(app.connections writes them); the local user's data folder is :func:`engine.paths.data_dir`.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.db.workspace_edit import list_workspaces
from engine.paths import sample_databases

CONNECTIONS_FILE = "connections.json"


class UnknownDatabase(LookupError):
    """A database name that is not in the user's list; the message is one line."""


def upload_dir(root: Path) -> Path:
    """The uploads of the user whose data folder is ``root``."""
    return root / "uploads"


def uploaded_databases(dest_dir: Path) -> dict[str, Path]:
    """Name -> file of the databases uploaded into ``dest_dir`` (a user's :func:`upload_dir`)."""
    return {p.stem: p for p in sorted(dest_dir.glob("*.sqlite"))} if dest_dir.is_dir() else {}


def saved_connections(root: Path) -> dict[str, str]:
    """Name -> URL (no passwords) of the connections saved in ``root`` (a user's data
    folder); {} when there are none."""
    path = root / CONNECTIONS_FILE
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, OSError):
        return {}
    return {
        str(r["name"]): str(r["url"])
        for r in rows
        if isinstance(r, dict) and r.get("name") and r.get("url")
    }


def database_choices(root: Path) -> dict[str, Path | str]:
    """Label -> file, folder or URL: the samples (``shop (sample)``), and the uploads (``x
    (uploaded)``), workspaces (``x (workspace)``: its folder) and saved connections (``x
    (connection)``) of the user whose data folder is ``root``."""
    dbs: dict[str, Path | str] = {
        f"{name} (sample)": path for name, path in sample_databases().items()
    }
    uploads = uploaded_databases(upload_dir(root))
    dbs.update({f"{name} (uploaded)": path for name, path in uploads.items()})
    dbs.update({f"{name} (workspace)": path for name, path in list_workspaces(root).items()})
    dbs.update({f"{name} (connection)": url for name, url in saved_connections(root).items()})
    return dbs


def resolve_database(name: str, root: Path) -> tuple[str, Path | str]:
    """(label, file or URL) of the database called ``name`` in ``root``'s list: its label
    (``shop (sample)``) or, when only one database has it, its bare name (``shop``).

    Raises :class:`UnknownDatabase` for anything else, a path or URL included: a caller can
    reach only what the list offers."""
    name = (name or "").strip()
    dbs = database_choices(root)
    if name in dbs:
        return name, dbs[name]
    same = [label for label in dbs if label.rsplit(" (", 1)[0] == name]
    if len(same) == 1:
        return same[0], dbs[same[0]]
    if not name:
        raise UnknownDatabase("Name a database (list_databases gives the names).")
    if len(same) > 1:
        raise UnknownDatabase(f"{name!r} names several databases; use one of: {', '.join(same)}")
    shown = name if len(name) <= 80 else name[:77] + "..."
    raise UnknownDatabase(
        f"Unknown database {shown!r}: only the listed databases can be used "
        f"({', '.join(dbs) or 'none'}), never a file path or URL."
    )
