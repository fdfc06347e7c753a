"""HTML and text renderings of a result, with a footer saying what was shown.

A ``%%pg`` cell returns a plain ``pandas.DataFrame`` (so ``df = %pg ...`` and
``_`` give the DataFrame itself).  The magic records the frame here, with its row
count and timing; the IPython front registers :func:`html` and :func:`text` as
formatters that render recorded frames with a footer ("3 rows × 2 columns ·
1.2 ms") and defer to pandas for every other frame.  Frames are remembered by
weak reference, so a derived frame (``df.head()``) displays the pandas way.
"""

from __future__ import annotations

import datetime as dt
import html as html_module
import json
import math
import threading
import weakref
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import numpy as np
import pandas as pd

__all__ = ["ResultInfo", "footer", "html", "info_for", "remember", "text"]

_MAX_CELL = 120
_NULL = "NULL"


@dataclass(frozen=True, slots=True)
class ResultInfo:
    """Facts about a result shown in its footer.

    Attributes
    ----------
    elapsed : float
        Seconds the cell spent running statements and fetching rows.
    limit : int or None
        Largest number of rows to render (None: all).
    types : tuple of (str, str)
        Column name and PostgreSQL type name of each column, shown under the
        names while the frame still has exactly these columns.
    """

    elapsed: float
    limit: int | None
    types: tuple[tuple[str, str], ...] = ()

    def rows(self, frame: pd.DataFrame) -> int:
        """How many of ``frame``'s rows to render."""
        return len(frame) if self.limit is None else min(len(frame), self.limit)


_lock = threading.Lock()
_remembered: dict[int, tuple[weakref.ref[pd.DataFrame], ResultInfo]] = {}


def remember(frame: pd.DataFrame, info: ResultInfo) -> None:
    """Mark a frame as a pgmagic result so it renders with a footer.

    Parameters
    ----------
    frame : pandas.DataFrame
    info : ResultInfo
    """
    key = id(frame)

    def forget(_: object) -> None:
        with _lock:
            entry = _remembered.get(key)
            if entry is not None and entry[0]() is None:
                del _remembered[key]

    with _lock:
        _remembered[key] = (weakref.ref(frame, forget), info)


def info_for(frame: object) -> ResultInfo | None:
    """The footer facts of a remembered frame, or None for any other object.

    Parameters
    ----------
    frame : object

    Returns
    -------
    ResultInfo or None
    """
    with _lock:
        entry = _remembered.get(id(frame))
    if entry is None or entry[0]() is not frame:
        return None
    return entry[1]


def footer(frame: pd.DataFrame, info: ResultInfo) -> str:
    """``N rows × M columns · 12.3 ms``, plus what was left out.

    Parameters
    ----------
    frame : pandas.DataFrame
    info : ResultInfo

    Returns
    -------
    str
    """
    rows, cols = frame.shape
    parts = [
        f"{rows:,} row{'s' if rows != 1 else ''} × {cols} column{'s' if cols != 1 else ''}",
        _duration(info.elapsed),
    ]
    text = " · ".join(parts)
    if rows > info.rows(frame):
        text += f" (first {info.rows(frame):,} shown; the DataFrame holds all)"
    return text


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s"


def _is_null(value: Any, floats: bool = False) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    # In a float column NaN is a value PostgreSQL can hold (and NULL becomes
    # NaN too): show it as NaN; elsewhere NaN is pandas' missing marker.
    return not floats and isinstance(value, float) and math.isnan(value)


def _format(value: Any, date_only: bool) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, pd.Timestamp):
        if date_only:
            return value.strftime("%Y-%m-%d")
        return value.isoformat(sep=" ")
    if isinstance(value, pd.Timedelta | dt.timedelta):
        return str(value)
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, Decimal | int):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return "\\x" + data[:48].hex() + ("…" if len(data) > 48 else "")
    if isinstance(value, dict | list):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return repr(value)
    if isinstance(value, asyncpg.Record | tuple):
        # A composite value, written as psql writes it: (1,"a b")
        items = value.values() if isinstance(value, asyncpg.Record) else value
        return "(" + ",".join(_composite_item(v) for v in items) + ")"
    if isinstance(value, asyncpg.Range):
        return _range(value)
    return str(value)


def as_text(value: Any) -> str:
    """A value as psql would print it (composites ``(1,a)``, ranges ``[1,5)``, ...).

    Parameters
    ----------
    value : object
        A non-NULL value from a result.

    Returns
    -------
    str
    """
    return _format(value, False)


def _composite_item(value: Any) -> str:
    if value is None:
        return ""
    text = _format(value, False)
    if text == "" or any(c in text for c in ' ,()"\\'):
        return '"' + text.replace("\\", "\\\\").replace('"', '""') + '"'
    return text


