"""The Python API: the magics' operations as awaitables for top-level ``await``.

Each call runs on the runtime's loop (never the kernel's) and returns an
awaitable bound to the caller's loop, so many calls can run at once on the pool::

    df = await pgmagic.fetch("SELECT * FROM users WHERE id = $id", id=7)
    a, b = await asyncio.gather(pgmagic.fetch(q1), pgmagic.fetch(q2))

``$name`` binds keyword arguments, ``$1, $2`` bind positional ones.  Pass
``session=True`` to run on the sticky session that ``%%pg`` cells use (temp
tables, open transactions) instead of the pool, and ``conn="prod"`` to run on
a named connection (``%pg connect prod DSN``) instead of the current one.

Interrupting an ``await`` in a notebook only lands when the awaited call ends
(ipykernel #881); use ``%%pg`` cells, which cancel on the server at once, for
queries you may need to stop.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
import pandas as pd

from pgmagic.bulk import export
from pgmagic.bulk import load as loading
from pgmagic.bulk.export import ExportResult
from pgmagic.bulk.load import LoadResult
from pgmagic.bulk.stream import Stream
from pgmagic.errors import DATABASE_ERRORS, OptionError, blame, render
from pgmagic.live import jobs as _jobs
from pgmagic.live.jobs import Job
from pgmagic.results import arrow
from pgmagic.results import explain as explaining
from pgmagic.results import history as _history
from pgmagic.results.cell import (
    DtypeBackend,
    FrameKind,
    Mode,
    bind_cell,
    bind_one,
    builds_arrow,
    value_of,
)
from pgmagic.results.plan import Plan
from pgmagic.results.statement import Fetch, StatementResult, run_statement
from pgmagic.runtime.connections import default_connections, default_runtime
from pgmagic.runtime.history import Recording
from pgmagic.runtime.loop import Runtime
from pgmagic.runtime.waiting import awaited, in_worker
from pgmagic.sql.params import BoundStatement

__all__ = [
    "execute",
    "explain",
    "fetch",
    "fetchrow",
    "fetchval",
    "history",
    "job",
    "jobs",
    "load_table",
    "stream",
    "to_file",
]

T = TypeVar("T")


def _runtime(conn: str | None = None) -> Runtime:
    if conn is not None:
        connections = default_connections()
        assert connections is not None
        return connections.get(conn)
    runtime = default_runtime()
    assert runtime is not None
    return runtime


async def _run_all(
    runtime: Runtime,
    statements: list[BoundStatement],
    session: bool,
    recording: Recording,
    numeric_as_float: bool | None = None,
    arrow: bool = False,
) -> list[StatementResult]:
    # An init hook may install codecs that change how types decode; the COPY
    # path decodes by itself, so it only runs when no hook could disagree.
    fetch = Fetch(
        timeout=runtime.settings.command_timeout,
        frame=numeric_as_float is not None and runtime.settings.init is None,
        arrow=arrow,
        numeric_as_float=bool(numeric_as_float),
        cached=session,
        recording=recording,
    )

    async def step(conn: asyncpg.Connection, bound: BoundStatement) -> StatementResult:
        return await run_statement(conn, bound, fetch)

    if session:
        return await (await runtime.session()).run(statements, step)
    results = []
    async with runtime.acquire() as conn:
        # A naive literal means the same here as in a %%pg cell.
        await runtime.carry_time_zone(conn)
        for bound in statements:
            try:
                results.append(await step(conn, bound))
            except asyncpg.PostgresError as error:
                blame(error, bound)
                raise
    return results


async def _bridge(runtime: Runtime, coro: Coroutine[Any, Any, T], sql: str) -> T:
    try:
        return await awaited(runtime, coro)
    except DATABASE_ERRORS as error:
        raise render(error, sql, hint=explaining.hint(error)) from None
    finally:
        # NOTICEs the statement raised, shown under the cell that awaited it.
        runtime.drain(runtime.printer)


async def _results(
    sql: str,
    args: Sequence[Any],
    params: Mapping[str, Any],
    session: bool,
    numeric_as_float: bool | None = None,
    conn: str | None = None,
    arrow: bool = False,
) -> StatementResult | None:
    runtime = _runtime(conn)
    statements = bind_cell(sql, params, args, from_keywords=True)
    if not statements:
        return None
    recording = runtime.history.recording()
    results = await _bridge(
        runtime, _run_all(runtime, statements, session, recording, numeric_as_float, arrow), sql
    )
    return next((r for r in reversed(results) if r.returns_rows), results[-1])


def _frame_kind(frame: str) -> FrameKind:
    """``frame=`` checked before any I/O; polars must be installed to ask for it."""
    try:
        kind = FrameKind(frame)
    except ValueError:
        kinds = ", ".join(repr(k.value) for k in FrameKind)
        raise OptionError(f"frame must be one of {kinds}, got {frame!r}") from None
    if kind is FrameKind.POLARS:
        arrow.require_polars()
    return kind


def _dtype_backend(dtype_backend: str) -> DtypeBackend:
    """``dtype_backend=`` checked before any I/O."""
    try:
        return DtypeBackend(dtype_backend)
    except ValueError:
        backends = ", ".join(repr(b.value) for b in DtypeBackend)
        raise OptionError(
            f"dtype_backend must be one of {backends}, got {dtype_backend!r}"
        ) from None


async def fetch(
    sql: str,
    *args: Any,
    session: bool = False,
    numeric_as_float: bool = False,
    conn: str | None = None,
    frame: str = "pandas",
    dtype_backend: str = "numpy_nullable",
    **params: Any,
) -> Any:
    """Run SQL and give the last query's rows as a DataFrame (or an Arrow table, a polars frame).

    Parameters
    ----------
    sql : str
        One or more statements; ``$name`` binds keyword arguments, ``$1``
        positional ones.
    *args
        Values for ``$1, $2, ...``.
    session : bool
        Run on the ``%%pg`` session instead of a pool connection.
    numeric_as_float : bool
        Give ``numeric`` columns as ``float64``.
    conn : str, optional
        The named connection to run on (``%pg connect NAME DSN``); default: the current one.
    frame : {"pandas", "arrow", "polars"}
        What the rows become: a pandas DataFrame, a ``pyarrow.Table`` or a
        ``polars.DataFrame`` (polars must be installed:
        ``pip install 'pgmagic[polars]'``).
    dtype_backend : {"numpy_nullable", "pyarrow"}
        The pandas DataFrame's dtypes, as in ``pandas.read_sql``: nullable
        numpy ones, or ``pandas.ArrowDtype`` columns over the Arrow result
        (no Python object per value).
    **params
        Values for ``$name``.

    Returns
    -------
    pandas.DataFrame, pyarrow.Table, polars.DataFrame or None
        None when no statement returns rows.

    Examples
    --------
    >>> df = await pgmagic.fetch("SELECT * FROM users WHERE score > $s", s=5)  # doctest: +SKIP
    >>> table = await pgmagic.fetch("SELECT * FROM users", frame="arrow")  # doctest: +SKIP
    """
    kind = _frame_kind(frame)
    backend = _dtype_backend(dtype_backend)
    result = await _results(
        sql, args, params, session, numeric_as_float, conn, builds_arrow(kind, backend)
    )
    return value_of(
        result, Mode.FRAME, numeric_as_float=numeric_as_float, frame=kind, dtype_backend=backend
    )


async def fetchrow(
    sql: str, *args: Any, session: bool = False, conn: str | None = None, **params: Any
) -> Any:
    """Run SQL and give its single row as a record (None when there is no row).

    Parameters
    ----------
    sql : str
        The statement.
    *args
        Values for ``$1, $2, ...``.
    session : bool
        Run on the ``%%pg`` session instead of a pool connection.
    conn : str, optional
        The named connection to run on (``%pg connect NAME DSN``); default: the current one.
    **params
        Values for ``$name``.

    Returns
    -------
    asyncpg.Record or None

    Examples
    --------
    >>> row = await pgmagic.fetchrow("SELECT * FROM users WHERE id = $id", id=1)  # doctest: +SKIP
    """
    return value_of(await _results(sql, args, params, session, conn=conn), Mode.ONE)


async def fetchval(
    sql: str, *args: Any, session: bool = False, conn: str | None = None, **params: Any
) -> Any:
    """Run SQL and give its single value.

    Parameters
    ----------
    sql : str
        The statement.
    *args
        Values for ``$1, $2, ...``.
    session : bool
        Run on the ``%%pg`` session instead of a pool connection.
    conn : str, optional
        The named connection to run on (``%pg connect NAME DSN``); default: the current one.
    **params
        Values for ``$name``.

    Returns
    -------
    object

    Examples
    --------
    >>> n = await pgmagic.fetchval("SELECT count(*) FROM users")  # doctest: +SKIP
    """
    return value_of(await _results(sql, args, params, session, conn=conn), Mode.SCALAR)


async def execute(
    sql: str, *args: Any, session: bool = False, conn: str | None = None, **params: Any
) -> str:
    """Run SQL and give the last statement's command tag.

    Parameters
    ----------
    sql : str
        One or more statements.
    *args
        Values for ``$1, $2, ...``.
    session : bool
        Run on the ``%%pg`` session instead of a pool connection.
    conn : str, optional
        The named connection to run on (``%pg connect NAME DSN``); default: the current one.
    **params
        Values for ``$name``.

    Returns
    -------
    str
        For example ``"INSERT 0 1"``.

    Examples
    --------
    >>> await pgmagic.execute("DELETE FROM users WHERE id = $id", id=1)  # doctest: +SKIP
    'DELETE 1'
    """
    runtime = _runtime(conn)
    statements = bind_cell(sql, params, args, from_keywords=True)
    if not statements:
        return ""
    recording = runtime.history.recording()
    results = await _bridge(runtime, _run_all(runtime, statements, session, recording), sql)
    return results[-1].status


async def _explain(
    runtime: Runtime, bound: BoundStatement, analyze: bool, session: bool, recording: Recording
) -> Plan:
    fetch = Fetch(timeout=runtime.settings.command_timeout, recording=recording)
    if session:
        return await explaining.run(await runtime.session(), bound, fetch, analyze=analyze)
    async with runtime.acquire() as conn:
        await runtime.carry_time_zone(conn)
        return await explaining.run_on(conn, bound, fetch, analyze=analyze)


async def explain(
    sql: str, *args: Any, analyze: bool = False, session: bool = False, **params: Any
) -> Plan:
    """The plan of a statement, as ``%%pg --explain`` (``--explain-analyze``) gives it.

    Parameters
    ----------
    sql : str
        One statement; ``$name`` binds keyword arguments, ``$1`` positional
        ones, so the plan is the one for these values.
    *args
        Values for ``$1, $2, ...``.
    analyze : bool
        Run the statement to measure it, inside a transaction (a savepoint in
        the session's own) that is rolled back afterwards.
    session : bool
        Run on the ``%%pg`` session instead of a pool connection.
    **params
        Values for ``$name``.

    Returns
    -------
    Plan
        Shown as a tree; ``plan.json`` is the server's JSON plan.

    Examples
    --------
    >>> plan = await pgmagic.explain("SELECT * FROM users WHERE id = $id", id=7)  # doctest: +SKIP
    >>> plan.hot, plan.misestimated  # doctest: +SKIP
    """
    bound = bind_one(sql, params, args, from_keywords=True)
    runtime = _runtime()
    recording = runtime.history.recording()
    return await _bridge(runtime, _explain(runtime, bound, analyze, session, recording), sql)


def stream(
    sql: str,
    *args: Any,
    chunksize: int = 50_000,
    numeric_as_float: bool = False,
    conn: str | None = None,
    frame: str = "pandas",
    dtype_backend: str = "numpy_nullable",
    **params: Any,
) -> Stream:
    """Iterate over a query's result in DataFrames of ``chunksize`` rows.

    The query runs on a pool connection of its own, through a server-side
    cursor; only one chunk is in memory at a time.

    Parameters
    ----------
    sql : str
        One query; ``$name`` binds keyword arguments, ``$1`` positional ones.
    *args
        Values for ``$1, $2, ...``.
    chunksize : int
        Rows per DataFrame.
    numeric_as_float : bool
        Give ``numeric`` columns as ``float64``.
    conn : str, optional
        The named connection to run on (``%pg connect NAME DSN``); default: the current one.
    frame : {"pandas", "arrow", "polars"}
        What each chunk is (every chunk with the first chunk's types).
    dtype_backend : {"numpy_nullable", "pyarrow"}
        The dtypes of pandas chunks, as in ``pandas.read_sql``.
    **params
        Values for ``$name``.

    Returns
    -------
    Stream
        Use ``async for df in ...`` (or a plain ``for`` outside a running loop).

    Examples
    --------
    >>> async for df in pgmagic.stream("SELECT * FROM events", chunksize=100_000):  # doctest: +SKIP
    ...     total += len(df)
    """
    kind = _frame_kind(frame)
    backend = _dtype_backend(dtype_backend)
    bound = bind_one(sql, params, args, from_keywords=True)
    return Stream(
        _runtime(conn),
        bound,
        chunksize=chunksize,
        numeric_as_float=numeric_as_float,
        frame=kind,
        dtype_backend=backend,
    )


async def to_file(
    sql: str,
    path: str | os.PathLike[str],
    *args: Any,
    format: str | None = None,
    conn: str | None = None,
    **params: Any,
) -> ExportResult:
    """Stream a query's result to a file (.parquet, .csv, .csv.gz, .jsonl).

    Parameters
    ----------
    sql : str
        One query.
    path : path-like
        Destination; the format comes from the suffix unless ``format`` says.
    *args
        Values for ``$1, $2, ...``.
    format : str, optional
        ``parquet``, ``csv``, ``csv.gz`` or ``jsonl``.
    conn : str, optional
        The named connection to run on (``%pg connect NAME DSN``); default: the current one.
    **params
        Values for ``$name``.

    Returns
    -------
    ExportResult

    Examples
    --------
    >>> await pgmagic.to_file("SELECT * FROM events", "events.parquet")  # doctest: +SKIP
    """
    bound = bind_one(sql, params, args, from_keywords=True)
    return await in_worker(export.export, _runtime(conn), bound, path, fmt=format)


async def load_table(
    source: Any,
    table: str,
    *,
    mode: str = "create",
    conn: str | None = None,
) -> LoadResult:
    """Load a DataFrame, an Arrow table, a CSV or Parquet file into a table with COPY.

    One transaction: an error half-way leaves the table as it was.

    Parameters
    ----------
    source : DataFrame, Arrow table or path
        A pandas or polars DataFrame, a ``pyarrow.Table``, ``RecordBatch``
        or ``RecordBatchReader``, or a ``.csv``, ``.csv.gz`` or ``.parquet``
        file.
    table : str
        ``name`` or ``schema.name``.
    mode : {"create", "append", "replace"}
    conn : str, optional
        The named connection to run on (``%pg connect NAME DSN``); default: the current one.

    Returns
    -------
    LoadResult

    Examples
    --------
    >>> await pgmagic.load_table(df, "events", mode="append")  # doctest: +SKIP
    """
    return await in_worker(loading.load, _runtime(conn), source, table, mode=mode)


def history(
    n: int | None = None, pattern: str | None = None, *, all_kernels: bool = False
) -> pd.DataFrame:
    """The statements pgmagic ran in this kernel, oldest first (``%pg history``).

    Not awaited: the history is a local file, read at once.  Parameter
    values are never recorded, only their names.

    Parameters
    ----------
    n : int, optional
        Only the newest ``n`` statements.
    pattern : str, optional
        Only statements whose SQL holds this text, ignoring case.
    all_kernels : bool
        Every kernel's statements (the history survives restarts), not only
        this kernel's.

    Returns
    -------
    pandas.DataFrame
        Columns ``started`` (UTC), ``cell``, ``sql``, ``params``, ``rows``,
        ``seconds``, ``status`` (``ok``, ``error``, ``cancelled``),
        ``sqlstate``, ``connection``, ``pid`` and ``kernel``.

    Examples
    --------
    >>> slow = pgmagic.history(pattern="orders").query("seconds > 1")  # doctest: +SKIP
    """
    runtime = _runtime()
    connections = default_connections(create=False)
    for each in connections.runtimes() if connections is not None else ():
        # Each connection writes the shared file from a thread of its own.
        each.history.flush()
    return _history.read(runtime.history, last=n, pattern=pattern, every_kernel=all_kernels)


def jobs() -> pd.DataFrame:
    """The background jobs of this kernel (``%%pg --bg``), oldest first (``%pg jobs``).

    Not awaited: it reads the kernel's own list.

    Returns
    -------
    pandas.DataFrame
        Columns ``job`` (its number), ``name``, ``state`` (``queued``,
        ``running``, ``done``, ``failed``, ``cancelled``), ``connection``,
        ``rows``, ``seconds``, ``pid``, ``started`` (UTC) and ``sql``.

    Examples
    --------
    >>> pgmagic.jobs().query("state == 'running'")  # doctest: +SKIP
    """
    return _jobs.frame()


def job(ref: int | str) -> Job:
    """A background job by number or name: ``cancel()``, ``result()``, ``await``.

    Parameters
    ----------
    ref : int or str
        Its number (``%pg jobs``) or its name (the ``-o`` name, the newest
        job of that name).

    Returns
    -------
    pgmagic.live.jobs.Job

    Examples
    --------
    >>> pgmagic.job("big").cancel()  # doctest: +SKIP
    >>> df = await pgmagic.job("big")  # doctest: +SKIP
    """
    return _jobs.find(ref)
