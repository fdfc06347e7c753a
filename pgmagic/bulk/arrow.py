"""Binary ``COPY`` into Arrow record batches and JSON lines, for exports.

:func:`copy_record_batches` and :func:`copy_json_lines` run the same COPY as
:func:`pgmagic.results.decode.copy_frame` and hand its rows, a batch at a time,
to a writer in a worker thread: Arrow record batches (the C parser fills
Arrow's buffers directly, no Python object per value) or JSON lines (the
parser writes them).  While one batch is written the next is decoded; at most
those two are held, so memory stays bounded whatever the size of the result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any, Final

import asyncpg
import asyncpg.types
import pyarrow as pa

from pgmagic._oids import CopyKind, CopyLayout
from pgmagic.errors import ColumnMismatchError, ColumnTypeError
from pgmagic.results.decode import Plan, new_parser, pace, pgcopy, plan_columns
from pgmagic.results.zones import offset_table
from pgmagic.sql.copytext import copy_statement

# An export batch ends at this many bytes of COPY data even when it has
# fewer rows than asked: wide rows must not make batches large.
_BATCH_BYTES: Final = 32 << 20


def _decimal_type(scale: int, int_digits: int) -> Any:
    digits = scale + int_digits
    if digits <= 38:
        return pa.decimal128(38, scale)
    if digits <= 76:
        return pa.decimal256(76, scale)
    raise ValueError(f"{digits} digits")


def _arrow_array(
    kind: int, elem_kind: int, out: tuple[Any, ...], wanted: Any, zone: str = "UTC"
) -> Any:
    """One column of a parser batch as an Arrow array, without copying its values.

    ``wanted`` is the column's type in the schema, or None for the first
    batch; only decimals (whose scale and width the data decides) use it.
    ``zone`` annotates timestamptz values (UTC instants either way).
    """
    length, null_count, validity, values, data, scale, int_digits, levels, child = out
    valid = None if validity is None else pa.py_buffer(validity)
    if kind == CopyKind.VOID:
        return pa.nulls(length)
    if kind == CopyKind.ARRAY:
        inner = wanted
        for _ in levels:
            inner = inner.value_type if inner is not None and pa.types.is_list(inner) else None
        array = _arrow_array(elem_kind, 0, child, inner, zone)
        # innermost dimension first; only rows (level 0) can be NULL
        for depth in reversed(range(len(levels))):
            offsets = levels[depth]
            array = pa.Array.from_buffers(
                pa.list_(array.type),
                length if depth == 0 else len(offsets) // 4 - 1,
                [valid if depth == 0 else None, pa.py_buffer(offsets)],
                null_count=null_count if depth == 0 else 0,
                children=[array],
            )
        return array
    storage = _ARROW_TYPES[kind]
    if kind == CopyKind.TIMESTAMPTZ and zone != "UTC":
        storage = pa.timestamp("us", tz=zone)
    buffers = [valid, pa.py_buffer(values)]
    if data is not None:
        buffers.append(pa.py_buffer(data))
    array = pa.Array.from_buffers(storage, length, buffers, null_count=null_count)
    if kind == CopyKind.NUMERIC:
        return array.cast(wanted or _decimal_type(scale, int_digits))
    if storage in _WRITTEN_TYPES:
        return array.cast(_WRITTEN_TYPES[storage])
    if kind == CopyKind.UUID and _uuid_type is not None:
        return pa.ExtensionArray.from_storage(_uuid_type(), array)
    return array


class _RecordBatches:
    """Parser batches to record batches under one schema, fixed by the first batch."""

    def __init__(self, plan: Plan, zone: str = "UTC") -> None:
        self.plan = plan
        self.zone = zone
        self._schema: Any = None

    def __call__(self, nrows: int, columns: list[tuple[Any, ...]]) -> Any:
        plan, schema = self.plan, self._schema
        arrays = []
        for i, out in enumerate(columns):
            wanted = None if schema is None else schema.field(i).type
            try:
                array = _arrow_array(plan.kinds[i], plan.elem_kinds[i], out, wanted, self.zone)
            except ValueError:  # pa.ArrowInvalid is one: a decimal cast lost digits
                limit = "an Arrow decimal (76)" if wanted is None else f"the first rows' {wanted}"
                raise ColumnTypeError(
                    plan.names[i], f"a numeric value needs more digits than {limit}"
                ) from None
            if wanted is not None and array.type != wanted:
                raise ColumnTypeError(
                    plan.names[i], f"{array.type} values after {wanted} in the first rows"
                )
            arrays.append(array)
        if schema is None:
            self._schema = schema = pa.schema(
                [pa.field(name, a.type) for name, a in zip(plan.names, arrays, strict=True)]
            )
        return pa.RecordBatch.from_arrays(arrays, schema=schema)


async def _copy_batches(
    conn: asyncpg.Connection,
    sql: str,
    parser: pgcopy.Parser,
    deliver: Callable[[int, Any], None],
    *,
    batch_rows: int,
    timeout: float | None,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    """Run the COPY, handing ``parser``'s batches to ``deliver`` in a worker thread."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    loop = asyncio.get_running_loop()
    # The batch being written; the sink waits for it before handing over the
    # next, so at most two batches exist and a slow disk slows the server
    # down (asyncpg stops reading while the sink waits) instead of filling
    # memory.
    writing: asyncio.Future[None] | None = None
    delivered = received = batch_bytes = 0

    async def hand_over(nrows: int, payload: Any) -> None:
        nonlocal writing, delivered
        if writing is not None:
            await writing
        writing = loop.run_in_executor(None, deliver, nrows, payload)
        delivered += nrows

    async def sink(chunk: bytearray) -> None:
        nonlocal received, batch_bytes
        parser.feed(chunk)
        received += len(chunk)
        batch_bytes += len(chunk)
        if on_progress is not None:
            on_progress(delivered + parser.nrows, received)
        if parser.nrows >= batch_rows or batch_bytes >= _BATCH_BYTES:
            batch_bytes = 0
            await hand_over(*parser.take_batch())
        await pace(received, len(chunk))

    try:
        await conn.copy_from_query(
            copy_statement(sql), output=sink, format="binary", timeout=timeout
        )
        nrows, payload = parser.finish()
        if nrows or not delivered:  # an empty result still gets its (empty) batch
            await hand_over(nrows, payload)
        if writing is not None:
            await writing
    except pgcopy.ProtocolError as error:  # from take_batch() or finish()
        raise ColumnMismatchError(str(error)) from error
    finally:
        if writing is not None and not writing.done():
            # A worker thread cannot be stopped: let it end its batch before
            # the caller closes the file it writes to.
            await asyncio.wait([writing])
            if not writing.cancelled():
                writing.exception()  # the error raised is the first one
    return delivered


