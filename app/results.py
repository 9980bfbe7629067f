"""What a result offers besides its table: a CSV file of every row and a chart when one fits.

A chart is chosen from the result's shape alone:

- one text column and one numeric column, 2 to :data:`MAX_BARS` rows: a bar chart, bars in
  the result's own order (so ``ORDER BY`` is kept);
- a date/time column (ISO dates, ``YYYY-MM``, or a ``year`` column) and one or more numeric
  columns, at least 2 rows: a line chart over time, one line per numeric column;
- anything else: no chart.
"""

from __future__ import annotations

import csv
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BARS = 50
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?$")
_YEAR_NAME = re.compile(r"(^|_)(year|yr)(_|$)", re.IGNORECASE)
_KEEP_FILES_S = 3600  # result files older than this are removed as new ones are written


@dataclass
class Chart:
    kind: str  # "bar" | "line"
    frame: Any  # pandas.DataFrame, long format for several lines
    x: str
    y: str
    color: str | None = None  # the series column of a line chart with several lines
    order: list[str] | None = None  # bar order (the result's)
    y_lim: list[float | None] | None = None  # bars start at zero, or they mislead


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _temporal(name: str, values: list[Any]) -> bool:
    if all(isinstance(v, str) and _DATE.match(v) for v in values):
        return True
    years = all(
        isinstance(v, int | str) and str(v).isdigit() and 1000 <= int(v) <= 2999 for v in values
    )
    return bool(_YEAR_NAME.search(name)) and years


def _is_id(name: str) -> bool:
    return name.lower() == "id" or name.lower().endswith("_id")


def choose_chart(columns: list[str], rows: list[list[Any]]) -> Chart | None:
    """The chart that fits the result's shape, or None (see the module docstring)."""
    import pandas as pd  # deferred: pandas takes most of a second to import

    if len(rows) < 2 or len(set(columns)) != len(columns):
        return None
    values = {c: [r[i] for r in rows if r[i] is not None] for i, c in enumerate(columns)}
    if any(len(v) < 2 for v in values.values()):
        return None
    times = [c for c in columns if _temporal(c, values[c])]
    numbers = [c for c in columns if c not in times and _numeric(values[c]) and not _is_id(c)]
    texts = [c for c in columns if all(isinstance(v, str) for v in values[c])]
    frame = pd.DataFrame(rows, columns=columns)
    if len(times) == 1 and numbers and len(columns) == 1 + len(numbers):
        x = times[0]
        frame = frame.dropna(subset=[x])
        frame[x] = _to_time(frame[x])
        if len(numbers) == 1:
            return Chart("line", frame.sort_values(x), x, numbers[0])
        long = frame.melt(id_vars=[x], value_vars=numbers, var_name="series", value_name="value")
        return Chart("line", long.sort_values(x), x, "value", color="series")
    if len(columns) == 2 and len(numbers) == 1 and len(texts) == 1 and len(rows) <= MAX_BARS:
        x, y = texts[0], numbers[0]
        frame = frame.dropna()
        low, high = float(frame[y].min()), float(frame[y].max())
        y_lim = [min(low, 0.0), max(high, 0.0)]
        return Chart("bar", frame, x, y, order=list(dict.fromkeys(frame[x])), y_lim=y_lim)
    return None


def plot_update(chart: Chart | None, kind: str) -> Any:
    """The ``gr.update`` of a bar or line plot component: the chart, or hidden."""
    import gradio as gr  # deferred: gradio takes seconds; choosing a chart runs without it

    if chart is None or chart.kind != kind:
        return gr.update(visible=False, value=None)
    return gr.update(
        value=chart.frame,
        x=chart.x,
        y=chart.y,
        color=chart.color,
        sort=chart.order,
        y_lim=chart.y_lim,
        x_title=chart.x,
        y_title=chart.y,
        visible=True,
    )


def _to_time(column: Any) -> Any:
    import pandas as pd  # deferred: pandas takes most of a second to import

    text = column.astype(str)
    if text.str.fullmatch(r"\d{4}").all():
        return pd.to_datetime(text, format="%Y")
    return pd.to_datetime(text, format="mixed")


def fresh_file(name: str) -> Path:
    """A path named ``name`` in a new temporary folder, for a download (Gradio serves files
    from the temp dir); folders older than an hour are removed on the way."""
    base = Path(tempfile.gettempdir()) / "text2sql-downloads"
    _sweep(base)
    folder = base / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder / name


def csv_file(columns: list[str], rows: list[list[Any]], stem: str) -> Path:
    """Every row as a CSV file (header first) for a download; NULL is an empty field."""
    path = fresh_file(f"{stem}.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in row] for row in rows)
    return path


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return f"<blob {len(value)} bytes>"
    return value


def _sweep(base: Path) -> None:
    if not base.is_dir():
        return
    cutoff = time.time() - _KEEP_FILES_S
    for folder in base.iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
