"""One statement on one connection: Records or binary COPY, chosen here.

Every statement is prepared first (Parse/Describe), which gives the column
types even for a 0-row result.  A plain query (:func:`pgmagic.sql.copytext.copyable`)
whose columns the C decoder reads (:func:`pgmagic.results.decode.supports`) and
whose last result was not short goes through binary ``COPY`` straight into a
DataFrame (or a ``pyarrow.Table``, :mod:`pgmagic.results.arrow`); everything
else through asyncpg Records.  Each query runs once
either way: the choice only changes speed.

Prepared statements are cached per connection, keyed by SQL text, but only
used outside transaction blocks: a stale cached plan ("cached plan must not
change result type") is then a harmless error retried once, whereas inside a
transaction it would abort the user's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
import pandas as pd
import pyarrow as pa

from pgmagic import _oids as oids
from pgmagic.errors import (
    ColumnMismatchError,
    TooManyRows,
    UnsupportedColumnError,
)
from pgmagic.results import arrow, decode, frames, zones
from pgmagic.results.copyout import bound_values
from pgmagic.results.frames import Column
from pgmagic.runtime.connect import caches_statements
from pgmagic.runtime.history import Recording, parameter_names, rows_of
from pgmagic.sql import copytext
from pgmagic.sql.params import BoundStatement

if TYPE_CHECKING:
    from pgmagic.results.progress import Progress

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
        The rows, when they came through the binary COPY path (or were
        turned into a DataFrame since).
    table : pyarrow.Table or None
        The rows as Arrow, when they came through the COPY path with
        ``Fetch.arrow`` (or were turned into a table since).
    polars : polars.DataFrame or None
        The rows as polars, once made from ``table``: a table shown while
        the cell runs and the cell's value are one object.
    zone : datetime.tzinfo
        The connection's ``TimeZone`` when the statement ran: timestamptz
        values are shown in it (:func:`pgmagic.results.zones.result_zone`).
    """

    status: str
    columns: list[Column] | None
    records: list[Any] = field(default_factory=list)
    elapsed: float = 0.0
    frame: pd.DataFrame | None = None
    zone: dt.tzinfo = zones.UTC
    table: pa.Table | None = None
    polars: Any = None

    @property
    def returns_rows(self) -> bool:
        """Whether the statement has a row description (SELECT, RETURNING, ...)."""
        return self.columns is not None


class TypeCategories:
    """``pg_type.typcategory`` of non-built-in types, cached per connection."""

    def __init__(self) -> None:
        self._known: dict[int, str] = {}

    async def columns(self, conn: asyncpg.Connection, attributes: Sequence[Any]) -> list[Column]:
        """The columns of a result, with each type's category.

        Parameters
        ----------
        conn : asyncpg.Connection
        attributes : sequence of asyncpg.types.Attribute

        Returns
        -------
        list of Column
        """
        # Built-in types need no category: their pandas mapping is fixed in frames.py.
        unknown = {
            a.type.oid for a in attributes if a.type.oid >= oids.FIRST_USER_OID
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


@dataclass
class _ConnectionCache:
    """What is remembered per connection, forgotten with it."""

    statements: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    categories: TypeCategories = field(default_factory=lambda: TypeCategories())
    # Per SQL text, whether its last result was short.
    hints: OrderedDict[str, bool] = field(default_factory=OrderedDict)


# Keyed by the session's connection, so a reopened session starts afresh on its own.
_caches: weakref.WeakKeyDictionary[asyncpg.Connection, _ConnectionCache] = (
    weakref.WeakKeyDictionary()
)


def _cache_for(conn: asyncpg.Connection) -> _ConnectionCache:
    cache = _caches.get(conn)
    if cache is None:
        cache = _caches[conn] = _ConnectionCache()
    return cache


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
    fetch: Fetch,
    progress: Progress | None,
) -> list[Any]:
    """Rows through a cursor, in growing chunks (progress, max_rows)."""
    timeout, max_rows = fetch.timeout, fetch.max_rows
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
    return copytext.copyable(sql)


@dataclass(frozen=True, slots=True)
class Fetch:
    """How a statement runs and what its rows become: one object for every caller.

    Attributes
    ----------
    timeout : float or None
        Seconds before the statement is cancelled on the server.
    max_rows : int
        Stop a query whose result exceeds this many rows (0: no limit).
    frame : bool
        Give plain queries' rows as a DataFrame, through binary COPY when
        every column's type allows (much faster than Records for large results).
    arrow : bool
        With ``frame``, the COPY path gives a ``pyarrow.Table``
        (:func:`pgmagic.results.arrow.copy_table`) instead of a DataFrame.
    numeric_as_float : bool
        ``numeric`` as float64 instead of ``Decimal`` on the COPY path.
    cached : bool
        Keep prepared statements per connection, by SQL text (the session
        does; they are used only outside transactions), and remember which
        results were short: a short one is run through Records next time
        (quicker for a handful of rows).  Each query runs once either way:
        the choice only changes speed.
    recording : Recording or None
        Where the statement goes in the query history (None: pgmagic's own
        queries, which are not recorded).
    """

    timeout: float | None = None
    max_rows: int = 0
    frame: bool = False
    arrow: bool = False
    numeric_as_float: bool = False
    cached: bool = False
    recording: Recording | None = None


