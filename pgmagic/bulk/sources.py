"""What a load reads: DataFrames in chunks, Arrow tables and polars frames, CSV and Parquet files.

Also the CSV text of values, for loads that cannot go binary.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pgmagic.bulk.coltypes import pg_type_for
from pgmagic.bulk.encode import (
    CHUNK_ROWS,
    Target,
    arrow_of,
    binary_chunks,
    binary_plan,
    is_missing,
    json_bytes,
    pgencode,
    read_in_zone,
)
from pgmagic.errors import OptionError
from pgmagic.results.frames import arrow_frame


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
    if value is None:
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
    return json_bytes(value).decode()


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


def _arrow_text_column(series: pd.Series, pg_type: str) -> Any:
    """An ArrowDtype column as the CSV writer takes it: as it is, or its text."""
    import pyarrow as pa

    array = arrow_of(series)
    kind = array.type
    written = (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_decimal(kind)
    )
    if written:
        return array
    # lists, bytes, uuid, durations, times: their text, as for object columns
    return _objects_column(array.to_pylist(), pg_type)


def _arrow_chunk(frame: pd.DataFrame, types: list[str]) -> Any:
    import pyarrow as pa

    arrays = []
    for i, pg_type in enumerate(types):
        series = frame.iloc[:, i]
        dtype = series.dtype
        if isinstance(dtype, pd.ArrowDtype):
            arrays.append(_arrow_text_column(series, pg_type))
        elif pd.api.types.is_timedelta64_dtype(dtype):
            micros = series.to_numpy(dtype="timedelta64[us]").astype("int64")
            texts = [f"{m} microseconds" for m in micros.tolist()]
            arrays.append(pa.array(texts, mask=series.isna().to_numpy(), type=pa.string()))
        elif pg_type == "date" and pd.api.types.is_datetime64_dtype(dtype):
            arrays.append(pa.array(series.array, type=pa.timestamp("s")).cast(pa.date32()))
        elif pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            values = [None if is_missing(v) else v for v in series.tolist()]
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
    for start in range(0, len(frame), CHUNK_ROWS):
        part = frame.iloc[start : start + CHUNK_ROWS]
        yield _csv_bytes(_arrow_chunk(part, types)), len(part)


def parquet_frames(path: Path) -> Iterator[pd.DataFrame]:
    """A Parquet file as DataFrames of :data:`CHUNK_ROWS` rows.

    Parameters
    ----------
    path : Path

    Yields
    ------
    DataFrame
    """
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS):
        yield batch.to_pandas()


def arrow_frames(source: Any) -> tuple[Callable[[], Iterator[pd.DataFrame]], pd.DataFrame] | None:
    """An Arrow table or polars frame as DataFrames of ``pandas.ArrowDtype`` columns.

    The columns share the Arrow buffers (a polars frame's too, through
    ``to_arrow()``), so nothing is converted before the encoder reads them
    (:func:`pgmagic.bulk.encode.binary_plan`).  View and dictionary types
    (polars' strings and categoricals) become plain strings first.

    Parameters
    ----------
    source : object
        A ``pyarrow.Table``, ``RecordBatch`` or ``RecordBatchReader`` (read
        whole: a load may have to read its data twice), or a
        ``polars.DataFrame``.

    Returns
    -------
    (callable, DataFrame) or None
        What :class:`Frames` takes: the chunks, readable again, and the
        first (or an empty frame of the columns); None when ``source`` is
        none of these.
    """
    import pyarrow as pa

    if type(source).__module__.split(".")[0] == "polars" and hasattr(source, "to_arrow"):
        source = source.to_arrow()
    if isinstance(source, pa.RecordBatchReader):
        source = source.read_all()
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if not isinstance(source, pa.Table):
        return None
    table = _plain(source)

    def read() -> Iterator[pd.DataFrame]:
        for batch in table.to_batches(max_chunksize=CHUNK_ROWS):
            yield arrow_frame(pa.Table.from_batches([batch], schema=table.schema))

    first = next(read(), None)
    return read, arrow_frame(table.slice(0, 0)) if first is None else first


def _plain(table: Any) -> Any:
    """``table`` without view or dictionary types, which the encoder does not read."""
    for i, field in enumerate(table.schema):
        wanted = _plain_type(field.type)
        if wanted != field.type:
            table = table.set_column(i, field.name, table.column(i).cast(wanted))
    return table


def _plain_type(kind: Any) -> Any:
    import pyarrow as pa

    types = pa.types
    if types.is_dictionary(kind):
        return _plain_type(kind.value_type)
    if getattr(types, "is_string_view", lambda _: False)(kind):
        return pa.large_string()
    if getattr(types, "is_binary_view", lambda _: False)(kind):
        return pa.large_binary()
    if types.is_list(kind) or types.is_large_list(kind):
        inner = _plain_type(kind.value_type)
        if inner != kind.value_type:
            return pa.list_(inner) if types.is_list(kind) else pa.large_list(inner)
    return kind


def _csv_file_chunks(path: Path) -> Iterator[tuple[bytes, int]]:
    opener: Any = open
    if path.name.endswith(".gz"):
        import gzip

        opener = gzip.open
    with opener(path, "rb") as handle:
        handle.readline()  # the header; the columns were taken from it
        while chunk := handle.read(FILE_CHUNK):
            yield chunk, chunk.count(b"\n")


def is_csv(path: Path) -> bool:
    """Whether a file is loaded as CSV (by its name).

    Parameters
    ----------
    path : Path

    Returns
    -------
    bool
    """
    return path.name.lower().endswith((".csv", ".csv.gz"))


def csv_file_columns(path: Path) -> tuple[list[str], list[str]]:
    """A CSV file's column names and, from its first block, their PostgreSQL types.

    Parameters
    ----------
    path : Path

    Returns
    -------
    (list of str, list of str)
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=FILE_CHUNK))
    except pa.ArrowInvalid as error:
        # "Empty CSV file", or a first block pyarrow cannot parse.
        raise OptionError(f"cannot read {path.name} as CSV: {error}") from None
    try:
        batch = reader.read_next_batch()
    except StopIteration:
        # A header and no rows: the columns, as text, and an empty table.
        return list(reader.schema.names), ["text"] * len(reader.schema.names)
    sample = batch.to_pandas()
    return list(sample.columns), [pg_type_for(sample[c]) for c in sample.columns]


