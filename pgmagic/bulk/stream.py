"""Big results, a chunk at a time, through a server-side cursor or binary COPY.

A :class:`Stream` holds a pool connection of its own (never the session) with a
transaction open, because cursors live in transactions.  It hands out one
DataFrame per ``chunksize`` rows (pandas, or a ``pyarrow.Table`` or polars
frame of :mod:`pgmagic.results.arrow`'s types, each chunk with the first's),
so only one chunk is in memory at a time, and it ends its transaction as soon
as it is exhausted, closed, garbage-collected, interrupted, or the runtime
closes.  As a last guard against a forgotten stream
keeping a backend "idle in transaction", the transaction carries an
``idle_in_transaction_session_timeout``.

Arrow, polars and ``dtype_backend="pyarrow"`` chunks of a plain query come
from the COPY parser's batches, as a whole result does
(:func:`pgmagic.results.arrow.copy_parsed`), cut into ``chunksize`` rows
without a copy: no Python object per value.  The COPY runs while the
chunks are read; when the reader falls behind, the server waits (asyncpg
stops reading), and a COPY left unread for ``idle_timeout`` seconds is
ended by the client, since the server sees a busy connection, not an idle
transaction.

Use it as an iterator in plain code (each step waits on the runtime loop and
Ctrl-C cancels on the server) or as an async iterator with ``async for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from pgmagic._oids import CopyLayout
from pgmagic.errors import (
    DATABASE_ERRORS,
    OptionError,
    QueryCancelled,
    StreamExpired,
    blame,
    render,
)
from pgmagic.results import arrow, decode, frames, zones
from pgmagic.results.cell import DtypeBackend, FrameKind, builds_arrow
from pgmagic.results.copyout import bound_values
from pgmagic.results.statement import TypeCategories
from pgmagic.runtime.history import Pending, parameter_names
from pgmagic.runtime.loop import Runtime
from pgmagic.sql import copytext
from pgmagic.sql.params import BoundStatement

__all__ = ["Stream", "StreamExpired", "StreamState"]

DEFAULT_CHUNKSIZE = 50_000


class StreamState(enum.Enum):
    """Where a stream is in its life."""

    NEW = "not started"
    OPEN = "open"
    DONE = "exhausted"
    CLOSED = "closed"


@dataclass
class _Cursor:
    """Everything the loop thread owns for one stream (no reference to the Stream)."""

    runtime: Any = None
    pool: Any = None
    conn: Any = None
    cursor: Any = None
    columns: list[frames.Column] = field(default_factory=list)
    # The session's TimeZone, carried to the stream's connection.
    zone: dt.tzinfo = zones.UTC
    # The history's entry: the stream is one statement, from open to end.
    pending: Pending | None = None
    rows: int = 0
    # The COPY that fills ``batches`` (parser batches, then None at the end,
    # or the error that stopped it), when the chunks come from COPY.
    copying: asyncio.Task[None] | None = None
    batches: asyncio.Queue[Any] | None = None

    async def close(
        self, commit: bool, error: BaseException | None = None, *, mid_copy: bool = False
    ) -> None:
        copying, self.copying = self.copying, None
        if copying is not None and not copying.done() and copying is not asyncio.current_task():
            mid_copy = True
            copying.cancel()
            with contextlib.suppress(BaseException):  # what it raised is the caller's news
                await copying
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.rows = self.rows
            pending.finish(error)
        conn, self.conn, self.cursor = self.conn, None, None
        if conn is None:
            return
        # A connection the server closed may already be back in the pool (asyncpg
        # releases it when it learns of the close), and then every call raises
        # InterfaceError; the pool discards broken connections itself.
        if mid_copy:
            # A COPY ended by the client is cancelled on the server, but asyncpg
            # refuses further statements until the server's answer arrives;
            # closing the connection ends its transaction at once.
            conn.terminate()
        else:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await conn.execute("COMMIT" if commit else "ROLLBACK")
        self.runtime.detach_log(conn)
        with contextlib.suppress(asyncpg.InterfaceError):
            await self.pool.release(conn)


async def _copy(
    state: _Cursor,
    bound: BoundStatement,
    query: copytext.CopyQuery,
    parser: Any,
    chunksize: int,
    idle_timeout: float,
) -> None:
    """The COPY task: parser batches into ``state.batches``, then None or the error.

    It holds no reference to its Stream, which can then be garbage-collected
    (and its transaction ended) while the COPY waits.
    """
    batches = state.batches
    assert batches is not None
    wait = idle_timeout if idle_timeout > 0 else None

    async def hand_over(nrows: int, payload: Any) -> None:
        await asyncio.wait_for(batches.put((nrows, payload)), wait)

    try:
        async with bound_values(state.conn, bound, query):
            await arrow.copy_parsed(
                state.conn, query.sql, parser, hand_over, batch_rows=chunksize, timeout=None
            )
    except Exception as error:
        while not batches.empty():  # the error goes next, whatever was left unread
            batches.get_nowait()
        if isinstance(error, TimeoutError):
            error = StreamExpired(_expired(idle_timeout))
            await state.close(commit=False, error=error, mid_copy=True)
        batches.put_nowait(error)
        return
    await batches.put(None)


def _expired(idle_timeout: float) -> str:
    return (
        "the stream's connection was closed: it sat unread longer than "
        f"PgMagics.stream_idle_timeout ({idle_timeout:g} s), or the server "
        "ended it; run the query again"
    )


def _abandon(runtime: Runtime, state: _Cursor) -> None:
    # Runs when a Stream is garbage-collected without being closed.
    if state.conn is not None and not runtime.closed:
        with contextlib.suppress(Exception):
            runtime.submit(state.close(commit=False))


class Stream:
    """An iterator of DataFrames over a server-side cursor.

    Parameters
    ----------
    runtime : Runtime
    bound : BoundStatement
        The query, with its values.
    chunksize : int
        Rows per DataFrame.
    numeric_as_float : bool
        Give ``numeric`` as ``float64``.
    idle_timeout : float
        Seconds the stream's transaction may sit idle before the server ends
        it (0: never).
    frame : FrameKind
        What each chunk is: a pandas DataFrame, a ``pyarrow.Table`` or a
        ``polars.DataFrame`` (every chunk with the first chunk's types).
    dtype_backend : DtypeBackend
        The dtypes of pandas chunks; ``PYARROW`` gives ``pandas.ArrowDtype``
        columns over each chunk's Arrow table.
    recorded : bool
        Record the query in the history (an export records its own).

    Examples
    --------
    >>> for df in pgmagic.stream("SELECT * FROM events", chunksize=100_000):  # doctest: +SKIP
    ...     process(df)
    """

    def __init__(
        self,
        runtime: Runtime,
        bound: BoundStatement,
        *,
        chunksize: int = DEFAULT_CHUNKSIZE,
        numeric_as_float: bool = False,
        idle_timeout: float = 300.0,
        frame: FrameKind = FrameKind.PANDAS,
        dtype_backend: DtypeBackend = DtypeBackend.NUMPY_NULLABLE,
        recorded: bool = True,
    ) -> None:
        if chunksize < 1:
            raise OptionError(f"chunksize must be at least 1, got {chunksize}")
        if frame is FrameKind.POLARS:
            arrow.require_polars()
        self.frame = frame
        self.dtype_backend = dtype_backend
        self._schema: Any = None
        # The COPY path: parser batches to record batches, and those not yet handed out.
        self._convert: arrow.RecordBatches | None = None
        self._buffer: list[Any] = []
        self._buffered = 0
        self._ended = False
        self._runtime = runtime
        self._bound = bound
        self.chunksize = chunksize
        self._numeric_as_float = numeric_as_float
        self._idle_timeout = idle_timeout
        self._cursor = _Cursor()
        self._recording = runtime.history.recording() if recorded else None
        self.state = StreamState.NEW
        self.rows = 0
        self.chunks = 0
        self._finalizer = weakref.finalize(self, _abandon, runtime, self._cursor)
        runtime.track(self)

    @property
    def columns(self) -> list[frames.Column]:
        """The result's columns (known once the stream is open)."""
        return self._cursor.columns

    @property
    def zone(self) -> dt.tzinfo:
        """The zone timestamptz columns are shown in (the session's, once the stream is open)."""
        return self._cursor.zone

    async def _open(self) -> None:
        state = self._cursor
        state.runtime = self._runtime
        state.pool = await self._runtime.pool()
        state.conn = await state.pool.acquire()
        self._runtime.attach_log(state.conn)
        if self._recording is not None:
            state.pending = self._recording.start(
                self._bound.source.text,
                parameter_names(self._bound.names),
                pid=state.conn.get_server_pid(),
            )
        try:
            await state.conn.execute("BEGIN")
            await self._runtime.apply_carried_settings(state.conn)
            if self._idle_timeout > 0:
                milliseconds = int(self._idle_timeout * 1000)
                await state.conn.execute(
                    f"SET LOCAL idle_in_transaction_session_timeout = {milliseconds}"
                )
            stmt = await state.conn.prepare(self._bound.sql)
            if not stmt.get_attributes():
                raise OptionError("streaming needs a statement that returns rows")
            attributes = stmt.get_attributes()
            state.columns = await TypeCategories().columns(state.conn, attributes)
            state.zone = zones.result_zone(state.conn)
            bound = zones.localize(self._bound, stmt.get_parameters(), state.conn)
            if await self._copies(bound, attributes):
                plan = await decode.plan_columns(
                    state.conn, attributes, self._numeric_as_float, export=True
                )
                self._convert = arrow.RecordBatches(plan, zones.zone_name(state.zone))
                query = copytext.copy_query(bound, stmt.get_parameters())
                state.batches = asyncio.Queue(maxsize=1)
                parser = decode.new_parser(plan, CopyLayout.ARROW)
                state.copying = asyncio.get_running_loop().create_task(
                    _copy(state, bound, query, parser, self.chunksize, self._idle_timeout)
                )
            else:
                state.cursor = await stmt.cursor(*bound.args)
        except BaseException as error:
            await asyncio.shield(state.close(commit=False, error=error))
            if isinstance(error, asyncpg.PostgresError):
                blame(error, self._bound)
            raise

    async def _copies(self, bound: BoundStatement, attributes: Any) -> bool:
        """Whether the chunks come from binary COPY (Arrow chunks of a plain query)."""
        # An init hook may install codecs that change how types decode; the
        # parser decodes by itself, so it only runs when no hook could disagree.
        return (
            builds_arrow(self.frame, self.dtype_backend)
            and decode.is_available()
            and self._runtime.settings.init is None
            and copytext.copyable(bound.sql)
            and await decode.supports(
                self._cursor.conn, attributes, self._numeric_as_float, export=True
            )
        )

    async def _fetch(self) -> Any:
        """The next records (cursor) or parser batch (COPY); None at the end."""
        if self.state is StreamState.NEW:
            await self._open()
            self.state = StreamState.OPEN
        if self.state is not StreamState.OPEN:
            return None
        batches = self._cursor.batches
        try:
            if batches is not None:
                got = await batches.get()
                if isinstance(got, BaseException):
                    raise got
                if got is not None:
                    self._cursor.rows += got[0]
                    return got
                self.state = StreamState.DONE
                await self._cursor.close(commit=True)
                return None
            names = [c.name for c in self._cursor.columns]
            with frames.in_python_range(names):
                records: list[Any] = await self._cursor.cursor.fetch(self.chunksize)
        except StreamExpired:
            self.state = StreamState.CLOSED
            raise
        except BaseException as error:
            self.state = StreamState.CLOSED
            await asyncio.shield(self._cursor.close(commit=False, error=error))
            lost = (
                asyncpg.PostgresConnectionError,
                asyncpg.InterfaceError,
                asyncpg.IdleInTransactionSessionTimeoutError,
                ConnectionError,
            )
            if isinstance(error, lost):
                raise StreamExpired(_expired(self._idle_timeout)) from None
            if isinstance(error, asyncpg.PostgresError):
                blame(error, self._bound)
            raise
        self._cursor.rows += len(records)
        if len(records) < self.chunksize:
            self.state = StreamState.DONE
            await self._cursor.close(commit=True)
        return records or None

    async def aclose(self) -> None:
        """End the stream's transaction and give its connection back (idempotent)."""
        if self.state in (StreamState.NEW, StreamState.OPEN):
            self.state = StreamState.CLOSED
            # rows of COPY batches not handed out yet end with the stream
            self._buffer, self._buffered, self._ended = [], 0, True
            await self._cursor.close(commit=False)

    def _frame(self, records: list[Any]) -> Any:
        self.rows += len(records)
        self.chunks += 1
        if self.frame is FrameKind.PANDAS and not self.dtype_backend.arrow:
            return frames.records_to_frame(
                self._cursor.columns,
                records,
                numeric_as_float=self._numeric_as_float,
                zone=self._cursor.zone,
            )
        table = arrow.records_to_table(
            self._cursor.columns,
            records,
            numeric_as_float=self._numeric_as_float,
            zone=zones.zone_name(self._cursor.zone),
            schema=self._schema,
        )
        self._schema = table.schema
        return self._shaped(table)

    def _shaped(self, table: Any) -> Any:
        """An Arrow chunk as the kind asked for."""
        if self.frame is FrameKind.PANDAS:
            return frames.arrow_frame(table)
        return table if self.frame is FrameKind.ARROW else arrow.to_polars(table)

    def _take_in(self, got: Any) -> None:
        """A parser batch (or None, the end) into the chunks not yet handed out."""
        if got is None:
            self._ended = True
            return
        nrows, payload = got
        if nrows and self._convert is not None:
            self._buffer.append(self._convert(nrows, payload))
            self._buffered += nrows

    def _copied_chunk(self) -> Any:
        """The next ``chunksize`` rows of COPY batches, the last rows at the end, or None."""
        if self._buffered < self.chunksize and not (self._ended and self._buffered):
            return None
        import pyarrow as pa

        taken, need = [], min(self.chunksize, self._buffered)
        self._buffered -= need
        while need:
            batch = self._buffer[0]
            if batch.num_rows <= need:
                taken.append(self._buffer.pop(0))
                need -= batch.num_rows
            else:
                taken.append(batch.slice(0, need))
                self._buffer[0] = batch.slice(need)
                need = 0
        table = pa.Table.from_batches(taken)
        self.rows += table.num_rows
        self.chunks += 1
        return self._shaped(table)

    def open(self) -> Stream:
        """Start the query now, so errors show where the stream was made.

        Returns
        -------
        Stream
            ``self``.
        """
        if self.state is StreamState.NEW:
            self._wait(self._open())
            self.state = StreamState.OPEN
        return self

    def _wait(self, coro: Any) -> Any:
        try:
            return self._runtime.run(coro)
        except QueryCancelled:
            self.state = StreamState.CLOSED
            self._runtime.run(self._cursor.close(commit=False))
            raise
        except DATABASE_ERRORS as error:
            raise render(error) from None

    def __iter__(self) -> Iterator[Any]:
        return self._loop()

    def _loop(self) -> Iterator[Any]:
        """The chunks of a ``for`` loop; leaving the loop early ends the stream.

        A ``break`` (the usual way to peek) would otherwise keep the cursor's
        transaction, and its locks, until the idle timeout: ``ALTER TABLE`` on
        the table would wait with no word.  ``next(stream)`` takes one chunk
        at a time without ending it.
        """
        try:
            while True:
                try:
                    frame = next(self)
                except StopIteration:
                    return
                yield frame
        finally:
            if self.state in (StreamState.NEW, StreamState.OPEN):
                self.close()

    def __next__(self) -> Any:
        while (chunk := self._copied_chunk()) is None:
            if self._ended:
                raise StopIteration
            got = self._wait(self._fetch())
            if self._convert is None:  # a cursor's records
                if got is None:
                    raise StopIteration
                return self._frame(got)
            self._take_in(got)
        return chunk

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        while (chunk := self._copied_chunk()) is None:
            if self._ended:
                raise StopAsyncIteration
            try:
                got = await asyncio.wrap_future(self._runtime.submit(self._fetch()))
            except DATABASE_ERRORS as error:
                raise render(error) from None
            if self._convert is None:  # a cursor's records
                if got is None:
                    raise StopAsyncIteration
                return self._frame(got)
            self._take_in(got)
        return chunk

    def close(self) -> None:
        """End the stream now (rolls back its transaction); safe to call twice."""
        if self.state in (StreamState.NEW, StreamState.OPEN) and not self._runtime.closed:
            self._runtime.run(self.aclose())
        self.state = StreamState.CLOSED

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        sql = " ".join(self._bound.source.text.split())
        if len(sql) > 60:
            sql = sql[:57] + "..."
        return (
            f"<pgmagic.Stream {self.state.value}: {sql!r}, chunksize={self.chunksize:,}, "
            f"{self.chunks} chunk{'' if self.chunks == 1 else 's'} / "
            f"{self.rows:,} row{'' if self.rows == 1 else 's'} read>"
        )
