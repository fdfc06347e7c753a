"""Where a cell's messages go: lines to stdout (warnings to stderr), earlier results as tables."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pandas as pd
from IPython import display as _display

from pgmagic.frontend import tables
from pgmagic.results.cell import DtypeBackend, FrameKind, Mode, value_of
from pgmagic.results.statement import StatementResult
from pgmagic.runtime.messages import Message, MessageKind

__all__ = ["CellOutput", "print_message"]

show: Callable[..., None] = _display.display

_QUIET_SEVERITIES = frozenset({"NOTICE", "INFO", "LOG", "DEBUG"})


def print_message(message: Message) -> None:
    """Print a message under the running cell, as psql would.

    Parameters
    ----------
    message : Message
    """
    stream = sys.stdout
    if message.kind is MessageKind.SERVER and message.severity not in _QUIET_SEVERITIES:
        stream = sys.stderr
    print(message.text, file=stream)


class CellOutput:
    """One ``%%pg`` cell's messages, in the order its statements ran.

    A statement's rows are shown as a table when it completes, as psql does,
    unless it is the cell's last statement: that one is the cell's value.
    When the cell's value was already shown so (a query followed by COMMIT),
    its Out shows one line pointing up instead of the table again.

    Parameters
    ----------
    limit : int or None
        Rows to render per table (``PgMagics.displaylimit``).
    numeric_as_float : bool
    frame : FrameKind
        What each result's rows become.
    dtype_backend : DtypeBackend
        The dtypes of pandas DataFrames.
    """

    def __init__(
        self,
        limit: int | None,
        numeric_as_float: bool,
        frame: FrameKind = FrameKind.PANDAS,
        dtype_backend: DtypeBackend = DtypeBackend.NUMPY_NULLABLE,
    ) -> None:
        self._limit = limit
        self._numeric_as_float = numeric_as_float
        self._frame = frame
        self._dtype_backend = dtype_backend

    def __call__(self, message: Message) -> None:
        """Show one message (called on the kernel's thread).

        Parameters
        ----------
        message : Message
        """
        result = message.result
        if message.kind is not MessageKind.RESULT or not isinstance(result, StatementResult):
            print_message(message)
            return
        frame = value_of(
            result,
            Mode.FRAME,
            numeric_as_float=self._numeric_as_float,
            frame=self._frame,
            dtype_backend=self._dtype_backend,
        )
        # The cell's value, if this is its last query, is this very frame
        # (value_of keeps Arrow tables and polars frames itself).
        if isinstance(frame, pd.DataFrame):
            result.frame = frame
        tables.remember(frame, self.info(result, result.elapsed))
        show(frame)
        tables.mark_shown_above(frame)

    def info(self, result: StatementResult, elapsed: float) -> tables.ResultInfo:
        """The footer facts for a result of this cell.

        Parameters
        ----------
        result : StatementResult
            The statement the table came from.
        elapsed : float
            Seconds, for the footer.

        Returns
        -------
        tables.ResultInfo
        """
        types = tuple((c.name, c.type_name) for c in result.columns or ())
        # The command tag, not the column's name: a query may name a column "QUERY PLAN".
        whole = result.status == "EXPLAIN"
        return tables.ResultInfo(
            elapsed,
            self._limit,
            types,
            whole=whole,
            columns=tuple(result.columns or ()),
            zone=result.zone,
        )