@dataclass(frozen=True, slots=True)
class Frames:
    """DataFrames to load (one, or a Parquet file's batches), readable again."""

    read: Callable[[], Iterator[pd.DataFrame]]
    first: pd.DataFrame
    types: list[str]

    def stream(self, targets: dict[str, Target]) -> Iterator[tuple[Any, int]]:
        """The chunk queue's items: the format, then (chunk, rows) pairs."""

        def frames() -> Iterator[pd.DataFrame]:
            return (read_in_zone(frame, targets) for frame in self.read())

        if binary_plan(read_in_zone(self.first, targets), targets) is not None:
            yield Format.BINARY, 0
            try:
                yield from binary_chunks(frames(), targets)
                return
            except pgencode.Unencodable:
                yield RESTART, 0
        else:
            yield Format.CSV, 0
        for frame in frames():
            yield from _frame_chunks(frame, self.types)


@dataclass(frozen=True, slots=True)
class CsvFile:
    """A CSV file to load: sent as it is, whatever the table's types."""

    path: Path

    def stream(self, targets: dict[str, Target]) -> Iterator[tuple[Any, int]]:
        """The chunk queue's items: the format, then (chunk, rows) pairs."""
        yield Format.CSV, 0
        yield from _csv_file_chunks(self.path)


FILE_CHUNK = 1 << 20
# In the chunk queue: the binary rows so far are to be undone, CSV follows.
RESTART = object()


class Format(enum.Enum):
    """The COPY format a load starts with; the first item in the chunk queue."""

    BINARY = "binary"
    CSV = "csv"