async def run_statement(
    conn: asyncpg.Connection,
    bound: BoundStatement,
    fetch: Fetch,
    progress: Progress | None = None,
) -> StatementResult:
    """Prepare and run one bound statement on a connection.

    Parameters
    ----------
    conn : asyncpg.Connection
    bound : BoundStatement
        SQL with ``$n`` placeholders and the values.
    fetch : Fetch
        Timeout, row limit, and what the rows become.
    progress : Progress, optional
        Counts rows as they arrive (queries are then fetched in growing chunks).

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
    if fetch.recording is None:
        return await _run_statement(conn, bound, fetch, progress)
    with fetch.recording.start(
        bound.source.text, parameter_names(bound.names), pid=conn.get_server_pid()
    ) as pending:
        result = await _run_statement(conn, bound, fetch, progress)
        pending.rows = result_rows(result)
    return result


def result_rows(result: StatementResult) -> int | None:
    """Rows a statement returned, or affected as its command tag says.

    Parameters
    ----------
    result : StatementResult

    Returns
    -------
    int or None
    """
    if result.table is not None:
        return int(result.table.num_rows)
    if result.frame is not None:
        return len(result.frame)
    if result.returns_rows:
        return len(result.records)
    return rows_of(result.status)


async def _run_statement(
    conn: asyncpg.Connection,
    bound: BoundStatement,
    fetch: Fetch,
    progress: Progress | None,
) -> StatementResult:
    started = time.perf_counter()
    # Pool connections are proxies, which cannot be weakly referenced: they
    # start afresh each time, as their statements' types may differ per backend.
    remembered = _cache_for(conn) if fetch.cached else _ConnectionCache()
    categories = remembered.categories
    # Behind a pooler no prepared statement is kept (runtime.connect); the
    # short-result hints depend on the SQL alone and stay.
    cache = remembered.statements if fetch.cached and caches_statements(conn) else None
    hints = remembered.hints if fetch.cached else None
    timeout, max_rows = fetch.timeout, fetch.max_rows
    copy_ok = fetch.frame and not max_rows and decode.is_available()
    use_cache = cache is not None and not conn.is_in_transaction()
    for attempt in (0, 1):
        stmt = await _prepare(conn, bound.sql, timeout, cache if use_cache else None)
        # Naive datetimes read in the session's zone, as the server reads naive literals.
        bound = zones.localize(bound, stmt.get_parameters(), conn)
        try:
            attributes = stmt.get_attributes()
            with frames.in_python_range(_time_columns(attributes)):
                copyable = bool(attributes) and _copyable(bound.sql)
                short = bool(hints and hints.get(bound.sql))
                if (
                    copy_ok
                    and copyable
                    and not short
                    and await decode.supports(
                        conn, attributes, fetch.numeric_as_float, export=fetch.arrow
                    )
                ):
                    result = await _copy_path(conn, bound, fetch, categories, progress)
                    if result is not None:
                        if hints is not None:
                            rows = result_rows(result) or 0
                            _remember(hints, bound.sql, rows <= _SHORT_ROWS)
                        result.elapsed = time.perf_counter() - started
                        return result
                # A result known to be short needs no progress counting: one round trip.
                if copyable and (max_rows or (progress is not None and not short)):
                    records = await _fetch_in_chunks(conn, stmt, bound.args, fetch, progress)
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
    elapsed = time.perf_counter() - started
    return StatementResult(status, columns, records, elapsed, zone=zones.result_zone(conn))


def _time_columns(attributes: Sequence[Any]) -> list[str]:
    """The columns whose values may fall outside Python's range (all if none is a time)."""
    times = [a.name for a in attributes if a.type.name in frames.TIME_TYPES]
    return times or [a.name for a in attributes]


async def _copy_path(
    conn: asyncpg.Connection,
    bound: BoundStatement,
    fetch: Fetch,
    categories: TypeCategories,
    progress: Progress | None,
) -> StatementResult | None:
    """Rows through binary COPY into a DataFrame or an Arrow table; None: take the Records."""
    # Prepared afresh, never from the cache: the parser must see the column
    # types as they are now (a cached int4 column altered to float4 would
    # decode silently wrong).  Unnamed, so there is nothing to close later.
    stmt = await conn.prepare(bound.sql, name="", timeout=fetch.timeout)
    attributes = stmt.get_attributes()
    if not attributes:
        return None
    query = copytext.copy_query(bound, stmt.get_parameters())
    seen = [0, 0]
    zone = zones.result_zone(conn)

    def count(rows: int, size: int) -> None:
        if progress is not None:
            progress.add(rows - seen[0], size - seen[1])
        seen[0], seen[1] = rows, size

    # Arrow tables take the zone by name, DataFrames as a tzinfo.
    copy: Callable[..., Awaitable[Any]] = (
        functools.partial(arrow.copy_table, zone=zones.zone_name(zone))
        if fetch.arrow
        else functools.partial(decode.copy_frame, zone=zone)
    )
    try:
        async with bound_values(conn, bound, query):
            got = await copy(
                conn,
                query.sql,
                attributes,
                numeric_as_float=fetch.numeric_as_float,
                timeout=fetch.timeout,
                on_progress=count,
            )
    except (UnsupportedColumnError, ColumnMismatchError):
        return None
    columns = await categories.columns(conn, attributes)
    rows = got.num_rows if fetch.arrow else len(got)
    frame, table = (None, got) if fetch.arrow else (got, None)
    return StatementResult(f"SELECT {rows}", columns, [], frame=frame, zone=zone, table=table)
