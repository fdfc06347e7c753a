"""Load a DataFrame, an Arrow table, a CSV file or a Parquet file into a table with COPY.

DataFrames (pandas or polars), Arrow tables and Parquet files go to the server
in PostgreSQL's binary COPY format, which it reads at about twice the speed of
CSV: the table's column types are read from the catalog first, each column of
a chunk is turned into its binary values (numpy for fixed-width types, Arrow buffers for text, a C
encoder, ``_pgencode``, for objects and for the interleaving into rows), and
the next chunk is encoded while the server stores the previous one.  A column
the encoder cannot write exactly as the server would read its CSV text (a
user-defined type, ``float64`` into ``numeric``, a ``str`` in an ``integer``
column) sends the whole load as CSV instead, written in C++ by pyarrow, and the
server converts; a value found unencodable half-way (a ragged list, a number
out of range) undoes the binary rows sent so far and starts over as CSV.  CSV
files go to the server as they are.  The whole load is one transaction on the
session (a savepoint when the session is already in a transaction): an error
or Ctrl-C half-way leaves the table as it was.

``--create`` makes the table from the data's types:

==================================  ====================
pandas                              PostgreSQL
==================================  ====================
``Int8``/``Int16``, ``int8/16``     ``smallint``
``Int32``, ``int32``, ``UInt16``    ``integer``
``Int64``, ``int64``, ``UInt32``    ``bigint``
``UInt64``                          ``numeric(20)``
``float32`` / ``float64``           ``real`` / ``double precision``
``bool``, ``boolean``               ``boolean``
``str``, ``string``, ``category``   ``text``
``datetime64[.., tz]``              ``timestamptz``
``datetime64`` (all midnights,      ``date``
second resolution, as pgmagic
gives dates)
``datetime64``                      ``timestamp``
``timedelta64``                     ``interval``
objects: ``Decimal``                ``numeric``
objects: ``dict``                   ``jsonb``
objects: lists of str/int/float/    ``text[]``, ``bigint[]``,
bool                                ``double precision[]``, ``boolean[]``
objects: other lists                ``jsonb``
objects: ``uuid.UUID``, ``bytes``   ``uuid``, ``bytea``
objects: ``date``, ``time``,        ``date``, ``time``,
``datetime``                        ``timestamp[tz]``
anything else                       ``text``
==================================  ====================

A polars DataFrame (through ``to_arrow()``, no copy), a ``pyarrow.Table``,
``RecordBatch`` or ``RecordBatchReader``, and a pandas DataFrame of
``pandas.ArrowDtype`` columns are read from their Arrow buffers; ``--create``
gives their columns the types :mod:`pgmagic.results.arrow` reads back, so
what ``--arrow`` or ``--polars`` gave loads into a table of the same types:

==================================  ====================
Arrow (polars)                      PostgreSQL
==================================  ====================
int8/int16 (Int8/Int16), uint8      ``smallint``
int32 (Int32), uint16               ``integer``
int64 (Int64), uint32               ``bigint``
uint64 (UInt64)                     ``numeric(20)``
float16/32, float64                 ``real``, ``double precision``
bool (Boolean)                      ``boolean``
decimal128/256 (Decimal)            ``numeric``
string, large_string, string_view,  ``text``
dictionary (String, Categorical)
timestamp[tz] (Datetime with and    ``timestamptz``, ``timestamp``
without a zone)
date32 (Date)                       ``date``
duration (Duration)                 ``interval``
time64 (Time)                       ``time``
arrow.uuid                          ``uuid``
binary (Binary)                     ``bytea``
list of one of these (List)         its ``[]``, any dimensions
null (Null)                         ``text`` (all NULL)
==================================  ====================

Other Arrow types (structs, maps) are refused in one line naming the column.

Missing values (``None``, ``NaN``, ``pd.NA``, ``NaT``) are stored as NULL; in
lists only ``None`` is.  Naive datetimes (and dates) appended to a
``timestamptz`` column are wall times in the session's ``TimeZone``, as the
server reads naive text (:func:`pgmagic.bulk.encode.read_in_zone`).  Sent in
binary, a ``Decimal`` keeps its own scale, ``timedelta`` values become whole
days plus time (asyncpg's convention), and nanosecond timestamps are rounded to
microseconds, half to even, as the server rounds text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import os
import queue
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd

from pgmagic import _oids as oids
from pgmagic.bulk.coltypes import pg_type_for
from pgmagic.bulk.encode import Target, pgencode
from pgmagic.bulk.sources import (
    RESTART,
    CsvFile,
    Format,
    Frames,
    arrow_frames,
    csv_file_columns,
    is_csv,
    parquet_frames,
)
from pgmagic.errors import DATABASE_ERRORS, OptionError, QueryCancelled, render
from pgmagic.results.progress import Progress
from pgmagic.runtime.history import Recording
from pgmagic.runtime.loop import Runtime
from pgmagic.runtime.waiting import Running

__all__ = ["MODES", "LoadResult", "load", "split_table_name"]

# What a load does to its table; checked in load().
MODES = ("create", "append", "replace")
_DONE = object()


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a load did.

    Attributes
    ----------
    table : str
    rows : int
    seconds : float
    created : bool
    copy_format : {"binary", "csv"}
        The format the rows went to the server in.
    replaced : bool
        The table existed and was dropped and made again (``--replace``).
    """

    table: str
    rows: int
    seconds: float
    created: bool
    copy_format: str = "csv"
    replaced: bool = False

    def summary(self) -> str:
        """``1,000,000 rows → events (created) in 2.1 s · 476,190 rows/s``."""
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        made = " (replaced)" if self.replaced else " (created)" if self.created else ""
        rows = f"{self.rows:,} row{'' if self.rows == 1 else 's'}"
        return f"{rows} → {self.table}{made} in {self.seconds:.1f} s · {rate:,.0f} rows/s"


