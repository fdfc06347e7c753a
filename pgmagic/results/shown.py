"""What a result's DataFrame cannot hold, kept beside it so its table shows the server's value.

PostgreSQL keeps an interval's months, days and microseconds apart (``1 mon``,
``30 days`` and ``720:00:00`` are three values); ``timedelta64`` holds one
duration, a month counting 30 days.  pandas holds a JSON ``null`` as None, as
it holds SQL NULL.  The binary COPY decoder keeps what the frame loses, and
the result tables ask :func:`texts_for` how to write the rows they show: an
interval as the server writes it in the session's ``IntervalStyle``, a JSON
null as ``null``.  The kept facts hold while the frame's columns and those
values are unchanged; anything else shows the frame's own value.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RowText", "interval_text", "keep", "texts_for", "timedelta_text"]

#: How one column writes row ``i`` whose frame value is ``value``; None: the
#: frame's value stands as it is.
RowText = Callable[[Any, int], str | None]

_US_PER_HOUR = 3_600_000_000
_US_PER_MINUTE = 60_000_000
_US_PER_SECOND = 1_000_000
_US_PER_DAY = 86_400_000_000
_INT32_MAX, _INT32_MIN = 2**31 - 1, -(2**31)
_INT64_MAX, _INT64_MIN = 2**63 - 1, -(2**63)

# The wire layout of an interval: microseconds, days, months.
_INTERVAL = np.dtype([("us", ">i8"), ("days", ">i4"), ("months", ">i4")])


def _trunc_div(a: int, b: int) -> tuple[int, int]:
    """C division: the quotient rounds toward zero, the rest has a's sign."""
    q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
    return q, a - q * b


def _clock(micros: int) -> tuple[bool, int, int, int, int]:
    """Sign, hours, minutes, seconds and microseconds of a time part."""
    hours, rest = _trunc_div(micros, _US_PER_HOUR)
    minutes, rest = _trunc_div(rest, _US_PER_MINUTE)
    seconds, fraction = _trunc_div(rest, _US_PER_SECOND)
    return micros < 0, abs(hours), abs(minutes), abs(seconds), abs(fraction)


def _seconds(seconds: int, fraction: int) -> str:
    if not fraction:
        return f"{seconds:02d}"
    return f"{seconds:02d}.{fraction:06d}".rstrip("0")


def interval_text(micros: int, days: int, months: int, style: str = "postgres") -> str | None:
    """An interval as PostgreSQL writes it.

    Parameters
    ----------
    micros, days, months : int
        The interval's three fields, as the server keeps them.
    style : str
        The session's ``IntervalStyle``: ``postgres`` (the default) or
        ``iso_8601``; None is returned for the others.

    Returns
    -------
    str or None

    Examples
    --------
    >>> interval_text(4 * 3_600_000_000, 3, 14)
    '1 year 2 mons 3 days 04:00:00'
    """
    if (micros, days, months) == (_INT64_MAX, _INT32_MAX, _INT32_MAX):
        return "infinity"
    if (micros, days, months) == (_INT64_MIN, _INT32_MIN, _INT32_MIN):
        return "-infinity"
    years, months = _trunc_div(months, 12)
    if style == "postgres":
        return _postgres(years, months, days, micros)
    if style == "iso_8601":
        return _iso(years, months, days, micros)
    return None


def _postgres(years: int, months: int, days: int, micros: int) -> str:
    parts: list[str] = []
    negative_before = False
    for value, unit in ((years, "year"), (months, "mon"), (days, "day")):
        if value:
            sign = "+" if negative_before and value > 0 else ""
            parts.append(f"{sign}{value} {unit}{'' if value == 1 else 's'}")
            negative_before = value < 0
    if not parts or micros:
        minus, hours, minutes, seconds, fraction = _clock(micros)
        sign = "-" if minus else "+" if negative_before else ""
        parts.append(f"{sign}{hours:02d}:{minutes:02d}:{_seconds(seconds, fraction)}")
    return " ".join(parts)