async def copy_record_batches(
    conn: asyncpg.Connection,
    sql: str,
    columns: Sequence[asyncpg.types.Attribute],
    write: Callable[[pa.RecordBatch], None],
    *,
    numeric_as_float: bool = False,
    batch_rows: int = 50_000,
    timeout: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    zone: str = "UTC",
) -> int:
    """Run ``sql`` through binary COPY and hand its rows to ``write`` as Arrow record batches.

    =====================================  ======================================
    PostgreSQL                             Arrow
    =====================================  ======================================
    int2, int4, int8 (oid)                 int16, int32, int64
    float4, float8                         float32, float64 (NaN stays NaN)
    numeric                                decimal128(38, s), decimal256(76, s)
                                           when wider; ``s`` and the width from
                                           the first batch; NaN and infinities
                                           are null (float64 with
                                           ``numeric_as_float``)
    text, varchar, enums, ...              string
    bool                                   bool
    timestamptz, timestamp                 timestamp[us, tz=zone], timestamp[us]
    date                                   date32
    interval                               duration[us] (a month is 30 days)
    time                                   time64[us]
    timetz                                 string (``12:30:00+02:00``)
    uuid                                   arrow.uuid (fixed_size_binary(16)
                                           before pyarrow 18)
    bytea                                  binary
    json, jsonb                            string: the server's JSON text
    arrays                                 lists of the element type, one level
                                           per dimension
    void                                   null
    =====================================  ======================================

    Parameters
    ----------
    conn : asyncpg.Connection
        A connection of the caller's; the COPY runs in whatever transaction
        it has open.
    sql : str
        A statement without parameters that returns rows (bind values with
        :func:`pgmagic.copying.bound_values`).
    columns : sequence of asyncpg.types.Attribute
        ``PreparedStatement.get_attributes()`` for ``sql``.
    write : callable
        Called in a worker thread with each batch, in order, one at a time;
        the next batch is decoded meanwhile.  Every batch has the schema of
        the first; an empty result gives one empty batch.
    numeric_as_float : bool, default False
        Give ``numeric`` as float64.
    batch_rows : int, default 50,000
        Rows per batch (fewer when rows are wide: a batch also ends after
        32 MB of COPY data).
    timeout : float, optional
        Seconds before asyncpg cancels the COPY.
    on_progress : callable, optional
        Called on the loop thread after each chunk with the rows decoded and
        the bytes received so far.
    zone : str, default "UTC"
        The time zone timestamptz columns are annotated with (the session's,
        as :func:`pgmagic.results.zones.zone_name` names it); the stored
        values are UTC instants whatever the zone.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    UnsupportedColumnError
        Before running anything, when a column type is not supported.
    ColumnTypeError
        A value does not fit the type the first batch gave its column.
    ValueError, OverflowError, UnicodeDecodeError
        A value asyncpg would refuse to decode; the COPY is cancelled.

    Examples
    --------
    >>> columns = (await conn.prepare(sql)).get_attributes()  # doctest: +SKIP
    >>> await copy_record_batches(conn, sql, columns, writer.write_batch)  # doctest: +SKIP
    """
    plan = await plan_columns(conn, columns, numeric_as_float, export=True)
    batches = _RecordBatches(plan, zone)

    def deliver(nrows: int, payload: list[tuple[Any, ...]]) -> None:
        write(batches(nrows, payload))

    return await _copy_batches(
        conn,
        sql,
        new_parser(plan, CopyLayout.ARROW),
        deliver,
        batch_rows=batch_rows,
        timeout=timeout,
        on_progress=on_progress,
    )


