"""Load a DataFrame, a CSV file or a Parquet file into a table with COPY.

DataFrames and Parquet files are turned into CSV in C++ (pyarrow), a chunk at a
time, while the server parses the previous chunk; CSV files go to the server as
they are.  The whole load is one transaction on the session (a savepoint when
the session is already in a transaction): an error or Ctrl-C half-way leaves
the table as it was.

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
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import queue
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import orjson
import pandas as pd

from pgmagic.errors import OptionError, QueryCancelled
from pgmagic.progress import Progress
from pgmagic.query import render_error
from pgmagic.runtime import Running, Runtime

__all__ = ["LoadResult", "Mode", "load", "pg_type_for", "split_table_name"]

Mode = str  # "create" | "append" | "replace"
MODES = ("create", "append", "replace")
# Small enough that converting one chunk overlaps the server parsing the last.
_CHUNK_ROWS = 25_000
_FILE_CHUNK = 1 << 20
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
    """

    table: str
    rows: int
    seconds: float
    created: bool

    def summary(self) -> str:
        """``1,000,000 rows → events (created) in 2.1 s · 476,190 rows/s``."""
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        made = " (created)" if self.created else ""
        return (
            f"{self.rows:,} rows → {self.table}{made} in {self.seconds:.1f} s · {rate:,.0f} rows/s"
        )


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


def _first(values: pd.Series) -> Any:
    non_null = values.dropna()
    return non_null.iloc[0] if len(non_null) else None


_LIST_TYPES = {str: "text[]", int: "bigint[]", float: "double precision[]", bool: "boolean[]"}


def pg_type_for(series: pd.Series) -> str:
    """The PostgreSQL column type ``--create`` gives a pandas column.

    Parameters
    ----------
    series : pandas.Series

    Returns
    -------
    str

    Examples
    --------
    >>> pg_type_for(pd.Series([1, None], dtype="Int32"))
    'integer'
    """
    dtype = series.dtype
    name = str(dtype)
    by_name = {
        "int8": "smallint", "Int8": "smallint", "int16": "smallint", "Int16": "smallint",
        "uint8": "smallint", "UInt8": "smallint",
        "int32": "integer", "Int32": "integer", "uint16": "integer", "UInt16": "integer",
        "int64": "bigint", "Int64": "bigint", "uint32": "bigint", "UInt32": "bigint",
        "uint64": "numeric(20)", "UInt64": "numeric(20)",
        "float32": "real", "Float32": "real", "float64": "double precision",
        "Float64": "double precision", "bool": "boolean", "boolean": "boolean",
    }  # fmt: skip
    if name in by_name:
        return by_name[name]
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "timestamptz"
    if pd.api.types.is_datetime64_dtype(dtype):
        if name == "datetime64[s]" and _all_midnight(series):
            return "date"
        return "timestamp"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "interval"
    if isinstance(dtype, pd.CategoricalDtype) or (
        pd.api.types.is_string_dtype(dtype) and name != "object"
    ):
        return "text"
    sample = _first(series)
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, Decimal):
        return "numeric"
    if isinstance(sample, dict):
        return "jsonb"
    if isinstance(sample, list | tuple):
        kinds = {type(v) for v in sample if v is not None}
        return _LIST_TYPES.get(next(iter(kinds)), "jsonb") if len(kinds) == 1 else "jsonb"
    if isinstance(sample, uuid.UUID):
        return "uuid"
    if isinstance(sample, bytes | bytearray | memoryview):
        return "bytea"
    if isinstance(sample, dt.datetime):
        return "timestamptz" if sample.tzinfo else "timestamp"
    if isinstance(sample, dt.date):
        return "date"
    if isinstance(sample, dt.time):
        return "time"
    return "text"


def _all_midnight(series: pd.Series) -> bool:
    values = series.dropna().to_numpy(dtype="datetime64[s]").astype("int64")
    return bool(len(values)) and bool((values % 86400 == 0).all())


