"""Stream a query's result to a file, without building the whole DataFrame.

======================  ===============================================================
format                  how
======================  ===============================================================
``csv``, ``csv.gz``     ``COPY (query) TO STDOUT (FORMAT csv, HEADER)``: PostgreSQL's own
                        text forms, written as the bytes arrive
``parquet``             binary ``COPY`` decoded straight into Arrow record batches
                        (:func:`pgmagic.bulk.arrow.copy_record_batches`), a row group
                        per batch of ``chunksize`` rows
``jsonl``               binary ``COPY`` written as JSON lines by the same parser
                        (:func:`pgmagic.bulk.arrow.copy_json_lines`)
======================  ===============================================================

Parquet and JSON lines are written in a worker thread while the next batch is
decoded, so memory holds about two batches whatever the result's size.  A
query that ``COPY`` cannot run, or a column type the parser does not know,
takes a server-side cursor instead (one DataFrame per chunk); that is decided
before the query runs.

The query runs once, on a pool connection, with its values bound as
parameters.  The file is written under a temporary name next to the target
and renamed only when everything arrived, so an error or Ctrl-C never leaves
a partial file behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
import pandas as pd

from pgmagic import _oids as oids
from pgmagic.bulk import arrow
from pgmagic.bulk.stream import Stream
from pgmagic.errors import (
    DATABASE_ERRORS,
    ColumnTypeError,
    OptionError,
    QueryCancelled,
    UnsupportedColumnError,
    blame,
    render,
)
from pgmagic.results import decode, frames, zones
from pgmagic.results.copyout import bound_values, copy_out
from pgmagic.results.progress import Progress
from pgmagic.results.text import as_text
from pgmagic.runtime.history import parameter_names
from pgmagic.runtime.loop import Runtime
from pgmagic.sql.copytext import copy_query, copyable
from pgmagic.sql.params import BoundStatement

__all__ = [
    "FORMATS",
    "ExportResult",
    "Progress",
    "check_target",
    "export",
    "format_for",
    "size_text",
]

FORMATS = ("csv", "csv.gz", "parquet", "jsonl")
# Writes are batched so the loop thread hands the disk a few large writes.
_WRITE_BATCH = 1 << 20
# Rows of the first batch that decide which Parquet columns get a dictionary.
_DICTIONARY_SAMPLE = 10_000


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote.

    Attributes
    ----------
    path : pathlib.Path
    rows : int
    size : int
        Bytes in the finished file.
    seconds : float
    """

    path: Path
    rows: int
    size: int
    seconds: float

    def summary(self) -> str:
        """``10,000,000 rows → events.parquet (412 MB) in 9.8 s``."""
        rows = f"{self.rows:,} row{'' if self.rows == 1 else 's'}"
        return f"{rows} → {self.path.name} ({size_text(self.size)}) in {self.seconds:.1f} s"