async def copy_json_lines(
    conn: asyncpg.Connection,
    sql: str,
    columns: Sequence[asyncpg.types.Attribute],
    write: Callable[[memoryview], None],
    *,
    numeric_as_float: bool = False,
    batch_rows: int = 50_000,
    timeout: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    zone: dt.tzinfo = dt.UTC,
) -> int:
    """Run ``sql`` through binary COPY and hand its rows to ``write`` as JSON lines.

    Each row is one JSON object, keys in column order, UTF-8, ending in a
    newline.  Numbers stay numbers (floats as Python's ``repr``, NaN and
    infinities null) except ``numeric``, which is its exact text as a
    string (NaN null); timestamps are ISO 8601 with microseconds
    (timestamptz with the offset of ``zone``, as the server's CSV has it:
    ``2024-01-01T12:00:00.000000+05:30``; ``Z`` in UTC, for the infinities
    and where the local time would leave years 1-9999), dates
    ``YYYY-MM-DD``, intervals as pandas writes them
    (``P1DT3H0M0S``), times ``isoformat()``, bytea PostgreSQL's hex form;
    json and jsonb are nested as the server wrote them; arrays are JSON
    arrays, nested by dimension.

    Parameters
    ----------
    conn, sql, columns
        As for :func:`copy_record_batches`.
    write : callable
        Called in a worker thread with each batch of lines, in order, one at
        a time.
    numeric_as_float : bool, default False
        Write ``numeric`` as a JSON number.
    batch_rows : int, default 50,000
        Rows per batch (fewer when rows are wide).
    timeout : float, optional
        Seconds before asyncpg cancels the COPY.
    on_progress : callable, optional
        Called on the loop thread with the rows decoded and the bytes
        received so far.
    zone : datetime.tzinfo, default UTC
        The session's zone (:func:`pgmagic.results.zones.result_zone`).

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    UnsupportedColumnError
        Before running anything, when a column type is not supported.
    ValueError, OverflowError, UnicodeDecodeError
        A value asyncpg would refuse to decode; the COPY is cancelled.

    Examples
    --------
    >>> columns = (await conn.prepare(sql)).get_attributes()  # doctest: +SKIP
    >>> await copy_json_lines(conn, sql, columns, file.write)  # doctest: +SKIP
    """
    plan = await plan_columns(conn, columns, numeric_as_float, export=True)
    keys = tuple(
        (b"," if i else b"{") + json.dumps(name, ensure_ascii=False).encode() + b":"
        for i, name in enumerate(plan.names)
    )

    def deliver(nrows: int, payload: Any) -> None:
        write(memoryview(payload))

    return await _copy_batches(
        conn,
        sql,
        new_parser(plan, CopyLayout.JSONL, keys, offset_table(zone)),
        deliver,
        batch_rows=batch_rows,
        timeout=timeout,
        on_progress=on_progress,
    )


# ----------------------------------------------------------------- exports
_ARROW_TYPES: Final[dict[int, Any]] = {
    CopyKind.BOOL: pa.bool_(),
    CopyKind.INT2: pa.int16(),
    CopyKind.INT4: pa.int32(),
    CopyKind.INT8: pa.int64(),
    CopyKind.OID: pa.int64(),
    CopyKind.FLOAT4: pa.float32(),
    CopyKind.FLOAT8: pa.float64(),
    CopyKind.NUMERIC_FLOAT: pa.float64(),
    CopyKind.TIMESTAMP: pa.timestamp("us"),
    CopyKind.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    CopyKind.DATE: pa.date32(),
    CopyKind.INTERVAL: pa.duration("us"),
    CopyKind.TIME: pa.time64("us"),
    CopyKind.UUID: pa.binary(16),
    # The parser's variable-width buffers have int64 offsets; the kinds are
    # cast to the 32-bit types below (batches are far below 2 GB).
    CopyKind.TEXT: pa.large_string(),
    CopyKind.JSON: pa.large_string(),
    CopyKind.JSONB: pa.large_string(),
    CopyKind.TIMETZ: pa.large_string(),
    CopyKind.NUMERIC: pa.large_string(),
    CopyKind.BYTEA: pa.large_binary(),
}


_WRITTEN_TYPES: Final[dict[Any, Any]] = {
    pa.large_string(): pa.string(),
    pa.large_binary(): pa.binary(),
}


# The uuid extension type arrived in pyarrow 18; before, the 16 bytes go as they are.
_uuid_type: Callable[[], Any] | None = getattr(pa, "uuid", None)