def _array_literal(value: Any) -> str:
    items = []
    for item in value:
        if item is None:
            items.append("NULL")
        elif isinstance(item, list | tuple):
            items.append(_array_literal(item))
        else:
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def _text_of(value: Any, pg_type: str) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, dict) or (pg_type == "jsonb" and not isinstance(value, str)):
        return _json(value)
    if isinstance(value, list | tuple):
        return _array_literal(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"{value // dt.timedelta(microseconds=1)} microseconds"
    return str(value)


def _json(value: Any) -> str:
    # orjson is several times faster than json.dumps; it refuses what JSON
    # cannot hold natively (Decimal, big ints), which json.dumps handles.
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, default=str)


def _objects_column(values: list[Any], pg_type: str) -> Any:
    """Arrow text for an object column, with the fastest exact route for its type."""
    import pyarrow as pa

    if pg_type in ("numeric", "text", "date", "time", "timestamp", "timestamptz", "boolean"):
        # pyarrow converts these Python types in C++ and writes PostgreSQL-readable
        # text; a column it cannot type (mixed values, NaN decimals) takes the loop.
        try:
            return pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
    if pg_type == "uuid":
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())
    if pg_type == "jsonb":
        texts = [None if v is None else v if isinstance(v, str) else _json(v) for v in values]
        return pa.array(texts, type=pa.string())
    return pa.array([_text_of(v, pg_type) for v in values], type=pa.string())


def _arrow_chunk(frame: pd.DataFrame, types: list[str]) -> Any:
    import pyarrow as pa

    arrays = []
    for i, pg_type in enumerate(types):
        series = frame.iloc[:, i]
        dtype = series.dtype
        if pd.api.types.is_timedelta64_dtype(dtype):
            micros = series.to_numpy(dtype="timedelta64[us]").astype("int64")
            texts = [f"{m} microseconds" for m in micros.tolist()]
            arrays.append(pa.array(texts, mask=series.isna().to_numpy(), type=pa.string()))
        elif pg_type == "date" and pd.api.types.is_datetime64_dtype(dtype):
            arrays.append(pa.array(series.array, type=pa.timestamp("s")).cast(pa.date32()))
        elif pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            values = [None if v is pd.NA else v for v in series.tolist()]
            arrays.append(_objects_column(values, pg_type))
        else:
            arrays.append(pa.array(series, from_pandas=True))
        if pa.types.is_timestamp(arrays[-1].type) and arrays[-1].type.tz is not None:
            # Written as naive UTC (the COPY runs with TimeZone = UTC): Arrow's CSV
            # writer is some thirty times slower on zoned timestamps.
            arrays[-1] = arrays[-1].cast(pa.timestamp(arrays[-1].type.unit))
    return pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(types))])


def _csv_bytes(table: Any, header: bool = False) -> bytes:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(include_header=header))
    return bytes(sink.getvalue().to_pybytes())


def _frame_chunks(frame: pd.DataFrame, types: list[str]) -> Iterator[tuple[bytes, int]]:
    for start in range(0, len(frame), _CHUNK_ROWS):
        part = frame.iloc[start : start + _CHUNK_ROWS]
        yield _csv_bytes(_arrow_chunk(part, types)), len(part)


def _parquet_frames(path: Path) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=_CHUNK_ROWS):
        yield batch.to_pandas()


def _csv_file_chunks(path: Path) -> Iterator[tuple[bytes, int]]:
    opener: Any = open
    if path.name.endswith(".gz"):
        import gzip

        opener = gzip.open
    with opener(path, "rb") as handle:
        handle.readline()  # the header; the columns were taken from it
        while chunk := handle.read(_FILE_CHUNK):
            yield chunk, chunk.count(b"\n")


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _csv_file_columns(path: Path) -> tuple[list[str], list[str]]:
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=_FILE_CHUNK))
    batch = reader.read_next_batch()
    sample = batch.to_pandas()
    return list(sample.columns), [pg_type_for(sample[c]) for c in sample.columns]


