"""The databases the app offers: bundled samples, uploads and saved connections (server
databases by URL, DuckDB files), by dropdown label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.connections import saved_connections
from app.uploads import upload_dir, uploaded_databases
from app.users import root_of
from engine.paths import sample_databases

DEFAULT_DB = "shop (sample)"


def database_choices(root: Path) -> dict[str, Path | str]:
    """Samples, and the uploads and saved connections (their URLs, without passwords) of the
    user whose data folder is ``root``."""
    dbs: dict[str, Path | str] = {
        f"{name} (sample)": path for name, path in sample_databases().items()
    }
    uploads = uploaded_databases(upload_dir(root))
    dbs.update({f"{name} (uploaded)": path for name, path in uploads.items()})
    dbs.update({f"{name} (connection)": url for name, url in saved_connections(root).items()})
    return dbs


def databases_of(space: Any = None) -> dict[str, Path | str]:
    """The databases of ``space`` (app.users.UserSpace: whose event it is, as the tab passes
    it); None: the local user's."""
    return database_choices(root_of(space))


def default_database(choices: dict[str, Path] | list[str]) -> str | None:
    labels = list(choices)
    return DEFAULT_DB if DEFAULT_DB in labels else (labels[0] if labels else None)


def frame(columns: list[str], rows: list[Any]) -> Any:
    """Rows as a DataFrame for gr.Dataframe (blobs summarised, duplicate names made unique)."""
    import pandas as pd  # deferred: pandas takes most of a second to import

    seen: dict[str, int] = {}
    names = []
    for c in columns:
        seen[c] = seen.get(c, 0) + 1
        names.append(c if seen[c] == 1 else f"{c} ({seen[c]})")
    cells = [[f"<blob {len(v)} bytes>" if isinstance(v, bytes) else v for v in r] for r in rows]
    return pd.DataFrame(cells, columns=names)