_IDENT = r'(?:"(?:[^"]|"")+"|[^\s."]+)'
_TABLE_RE = re.compile(rf"\s*({_IDENT})(?:\.({_IDENT}))?\s*\Z")


def split_table_name(text: str) -> tuple[str | None, str]:
    """``schema.table`` into its parts, as PostgreSQL reads them.

    Unquoted names fold to lower case; quoted ones keep their case.

    Parameters
    ----------
    text : str

    Returns
    -------
    (schema or None, table)

    Examples
    --------
    >>> split_table_name('Sales."Q1 Orders"')
    ('sales', 'Q1 Orders')
    """
    match = _TABLE_RE.match(text)
    if match is None:
        raise OptionError(f"not a table name: {text!r}")

    def unquote(part: str) -> str:
        if part.startswith('"'):
            return part[1:-1].replace('""', '"')
        return part.lower()

    first, second = match.group(1), match.group(2)
    if second is None:
        return None, unquote(first)
    return unquote(first), unquote(second)


def _quote(schema: str | None, table: str) -> str:
    def ident(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return f"{ident(schema)}.{ident(table)}" if schema else ident(table)


def _shown(schema: str | None, table: str) -> str:
    def part(name: str) -> str:
        plain = re.fullmatch(r"[a-z_][a-z0-9_$]*", name) is not None
        return name if plain else '"' + name.replace('"', '""') + '"'

    return f"{part(schema)}.{part(table)}" if schema else part(table)


class _Feed:
    """The chunk queue, read on the loop thread as the source of COPYs."""

    def __init__(self, chunks: queue.Queue[Any]) -> None:
        self._chunks = chunks
        self.restarted = False

    async def get(self) -> Any:
        item = await asyncio.to_thread(self._chunks.get)
        if isinstance(item, BaseException):
            raise item
        return item

    async def binary(self) -> AsyncIterator[bytes]:
        # Header and trailer are sent here, so a restart can end the stream
        # cleanly between two chunks: the COPY succeeds and is rolled back.
        yield pgencode.HEADER
        while (item := await self.get()) is not _DONE:
            if item is RESTART:
                self.restarted = True
                break
            yield item
        yield pgencode.TRAILER

    async def csv(self) -> AsyncIterator[bytes]:
        while (item := await self.get()) is not _DONE:
            yield item


async def _table_columns(
    conn: asyncpg.Connection, schema: str | None, table: str
) -> dict[str, Target]:
    rows = await conn.fetch(
        "SELECT a.attname, a.atttypid,"
        " CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0::oid END"
        " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
        _quote(schema, table),
    )
    # Naive values going into timestamptz are read in the session's zone.
    zone = getattr(conn.get_settings(), "TimeZone", None) or "UTC"
    zoned = (oids.TIMESTAMPTZ, oids.TIMESTAMPTZ_ARRAY)
    return {
        row[0]: Target(int(row[1]), int(row[2]), zone if int(row[1]) in zoned else None)
        for row in rows
    }


def _copied(status: Any) -> int:
    return int(str(status).split()[-1])


async def _copy_in(
    runtime: Runtime,
    schema: str | None,
    table: str,
    columns: list[str],
    types: list[str],
    mode: str,
    chunks: queue.Queue[Any],
    targets: concurrent.futures.Future[dict[str, Target]],
    utc: bool,
    recording: Recording,
) -> tuple[bool, int, str, bool]:
    session = await runtime.session()
    async with session.atomic() as conn:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", _quote(schema, table))
        created = False
        replaced = bool(mode == "replace" and exists)
        if mode == "create" and exists:
            raise OptionError(
                f"table {_quote(schema, table)} already exists; use --append or --replace"
            )
        if mode == "append" and not exists:
            raise OptionError(f"table {_quote(schema, table)} does not exist; use --create")
        if mode == "replace" and exists:
            await conn.execute(f"DROP TABLE {_quote(schema, table)}")
        if mode in ("create", "replace"):
            definition = ", ".join(
                f"{_quote(None, c)} {t}" for c, t in zip(columns, types, strict=True)
            )
            await conn.execute(f"CREATE TABLE {_quote(schema, table)} ({definition})")
            created = True
        # The waiting thread picks the format from the table's column types.
        targets.set_result(await _table_columns(conn, schema, table))
        names = ", ".join(_quote(None, c) for c in columns)
        copy = f"COPY {_quote(schema, table)} ({names}) FROM STDIN"
        with recording.start(copy, pid=conn.get_server_pid()) as pending:
            rows, copy_format = await _copy_rows(runtime, conn, schema, table, columns, chunks, utc)
            pending.rows = rows
    return created, rows, copy_format, replaced


async def _copy_rows(
    runtime: Runtime,
    conn: asyncpg.Connection,
    schema: str | None,
    table: str,
    columns: list[str],
    chunks: queue.Queue[Any],
    utc: bool,
) -> tuple[int, str]:
    feed = _Feed(chunks)
    start = await feed.get()
    if not isinstance(start, Format):
        raise RuntimeError("load stopped")
    if start is Format.BINARY:
        await conn.execute("SAVEPOINT pgmagic_binary")
        status = await conn.copy_to_table(
            table,
            source=feed.binary(),
            columns=columns,
            schema_name=schema,
            format="binary",
            timeout=runtime.settings.command_timeout,
        )
        if not feed.restarted:
            await conn.execute("RELEASE SAVEPOINT pgmagic_binary")
            return _copied(status), Format.BINARY.value
        await conn.execute("ROLLBACK TO SAVEPOINT pgmagic_binary")
    if utc:
        zone = await conn.fetchval("SELECT current_setting('TimeZone')")
        await conn.execute("SELECT set_config('TimeZone', 'UTC', true)")
    status = await conn.copy_to_table(
        table,
        source=feed.csv(),
        columns=columns,
        schema_name=schema,
        format="csv",
        timeout=runtime.settings.command_timeout,
    )
    if utc:
        await conn.execute("SELECT set_config('TimeZone', $1, true)", zone)
    return _copied(status), Format.CSV.value


def load(
    runtime: Runtime,
    source: Any,
    table: str,
    *,
    mode: str = "create",
    on_tick: Callable[[Progress], None] | None = None,
) -> LoadResult:
    """Load rows into a table with COPY, in one transaction; Ctrl-C undoes it.

    Parameters
    ----------
    runtime : Runtime
    source : DataFrame, Arrow table or path
        A pandas or polars DataFrame, a ``pyarrow.Table``, ``RecordBatch``
        or ``RecordBatchReader``, or a ``.csv``, ``.csv.gz`` or ``.parquet``
        file.
    table : str
        ``name`` or ``schema.name``, as written in SQL.
    mode : {"create", "append", "replace"}
        Make a new table, add to an existing one, or drop and re-create it.
    on_tick : callable, optional
        Called with the :class:`Progress` as chunks are sent.

    Returns
    -------
    LoadResult

    Examples
    --------
    >>> load(runtime, df, "events", mode="create").summary()  # doctest: +SKIP
    '1,000,000 rows → events (created) in 2.1 s · 476,190 rows/s'
    """
    if mode not in MODES:
        raise OptionError(f"mode must be one of {', '.join(MODES)}")
    schema, name = split_table_name(table)
    progress = Progress()
    stream: Callable[[dict[str, Target]], Iterator[tuple[Any, int]]]
    arrow = None if isinstance(source, pd.DataFrame | str | os.PathLike) else arrow_frames(source)
    if isinstance(source, pd.DataFrame) or arrow is not None:
        read, frame = (lambda: iter([source]), source) if arrow is None else arrow
        columns = [str(c) for c in frame.columns]
        types = [pg_type_for(frame.iloc[:, i]) for i in range(frame.shape[1])]
        stream = Frames(read, frame, types).stream
    elif not isinstance(source, str | os.PathLike):
        raise OptionError(
            f"load takes a DataFrame (pandas or polars), an Arrow table or a file, "
            f"not a {type(source).__name__}"
        )
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise OptionError(f"no such file: {str(path)!r}")
        lowered = path.name.lower()
        if lowered.endswith(".parquet"):
            import pyarrow.parquet as pq

            schema_frame = pq.ParquetFile(path).schema_arrow.empty_table().to_pandas()
            first = next(parquet_frames(path), schema_frame)
            columns = [str(c) for c in first.columns]
            types = [pg_type_for(first.iloc[:, i]) for i in range(first.shape[1])]
            stream = Frames(lambda: parquet_frames(path), first, types).stream
        elif is_csv(path):
            columns, types = csv_file_columns(path)
            stream = CsvFile(path).stream
        else:
            raise OptionError("load reads DataFrames, .csv, .csv.gz and .parquet files")
    if not columns:
        raise OptionError("nothing to load: the data has no columns")
    if len(set(columns)) != len(columns):
        raise OptionError("the data has duplicate column names")
    chunks: queue.Queue[Any] = queue.Queue(maxsize=4)
    targets: concurrent.futures.Future[dict[str, Target]] = concurrent.futures.Future()
    utc = not isinstance(source, str | os.PathLike) or not is_csv(Path(source))
    running = runtime.start(
        _copy_in(
            runtime,
            schema,
            name,
            columns,
            types,
            mode,
            chunks,
            targets,
            utc,
            runtime.history.recording(),
        )
    )
    try:
        with _gc_paused():
            if _table_ready(targets, running):
                for item, rows in stream(targets.result()):
                    if not _put(chunks, item, running):
                        break
                    if item is RESTART:
                        progress.reset()
                    elif rows:
                        progress.add(rows, len(item))
                        if on_tick is not None:
                            on_tick(progress)
        _put(chunks, _DONE, running)
        created, rows_loaded, copy_format, replaced = running.wait()
    except KeyboardInterrupt:
        _abort(chunks, _DONE)
        running.cancel()
        raise QueryCancelled("load cancelled; the table is as it was") from None
    except QueryCancelled:
        _abort(chunks, _DONE)
        raise QueryCancelled("load cancelled; the table is as it was") from None
    except DATABASE_ERRORS as error:
        raise render(error) from None
    except BaseException as error:
        if not running.done():
            _abort(chunks, error if isinstance(error, Exception) else RuntimeError("load stopped"))
            running.cancel()
        raise
    seconds = time.perf_counter() - progress.started
    return LoadResult(_shown(schema, name), rows_loaded, seconds, created, copy_format, replaced)


def _table_ready(
    targets: concurrent.futures.Future[dict[str, Target]], running: Running[Any]
) -> bool:
    """Wait for the table's column types; False when the COPY side ended first (an error)."""
    while not targets.done():
        if running.done():
            return False
        # polled, so that Ctrl-C reaches this thread
        concurrent.futures.wait(
            [targets, running.result], timeout=0.05, return_when=concurrent.futures.FIRST_COMPLETED
        )
    return True


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Conversion makes millions of short-lived strings; with a large DataFrame
    # alive, each collection walks all of its objects and costs more than the work.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _put(chunks: queue.Queue[Any], item: Any, running: Running[Any]) -> bool:
    """Hand a chunk to the COPY; False when the COPY has already ended (an error)."""
    while not running.done():
        try:
            chunks.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _abort(chunks: queue.Queue[Any], item: Any) -> None:
    # Make room, then tell a source waiting in chunks.get() to stop.
    with contextlib.suppress(queue.Empty):
        while True:
            chunks.get_nowait()
    with contextlib.suppress(queue.Full):
        chunks.put_nowait(item)
