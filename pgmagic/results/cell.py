"""Running a cell: split, bind, execute on the session, build the value.

:func:`run_cell` is what each ``%%pg`` cell calls; :func:`run_many` is
``--many``.  Binding happens before any I/O, so a missing variable never
leaves half a cell run.
"""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pandas as pd

from pgmagic.errors import DATABASE_ERRORS, OptionError, ParameterError, blame, render
from pgmagic.results import arrow, explain, frames, zones
from pgmagic.results.plan import Plan
from pgmagic.results.progress import Progress
from pgmagic.results.statement import Fetch, StatementResult, run_statement
from pgmagic.runtime.history import Recording, parameter_names
from pgmagic.runtime.loop import Runtime
from pgmagic.runtime.messages import Message, MessageKind
from pgmagic.runtime.session import TransactionState
from pgmagic.sql import params
from pgmagic.sql.lexer import client_copy, first_word
from pgmagic.sql.params import BoundStatement

__all__ = [
    "CellOutcome",
    "DtypeBackend",
    "FrameKind",
    "ManyOutcome",
    "Mode",
    "bind_cell",
    "bind_one",
    "builds_arrow",
    "run_cell",
    "run_many",
]


class Mode(enum.Enum):
    """What a cell gives back."""

    FRAME = "frame"
    ONE = "one"
    SCALAR = "scalar"
    #: The plan of the cell's last statement (:class:`~pgmagic.results.plan.Plan`).
    EXPLAIN = "explain"
    #: The same, measured by running the statement (rolled back).
    EXPLAIN_ANALYZE = "explain-analyze"

    @property
    def explains(self) -> bool:
        """Whether the cell's last statement is explained rather than run."""
        return self in (Mode.EXPLAIN, Mode.EXPLAIN_ANALYZE)


class FrameKind(enum.Enum):
    """What a query's rows become (``PgMagics.frame``, ``--pandas``, ``--arrow``, ``--polars``)."""

    PANDAS = "pandas"
    #: A ``pyarrow.Table``, built from the COPY parser's buffers (:mod:`~pgmagic.results.arrow`).
    ARROW = "arrow"
    #: A ``polars.DataFrame`` made from that table (polars is optional).
    POLARS = "polars"


class DtypeBackend(enum.Enum):
    """The dtypes of a pandas DataFrame (``PgMagics.dtype_backend``, pandas' own values)."""

    #: numpy and pandas' nullable dtypes (:mod:`~pgmagic.results.frames`' first table).
    NUMPY_NULLABLE = "numpy_nullable"
    #: ``pandas.ArrowDtype`` columns over the Arrow table (:func:`~.frames.arrow_frame`).
    PYARROW = "pyarrow"

    @property
    def arrow(self) -> bool:
        """Whether the rows are built as an Arrow table first."""
        return self is DtypeBackend.PYARROW