async def _copy_in(
    runtime: Runtime,
    schema: str | None,
    table: str,
    columns: list[str],
    types: list[str],
    mode: Mode,
    chunks: queue.Queue[Any],
    utc: bool,
) -> tuple[bool, int]:
    session = await runtime.session()
    async with session.atomic() as conn:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", _quote(schema, table))
        created = False
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

        async def source() -> AsyncIterator[bytes]:
            while True:
                item = await asyncio.to_thread(chunks.get)
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item

        if utc:
            zone = await conn.fetchval("SELECT current_setting('TimeZone')")
            await conn.execute("SELECT set_config('TimeZone', 'UTC', true)")
        status = await conn.copy_to_table(
            table,
            source=source(),
            columns=columns,
            schema_name=schema,
            format="csv",
            timeout=runtime.settings.command_timeout,
        )
        if utc:
            await conn.execute("SELECT set_config('TimeZone', $1, true)", zone)
    return created, int(str(status).split()[-1])


def load(
    runtime: Runtime,
    source: pd.DataFrame | str | os.PathLike[str],
    table: str,
    *,
    mode: Mode = "create",
    on_tick: Callable[[Progress], None] | None = None,
) -> LoadResult:
    """Load rows into a table with COPY, in one transaction; Ctrl-C undoes it.

    Parameters
    ----------
    runtime : Runtime
    source : DataFrame or path
        A DataFrame, or a ``.csv``, ``.csv.gz`` or ``.parquet`` file.
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
    produced: Iterator[tuple[bytes, int]]
    if isinstance(source, pd.DataFrame):
        columns = [str(c) for c in source.columns]
        types = [pg_type_for(source.iloc[:, i]) for i in range(source.shape[1])]
        produced = _frame_chunks(source, types)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise OptionError(f"no such file: {str(path)!r}")
        lowered = path.name.lower()
        if lowered.endswith(".parquet"):
            import pyarrow.parquet as pq

            schema_frame = pq.ParquetFile(path).schema_arrow.empty_table().to_pandas()
            frames_ = _parquet_frames(path)
            first = next(frames_, schema_frame)
            columns = [str(c) for c in first.columns]
            types = [pg_type_for(first.iloc[:, i]) for i in range(first.shape[1])]

            def parquet_chunks(first: pd.DataFrame = first) -> Iterator[tuple[bytes, int]]:
                yield from _frame_chunks(first, types)
                for frame in frames_:
                    yield from _frame_chunks(frame, types)

            produced = parquet_chunks()
        elif _is_csv(path):
            columns, types = _csv_file_columns(path)
            produced = _csv_file_chunks(path)
        else:
            raise OptionError("load reads DataFrames, .csv, .csv.gz and .parquet files")
    if len(set(columns)) != len(columns):
        raise OptionError("the data has duplicate column names")
    chunks: queue.Queue[Any] = queue.Queue(maxsize=4)
    utc = not isinstance(source, str | os.PathLike) or not _is_csv(Path(source))
    running = runtime.start(_copy_in(runtime, schema, name, columns, types, mode, chunks, utc))
    try:
        with _gc_paused():
            for data, rows in produced:
                if not _put(chunks, data, running):
                    break
                progress.add(rows, len(data))
                if on_tick is not None:
                    on_tick(progress)
        _put(chunks, _DONE, running)
        created, rows_loaded = running.wait()
    except KeyboardInterrupt:
        _abort(chunks, _DONE)
        running.cancel()
        raise QueryCancelled("load cancelled; the table is as it was") from None
    except QueryCancelled:
        _abort(chunks, _DONE)
        raise QueryCancelled("load cancelled; the table is as it was") from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise render_error(error) from None
    except BaseException as error:
        if not running.done():
            _abort(chunks, error if isinstance(error, Exception) else RuntimeError("load stopped"))
            running.cancel()
        raise
    seconds = time.perf_counter() - progress.started
    return LoadResult(_shown(schema, name), rows_loaded, seconds, created)


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
