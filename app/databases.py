"""The databases the app offers: bundled samples, uploads and saved connections (server
databases by URL, DuckDB files), by dropdown label (the list itself: engine.catalog, which the
MCP server names databases from too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.users import root_of
from engine.catalog import database_choices

DEFAULT_DB = "shop (sample)"


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
