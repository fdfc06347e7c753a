"""HTML and text renderings of a result, with a footer saying what was shown.

A ``%%pg`` cell returns a plain ``pandas.DataFrame`` (so ``df = %pg ...`` and
``_`` give the DataFrame itself).  The magic records the frame here, with its row
count and timing; the IPython front registers :func:`both` (the :func:`text`
and :func:`html` forms from one conversion of the values) as the mime-bundle
printer that renders recorded frames with a footer ("3 rows × 2 columns ·
1.2 ms") and defers to pandas for every other frame.  Frames are remembered by
weak reference, so a derived frame (``df.head()``) displays the pandas way.

An Arrow table or polars frame (``--arrow``, ``--polars``), or a DataFrame
of ``pandas.ArrowDtype`` columns (``dtype_backend="pyarrow"``), is drawn the
same way: :func:`drawn` turns the rows shown, and only those, into a pandas
frame of the default dtypes for display; the value itself stays as it is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import html as html_module
import json
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa

from pgmagic.errors import display_width
from pgmagic.results.frames import Column, arrow_rows_frame
from pgmagic.results.shown import texts_for as server_texts
from pgmagic.results.text import format_value, is_null

__all__ = [
    "ResultInfo",
    "aligned",
    "both",
    "drawn",
    "footer",
    "html",
    "info_for",
    "remember",
    "text",
]

_MAX_CELL = 120
_NULL = "NULL"


@dataclass(frozen=True, slots=True)
class ResultInfo:
    """Facts about a result shown in its footer.

    Attributes
    ----------
    elapsed : float or None
        Seconds the cell spent running statements and fetching rows (None:
        not known, as for a record shown on its own).
    limit : int or None
        Largest number of rows to render (None: all).
    types : tuple of (str, str)
        Column name and PostgreSQL type name of each column, shown under the
        names while the frame still has exactly these columns.
    whole : bool
        A plan from ``EXPLAIN`` typed in SQL: every line is shown, never cut,
        as one preformatted block (``displaylimit`` does not apply).
    columns : tuple of Column
        The result's columns, to draw an Arrow table or polars frame as its
        pandas counterpart would be drawn.
    zone : datetime.tzinfo or None
        The session's zone, for the same.
    total : int or None
        Rows of the value, when the frame drawn holds only those shown
        (:func:`drawn`); None: the frame's own.
    holder : str
        What the footer says holds all rows ("DataFrame", "table").
    """

    elapsed: float | None
    limit: int | None
    types: tuple[tuple[str, str], ...] = ()
    whole: bool = False
    columns: tuple[Column, ...] = ()
    zone: dt.tzinfo | None = None
    total: int | None = None
    holder: str = "DataFrame"

    def rows(self, frame: pd.DataFrame) -> int:
        """How many of ``frame``'s rows to render."""
        if self.limit is None or self.whole:
            return len(frame)
        return min(len(frame), self.limit)


_lock = threading.Lock()
_remembered: dict[int, tuple[weakref.ref[Any], ResultInfo]] = {}


def remember(frame: Any, info: ResultInfo) -> None:
    """Mark a frame as a pgmagic result so it renders with a footer.

    Parameters
    ----------
    frame : pandas.DataFrame, pyarrow.Table or polars.DataFrame
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


# Frames the running cell's output already shows as tables (by id; the cell
# holds them): its Out says so in one line.  Emptied when the cell ends.
_above: set[int] = set()


def mark_shown_above(frame: Any) -> None:
    """Record that the running cell has shown ``frame`` above its Out.

    Parameters
    ----------
    frame : pandas.DataFrame, pyarrow.Table or polars.DataFrame
    """
    with _lock:
        _above.add(id(frame))


def is_shown_above(frame: object) -> bool:
    """Whether the running cell already showed ``frame`` (see :func:`mark_shown_above`).

    Parameters
    ----------
    frame : object

    Returns
    -------
    bool
    """
    with _lock:
        return id(frame) in _above


# The running cell's --scalar value (by id; its Out holds it): shown as psql
# prints it (431.43, not Decimal('431.43')).  Any other object of its type,
# and the same value in a later cell, keeps Python's repr.
_scalars: set[int] = set()


def mark_scalar(value: object) -> None:
    """Record that ``value`` is the running cell's ``--scalar`` result.

    Parameters
    ----------
    value : object
    """
    with _lock:
        _scalars.add(id(value))


def is_scalar(value: object) -> bool:
    """Whether ``value`` is the running cell's ``--scalar`` result.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    with _lock:
        return id(value) in _scalars


def end_of_cell() -> None:
    """Forget what the cell showed: later displays of its frames are whole tables."""
    with _lock:
        _above.clear()
        _scalars.clear()


