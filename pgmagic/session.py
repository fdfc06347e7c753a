"""The sticky session connection, and how one statement runs on any connection.

``%%pg`` cells share one connection, so ``SET``, temp tables, ``BEGIN`` in one
cell and ``COMMIT`` in a later one, and savepoints behave as in psql.  Every
statement is prepared first (Parse/Describe), which gives the column types even
for a 0-row result, then executed with its bound values.

Prepared statements are cached per session, keyed by SQL text, but only used
outside transaction blocks: a stale cached plan ("cached plan must not change
result type") is then a harmless error we retry once, whereas inside a
transaction it would abort the user's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
import pandas as pd

from pgmagic import copyframe, copying
from pgmagic.errors import OptionError
from pgmagic.frames import Column
from pgmagic.params import BoundStatement

if TYPE_CHECKING:
    from pgmagic.progress import Progress
    from pgmagic.runtime import Runtime

__all__ = ["Session", "StatementResult", "TooManyRows", "TransactionState", "execute"]

_CACHE_SIZE = 100
# Chunked fetches start small (a quick first progress count) and grow so that
# large results pay few extra round trips.
_FIRST_CHUNK = 1_000
_LAST_CHUNK = 100_000
# A statement whose last result had at most this many rows is run through
# Records next time (one round trip on a cached statement); others through
# binary COPY (a fresh Describe first, then several times faster per row).
_SHORT_ROWS = 2_000
_HINTS_SIZE = 512
# OIDs below this are built-in types, whose pandas mapping is fixed in frames.py.
_FIRST_USER_OID = 16384


class TooManyRows(OptionError):
    """A result is larger than ``PgMagics.max_rows`` allows."""


class TransactionState(enum.Enum):
    """Transaction state of the session, as pgAdmin and psql's prompt show it."""

    IDLE = "idle"
    IN_TRANSACTION = "in transaction"
    FAILED = "failed (ROLLBACK needed)"


@dataclass(slots=True)
class StatementResult:
    """What one statement returned.

    Attributes
    ----------
    status : str
        The command tag, e.g. ``SELECT 3``, ``INSERT 0 1``, ``CREATE TABLE``.
    columns : list of Column or None
        Result columns, or None when the statement returns no rows.
    records : list
        Rows as asyncpg Records (empty when ``columns`` is None, or when the
        rows came as ``frame``).
    elapsed : float
        Seconds from sending the statement to receiving the last row.
    frame : pandas.DataFrame or None
        The rows, when they came through the binary COPY path.
    """

    status: str
    columns: list[Column] | None
    records: list[Any] = field(default_factory=list)
    elapsed: float = 0.0
    frame: pd.DataFrame | None = None

    @property
    def returns_rows(self) -> bool:
        """Whether the statement has a row description (SELECT, RETURNING, ...)."""
        return self.columns is not None


class _Categories:
    """``pg_type.typcategory`` of non-built-in types, cached per connection."""

    def __init__(self) -> None:
        self._known: dict[int, str] = {}

    async def columns(self, conn: asyncpg.Connection, attributes: Sequence[Any]) -> list[Column]:
        unknown = {
            a.type.oid for a in attributes if a.type.oid >= _FIRST_USER_OID
        } - self._known.keys()
        if unknown:
            rows = await conn.fetch(
                "SELECT oid::int8, typcategory::text FROM pg_catalog.pg_type "
                "WHERE oid = any($1::oid[])",
                list(unknown),
            )
            self._known.update({r[0]: r[1] for r in rows})
        return [
            Column(a.name, a.type.oid, a.type.name, self._known.get(a.type.oid, ""))
            for a in attributes
        ]


def _is_stale(error: BaseException) -> bool:
    return isinstance(
        error, asyncpg.InvalidCachedStatementError | asyncpg.InvalidSQLStatementNameError
    )


async def _prepare(
    conn: asyncpg.Connection,
    sql: str,
    timeout: float | None,
    cache: OrderedDict[str, Any] | None,
) -> Any:
    if cache is not None:
        stmt = cache.get(sql)
        if stmt is not None:
            cache.move_to_end(sql)
            return stmt
    stmt = await conn.prepare(sql, timeout=timeout)
    if cache is not None:
        cache[sql] = stmt
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return stmt