def size_text(size: float) -> str:
    """``412 MB``: a file's size as the summaries show it."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def format_for(path: Path, explicit: str | None) -> str:
    """The export format: ``explicit``, else from the file name's suffix.

    Parameters
    ----------
    path : pathlib.Path
    explicit : str or None

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    OptionError
        Unknown format or suffix.
    """
    if explicit:
        chosen = explicit.lower().lstrip(".")
        if chosen not in FORMATS:
            raise OptionError(
                f"unknown export format {explicit!r}; use one of {', '.join(FORMATS)}"
            )
        return chosen
    name = path.name.lower()
    for candidate in sorted(FORMATS, key=len, reverse=True):
        if name.endswith("." + candidate):
            return candidate
    raise OptionError(
        f"cannot tell the format of {path.name!r} from its suffix; "
        f"name it .csv, .csv.gz, .parquet or .jsonl, or pass --format"
    )


class _Sink:
    """A file written under a temporary name, gzip-compressed when asked."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        self._raw: BinaryIO
        if fmt == "parquet":
            import pyarrow as pa

            # pyarrow's own file: Parquet pages reach the disk without taking the GIL.
            self._raw = pa.OSFile(str(self.partial), "wb")
        else:
            self._raw = open(self.partial, "wb")  # noqa: SIM115 - closed in finish/abort
        self.file: BinaryIO = (
            gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6)  # type: ignore[assignment]
            if fmt == "csv.gz"
            else self._raw
        )

    def finish(self) -> int:
        if self.file is not self._raw:
            self.file.close()
        self._raw.close()
        os.replace(self.partial, self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            if self.file is not self._raw:
                self.file.close()
            self._raw.close()
        with contextlib.suppress(OSError):
            self.partial.unlink()


async def _copy_csv(
    runtime: Runtime, bound: BoundStatement, sink: _Sink, progress: Progress
) -> int:
    pending: list[bytes] = []
    pending_size = 0
    header_seen = False

    async def flush() -> None:
        nonlocal pending, pending_size
        if pending:
            data, pending, pending_size = b"".join(pending), [], 0
            await asyncio.to_thread(sink.file.write, data)

    async def output(chunk: bytes) -> None:
        nonlocal pending_size, header_seen
        lines = chunk.count(b"\n")
        if not header_seen and lines:
            header_seen, lines = True, lines - 1
        progress.add(lines, len(chunk))
        pending.append(bytes(chunk))
        pending_size += len(chunk)
        if pending_size >= _WRITE_BATCH:
            await flush()

    async with runtime.acquire() as conn, conn.transaction():
        progress.pid = conn.get_server_pid()
        await runtime.apply_carried_settings(conn)
        status = await copy_out(
            conn,
            bound,
            output,
            format="csv",
            header=True,
            timeout=runtime.settings.command_timeout,
        )
    await flush()
    return int(status.split()[-1])


def _repeating_columns(batch: Any) -> list[str]:
    """The flat columns whose values repeat in the first rows, for dictionary encoding.

    On a column of mostly distinct values (ids, uuids, timestamps) Parquet
    fills a dictionary only to drop it, paying for both encodings: more than
    half the writing time of a typical wide table, for a larger file.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    sample = batch.slice(0, _DICTIONARY_SAMPLE)
    chosen = []
    for field, column in zip(sample.schema, sample.columns, strict=True):
        if pa.types.is_nested(field.type) or pa.types.is_null(field.type):
            continue
        values = column.storage if isinstance(column, pa.ExtensionArray) else column
        if 2 * pc.count_distinct(values).as_py() <= len(values) - values.null_count:
            chosen.append(field.name)
    return chosen


class _ParquetWriter:
    """Record batches into a sink's file, a row group each; the schema is the first batch's."""

    def __init__(self, sink: _Sink, progress: Progress) -> None:
        self._sink = sink
        self._progress = progress
        self._writer: Any = None

    def write(self, batch: Any) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._sink.file,
                batch.schema,
                compression="zstd",
                use_dictionary=_repeating_columns(batch),
            )
        if batch.num_rows:  # an empty result still gets its schema, without an empty row group
            before = self._sink.file.tell()
            self._writer.write_batch(batch)
            self._progress.add(0, self._sink.file.tell() - before)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def _copy_export(
    runtime: Runtime,
    bound: BoundStatement,
    chosen: str,
    sink: _Sink,
    progress: Progress,
    chunksize: int,
    numeric_as_float: bool,
) -> int | None:
    """Parquet or JSON lines through binary COPY; None when a column needs the cursor."""
    parquet = _ParquetWriter(sink, progress) if chosen == "parquet" else None
    counted = 0

    def count(rows: int, received: int) -> None:
        nonlocal counted
        progress.add(rows - counted, 0)
        counted = rows

    def write_lines(lines: memoryview) -> None:
        sink.file.write(lines)
        progress.add(0, len(lines))

    timeout = runtime.settings.command_timeout
    try:
        async with runtime.acquire() as conn, conn.transaction():
            progress.pid = conn.get_server_pid()
            await runtime.apply_carried_settings(conn)
            # Unnamed: nothing to close, and the column types are today's.
            stmt = await conn.prepare(bound.sql, name="", timeout=timeout)
            columns = stmt.get_attributes()
            names = [c.name for c in columns]
            if len(set(names)) < len(names):  # JSON keys; Parquet readers refuse repeats
                raise OptionError(
                    f"--to .{chosen} needs distinct column names; rename repeats with AS"
                )
            bound = zones.localize(bound, stmt.get_parameters(), conn)
            query = copy_query(bound, stmt.get_parameters())
            zone = zones.result_zone(conn)
            try:
                async with bound_values(conn, bound, query):
                    if parquet is not None:
                        return await arrow.copy_record_batches(
                            conn,
                            query.sql,
                            columns,
                            parquet.write,
                            numeric_as_float=numeric_as_float,
                            batch_rows=chunksize,
                            timeout=timeout,
                            on_progress=count,
                            zone=zones.zone_name(zone),
                        )
                    return await arrow.copy_json_lines(
                        conn,
                        query.sql,
                        columns,
                        write_lines,
                        numeric_as_float=numeric_as_float,
                        batch_rows=chunksize,
                        timeout=timeout,
                        on_progress=count,
                        zone=zone,
                    )
            except UnsupportedColumnError:
                return None
    except asyncpg.PostgresError as error:
        blame(error, bound)  # raised by prepare, unless the COPY recorded it
        raise
    finally:
        if parquet is not None:
            await asyncio.to_thread(parquet.close)


def _arrow_type(column: frames.Column, numeric_as_float: bool, zone: str) -> Any:
    import pyarrow as pa

    kind = frames.kind_of(column)
    simple = {
        frames.Kind.INT16: pa.int16(),
        frames.Kind.INT32: pa.int32(),
        frames.Kind.INT64: pa.int64(),
        frames.Kind.BOOL: pa.bool_(),
        frames.Kind.FLOAT32: pa.float32(),
        frames.Kind.FLOAT64: pa.float64(),
        frames.Kind.STRING: pa.string(),
        frames.Kind.TIMESTAMPTZ: pa.timestamp("us", tz=zone),
        frames.Kind.TIMESTAMP: pa.timestamp("us"),
        frames.Kind.DATE: pa.date32(),
        frames.Kind.INTERVAL: pa.duration("us"),
    }
    if kind in simple:
        return simple[kind]
    if kind is frames.Kind.NUMERIC:
        return pa.float64() if numeric_as_float else None  # decimal: scale from the data
    return {
        oids.BYTEA: pa.binary(),
        oids.TIME: pa.time64("us"),
        oids.UUID: pa.uuid(),
    }.get(column.oid, pa.string())


def _decimals(series: pd.Series, wanted: Any) -> Any:
    import pyarrow as pa

    # NaN and infinities have no decimal form: they become nulls.
    values = [v if isinstance(v, Decimal) and v.is_finite() else None for v in series.tolist()]
    if wanted is None:  # first chunk: the widest scale and precision seen
        shapes = [v.as_tuple() for v in values if v is not None]
        scale = max([0, *(-int(t.exponent) for t in shapes)])
        digits = max([scale + 1, *(len(t.digits) - int(t.exponent) for t in shapes)])
        wanted = pa.decimal128(38, scale) if digits <= 38 else pa.decimal256(76, scale)
    try:
        return pa.array(values, type=wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise OptionError(
            f"column {series.name!r}: a numeric value needs more digits than the first "
            f"chunk's {wanted}; cast it in SQL (e.g. ::numeric(20,6)) or export as csv"
        ) from None


def _arrow_column(series: pd.Series, wanted: Any) -> Any:
    import pyarrow as pa

    if wanted is None or pa.types.is_decimal(wanted):
        return _decimals(series, wanted)
    if wanted == pa.uuid():
        return pa.array([None if v is None else v.bytes for v in series.tolist()], type=wanted)
    if pa.types.is_string(wanted) and series.dtype == object:
        return pa.array(
            [
                None
                if v is None
                else v
                if isinstance(v, str)
                else json.dumps(v, default=as_text)
                if isinstance(v, dict | list)
                else as_text(v)
                for v in series.tolist()
            ],
            type=wanted,
        )
    if pa.types.is_date32(wanted):
        return pa.array(series.array, type=pa.timestamp("s")).cast(wanted)
    if pa.types.is_binary(wanted) or pa.types.is_time64(wanted):
        return pa.array(series.tolist(), type=wanted)
    return pa.array(series, type=wanted, from_pandas=True)


def _write_parquet(
    stream: Stream,
    sink: _Sink,
    progress: Progress,
    tick: Callable[[], None],
    numeric_as_float: bool,
) -> int:
    import pyarrow as pa

    writer = _ParquetWriter(sink, progress)
    schema = None
    types: list[Any] = []
    try:
        for frame in stream:
            if schema is None:
                zone = zones.zone_name(stream.zone)
                types = [_arrow_type(c, numeric_as_float, zone) for c in stream.columns]
            arrays = [_arrow_column(frame.iloc[:, i], t) for i, t in enumerate(types)]
            if schema is None:
                types = [a.type for a in arrays]
                schema = pa.schema(
                    [pa.field(c.name, t) for c, t in zip(stream.columns, types, strict=True)]
                )
            writer.write(pa.RecordBatch.from_arrays(arrays, schema=schema))
            progress.add(len(frame), 0)
            tick()
    finally:
        writer.close()
    return stream.rows


# datetime's range in microseconds since 1970: 'infinity' is its max and min
_DT_MAX_US = 253_402_300_799_999_999
_DT_MIN_US = -62_135_596_800_000_000


def _offsets_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Zoned columns as the C writer has them: ISO 8601 with the offset (pandas writes UTC)."""
    out = None
    for i in range(frame.shape[1]):
        series = frame.iloc[:, i]
        dtype = series.dtype
        if not isinstance(dtype, pd.DatetimeTZDtype) or str(dtype.tz) == "UTC":
            continue
        utc = series.array.asi8
        texts = [
            None
            if stamp is pd.NaT
            else stamp.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if micros in (_DT_MAX_US, _DT_MIN_US) or not 1 <= stamp.year <= 9999
            else stamp.isoformat(timespec="microseconds")
            for stamp, micros in zip(series, utc.tolist(), strict=True)
        ]
        if out is None:
            out = frame.copy(deep=False)
        out.isetitem(i, pd.array(texts, dtype=object))
    return frame if out is None else out


def _write_jsonl(
    stream: Stream,
    sink: _Sink,
    progress: Progress,
    tick: Callable[[], None],
    numeric_as_float: bool,
) -> int:
    for frame in stream:
        frame = _offsets_as_text(frame)
        text = frame.to_json(
            orient="records",
            lines=True,
            date_format="iso",
            date_unit="us",
            default_handler=as_text,
        )
        data = text.encode() + (b"\n" if text and not text.endswith("\n") else b"")
        sink.file.write(data)
        progress.add(len(frame), len(data))
        tick()
    return stream.rows


def check_target(path: str | os.PathLike[str], fmt: str | None = None) -> tuple[Path, str]:
    """Where an export writes and in which format, checked before any I/O.

    Parameters
    ----------
    path : path-like
    fmt : str, optional
        One of :data:`FORMATS`; else the suffix says.

    Returns
    -------
    (Path, str)

    Raises
    ------
    OptionError
        A folder, an unknown format, or a folder that does not exist.
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise OptionError(
            f"{str(target)!r} is a folder: name a file in it, such as {target}/result.csv"
        )
    chosen = format_for(target, fmt)
    for folder in (target.parent, *target.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                raise OptionError(
                    f"cannot write {str(target)!r}: {str(folder)!r} is a file, not a folder"
                )
            break
    if not target.parent.exists():
        raise OptionError(f"folder {str(target.parent)!r} does not exist")
    return target, chosen


def export(
    runtime: Runtime,
    bound: BoundStatement,
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    chunksize: int = 50_000,
    numeric_as_float: bool = False,
    on_tick: Callable[[Progress], None] | None = None,
) -> ExportResult:
    """Write a query's result to a file, streaming; Ctrl-C leaves no file.

    Parameters
    ----------
    runtime : Runtime
    bound : BoundStatement
        The query and its values.
    path : path-like
        Destination; the format comes from its suffix unless ``fmt`` is given.
    fmt : str, optional
        One of :data:`FORMATS`.
    chunksize : int
        Rows per batch for Parquet (a row group each) and JSON lines.
    numeric_as_float : bool
        Write ``numeric`` as float64 (Parquet) instead of decimals.
    on_tick : callable, optional
        Called with the :class:`Progress` about every 50 ms (progress bars).

    Returns
    -------
    ExportResult

    Examples
    --------
    >>> bound = bind(Statement("SELECT * FROM events", 0), {})  # doctest: +SKIP
    >>> export(runtime, bound, "events.parquet").summary()  # doctest: +SKIP
    """
    target, chosen = check_target(path, fmt)
    progress = Progress()

    def tick() -> None:
        if on_tick is not None:
            on_tick(progress)

    tick()
    try:
        sink = _Sink(target, chosen)
    except OSError as error:
        # Named after the file the user asked for, never the temporary one.
        raise OptionError(f"cannot write {str(target)!r}: {error.strerror or error}") from None
    # Outside the handlers below: its hint already says what to do.
    with frames.in_python_range(()):
        try:
            with runtime.history.recording().start(
                bound.source.text, parameter_names(bound.names)
            ) as pending:
                rows, size = _write(
                    runtime, bound, chosen, sink, progress, tick, chunksize, numeric_as_float
                )
                pending.rows = rows
        except DATABASE_ERRORS as error:
            raise render(error) from None
        except OSError as error:
            raise OptionError(f"cannot write {str(target)!r}: {error.strerror or error}") from None
        except ColumnTypeError as error:
            raise OptionError(
                f"{error}; cast the column in SQL (e.g. ::numeric(20,6), ::text) or export as csv"
            ) from None
        except KeyboardInterrupt:
            # Ctrl-C lands either in a wait on the server (cancelled there) or in
            # our own writing; both end the same way.
            raise QueryCancelled("export cancelled; no file was written") from None
    return ExportResult(target, rows, size, time.perf_counter() - progress.started)


def _write(
    runtime: Runtime,
    bound: BoundStatement,
    chosen: str,
    sink: _Sink,
    progress: Progress,
    tick: Callable[[], None],
    chunksize: int,
    numeric_as_float: bool,
) -> tuple[int, int]:
    try:
        if chosen in ("csv", "csv.gz"):
            if not copyable(bound.sql):
                raise OptionError("--to csv needs a plain query (SELECT, VALUES, TABLE or WITH)")
            rows = runtime.run(_copy_csv(runtime, bound, sink, progress), on_tick=tick)
        else:
            copied = None
            if copyable(bound.sql) and decode.is_available():
                copied = runtime.run(
                    _copy_export(
                        runtime, bound, chosen, sink, progress, chunksize, numeric_as_float
                    ),
                    on_tick=tick,
                )
            if copied is not None:
                rows = copied
            else:
                stream = Stream(
                    runtime,
                    bound,
                    chunksize=chunksize,
                    numeric_as_float=numeric_as_float,
                    recorded=False,
                )
                with stream:
                    stream.open()
                    writer = _write_parquet if chosen == "parquet" else _write_jsonl
                    rows = writer(stream, sink, progress, tick, numeric_as_float)
        return rows, sink.finish()
    except BaseException:
        sink.abort()
        raise
