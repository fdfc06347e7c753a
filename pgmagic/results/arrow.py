"""Query results as Arrow: the C parser's buffers become Arrow arrays without a copy.

=====================================  ======================================
PostgreSQL                             Arrow
=====================================  ======================================
int2, int4, int8 (oid)                 int16, int32, int64
float4, float8                         float32, float64 (NaN stays NaN)
numeric                                decimal128(38, s), decimal256(76, s)
                                       when wider; ``s`` and the width from
                                       the data (the first batch of an
                                       export); NaN and infinities are null
                                       (float64 with ``numeric_as_float``)
text, varchar, char(n), name, enums    string
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

:func:`copy_table` runs a query through binary ``COPY`` into a
``pyarrow.Table`` (no Python object per value, no pandas);
:func:`copy_batches` hands the same batches to a writer, for exports
(:mod:`pgmagic.bulk.arrow`).  :func:`records_to_table` gives the same types
for rows that came as asyncpg Records (``INSERT ... RETURNING``, types the
parser does not read), and :func:`to_polars` turns a table into a polars
DataFrame, polars being optional.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, Final

import asyncpg
import asyncpg.types
import pyarrow as pa

from pgmagic import _oids as oids
from pgmagic._oids import CopyKind, CopyLayout
from pgmagic.errors import ColumnMismatchError, ColumnTypeError, OptionError
from pgmagic.results.decode import Plan, element_oid, new_parser, pace, pgcopy, plan_columns
from pgmagic.results.frames import Column
from pgmagic.results.text import as_text
from pgmagic.sql.copytext import copy_statement

__all__ = [
    "RecordBatches",
    "arrow_array",
    "copy_batches",
    "copy_parsed",
    "copy_table",
    "records_to_table",
    "require_polars",
    "to_polars",
]

# A batch ends at this many bytes of COPY data even when it has fewer rows
# than asked: wide rows must not make batches large.
_BATCH_BYTES: Final = 32 << 20
# Rows per batch of an in-memory table: few chunks for polars and pandas to
# join, while the previous batch is converted in a worker thread.
_TABLE_BATCH_ROWS: Final = 1 << 20


def _decimal_type(scale: int, int_digits: int) -> Any:
    digits = scale + int_digits
    if digits <= 38:
        return pa.decimal128(38, scale)
    if digits <= 76:
        return pa.decimal256(76, scale)
    raise ValueError(f"{digits} digits")


def arrow_array(
    kind: int, elem_kind: int, out: tuple[Any, ...], wanted: Any, zone: str = "UTC"
) -> Any:
    """One column of a parser batch as an Arrow array, without copying its values.

    Parameters
    ----------
    kind, elem_kind : int
        The column's :class:`~pgmagic._oids.CopyKind` and, for arrays, its
        elements'.
    out : tuple
        The parser's buffers for the column (``CopyLayout.ARROW``).
    wanted : pyarrow.DataType or None
        The column's type in the schema, or None for the first batch; only
        decimals (whose scale and width the data decides) use it.
    zone : str
        Annotates timestamptz values (UTC instants either way).

    Returns
    -------
    pyarrow.Array
    """
    length, null_count, validity, values, data, scale, int_digits, levels, child = out
    valid = None if validity is None else pa.py_buffer(validity)
    if kind == CopyKind.VOID:
        return pa.nulls(length)
    if kind == CopyKind.ARRAY:
        inner = wanted
        for _ in levels:
            inner = inner.value_type if inner is not None and pa.types.is_list(inner) else None
        array = arrow_array(elem_kind, 0, child, inner, zone)
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


class RecordBatches:
    """Parser batches to record batches under one schema, fixed by the first batch.

    Parameters
    ----------
    plan : Plan
        The columns, from :func:`pgmagic.results.decode.plan_columns`.
    zone : str, default "UTC"
        The zone timestamptz columns are annotated with.
    """

    def __init__(self, plan: Plan, zone: str = "UTC") -> None:
        self.plan = plan
        self.zone = zone
        self._schema: Any = None

    def __call__(self, nrows: int, columns: list[tuple[Any, ...]]) -> Any:
        """One parser batch (``take_batch()``, ``finish()``) as a ``pyarrow.RecordBatch``."""
        plan, schema = self.plan, self._schema
        arrays = []
        for i, out in enumerate(columns):
            wanted = None if schema is None else schema.field(i).type
            try:
                array = arrow_array(plan.kinds[i], plan.elem_kinds[i], out, wanted, self.zone)
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


async def copy_batches(
    conn: asyncpg.Connection,
    sql: str,
    parser: pgcopy.Parser,
    deliver: Callable[[int, Any], None],
    *,
    batch_rows: int,
    timeout: float | None,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    """Run ``sql`` through binary COPY, handing ``parser``'s batches to ``deliver``.

    Parameters
    ----------
    conn, sql, parser, batch_rows, timeout, on_progress
        As for :func:`copy_parsed` (``parser`` from
        :func:`pgmagic.results.decode.new_parser`, for the statement's columns).
    deliver : callable
        ``deliver(nrows, payload)``, called in a worker thread with each batch,
        in order, one at a time; the next batch is decoded meanwhile.  An
        empty result still gets its (empty) batch.

    Returns
    -------
    int
        Rows delivered.

    Raises
    ------
    ColumnMismatchError
        The stream did not match the parser's columns.
    """
    loop = asyncio.get_running_loop()
    # The batch being delivered; the next is handed over once it is done, so
    # at most two batches exist and a slow consumer slows the server down
    # (asyncpg stops reading while the sink waits) instead of filling memory.
    writing: asyncio.Future[None] | None = None

    async def hand_over(nrows: int, payload: Any) -> None:
        nonlocal writing
        if writing is not None:
            await writing
        writing = loop.run_in_executor(None, deliver, nrows, payload)

    try:
        delivered = await copy_parsed(
            conn,
            sql,
            parser,
            hand_over,
            batch_rows=batch_rows,
            timeout=timeout,
            on_progress=on_progress,
        )
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():
            # A worker thread cannot be stopped: let it end its batch before
            # the caller closes the file it writes to.
            await asyncio.wait([writing])
            if not writing.cancelled():
                writing.exception()  # the error raised is the first one
    return delivered


async def copy_parsed(
    conn: asyncpg.Connection,
    sql: str,
    parser: pgcopy.Parser,
    hand_over: Callable[[int, Any], Awaitable[None]],
    *,
    batch_rows: int,
    timeout: float | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Run ``sql`` through binary COPY, awaiting ``hand_over`` with each of ``parser``'s batches.

    Shared by :func:`copy_batches` and streams (:mod:`pgmagic.bulk.stream`).  While
    ``hand_over`` waits, asyncpg stops reading and the server stops sending.

    Parameters
    ----------
    conn : asyncpg.Connection
    sql : str
        A statement without parameters that returns rows.
    parser : pgmagic._pgcopy.Parser
    hand_over : async callable
        ``await hand_over(nrows, payload)``, in order; an empty result gets one empty batch.
    batch_rows : int
        A batch ends once it has at least this many rows (it holds whole
        chunks of COPY data, so usually more) or 32 MB of COPY data.
    timeout : float or None
        Seconds before asyncpg cancels the COPY.
    on_progress : callable, optional
        Called after each chunk with the rows decoded and the bytes received so far.

    Returns
    -------
    int

    Raises
    ------
    ColumnMismatchError
        The stream did not match the parser's columns.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    delivered = received = batch_bytes = 0

    async def give(nrows: int, payload: Any) -> None:
        nonlocal delivered
        await hand_over(nrows, payload)
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
            await give(*parser.take_batch())
        await pace(received, len(chunk))

    try:
        await conn.copy_from_query(
            copy_statement(sql), output=sink, format="binary", timeout=timeout
        )
        nrows, payload = parser.finish()
        if nrows or not delivered:  # an empty result still gets its (empty) batch
            await give(nrows, payload)
    except pgcopy.ProtocolError as error:  # from take_batch() or finish()
        raise ColumnMismatchError(str(error)) from error
    return delivered


async def copy_table(
    conn: asyncpg.Connection,
    sql: str,
    columns: Sequence[asyncpg.types.Attribute],
    *,
    numeric_as_float: bool = False,
    timeout: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    zone: str = "UTC",
) -> pa.Table:
    """Run ``sql`` through binary COPY and return its rows as a ``pyarrow.Table``.

    The types are those of the table in this module's docstring, the same
    as a Parquet export's; the values are the parser's buffers, not copied.

    Parameters
    ----------
    conn : asyncpg.Connection
        The session's connection; temp tables and an open transaction stay
        as they are.
    sql : str
        A statement without parameters that returns rows.
    columns : sequence of asyncpg.types.Attribute
        ``PreparedStatement.get_attributes()`` for ``sql``.
    numeric_as_float : bool, default False
        Give ``numeric`` as float64.
    timeout : float, optional
        Seconds before asyncpg cancels the COPY.
    on_progress : callable, optional
        Called on the loop thread after each chunk with the rows decoded and
        the bytes received so far.
    zone : str, default "UTC"
        The zone timestamptz columns are annotated with (the session's, as
        :func:`pgmagic.results.zones.zone_name` names it).

    Returns
    -------
    pyarrow.Table
        A 0-row result keeps its columns and types.

    Raises
    ------
    UnsupportedColumnError
        Before running anything, when a column type is not supported; take
        the record path (:func:`records_to_table`) instead.
    ColumnTypeError
        A numeric value needs more than 76 digits.
    ColumnMismatchError
        The stream did not match ``columns``.
    ValueError, OverflowError, UnicodeDecodeError
        A value asyncpg would refuse to decode, or arrays of different
        dimensions in one column.

    Examples
    --------
    >>> stmt = await conn.prepare("SELECT * FROM t")  # doctest: +SKIP
    >>> table = await copy_table(conn, "SELECT * FROM t", stmt.get_attributes())  # doctest: +SKIP
    """
    plan = await plan_columns(conn, columns, numeric_as_float, export=True)
    convert = RecordBatches(plan, zone)
    batches: list[Any] = []

    def deliver(nrows: int, payload: list[tuple[Any, ...]]) -> None:
        batches.append(convert(nrows, payload))

    await copy_batches(
        conn,
        sql,
        new_parser(plan, CopyLayout.ARROW),
        deliver,
        batch_rows=_TABLE_BATCH_ROWS,
        timeout=timeout,
        on_progress=on_progress,
    )
    return pa.Table.from_batches(batches)


# ------------------------------------------------------------ the record path
def _record_type(oid: int, numeric_as_float: bool, zone: str) -> Any:
    """The Arrow type of a column of Records; None for numeric (the data decides)."""
    if oid == oids.TIMESTAMPTZ:
        return pa.timestamp("us", tz=zone)
    if oid == oids.NUMERIC:
        return pa.float64() if numeric_as_float else None
    if oid == oids.UUID and _uuid_type is not None:
        return _uuid_type()
    found = _RECORD_TYPES.get(oid)
    if found is not None:
        return found
    # enums, citext and every type outside the table: their text, as psql prints it
    return pa.string()


def _depth(values: Sequence[Any]) -> int:
    """Dimensions of the arrays in a column of Records (1 when all are NULL or empty)."""
    for value in values:
        if isinstance(value, list) and value:
            # The first non-empty array decides, as its first value does for the COPY parser.
            inner = [v for v in value if isinstance(v, list)]
            return 1 + (_depth(inner) if inner else 0)
    return 1


def _scalar(oid: int, value: Any) -> Any:
    """An asyncpg value as Arrow takes it for the column's type."""
    if value is None:
        return None
    if oid == oids.NUMERIC:
        # NaN and infinities have no decimal form: null, as on the COPY path.
        return value if not isinstance(value, Decimal) or value.is_finite() else None
    if oid in (oids.JSON, oids.JSONB):
        # Sessions decode JSON (runtime.connect); its text again, equal as JSON
        # (ASCII, so that a lone surrogate the server allows stays valid UTF-8).
        return json.dumps(value)
    if oid == oids.UUID:
        return value.bytes
    if oid == oids.CHAR and isinstance(value, bytes):
        return value.decode()
    if oid == oids.TIMETZ:
        return value.isoformat()
    if oid in _RECORD_TYPES or oid == oids.TIMESTAMPTZ:
        return value
    return value if isinstance(value, str) else as_text(value)


def _values(oid: int, values: Sequence[Any], depth: int) -> list[Any]:
    if depth == 0:
        return [_scalar(oid, v) for v in values]
    if any(v is not None and not isinstance(v, list) for v in values):
        raise TypeError("arrays of different dimensions in one column")
    return [None if v is None else _values(oid, v, depth - 1) for v in values]


def _decimals(values: list[Any], depth: int) -> Any:
    """The decimal type that holds every value (the COPY path's, from the same data)."""
    flat = list(values)
    for _ in range(depth):
        flat = [x for v in flat if v is not None for x in v]
    shapes = [v.as_tuple() for v in flat if v is not None]
    scale = max([0, *(-int(t.exponent) for t in shapes)])
    digits = max([0, *(len(t.digits) + int(t.exponent) for t in shapes)])
    return _decimal_type(scale, max(digits, 0))


def records_to_table(
    columns: Sequence[Column],
    records: Sequence[Sequence[Any]],
    *,
    numeric_as_float: bool = False,
    zone: str = "UTC",
    schema: pa.Schema | None = None,
) -> pa.Table:
    """Rows that came as asyncpg Records as a ``pyarrow.Table`` of :func:`copy_table`'s types.

    For statements that cannot go through ``COPY`` (``INSERT ... RETURNING``,
    utility statements) and types the parser does not read.  Values are
    those of the COPY path, with three differences the Records impose: JSON
    is the text of the value asyncpg decoded (equal as JSON, not byte for
    byte, a JSON ``null`` is NULL, and json[] has one dimension), arrays of
    a type the parser does not read are text, and types outside the table are their text as psql
    prints it.

    Parameters
    ----------
    columns : sequence of Column
    records : sequence of rows
    numeric_as_float : bool, default False
        Give ``numeric`` as float64 (numeric arrays stay decimal, as on the
        COPY path).
    zone : str, default "UTC"
        The zone timestamptz columns are annotated with.
    schema : pyarrow.Schema, optional
        The types of an earlier chunk of the same result, kept (a numeric
        column's scale, an array column's dimensions).

    Returns
    -------
    pyarrow.Table

    Raises
    ------
    ColumnTypeError
        A column's values do not fit one Arrow type (arrays of different
        dimensions, a numeric of more than 76 digits) or ``schema``'s.

    Examples
    --------
    >>> records_to_table([Column("n", 23)], [(1,), (None,)]).column(0).type
    DataType(int32)
    """
    arrays = []
    for i, column in enumerate(columns):
        values = [r[i] for r in records]
        oid, depth = column.oid, 0
        element = element_oid(oid)
        known = None if schema is None else schema.field(i).type
        if element is not None:
            oid, depth = element, _depth(values) if known is None else _list_depth(known)
            if oid in (oids.JSON, oids.JSONB):
                # A decoded JSON array cannot be told from a dimension: one is assumed.
                depth = 1
        try:
            prepared = _values(oid, values, depth)
            # as on the COPY path, numeric arrays stay decimal
            as_float = numeric_as_float and depth == 0
            if oid == oids.NUMERIC and as_float:
                prepared = [None if v is None else float(v) for v in prepared]
            wanted = known
            if wanted is None:
                wanted = _record_type(oid, as_float, zone) or _decimals(prepared, depth)
                for _ in range(depth):
                    wanted = pa.list_(wanted)
            arrays.append(_array(prepared, wanted))
        except (ValueError, TypeError, OverflowError) as error:
            raise ColumnTypeError(
                column.name, f"its values do not fit one Arrow type ({error})"
            ) from None
    if schema is not None:
        return pa.Table.from_arrays(arrays, schema=schema)
    return pa.Table.from_arrays(arrays, names=[c.name for c in columns])


def _array(values: list[Any], wanted: Any) -> Any:
    """``pa.array``, which cannot build extension types (uuid) from Python values: their storage."""
    storage = _storage(wanted)
    if storage == wanted:
        return pa.array(values, type=wanted)
    return pa.array(values, type=storage).cast(wanted)


def _storage(kind: Any) -> Any:
    if pa.types.is_list(kind):
        return pa.list_(_storage(kind.value_type))
    return kind.storage_type if isinstance(kind, pa.BaseExtensionType) else kind


def _list_depth(kind: Any) -> int:
    depth = 0
    while pa.types.is_list(kind):
        kind, depth = kind.value_type, depth + 1
    return depth


def require_polars() -> Any:
    """The polars module, an optional dependency.

    Returns
    -------
    module

    Raises
    ------
    OptionError
        polars is not installed: one line saying how to install it.
    """
    try:
        import polars
    except ImportError:
        raise OptionError(
            "polars is not installed: pip install 'pgmagic[polars]' (or use --arrow or --pandas)"
        ) from None
    return polars


def to_polars(table: pa.Table) -> Any:
    """A ``pyarrow.Table`` as a ``polars.DataFrame``, sharing its buffers where polars can.

    polars has no type for two of the table's: a numeric wider than 38
    digits (decimal256) becomes its exact text (String), and timestamptz in
    a zone without a name (a fixed offset such as ``+05:30``) is given in
    UTC, the same instants.  uuid becomes Binary (the 16 bytes).

    Parameters
    ----------
    table : pyarrow.Table

    Returns
    -------
    polars.DataFrame

    Raises
    ------
    OptionError
        polars is not installed, or the table has repeated column names,
        which polars refuses.

    Examples
    --------
    >>> to_polars(records_to_table([Column("n", 23)], [(1,)])).dtypes  # doctest: +SKIP
    [Int32]
    """
    polars = require_polars()
    names = table.column_names
    if len(set(names)) < len(names):
        repeated = next(n for n in names if names.count(n) > 1)
        raise OptionError(f"polars needs distinct column names; rename {repeated!r} with AS")
    for i, field in enumerate(table.schema):
        wanted = _polars_type(field.type)
        if wanted is not None:
            table = table.set_column(i, field.name, table.column(i).cast(wanted))
    return polars.from_arrow(table, rechunk=False)


def _polars_type(kind: Any) -> Any:
    """The type a column is cast to before polars takes it; None to keep it."""
    if pa.types.is_list(kind):
        inner = _polars_type(kind.value_type)
        return None if inner is None else pa.list_(inner)
    if pa.types.is_decimal256(kind):
        return pa.string()
    if pa.types.is_timestamp(kind) and kind.tz is not None and kind.tz.startswith(("+", "-")):
        return pa.timestamp("us", tz="UTC")
    return None


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


# What Records of a built-in type become (the COPY path's types); string
# types take the text asyncpg gives.
_RECORD_TYPES: Final[dict[int, Any]] = {
    oids.BOOL: pa.bool_(),
    oids.INT2: pa.int16(),
    oids.INT4: pa.int32(),
    oids.INT8: pa.int64(),
    oids.OID: pa.int64(),
    oids.FLOAT4: pa.float32(),
    oids.FLOAT8: pa.float64(),
    oids.TIMESTAMP: pa.timestamp("us"),
    oids.DATE: pa.date32(),
    oids.INTERVAL: pa.duration("us"),
    oids.TIME: pa.time64("us"),
    oids.UUID: pa.binary(16),
    oids.BYTEA: pa.binary(),
    oids.VOID: pa.null(),
    oids.TEXT: pa.string(),
    oids.VARCHAR: pa.string(),
    oids.BPCHAR: pa.string(),
    oids.NAME: pa.string(),
    oids.CHAR: pa.string(),
    oids.JSON: pa.string(),
    oids.JSONB: pa.string(),
    oids.TIMETZ: pa.string(),
}