async def _fetch_in_chunks(
    conn: asyncpg.Connection,
    stmt: Any,
    args: Sequence[Any],
    timeout: float | None,
    max_rows: int,
    progress: Progress | None,
) -> list[Any]:
    """Rows through a cursor, in growing chunks (progress, max_rows)."""
    # A cursor lives in a transaction: outside the user's, the query gets its
    # own, which is what its implicit transaction would have been.
    own = not conn.is_in_transaction()
    if own:
        await conn.execute("BEGIN")
    try:
        cursor = await stmt.cursor(*args, timeout=timeout)
        records: list[Any] = []
        size = _FIRST_CHUNK
        while True:
            batch = await cursor.fetch(size, timeout=timeout)
            records.extend(batch)
            if progress is not None:
                progress.add(len(batch), 0)
            if max_rows and len(records) > max_rows:
                raise TooManyRows(
                    f"the result has more than {max_rows:,} rows (PgMagics.max_rows): "
                    "use --stream to iterate over it in chunks, --to FILE to export it, "
                    "or add a LIMIT"
                )
            if len(batch) < size:
                break
            size = min(size * 10, _LAST_CHUNK)
    except BaseException:
        if own and not conn.is_closed():
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.shield(conn.execute("ROLLBACK"))
        raise
    if own:
        await conn.execute("COMMIT")
    return records


def _remember(hints: OrderedDict[str, bool], sql: str, short: bool) -> None:
    hints[sql] = short
    hints.move_to_end(sql)
    if len(hints) > _HINTS_SIZE:
        hints.popitem(last=False)


@functools.lru_cache(maxsize=256)
def _copyable(sql: str) -> bool:
    return copying.copyable(sql)


