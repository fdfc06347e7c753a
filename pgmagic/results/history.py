"""The query history as a DataFrame: what ``%pg history`` shows and ``pgmagic.history()`` gives.

The history itself (what is recorded, where, for how long) is
:mod:`pgmagic.runtime.history`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from pgmagic.runtime.history import Entry, History

__all__ = ["COLUMNS", "read", "to_frame"]

COLUMNS = (
    "started",
    "cell",
    "sql",
    "params",
    "rows",
    "seconds",
    "status",
    "sqlstate",
    "connection",
    "pid",
    "kernel",
)


def to_frame(entries: Sequence[Entry]) -> pd.DataFrame:
    """One row per statement, oldest first.

    Parameters
    ----------
    entries : sequence of Entry

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`COLUMNS`; ``started`` in UTC, ``params`` the
        names joined by ``", "``.
    """
    frame = pd.DataFrame(
        {
            "started": pd.to_datetime([e.started for e in entries], utc=True),
            "cell": pd.array([e.cell for e in entries], dtype="Int64"),
            "sql": pd.Series([e.sql for e in entries], dtype=object),
            "params": pd.Series([", ".join(e.params) for e in entries], dtype=object),
            "rows": pd.array([e.rows for e in entries], dtype="Int64"),
            "seconds": pd.Series([round(e.seconds, 6) for e in entries], dtype="float64"),
            "status": pd.Series([e.status.value for e in entries], dtype=object),
            "sqlstate": pd.Series([e.sqlstate for e in entries], dtype=object),
            "connection": pd.Series([e.connection for e in entries], dtype=object),
            "pid": pd.array([e.pid for e in entries], dtype="Int64"),
            "kernel": pd.Series([e.kernel for e in entries], dtype=object),
        },
        columns=list(COLUMNS),
    )
    return frame


def read(
    history: History,
    *,
    last: int | None = None,
    pattern: str | None = None,
    every_kernel: bool = False,
) -> pd.DataFrame:
    """Recorded statements as a DataFrame, oldest first.

    Parameters
    ----------
    history : History
    last : int, optional
        Only the newest this many.
    pattern : str, optional
        Only statements whose text holds this, ignoring case.
    every_kernel : bool
        Every kernel's statements, not only this kernel's.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> read(default_runtime().history, last=5, pattern="orders")  # doctest: +SKIP
    """
    return to_frame(history.read(last=last, pattern=pattern, every_kernel=every_kernel))
