"""Running a cell: split, bind, execute on the session, build the result.

This is the one function each ``%%pg`` cell calls (:func:`run_cell`), and the
coroutines the Python API awaits.  Nothing here imports IPython.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pandas as pd

from pgmagic import frames, params
from pgmagic.errors import OptionError, decorate, format_postgres_error
from pgmagic.params import BoundStatement
from pgmagic.runtime import Message, MessageKind, Runtime
from pgmagic.session import StatementResult

__all__ = ["CellOutcome", "Mode", "bind_cell", "render_error", "run_cell"]


class Mode(enum.Enum):
    """What a cell gives back."""

    FRAME = "frame"
    ONE = "one"
    SCALAR = "scalar"


@dataclass(slots=True)
class CellOutcome:
    """The result of a cell.

    Attributes
    ----------
    results : list of StatementResult
        One per statement, in order.
    shown : StatementResult or None
        The last statement that returned rows (the one the cell displays).
    value : object
        A DataFrame, a record (``--one``), a value (``--scalar``), or None.
    elapsed : float
        Seconds spent running the statements and building the value.
    """

    results: list[StatementResult]
    shown: StatementResult | None
    value: Any
    elapsed: float


def bind_cell(
    text: str,
    namespace: Mapping[str, Any],
    positional: Sequence[Any] = (),
) -> list[BoundStatement]:
    """Split a cell and bind every statement, before any I/O.

    Parameters
    ----------
    text : str
        The cell's SQL.
    namespace : mapping
        Where ``$name`` finds its values.
    positional : sequence
        Values for ``$1, $2, ...``.

    Returns
    -------
    list of BoundStatement

    Raises
    ------
    ParameterError
        A variable is missing or parameters are mixed.
    """
    return [params.bind(s, namespace, positional) for s in params.split(text)]


_ARGUMENT_RE = re.compile(r"(query argument |parameter )\$(\d+)")


def render_error(error: BaseException, text: str | None = None) -> BaseException:
    """Attach a psql-style rendering to an error raised while running ``text``.

    Parameters
    ----------
    error : BaseException
        An ``asyncpg.PostgresError`` (with ``pgmagic_statement`` when it came
        from :meth:`Session.run`) or an asyncpg client error.
    text : str, optional
        The cell text the statement came from, for the caret.

    Returns
    -------
    BaseException
        The same error, decorated; raise it ``from None``.
    """
    bound: BoundStatement | None = getattr(error, "pgmagic_statement", None)
    if isinstance(error, TimeoutError):
        return decorate(
            error,
            [
                "TimeoutError: statement cancelled on the server after the command timeout "
                "(%config PgMagics.command_timeout)"
            ],
        )
    names = bound.names if bound is not None else ()

    def name_of(match: re.Match[str]) -> str:
        i = int(match.group(2)) - 1
        return f"{match.group(1)}${names[i]}" if i < len(names) and names[i] else match.group(0)

    if isinstance(error, asyncpg.PostgresError) and not isinstance(
        error, asyncpg.PostgresConnectionError
    ):
        if names:
            error.message = _ARGUMENT_RE.sub(name_of, getattr(error, "message", None) or str(error))
        position = getattr(error, "position", None)
        query, index = None, None
        if position and bound is not None:
            query = text if text is not None else bound.source.text
            index = bound.source_position(int(position) - 1)
            if text is None:
                index -= bound.source.offset
        lines = format_postgres_error(error, query, index)
        if isinstance(error, asyncpg.InFailedSQLTransactionError) and not getattr(
            error, "hint", None
        ):
            lines.append(
                "HINT:  An earlier statement failed (or was cancelled) inside this "
                "transaction: run ROLLBACK, or ROLLBACK TO SAVEPOINT, to continue."
            )
        return decorate(error, lines)
    message = _ARGUMENT_RE.sub(name_of, str(error))
    if isinstance(
        error,
        asyncpg.PostgresConnectionError | asyncpg.InterfaceError | asyncpg.InternalClientError,
    ):
        message += " (the connection was lost; the next cell reconnects)"
    return decorate(error, [f"{type(error).__name__}: {message}"])


def _status_poster(runtime: Runtime) -> Callable[[StatementResult, bool], None]:
    # Row-returning statements are shown as a table unless a later one
    # supersedes them; only then is their command tag worth a line.
    pending: list[StatementResult] = []

    def on_result(result: StatementResult, last: bool) -> None:
        if result.returns_rows:
            if pending:
                runtime.post(Message(MessageKind.STATUS, pending.pop().status))
            pending.append(result)
        else:
            runtime.post(Message(MessageKind.STATUS, result.status))

    return on_result


async def _run_on_session(
    runtime: Runtime, statements: list[BoundStatement], quiet: bool
) -> list[StatementResult]:
    session = await runtime.session()
    attach = None if quiet else _status_poster(runtime)
    return await session.run(statements, on_result=attach, timeout=runtime.settings.command_timeout)


def value_of(shown: StatementResult | None, mode: Mode, *, numeric_as_float: bool = False) -> Any:
    """The value a cell gives back for its displayed statement.

    Parameters
    ----------
    shown : StatementResult or None
        The last row-returning statement's result.
    mode : Mode
        DataFrame, one record, or one value.
    numeric_as_float : bool
        Give ``numeric`` as ``float64`` in DataFrames.

    Returns
    -------
    object

    Raises
    ------
    OptionError
        ``--one`` or ``--scalar`` met more than one row (or column).
    """
    if shown is None or shown.columns is None:
        if mode is Mode.FRAME:
            return None
        raise OptionError(f"--{mode.value} needs a statement that returns rows")
    records = shown.records
    if mode is Mode.FRAME:
        return frames.records_to_frame(shown.columns, records, numeric_as_float=numeric_as_float)
    if len(records) > 1:
        raise OptionError(
            f"--{mode.value} expects at most one row; the query returned {len(records):,} "
            "(add LIMIT 1 or a WHERE clause)"
        )
    if mode is Mode.SCALAR and len(shown.columns) != 1:
        raise OptionError(f"--scalar expects one column; the query returned {len(shown.columns)}")
    if not records:
        return None
    return records[0][0] if mode is Mode.SCALAR else records[0]


def run_cell(
    runtime: Runtime,
    text: str,
    namespace: Mapping[str, Any],
    positional: Sequence[Any] = (),
    *,
    mode: Mode = Mode.FRAME,
    numeric_as_float: bool = False,
    quiet: bool = False,
    on_message: Callable[[Message], None] | None = None,
) -> CellOutcome:
    """Run a ``%%pg`` cell on the session and wait for it; Ctrl-C cancels.

    Parameters
    ----------
    runtime : Runtime
    text : str
        The cell's SQL, one or more statements.
    namespace : mapping
        Where ``$name`` finds its values.
    positional : sequence
        Values for ``$1, $2, ...``.
    mode : Mode
        What to give back.
    numeric_as_float : bool
        Give ``numeric`` as ``float64``.
    quiet : bool
        Do not report command tags.
    on_message : callable, optional
        Receives NOTICEs, command tags and notes while the cell runs.

    Returns
    -------
    CellOutcome

    Raises
    ------
    ParameterError
        Before any I/O, when a variable is missing.
    asyncpg.PostgresError
        Decorated with the psql-style rendering.
    QueryCancelled
        The user pressed Ctrl-C; the query was cancelled on the server.
    """
    started = time.perf_counter()
    statements = bind_cell(text, namespace, positional)
    if not statements:
        return CellOutcome([], None, None, 0.0)
    try:
        results = runtime.run(_run_on_session(runtime, statements, quiet), on_message=on_message)
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        TimeoutError,
    ) as error:
        raise render_error(error, text) from None
    shown = next((r for r in reversed(results) if r.returns_rows), None)
    value = value_of(shown, mode, numeric_as_float=numeric_as_float)
    if isinstance(value, pd.DataFrame) and shown is not None:
        shown.records = []  # the frame holds the data now; drop the second copy
    return CellOutcome(results, shown, value, time.perf_counter() - started)
