"""The databases the app offers: bundled samples, uploads and saved connections (server
databases by URL, DuckDB files), by dropdown label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.paths import sample_databases

DEFAULT_DB = "shop (sample)"


def database_choices(upload_dir: Path | None = None) -> dict[str, Path | str]:
    """Samples, the uploads in ``upload_dir`` (default: the local user's) and the saved
    connections (their URLs, without passwords)."""
    from app.connections import saved_connections
    from app.uploads import uploaded_databases

    dbs: dict[str, Path | str] = {
        f"{name} (sample)": path for name, path in sample_databases().items()
    }
    uploads = uploaded_databases(upload_dir)
    dbs.update({f"{name} (uploaded)": path for name, path in uploads.items()})
    root = upload_dir.parent if upload_dir is not None else None  # the user's folder
    dbs.update({f"{name} (connection)": url for name, url in saved_connections(root).items()})
    return dbs


def databases_of(space: Any = None) -> dict[str, Path | str]:
    """The databases of ``space`` (app.users.UserSpace: a signed-in user's); None: the local
    user's."""
    return database_choices(space.upload_dir if space is not None else None)


def default_database(choices: dict[str, Path] | list[str]) -> str | None:
    labels = list(choices)
    return DEFAULT_DB if DEFAULT_DB in labels else (labels[0] if labels else None)


def frame(columns: list[str], rows: list[Any]) -> Any:
    """Rows as a DataFrame for gr.Dataframe (blobs summarised, duplicate names made unique)."""
    import pandas as pd

    seen: dict[str, int] = {}
    names = []
    for c in columns:
        seen[c] = seen.get(c, 0) + 1
        names.append(c if seen[c] == 1 else f"{c} ({seen[c]})")
    cells = [[f"<blob {len(v)} bytes>" if isinstance(v, bytes) else v for v in r] for r in rows]
    return pd.DataFrame(cells, columns=names)