async def execute(
    conn: asyncpg.Connection,
    bound: BoundStatement,
    *,
    timeout: float | None = None,
    cache: OrderedDict[str, Any] | None = None,
    categories: _Categories | None = None,
    max_rows: int = 0,
    progress: Progress | None = None,
    frame: FrameOptions | None = None,
    hints: OrderedDict[str, bool] | None = None,
) -> StatementResult:
    """Prepare and run one bound statement on a connection.

    Parameters
    ----------
    conn : asyncpg.Connection
    bound : BoundStatement
        SQL with ``$n`` placeholders and the values.
    timeout : float, optional
        Seconds before the statement is cancelled on the server.
    cache : OrderedDict, optional
        Prepared statements by SQL text; used only outside transactions.
    categories : optional
        Type-category cache for this connection.
    max_rows : int
        Stop a query whose result exceeds this many rows (0: no limit).
    progress : Progress, optional
        Counts rows as they arrive (queries are then fetched in growing chunks).
    frame : FrameOptions, optional
        Give plain queries' rows as a DataFrame, through binary COPY when every
        column's type allows (much faster than Records for large results).
    hints : OrderedDict, optional
        Per SQL text, whether its last result was short; a short one is run
        through Records next time (quicker for a handful of rows).  Each query
        runs once either way: the choice only changes speed.

    Returns
    -------
    StatementResult

    Raises
    ------
    asyncpg.PostgresError
        The server rejected the statement; the error keeps its asyncpg class.
    TooManyRows
        The result exceeds ``max_rows``.
    """
    started = time.perf_counter()
    categories = categories or _Categories()
    copy_ok = frame is not None and not max_rows and copyframe.is_available()
    use_cache = cache is not None and not conn.is_in_transaction()
    for attempt in (0, 1):
        stmt = await _prepare(conn, bound.sql, timeout, cache if use_cache else None)
        try:
            attributes = stmt.get_attributes()
            copyable = bool(attributes) and _copyable(bound.sql)
            short = bool(hints and hints.get(bound.sql))
            if (
                copy_ok
                and copyable
                and not short
                and frame is not None
                and await copyframe.supports(conn, attributes, frame.numeric_as_float)
            ):
                result = await _copy_path(conn, bound, timeout, categories, frame, progress)
                if result is not None and result.frame is not None:
                    if hints is not None:
                        _remember(hints, bound.sql, len(result.frame) <= _SHORT_ROWS)
                    result.elapsed = time.perf_counter() - started
                    return result
            # A result known to be short needs no progress counting: one round trip.
            if copyable and (max_rows or (progress is not None and not short)):
                records = await _fetch_in_chunks(
                    conn, stmt, bound.args, timeout, max_rows, progress
                )
                status = f"SELECT {len(records)}"
            else:
                records = await stmt.fetch(*bound.args, timeout=timeout)
                status = stmt.get_statusmsg() or ""
            if copyable and hints is not None:
                _remember(hints, bound.sql, len(records) <= _SHORT_ROWS)
            break
        except asyncpg.PostgresError as error:
            if attempt == 0 and use_cache and cache is not None and _is_stale(error):
                cache.clear()
                continue
            raise
    attributes = stmt.get_attributes()
    columns = None
    if attributes or records:
        columns = await categories.columns(conn, attributes)
    return StatementResult(status, columns, records, time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class FrameOptions:
    """How a query's rows should become a DataFrame on the COPY path.

    Attributes
    ----------
    numeric_as_float : bool
        ``numeric`` as float64 instead of ``Decimal``.
    """

    numeric_as_float: bool = False


async def _copy_path(
    conn: asyncpg.Connection,
    bound: BoundStatement,
    timeout: float | None,
    categories: _Categories,
    options: FrameOptions,
    progress: Progress | None,
) -> StatementResult | None:
    """Rows through binary COPY, straight into a DataFrame; None to take the record path."""
    # Prepared afresh, never from the cache: the parser must see the column
    # types as they are now (a cached int4 column altered to float4 would
    # decode silently wrong).  Unnamed, so there is nothing to close later.
    stmt = await conn.prepare(bound.sql, name="", timeout=timeout)
    attributes = stmt.get_attributes()
    if not attributes:
        return None
    query = copying.copy_query(bound, stmt.get_parameters())
    seen = [0, 0]

    def count(rows: int, size: int) -> None:
        if progress is not None:
            progress.add(rows - seen[0], size - seen[1])
        seen[0], seen[1] = rows, size

    try:
        async with copying.bound_values(conn, bound, query):
            frame = await copyframe.copy_frame(
                conn,
                query.sql,
                attributes,
                numeric_as_float=options.numeric_as_float,
                timeout=timeout,
                on_progress=count,
            )
    except (copyframe.UnsupportedColumnError, copyframe.ColumnMismatchError):
        return None
    columns = await categories.columns(conn, attributes)
    return StatementResult(f"SELECT {len(frame)}", columns, [], frame=frame)


class Session:
    """The sticky connection ``%%pg`` cells share.

    Parameters
    ----------
    runtime : Runtime
        Owner of the loop and the connection target.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.conn: asyncpg.Connection | None = None
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._categories = _Categories()
        self._hints: OrderedDict[str, bool] = OrderedDict()
        self._failed = False
        self._identity: tuple[str, str] = ("", "")
        # One statement at a time on the session: API calls with session=True
        # may be awaited while another is still running.
        self._busy = asyncio.Lock()

    @property
    def state(self) -> TransactionState:
        """Idle, in a transaction, or in a failed transaction."""
        if self.conn is None or self.conn.is_closed() or not self.conn.is_in_transaction():
            return TransactionState.IDLE
        return TransactionState.FAILED if self._failed else TransactionState.IN_TRANSACTION

    async def ensure_connected(self) -> asyncpg.Connection:
        """Connect on first use; reconnect, with a note, after the connection was lost.

        Returns
        -------
        asyncpg.Connection
        """
        if self.conn is not None and not self.conn.is_closed():
            return self.conn
        lost = self.conn is not None
        conn = await self._runtime.connect()
        row = await conn.fetchrow("SELECT current_database(), session_user")
        self._identity = (row[0], row[1])
        self.conn = conn
        self._cache.clear()
        self._categories = _Categories()
        self._failed = False
        if lost:
            self._runtime.note(
                "pgmagic: the session connection was lost and has been reopened; "
                "SET values, temp tables and any open transaction were reset"
            )
        return conn

    async def run(
        self,
        statements: Sequence[BoundStatement],
        *,
        on_result: Callable[[StatementResult, bool], None] | None = None,
        timeout: float | None = None,
        max_rows: int = 0,
        progress: Progress | None = None,
        frame: FrameOptions | None = None,
    ) -> list[StatementResult]:
        """Run statements in order on the session; stop at the first error.

        Parameters
        ----------
        statements : sequence of BoundStatement
        on_result : callable, optional
            Called on the loop thread after each statement with the result and
            whether it was the last statement.
        timeout : float, optional
            Per-statement timeout in seconds.
        max_rows : int
            Stop a query whose result exceeds this many rows (0: no limit).
        progress : Progress, optional
            Counts rows of queries as they arrive.
        frame : FrameOptions, optional
            Give queries' rows as DataFrames (through binary COPY when possible).

        Returns
        -------
        list of StatementResult

        Raises
        ------
        asyncpg.PostgresError
            With ``pgmagic_statement`` set to the failing :class:`BoundStatement`.
        """
        async with self._busy:
            return await self._run(statements, on_result, timeout, max_rows, progress, frame)

    async def _run(
        self,
        statements: Sequence[BoundStatement],
        on_result: Callable[[StatementResult, bool], None] | None,
        timeout: float | None,
        max_rows: int,
        progress: Progress | None,
        frame: FrameOptions | None,
    ) -> list[StatementResult]:
        conn = await self.ensure_connected()
        results: list[StatementResult] = []
        for index, bound in enumerate(statements):
            try:
                try:
                    result = await self._execute(conn, bound, timeout, max_rows, progress, frame)
                except (asyncpg.InternalClientError, asyncpg.InterfaceError) as error:
                    # The connection died while idle and asyncpg noticed only now,
                    # before sending anything (its protocol refuses to start, or
                    # reports the connection closed): reopen it and run the
                    # statement there.
                    broken = isinstance(error, asyncpg.InternalClientError) or conn.is_closed()
                    if index > 0 or not broken:
                        raise
                    conn.terminate()
                    conn = await self.ensure_connected()
                    result = await self._execute(conn, bound, timeout, max_rows, progress, frame)
            except asyncpg.PostgresError as error:
                self._failed = conn.is_in_transaction()
                error.pgmagic_statement = bound
                raise
            except (asyncio.CancelledError, TimeoutError):
                self._failed = conn.is_in_transaction()
                await asyncio.shield(self._settle(conn))
                raise
            self._failed = False
            results.append(result)
            if on_result is not None:
                on_result(result, index == len(statements) - 1)
        return results

    async def _execute(
        self,
        conn: asyncpg.Connection,
        bound: BoundStatement,
        timeout: float | None,
        max_rows: int,
        progress: Progress | None,
        frame: FrameOptions | None,
    ) -> StatementResult:
        return await execute(
            conn,
            bound,
            timeout=timeout,
            cache=self._cache,
            categories=self._categories,
            max_rows=max_rows,
            progress=progress,
            frame=frame,
            hints=self._hints,
        )

    async def _settle(self, conn: asyncpg.Connection) -> None:
        # After a cancel, asyncpg sends the cancel request in the background; the
        # next query waits until the server has acknowledged it, so the backend
        # is idle (or idle in a failed transaction, where this query fails
        # harmlessly) when the cell ends.
        with contextlib.suppress(
            TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError
        ):
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=10)
        self._failed = conn.is_in_transaction()

    async def carried_settings(self) -> list[tuple[str, str]]:
        """Settings that work on other connections should share with the session.

        Streams and exports run on pool connections; without the session's
        ``search_path`` and time zone, ``SET search_path`` in a cell would not
        apply to them.

        Returns
        -------
        list of (name, value)
        """
        conn = self.conn
        if conn is None or conn.is_closed() or self.state is TransactionState.FAILED:
            return []
        if self._busy.locked():
            return []
        row = await conn.fetchrow(
            "SELECT current_setting('search_path'), current_setting('TimeZone')"
        )
        return [("search_path", row[0]), ("TimeZone", row[1])]

    @contextlib.asynccontextmanager
    async def atomic(self) -> AsyncIterator[asyncpg.Connection]:
        """All-or-nothing work on the session: a transaction, or a savepoint inside one.

        Inside a transaction the user opened, a savepoint keeps their
        transaction alive if this work fails; otherwise the work gets a
        transaction of its own.

        Yields
        ------
        asyncpg.Connection
        """
        async with self._busy:
            conn = await self.ensure_connected()
            nested = conn.is_in_transaction()
            await conn.execute("SAVEPOINT pgmagic_atomic" if nested else "BEGIN")
            try:
                yield conn
            except BaseException:
                self._failed = False
                undo = "ROLLBACK TO SAVEPOINT pgmagic_atomic" if nested else "ROLLBACK"
                if not conn.is_closed():
                    # Shielded: a cancelled load must still undo what it did.
                    with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
                        await asyncio.shield(conn.execute(undo))
                raise
            await conn.execute("RELEASE SAVEPOINT pgmagic_atomic" if nested else "COMMIT")

    async def status(self) -> dict[str, Any]:
        """Facts for ``%pg status``.

        Returns
        -------
        dict
            server version, database, user, backend pid, transaction state,
            pool size and idle count.
        """
        conn = await self.ensure_connected()
        version = conn.get_server_version()
        info: dict[str, Any] = {
            "target": self._runtime.describe_target(),
            "server": f"PostgreSQL {version.major}.{version.minor}",
            "database": self._identity[0],
            "user": self._identity[1],
            "backend pid": conn.get_server_pid(),
            "transaction": self.state.value,
        }
        pool = self._runtime.pool_if_open()
        if pool is None:
            info["pool"] = "not started (opens on first API call)"
        else:
            info["pool"] = (
                f"{pool.get_size()} open, {pool.get_idle_size()} idle, max {pool.get_max_size()}"
            )
        return info

    async def close(self) -> None:
        """Close the session connection (the server ends any open transaction)."""
        conn, self.conn = self.conn, None
        self._cache.clear()
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                conn.terminate()