def builds_arrow(frame: FrameKind, dtype_backend: DtypeBackend) -> bool:
    """Whether rows of this kind are built as a ``pyarrow.Table`` (``Fetch.arrow``).

    Parameters
    ----------
    frame : FrameKind
    dtype_backend : DtypeBackend
        Only matters for pandas.

    Returns
    -------
    bool
    """
    return frame is not FrameKind.PANDAS or dtype_backend.arrow


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
        A DataFrame (pandas, or an Arrow table or polars frame as
        :class:`FrameKind` says), a record (``--one``), a value (``--scalar``), a
        :class:`~pgmagic.results.plan.Plan` (``--explain``), or None.
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
    *,
    from_keywords: bool = False,
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
    from_keywords : bool
        ``namespace`` holds the Python API's keyword arguments: every one must
        be used, and the messages say so.

    Returns
    -------
    list of BoundStatement

    Raises
    ------
    ParameterError
        A variable is missing or parameters are mixed.
    """
    statements = params.split(text)
    for statement in statements:
        _refuse_client_side(statement.text)
    bound = [params.bind(s, namespace, positional, from_keywords=from_keywords) for s in statements]
    if from_keywords:
        unused = set(namespace) - {name for b in bound for name in b.names}
        if unused:
            listed = ", ".join(sorted(unused))
            raise ParameterError(f"keyword arguments not used by the SQL: {listed}")
    return bound


def _refuse_client_side(sql: str) -> None:
    """Refuse, before any I/O, what needs a psql-like client to take part."""
    if sql.startswith("\\"):
        # A %%pg cell runs its backslash lines itself; this is the API, or a
        # command after %pg's options.
        raise OptionError(
            f"{sql.split()[0]} is a psql command, not SQL: run it as a %pg line of its own "
            f"(%pg {sql.split()[0]}) or a line of a %%pg cell"
        )
    if first_word(sql) in ("LISTEN", "UNLISTEN"):
        # The session never reads notifications; the listener's connection does.
        raise OptionError(
            "LISTEN in SQL would listen on the session connection, where notifications "
            "are never read: use %pg listen CHANNEL (a live feed) or "
            "pgmagic.notifications(CHANNEL), and %pg unlisten"
        )
    direction = client_copy(sql)
    if direction == "from":
        raise OptionError(
            "COPY ... FROM STDIN needs the client to send rows: use "
            "%pg load DATAFRAME_OR_FILE INTO table (it runs COPY for you)"
        )
    if direction == "to":
        raise OptionError(
            "COPY ... TO STDOUT sends rows to the client: use %%pg --to FILE "
            "(.csv, .csv.gz, .parquet, .jsonl) with the query, or a plain %%pg for a DataFrame"
        )


def bind_one(
    text: str,
    namespace: Mapping[str, Any],
    positional: Sequence[Any] = (),
    *,
    from_keywords: bool = False,
) -> BoundStatement:
    """Bind a cell that must hold exactly one statement (streams, exports).

    Parameters
    ----------
    text : str
    namespace : mapping
    positional : sequence

    Returns
    -------
    BoundStatement

    Raises
    ------
    OptionError
        The cell holds no statement, or several.
    """
    statements = bind_cell(text, namespace, positional, from_keywords=from_keywords)
    if len(statements) != 1:
        raise OptionError(f"this needs exactly one statement; the cell has {len(statements)}")
    return statements[0]


@dataclass(frozen=True, slots=True)
class ManyOutcome:
    """What ``--many`` did."""

    status: str
    rows: int
    seconds: float

    def __str__(self) -> str:
        verb = self.status.split()[0] if self.status else "statement"
        rows = f"{self.rows:,} row{'' if self.rows == 1 else 's'}"
        return f"{verb} × {rows} in {self.seconds:.2f} s (one transaction)"


def _rows_for(
    statement: params.Statement, rows: Any
) -> tuple[BoundStatement, list[tuple[Any, ...]]]:
    spans = params.placeholders(statement.text)
    if not spans:
        raise OptionError(
            "--many runs the statement once per row with its values: "
            "use $name (a column or key) or $1, $2 (positions) in it"
        )
    names = list(dict.fromkeys(name for _, _, name in spans if not name.isdigit()))
    if isinstance(rows, pd.DataFrame):
        if names:
            missing = [n for n in names if n not in rows.columns]
            if missing:
                raise OptionError(f"--many: the DataFrame has no column {missing[0]!r}")
            columns = [rows[n] for n in names]
        else:
            columns = [rows.iloc[:, i] for i in range(rows.shape[1])]
        values = list(zip(*(params.nulls_from_pandas(c.tolist()) for c in columns), strict=True))
    else:
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise OptionError(
                "--many needs a DataFrame or a list of rows (tuples or dicts), "
                f"got {type(rows).__name__}"
            )
        values = []
        for index, row in enumerate(rows):
            if names:
                if not isinstance(row, Mapping):
                    raise OptionError("--many with $name needs a DataFrame or a list of dicts")
                missing = [n for n in names if n not in row]
                if missing:
                    raise OptionError(f"--many: row {index} has no key {missing[0]!r}")
                values.append(tuple(row[n] for n in names))
            else:
                values.append(tuple(row) if isinstance(row, list | tuple) else (row,))
    first = dict(zip(names, values[0], strict=True)) if names and values else dict.fromkeys(names)
    width = max((int(n) for _, _, n in spans if n.isdigit()), default=0)
    short = next((i for i, row in enumerate(values) if len(row) < width), None)
    if short is not None:
        raise OptionError(
            f"--many: row {short} has {len(values[short])} value(s); the statement uses ${width}"
        )
    bound = params.bind(
        statement, first, values[0][:width] if values and width else (None,) * width
    )
    if width:
        values = [row[:width] for row in values]
    return bound, [tuple(params.adapt(v) for v in row) for row in values]


async def _execute_many(
    runtime: Runtime, bound: BoundStatement, rows: list[tuple[Any, ...]], recording: Recording
) -> str:
    session = await runtime.session()
    timeout = runtime.settings.command_timeout
    names = parameter_names(bound.names)
    async with session.atomic() as conn:
        pending = recording.start(bound.source.text, names, pid=conn.get_server_pid())
        pending.rows = len(rows)
        try:
            # asyncpg's executemany gives no command tag.
            if any(isinstance(v, dt.date | list | tuple) for row in rows for v in row):
                # Naive datetimes bound to timestamptz read in the session's zone.
                stmt = await conn.prepare(bound.sql, timeout=timeout)
                rows = zones.localize_rows(rows, stmt.get_parameters(), conn)
                await stmt.executemany(rows, timeout=timeout)
            else:
                await conn.executemany(bound.sql, rows, timeout=timeout)
        except BaseException as error:
            pending.finish(error)
            if isinstance(error, asyncpg.PostgresError):
                blame(error, bound)
            raise
        pending.finish()
        return ""


def run_many(
    runtime: Runtime,
    text: str,
    rows: Any,
    *,
    on_message: Callable[[Message], None] | None = None,
) -> ManyOutcome:
    """Run one statement for every row, pipelined, in one transaction.

    ``$name`` takes the DataFrame column (or dict key) ``name``; ``$1, $2``
    take tuple positions.

    Parameters
    ----------
    runtime : Runtime
    text : str
        One statement, e.g. ``INSERT INTO t VALUES ($id, $name)``.
    rows : DataFrame or iterable
        A DataFrame, or tuples / dicts.
    on_message : callable, optional
        Receives NOTICEs while the statements run.

    Returns
    -------
    ManyOutcome
    """
    statements = params.split(text)
    if len(statements) != 1:
        raise OptionError(f"--many needs exactly one statement; the cell has {len(statements)}")
    started = time.perf_counter()
    bound, values = _rows_for(statements[0], rows)
    if not values:
        return ManyOutcome("", 0, 0.0)
    try:
        status = runtime.run(
            _execute_many(runtime, bound, values, runtime.history.recording()),
            on_message=on_message,
        )
    except DATABASE_ERRORS as error:
        raise render(error, text) from None
    return ManyOutcome(
        status or bound.sql.split()[0].upper(), len(values), time.perf_counter() - started
    )


def _status_poster(runtime: Runtime, count: int) -> Callable[[StatementResult], None]:
    # In order, as psql shows them: each statement's rows as it completes,
    # except the last statement's, which is the cell's value; command tags
    # of the others.
    done = 0

    def on_result(result: StatementResult) -> None:
        nonlocal done
        done += 1
        if not result.returns_rows:
            runtime.post(Message(MessageKind.STATUS, result.status))
        elif done < count:
            runtime.post(Message(MessageKind.RESULT, result.status, result=result))

    return on_result


async def _run_on_session(
    runtime: Runtime,
    statements: list[BoundStatement],
    fetch: Fetch,
    progress: Progress | None,
    quiet: bool,
    mode: Mode = Mode.FRAME,
) -> tuple[list[StatementResult], Plan | None]:
    session = await runtime.session()

    async def step(conn: asyncpg.Connection, bound: BoundStatement) -> StatementResult:
        return await run_statement(conn, bound, fetch, progress)

    poster = None if quiet else _status_poster(runtime, len(statements))
    # --explain: the statements before the last run as in any cell, so that a
    # SET or a temp table they make is what the explained statement sees.
    ran = statements[:-1] if mode.explains else statements
    try:
        results = await session.run(ran, step, poster) if ran else []
        if not mode.explains:
            return results, None
        analyze = mode is Mode.EXPLAIN_ANALYZE
        return results, await explain.run(session, statements[-1], fetch, analyze=analyze)
    except DATABASE_ERRORS as error:
        # Read now, on the loop: whether what ran before the error is committed.
        failed = session.state is TransactionState.FAILED
        error.pgmagic_failed_transaction = failed  # type: ignore[union-attr]
        # Still open and usable: --explain-analyze undid only its own statement.
        still_open = session.state is TransactionState.IN_TRANSACTION
        error.pgmagic_open_transaction = still_open  # type: ignore[union-attr]
        raise


def where_it_stopped(error: BaseException, statements: Sequence[BoundStatement]) -> str | None:
    """For a cell of several statements: which one failed, what ran, what did not.

    Parameters
    ----------
    error : BaseException
        Raised by the session, with the statement :func:`pgmagic.errors.blame` recorded.
    statements : sequence of BoundStatement
        The cell's statements, in order.

    Returns
    -------
    str or None
        One line, or None for a single statement (or an error of no statement).
    """
    failed = getattr(error, "pgmagic_statement", None)
    index = next((i for i, s in enumerate(statements) if s is failed), None)
    total = len(statements)
    if total < 2 or index is None:
        return None
    parts = [f"statement {index + 1} of {total} failed"]
    if index:
        before = "statement 1" if index == 1 else f"statements 1-{index}"
        if getattr(error, "pgmagic_failed_transaction", False):
            parts.append(f"{before} ran; the transaction is now aborted: ROLLBACK to end it")
        elif getattr(error, "pgmagic_open_transaction", False):
            parts.append(f"{before} ran; the transaction is still open")
        else:
            parts.append(f"{before} ran and {'is' if index == 1 else 'are'} committed")
    if index + 1 < total:
        after = f"statement {total}" if index + 2 == total else f"statements {index + 2}-{total}"
        parts.append(f"{after} did not run")
    return "; ".join(parts)


def value_of(
    shown: StatementResult | None,
    mode: Mode,
    *,
    numeric_as_float: bool = False,
    frame: FrameKind = FrameKind.PANDAS,
    dtype_backend: DtypeBackend = DtypeBackend.NUMPY_NULLABLE,
) -> Any:
    """The value a cell gives back for its displayed statement.

    Parameters
    ----------
    shown : StatementResult or None
        The last row-returning statement's result.
    mode : Mode
        DataFrame, one record, or one value.
    numeric_as_float : bool
        Give ``numeric`` as ``float64`` in DataFrames.
    frame : FrameKind
        What kind of DataFrame (``Mode.FRAME``).  Rows that came as Records
        become the table the COPY path would have given
        (:func:`pgmagic.results.arrow.records_to_table`); the result keeps
        what was built, so asking twice gives the same object.
    dtype_backend : DtypeBackend
        The dtypes of a pandas DataFrame; ``PYARROW`` wraps the Arrow table
        (:func:`pgmagic.results.frames.arrow_frame`).

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
        if frame is FrameKind.PANDAS:
            if shown.frame is not None:
                return shown.frame
            if not dtype_backend.arrow:
                return frames.records_to_frame(
                    shown.columns, records, numeric_as_float=numeric_as_float, zone=shown.zone
                )
        if shown.table is None:
            shown.table = arrow.records_to_table(
                shown.columns,
                records,
                numeric_as_float=numeric_as_float,
                zone=zones.zone_name(shown.zone),
            )
        if frame is FrameKind.PANDAS:
            shown.frame = frames.arrow_frame(shown.table)
            return shown.frame
        if frame is FrameKind.ARROW:
            return shown.table
        if shown.polars is None:
            shown.polars = arrow.to_polars(shown.table)
        return shown.polars
    if len(records) > 1:
        raise OptionError(
            f"--{mode.value} expects at most one row; the query returned {len(records):,} "
            "(add LIMIT 1 or a WHERE clause)"
        )
    if mode is Mode.SCALAR and len(shown.columns) != 1:
        raise OptionError(f"--scalar expects one column; the query returned {len(shown.columns)}")
    if not records:
        return None
    if mode is Mode.SCALAR:
        with frames.in_python_range([shown.columns[0].name]):
            return zones.shown_in(records[0][0], shown.columns[0], shown.zone)
    return records[0]


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
    max_rows: int = 0,
    on_progress: Callable[[Progress], None] | None = None,
    frame: FrameKind = FrameKind.PANDAS,
    dtype_backend: DtypeBackend = DtypeBackend.NUMPY_NULLABLE,
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
        What to give back.  ``EXPLAIN`` and ``EXPLAIN_ANALYZE`` explain the
        cell's last statement (:mod:`pgmagic.results.explain`) after running
        the others as usual, and give its plan.
    numeric_as_float : bool
        Give ``numeric`` as ``float64``.
    quiet : bool
        Do not report command tags.
    on_message : callable, optional
        Receives NOTICEs, command tags and notes while the cell runs.
    max_rows : int
        Stop a query whose result exceeds this many rows (0: no limit).
    on_progress : callable, optional
        Called about every 50 ms with the rows fetched so far; queries are
        then fetched in growing chunks so that there is something to count.
    frame : FrameKind
        What the rows become with ``Mode.FRAME``: a pandas DataFrame, a
        ``pyarrow.Table`` or a ``polars.DataFrame``.
    dtype_backend : DtypeBackend
        The dtypes of a pandas DataFrame.

    Returns
    -------
    CellOutcome

    Raises
    ------
    ParameterError
        Before any I/O, when a variable is missing.
    OptionError
        Before any I/O, when polars is asked for and not installed.
    asyncpg.PostgresError
        Decorated with the psql-style rendering.
    QueryCancelled
        The user pressed Ctrl-C; the query was cancelled on the server.
    """
    started = time.perf_counter()
    statements = bind_cell(text, namespace, positional)
    if frame is FrameKind.POLARS and mode is Mode.FRAME:
        arrow.require_polars()
    if not statements:
        if mode.explains:
            raise OptionError(f"--{mode.value} needs a statement to explain")
        return CellOutcome([], None, None, 0.0)
    progress = Progress() if on_progress is not None else None
    # An init hook may install codecs that change how types decode; the COPY
    # path decodes by itself, so it only runs when no hook could disagree.
    fetch = Fetch(
        timeout=runtime.settings.command_timeout,
        max_rows=max_rows,
        frame=mode is Mode.FRAME and runtime.settings.init is None,
        arrow=builds_arrow(frame, dtype_backend),
        numeric_as_float=numeric_as_float,
        cached=True,
        recording=runtime.history.recording(),
    )

    def tick() -> None:
        if on_progress is not None and progress is not None:
            on_progress(progress)

    try:
        results, plan = runtime.run(
            _run_on_session(runtime, statements, fetch, progress, quiet, mode),
            on_message=on_message,
            on_tick=tick,
        )
    except DATABASE_ERRORS as error:
        hints = [h for h in (explain.hint(error), where_it_stopped(error, statements)) if h]
        raise render(error, text, hint="\n".join(hints) or None) from None
    if plan is not None:
        return CellOutcome(results, None, plan, time.perf_counter() - started)
    shown = next((r for r in reversed(results) if r.returns_rows), None)
    value = value_of(
        shown, mode, numeric_as_float=numeric_as_float, frame=frame, dtype_backend=dtype_backend
    )
    if mode is Mode.FRAME and value is not None and shown is not None:
        shown.records = []  # the frame holds the data now; drop the second copy
    return CellOutcome(results, shown, value, time.perf_counter() - started)
