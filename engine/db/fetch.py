"""Fetching rows from a DB-API cursor in batches, within the row cap, the result size cap and
the deadline; values made plain (numbers, strings, bytes, None) so results compare and
serialise the same way on every engine."""

from __future__ import annotations

import datetime as dt
import decimal
import time
import uuid
from typing import Any

from engine.db.result import MAX_RESULT_BYTES, MAX_VALUE_BYTES

BATCH_ROWS = 500


def first_line(err: BaseException) -> str:
    """A driver error's first line (its name when it has no text)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


class ResultTooLarge(Exception):
    pass


class Deadline(Exception):
    pass


def plain(value: Any) -> Any:
    """Decimal -> int/float, dates and times -> ISO text, UUID -> text, memoryview -> bytes."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)  # arrays, JSON, intervals, ... as the driver prints them


def fetch_rows(cursor: Any, max_rows: int, deadline: float) -> tuple[list[tuple], bool]:
    """Up to ``max_rows`` rows (one more is read to know whether there were more)."""
    rows: list[tuple] = []
    size = 0
    while len(rows) <= max_rows:
        if time.monotonic() > deadline:
            raise Deadline
        batch = cursor.fetchmany(min(BATCH_ROWS, max_rows + 1 - len(rows)))
        if not batch:
            break
        for raw in batch:
            row = tuple(plain(v) for v in raw)
            for v in row:
                if isinstance(v, str | bytes):
                    if len(v) > MAX_VALUE_BYTES:
                        raise ResultTooLarge
                    size += len(v)
                else:
                    size += 8
            if size > MAX_RESULT_BYTES:
                raise ResultTooLarge
            rows.append(row)
    if len(rows) > max_rows:
        return rows[:max_rows], True
    return rows, False


TOO_LARGE = (
    f"Refused: the result is larger than {MAX_RESULT_BYTES // 1_000_000} MB; "
    "select fewer rows or columns"
)