def _range(value: Any) -> str:
    if value.isempty:
        return "empty"
    lower = "" if value.lower is None else _format(value.lower, False)
    upper = "" if value.upper is None else _format(value.upper, False)
    opening = "[" if value.lower_inc else "("
    closing = "]" if value.upper_inc else ")"
    return f"{opening}{lower},{upper}{closing}"


def _clip(value: str) -> str:
    return value if len(value) <= _MAX_CELL else value[: _MAX_CELL - 1] + "…"


def _numeric(dtype: Any, values: list[Any]) -> bool:
    if pd.api.types.is_bool_dtype(dtype):
        return False
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return True
    if pd.api.types.is_object_dtype(dtype):
        sample = next((v for v in values if not _is_null(v)), None)
        return isinstance(sample, Decimal)
    return False


def _cells(frame: pd.DataFrame, rows: int) -> list[tuple[bool, list[str | None]]]:
    """Per column: right-aligned?, rendered cells (None for NULL)."""
    # One conversion of the shown rows to Python objects; per-column pandas
    # indexing costs more than the query for small results.
    shown = frame if len(frame) <= rows else frame.iloc[:rows]
    table = shown.to_numpy(dtype=object)
    columns: list[tuple[bool, list[str | None]]] = []
    for j, dtype in enumerate(frame.dtypes):
        values = table[:, j].tolist()
        date_only = str(dtype) == "datetime64[s]"
        floats = pd.api.types.is_float_dtype(dtype)
        rendered = [None if _is_null(v, floats) else _clip(_format(v, date_only)) for v in values]
        columns.append((_numeric(dtype, values), rendered))
    return columns


_STYLE = (
    "<style>"
    ".pgmagic-result table{border-collapse:collapse;font-size:12px}"
    # "div ... table" outranks JupyterLab's own .jp-RenderedHTMLCommon td rules,
    # which would otherwise right-align every column.
    "div.pgmagic-result table th,div.pgmagic-result table td{padding:2px 8px;"
    "border-bottom:1px solid var(--jp-border-color2,#ddd);white-space:pre;text-align:left}"
    "div.pgmagic-result table td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".pgmagic-result th small{font-weight:normal;opacity:.6}"
    ".pgmagic-result .null{opacity:.45;font-style:italic}"
    ".pgmagic-result .footer{opacity:.7;font-size:11px;margin-top:4px}"
    "</style>"
)


def html(frame: pd.DataFrame, info: ResultInfo) -> str:
    """An HTML table of at most ``info.limit`` rows and the footer.

    Parameters
    ----------
    frame : pandas.DataFrame
    info : ResultInfo

    Returns
    -------
    str
    """
    escape = html_module.escape
    cells = _cells(frame, info.rows(frame))
    # Type names only while the columns are those of the query (not after the
    # user added, dropped or renamed some).
    same = [name for name, _ in info.types] == [str(c) for c in frame.columns]
    head = "".join(
        f"<th>{escape(str(name))}"
        + (f"<br><small>{escape(info.types[j][1])}</small>" if same else "")
        + "</th>"
        for j, name in enumerate(frame.columns)
    )
    body: list[str] = []
    for i in range(info.rows(frame)):
        row = []
        for numeric, values in cells:
            value = values[i]
            if value is None:
                row.append(f'<td class="null{" num" if numeric else ""}">{_NULL}</td>')
            else:
                row.append(f"<td{' class=num' if numeric else ''}>{escape(value)}</td>")
        body.append("<tr>" + "".join(row) + "</tr>")
    return (
        f'<div class="pgmagic-result">{_STYLE}<table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        f'<div class="footer">{escape(footer(frame, info))}</div></div>'
    )


def text(frame: pd.DataFrame, info: ResultInfo) -> str:
    """A psql-style aligned text table of at most ``info.limit`` rows and the footer.

    Parameters
    ----------
    frame : pandas.DataFrame
    info : ResultInfo

    Returns
    -------
    str
    """
    cells = _cells(frame, info.rows(frame))
    names = [str(c) for c in frame.columns]
    rendered = [
        [(_NULL if v is None else v).replace("\n", "↵") for v in values] for _, values in cells
    ]
    widths = [
        max([len(name)] + [len(v) for v in column])
        for name, column in zip(names, rendered, strict=True)
    ]
    lines = [
        " " + " | ".join(name.center(w) for name, w in zip(names, widths, strict=True)),
        "-" + "-+-".join("-" * w for w in widths) + "-",
    ]
    for i in range(info.rows(frame)):
        parts = []
        for (numeric, _), column, width in zip(cells, rendered, widths, strict=True):
            value = column[i]
            parts.append(value.rjust(width) if numeric else value.ljust(width))
        lines.append(" " + " | ".join(parts).rstrip())
    lines.append(footer(frame, info))
    return "\n".join(lines)