def shown_above(frame: Any, info: ResultInfo) -> str:
    """The one line a cell's Out gives for a table its output already shows.

    Parameters
    ----------
    frame : pandas.DataFrame, pyarrow.Table or polars.DataFrame
    info : ResultInfo

    Returns
    -------
    str
    """
    frame, info = drawn(frame, info)
    return f"↑ the table above: {footer(frame, info)}"


def drawn(value: Any, info: ResultInfo) -> tuple[pd.DataFrame, ResultInfo]:
    """An Arrow table, polars frame or Arrow-backed DataFrame as the pandas frame of its rows shown.

    Only the first ``info.limit`` rows are converted, to what the pandas
    path would have given for them (the dtype table of
    :mod:`pgmagic.results.frames`), so the table reads the same; the footer
    counts every row of ``value``.

    Parameters
    ----------
    value : pyarrow.Table, polars.DataFrame or pandas.DataFrame
        A DataFrame with a column of another dtype than ``pandas.ArrowDtype``
        is drawn as it is.
    info : ResultInfo

    Returns
    -------
    (pandas.DataFrame, ResultInfo)
        The rows to draw, and ``info`` with the total row count.
    """
    if isinstance(value, pd.DataFrame):
        arrow_backed = value.shape[1] > 0 and all(
            isinstance(dtype, pd.ArrowDtype) for dtype in value.dtypes
        )
        if not arrow_backed:
            return value, info
        head = value.iloc[: info.rows(value)]
        arrays = [pa.array(head.iloc[:, i].array) for i in range(head.shape[1])]
        names = [str(name) for name in value.columns]
        frame = arrow_rows_frame(info.columns, pa.table(arrays, names=names), zone=info.zone)
        return frame, dataclasses.replace(info, total=len(value))
    total = value.num_rows if isinstance(value, pa.Table) else value.height
    shown = total if info.limit is None or info.whole else min(total, info.limit)
    head = value.slice(0, shown) if isinstance(value, pa.Table) else value.head(shown).to_arrow()
    frame = arrow_rows_frame(info.columns, head, zone=info.zone)
    holder = "table" if isinstance(value, pa.Table) else "DataFrame"
    return frame, dataclasses.replace(info, total=total, holder=holder)


def record_frame(record: Any, zone: dt.tzinfo | None = None) -> pd.DataFrame:
    """A row (``%pg --one``'s asyncpg Record) as a one-row frame, to show as a table.

    Parameters
    ----------
    record : asyncpg.Record
    zone : datetime.tzinfo, optional
        Show timestamptz values (asyncpg gives them in UTC) in this zone,
        the session's, as result tables show them.

    Returns
    -------
    pandas.DataFrame
        Object columns: the values as they are, duplicate names kept.
    """
    values = list(record.values())
    if zone is not None:
        values = [_in_zone(v, zone) for v in values]
    return pd.DataFrame([values], columns=list(record.keys()), dtype=object)


def _in_zone(value: Any, zone: dt.tzinfo) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        try:
            return value.astimezone(zone)
        except OverflowError:  # pushed past year 9999: kept in UTC
            return value
    return value


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
    if info.total is not None:
        rows = info.total
    parts = [f"{rows:,} row{'s' if rows != 1 else ''} × {cols} column{'s' if cols != 1 else ''}"]
    if info.elapsed is not None:
        parts.append(_duration(info.elapsed))
    text = " · ".join(parts)
    if rows > info.rows(frame):
        text += f" (first {info.rows(frame):,} shown; the {info.holder} holds all)"
    return text


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s"


