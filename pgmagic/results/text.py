r"""Values as psql prints them: composites ``(1,"a b")``, ranges ``[1,5)``, bytea ``\x...``.

Shared by the result tables and the exports that write values as text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Any

import asyncpg
import numpy as np
import pandas as pd

from pgmagic.results.shown import timedelta_text


def is_null(value: Any, floats: bool = False) -> bool:
    """Whether a cell shows NULL.

    Parameters
    ----------
    value : object
    floats : bool
        The value is from a float column, where NaN is a value, not NULL.

    Returns
    -------
    bool
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    # In a float column NaN is a value PostgreSQL can hold (and NULL becomes
    # NaN too): show it as NaN; elsewhere NaN is pandas' missing marker.
    return not floats and isinstance(value, float) and math.isnan(value)


def format_value(value: Any, date_only: bool) -> str:
    """A non-NULL value as psql prints it.

    Parameters
    ----------
    value : object
    date_only : bool
        The column is a ``date``: timestamps show as ``YYYY-MM-DD``.

    Returns
    -------
    str
    """
    if isinstance(value, str):
        return value
    if isinstance(value, pd.Timestamp):
        if date_only:
            return value.date().isoformat()  # strftime("%Y") drops year 1's zeros
        return value.isoformat(sep=" ")
    if isinstance(value, pd.Timedelta | dt.timedelta):
        return timedelta_text(value)
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, Decimal):
        # Plain digits as psql shows them: 1000000000000000000000000000000, not 1.00E+30.
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, int):
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
    if isinstance(value, asyncpg.BitString):
        return str(value.as_string())
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
    return format_value(value, False)


def _composite_item(value: Any) -> str:
    if value is None:
        return ""
    text = format_value(value, False)
    if text == "" or any(c in text for c in ' ,()"\\'):
        return '"' + text.replace("\\", "\\\\").replace('"', '""') + '"'
    return text


def _range(value: Any) -> str:
    if value.isempty:
        return "empty"
    lower = "" if value.lower is None else format_value(value.lower, False)
    upper = "" if value.upper is None else format_value(value.upper, False)
    opening = "[" if value.lower_inc else "("
    closing = "]" if value.upper_inc else ")"
    return f"{opening}{lower},{upper}{closing}"