def _iso(years: int, months: int, days: int, micros: int) -> str:
    if not (years or months or days or micros):
        return "PT0S"
    text = "P" + "".join(
        f"{value}{unit}" for value, unit in ((years, "Y"), (months, "M"), (days, "D")) if value
    )
    if micros:
        minus, hours, minutes, seconds, fraction = _clock(micros)
        sign = "-" if minus else ""
        text += "T"
        if hours:
            text += f"{sign}{hours}H"
        if minutes:
            text += f"{sign}{minutes}M"
        if seconds or fraction:
            whole = f"{seconds}.{fraction:06d}".rstrip("0") if fraction else str(seconds)
            text += f"{sign}{whole}S"
    return text


def timedelta_text(value: dt.timedelta | pd.Timedelta, style: str = "postgres") -> str:
    """A duration as PostgreSQL writes the interval a timestamp difference gives.

    Days and the time of day with one sign (``-1 days -02:00:00``), as
    ``timestamp - timestamp`` returns them: the form a duration without its
    interval fields most likely had on the server.

    Parameters
    ----------
    value : datetime.timedelta or pandas.Timedelta
    style : str
        ``IntervalStyle``, as for :func:`interval_text`.

    Returns
    -------
    str
    """
    total = _micros(value) if isinstance(value, pd.Timedelta) else value // _ONE_US
    days, micros = _trunc_div(total, _US_PER_DAY)
    return interval_text(micros, days, 0, style) or _postgres(0, 0, days, micros)


_ONE_US = dt.timedelta(microseconds=1)


def _micros(value: pd.Timedelta) -> int:
    # .value is nanoseconds and overflows past 292 years; a us Timedelta is not.
    return int(value.to_timedelta64().astype("m8[us]").astype(np.int64))


class _Kept:
    def __init__(self, frame: pd.DataFrame, names: Sequence[str]) -> None:
        self.frame = weakref.ref(frame)
        self.names = list(names)
        self.columns: dict[int, RowText] = {}


_lock = threading.Lock()
_kept: dict[int, _Kept] = {}


def keep(frame: pd.DataFrame, aux: dict[int, bytes | memoryview], style: str) -> None:
    """Keep what the decoder saw beside a new frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        Fresh from the decoder: its column ``j`` is the query's column ``j``.
    aux : dict of int to bytes
        Per column, the decoder's kept bytes: an interval column's wire
        values, or a json column's null flags.
    style : str
        The session's ``IntervalStyle``.
    """
    if not aux:
        return
    kept = _Kept(frame, [str(c) for c in frame.columns])
    for j, data in aux.items():
        if pd.api.types.is_timedelta64_dtype(frame.dtypes.iloc[j]):
            kept.columns[j] = _interval_column(frame.iloc[:, j].to_numpy(copy=True), data, style)
        else:
            flags = np.frombuffer(data, np.uint8)
            if flags.any():
                kept.columns[j] = _json_column(flags)
    if not kept.columns:
        return
    key = id(frame)

    def forget(_: object) -> None:
        with _lock:
            entry = _kept.get(key)
            if entry is not None and entry.frame() is None:
                del _kept[key]

    kept.frame = weakref.ref(frame, forget)
    with _lock:
        _kept[key] = kept


def _interval_column(decoded: Any, data: bytes | memoryview, style: str) -> RowText:
    parts = np.frombuffer(data, _INTERVAL)
    as_decoded = decoded.view(np.int64)

    def text(value: Any, row: int) -> str | None:
        # Only while the frame still holds what was decoded at this row.
        if not isinstance(value, pd.Timedelta) or _micros(value) != as_decoded[row]:
            return None
        us, days, months = parts[row].item()
        return interval_text(us, days, months, style)

    return text


def _json_column(flags: Any) -> RowText:
    def text(value: Any, row: int) -> str | None:
        return "null" if value is None and flags[row] else None

    return text


def texts_for(frame: pd.DataFrame) -> dict[int, RowText]:
    """How the columns of a decoded frame write their rows (empty when nothing is kept).

    Parameters
    ----------
    frame : pandas.DataFrame

    Returns
    -------
    dict of int to callable
        Column position to ``text(value, row)``.
    """
    with _lock:
        kept = _kept.get(id(frame))
    if kept is None or kept.frame() is not frame:
        return {}
    if kept.names != [str(c) for c in frame.columns]:
        return {}
    return kept.columns
