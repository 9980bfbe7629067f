"""What every engine's query gives back (:class:`QueryResult`), the one error a database that
cannot be read raises (:class:`DatabaseError`), and the limits on what a result may hold."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_VALUE_BYTES = 1_000_000  # one string or blob
MAX_RESULT_BYTES = 32_000_000  # all fetched strings and blobs together


class DatabaseError(Exception):
    """The database is missing, unreadable, unreachable or not what it claims to be (one
    line, never a password)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    error: str | None = None
    truncated: bool = False
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """``{"columns", "rows"}`` (JSON-safe values) or ``{"error"}``."""
        if self.error is not None:
            return {"error": self.error}
        return {
            "columns": list(self.columns),
            "rows": [[_jsonable(v) for v in r] for r in self.rows],
        }


def timed_out(timeout_s: float) -> str:
    """The message of a query stopped by the database's own timeout (every engine's)."""
    return f"Query timed out after {timeout_s:g} s"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<blob {len(value)} bytes>"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