def _pad(text: str, width: int, align: str) -> str:
    """``text`` padded to ``width`` terminal columns (CJK and emoji count two)."""
    room = max(0, width - display_width(text))
    if align == "left":
        return text + " " * room
    if align == "right":
        return " " * room + text
    return " " * (room // 2) + text + " " * (room - room // 2)


def _clip(value: str) -> str:
    return value if len(value) <= _MAX_CELL else value[: _MAX_CELL - 1] + "…"


@functools.lru_cache(maxsize=128)
def _style(dtype: Any) -> tuple[bool | None, bool, bool]:
    """Per dtype: right-aligned (None: the values decide), float, date only.

    Cached: pandas' dtype predicates cost more than drawing a one-row table.
    """
    if pd.api.types.is_bool_dtype(dtype):
        numeric: bool | None = False
    elif pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        numeric = True
    elif pd.api.types.is_object_dtype(dtype):
        numeric = None
    else:
        numeric = False
    return numeric, pd.api.types.is_float_dtype(dtype), str(dtype) == "datetime64[s]"


def _numeric(dtype: Any, values: list[Any]) -> bool:
    numeric = _style(dtype)[0]
    if numeric is None:  # object: numeric holds Decimals
        sample = next((v for v in values if not is_null(v)), None)
        return isinstance(sample, Decimal)
    return numeric


def _cells(frame: pd.DataFrame, rows: int) -> list[tuple[bool, list[str | None]]]:
    """Per column: right-aligned?, rendered cells (None for NULL)."""
    # One conversion of the shown rows to Python objects; per-column pandas
    # indexing costs more than the query for small results.
    shown = frame if len(frame) <= rows else frame.iloc[:rows]
    table = shown.to_numpy(dtype=object)
    # One column (EXPLAIN's QUERY PLAN, a document) has the width to itself: whole lines.
    clip = _clip if frame.shape[1] > 1 else str
    kept = server_texts(frame)
    columns: list[tuple[bool, list[str | None]]] = []
    for j, dtype in enumerate(frame.dtypes):
        values = table[:, j].tolist()
        _, floats, date_only = _style(dtype)
        rendered = [
            None if is_null(v, floats) else clip(format_value(v, date_only)) for v in values
        ]
        exact = kept.get(j)
        if exact is not None:
            for i, value in enumerate(values):
                server = exact(value, i)
                if server is not None:
                    rendered[i] = clip(server)
        columns.append((_numeric(dtype, values), rendered))
    return columns


_ALIGN = {False: ' style="text-align:left"', True: ' style="text-align:right"'}

_STYLE = (
    "<style>"
    ".pgmagic-result table{border-collapse:collapse;font-size:12px}"
    # JupyterLab 4.6 pads and aligns HTML-output cells with
    # ":not(.jp-RenderedMarkdown).jp-RenderedHTMLCommon td" (0,2,1): the doubled
    # class (0,2,3) outranks it.  Alignment is inline on each cell (_ALIGN):
    # an untrusted notebook strips this stylesheet but keeps text-align styles.
    "div.pgmagic-result.pgmagic-result table th,"
    "div.pgmagic-result.pgmagic-result table td{padding:2px 8px;"
    "border-bottom:1px solid var(--jp-border-color2,#ddd);white-space:pre}"
    "div.pgmagic-result.pgmagic-result table td.num{font-variant-numeric:tabular-nums}"
    ".pgmagic-result th small{font-weight:normal;opacity:.6}"
    ".pgmagic-result .null{opacity:.45;font-style:italic}"
    ".pgmagic-result .footer{opacity:.7;font-size:11px;margin-top:4px}"
    "</style>"
)


def html(
    frame: pd.DataFrame,
    info: ResultInfo,
    *,
    title: str = "",
    notes: Sequence[str] | None = None,
    cells: list[tuple[bool, list[str | None]]] | None = None,
) -> str:
    """An HTML table of at most ``info.limit`` rows and the footer.

    Parameters
    ----------
    frame : pandas.DataFrame
    info : ResultInfo
    title : str, optional
        A line above the table (``Table "public.orders"``).
    notes : sequence of str, optional
        Lines under the table in place of the footer (psql's ``Indexes:`` ...).
    cells : list, optional
        The rendered cells, when :func:`both` has them already.

    Returns
    -------
    str
    """
    escape = html_module.escape
    if info.whole and frame.shape[1] == 1:
        # <pre> keeps the plan's indentation where a sanitizer drops the stylesheet.
        lines = "\n".join(_plan_lines(frame))
        return (
            f'<div class="pgmagic-result">{_STYLE}<pre>{escape(str(frame.columns[0]))}\n'
            f'{escape(lines)}</pre><div class="footer">{escape(footer(frame, info))}</div></div>'
        )
    if cells is None:
        cells = _cells(frame, info.rows(frame))
    # Type names only while the columns are those of the query (not after the
    # user added, dropped or renamed some).
    same = [name for name, _ in info.types] == [str(c) for c in frame.columns]
    head = "".join(
        f"<th{_ALIGN[False]}>{escape(str(name))}"
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
                # <em> survives an untrusted notebook's sanitizer, which drops
                # the stylesheet: NULL stays distinct from the text 'NULL'.
                row.append(
                    f'<td class="null{" num" if numeric else ""}"{_ALIGN[numeric]}>'
                    f"<em>{_NULL}</em></td>"
                )
            else:
                row.append(
                    f"<td{' class=num' if numeric else ''}{_ALIGN[numeric]}>{escape(value)}</td>"
                )
        body.append("<tr>" + "".join(row) + "</tr>")
    top = f'<div class="title"><b>{escape(title)}</b></div>' if title else ""
    if notes is None:
        bottom = f'<div class="footer">{escape(footer(frame, info))}</div>'
    else:
        bottom = f'<pre class="notes">{escape(chr(10).join(notes))}</pre>' if notes else ""
    return (
        f'<div class="pgmagic-result">{_STYLE}{top}<table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>{bottom}</div>"
    )


def text(
    frame: pd.DataFrame,
    info: ResultInfo,
    *,
    cells: list[tuple[bool, list[str | None]]] | None = None,
) -> str:
    """A psql-style aligned text table of at most ``info.limit`` rows and the footer.

    Parameters
    ----------
    frame : pandas.DataFrame
    info : ResultInfo
    cells : list, optional
        The rendered cells, when :func:`both` has them already.

    Returns
    -------
    str
    """
    if info.whole and frame.shape[1] == 1:
        lines = _plan_lines(frame)
        name = str(frame.columns[0])
        width = max([display_width(name), *(display_width(line) for line in lines)])
        head = [" " + _pad(name, width, "center"), "-" * (width + 2)]
        return "\n".join([*head, *(f" {line}" for line in lines), footer(frame, info)])
    if cells is None:
        cells = _cells(frame, info.rows(frame))
    names = [str(c) for c in frame.columns]
    rendered = [
        [(_NULL if v is None else v).replace("\n", "↵") for v in values] for _, values in cells
    ]
    widths = [
        max([display_width(name)] + [display_width(v) for v in column])
        for name, column in zip(names, rendered, strict=True)
    ]
    lines = [
        " " + " | ".join(_pad(name, w, "center") for name, w in zip(names, widths, strict=True)),
        "-" + "-+-".join("-" * w for w in widths) + "-",
    ]
    for i in range(info.rows(frame)):
        parts = []
        for (numeric, _), column, width in zip(cells, rendered, widths, strict=True):
            parts.append(_pad(column[i], width, "right" if numeric else "left"))
        lines.append(" " + " | ".join(parts).rstrip())
    lines.append(footer(frame, info))
    return "\n".join(lines)


def both(frame: pd.DataFrame, info: ResultInfo) -> dict[str, str]:
    """The text and HTML tables of a frame, its values converted once for the two.

    Parameters
    ----------
    frame : pandas.DataFrame
    info : ResultInfo

    Returns
    -------
    dict
        ``text/plain`` and ``text/html``, as :func:`text` and :func:`html` give them.
    """
    # For a small result, turning the values into text costs more than the
    # query; a notebook asks for both forms of every result it shows.
    cells = None if info.whole and frame.shape[1] == 1 else _cells(frame, info.rows(frame))
    return {
        "text/plain": text(frame, info, cells=cells),
        "text/html": html(frame, info, cells=cells),
    }


def _plan_lines(frame: pd.DataFrame) -> list[str]:
    """The lines of a one-column plan: text as it came, JSON (a decoded value) indented."""
    lines: list[str] = []
    for value in frame.iloc[:, 0].tolist():
        if is_null(value):
            lines.append(_NULL)
        elif isinstance(value, str):
            lines.extend(value.splitlines() or [""])
        else:
            lines.extend(json.dumps(value, indent=2, ensure_ascii=False).splitlines())
    return lines


def aligned(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    footers: Sequence[str] = (),
    right: Sequence[bool] = (),
) -> str:
    """Text as psql's aligned format prints it: a centred title, a table, footer lines.

    The same bytes as psql's (border 1), without the empty line psql
    prints after them: headers centred and padded to their width, cells
    left-aligned (right where ``right`` says so), the last column unpadded.

    Parameters
    ----------
    title : str
    columns : sequence of str
    rows : sequence of sequence of str
    footers : sequence of str
    right : sequence of bool, optional
        Per column, whether to align to the right (numbers).

    Returns
    -------
    str
    """
    split = [[cell.split("\n") for cell in row] for row in rows]
    widths = [
        max([display_width(name)] + [display_width(line) for row in split for line in row[j]])
        for j, name in enumerate(columns)
    ]
    total = sum(widths) + 3 * (len(widths) - 1) + 2
    room = total - display_width(title)
    lines = [(" " * (room // 2) if room > 0 else "") + title]
    lines.append(
        " " + " | ".join(_pad(n, w, "center") for n, w in zip(columns, widths, strict=True)) + " "
    )
    lines.append("-" + "-+-".join("-" * w for w in widths) + "-")
    last = len(columns) - 1
    aligns = ["right" if j < len(right) and right[j] else "left" for j in range(len(columns))]
    for row in split:
        # A cell of several lines takes several lines; psql marks each line
        # that goes on with "+" where the space after the cell would be.
        for k in range(max(len(cell) for cell in row)):
            parts = []
            for j, (cell, width) in enumerate(zip(row, widths, strict=True)):
                text = cell[k] if k < len(cell) else ""
                more = k < len(cell) - 1
                if j < last or more or aligns[j] == "right":
                    text = _pad(text, width, aligns[j])
                parts.append(text + ("+" if more else " " if j < last else ""))
            lines.append(" " + "| ".join(parts))
    lines.extend(footers)
    return "\n".join(lines)
