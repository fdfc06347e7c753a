"""Query results to pandas, Arrow and JSON lines through binary ``COPY``: the fast path.

``copy_frame`` runs ``COPY (<query>) TO STDOUT (FORMAT binary)`` on the
session's own asyncpg connection and feeds the stream, chunk by chunk, to a
small C parser (``pgmagic._pgcopy``) that fills one buffer per column.  The
parser runs inside the COPY sink on the event-loop thread, so decoding (and
the Python objects that object columns need) overlaps with the server
producing the next rows; the finished buffers become numpy/pyarrow arrays
without a copy.

The frame is exactly what the record path (``pgmagic.frames``) builds from
asyncpg records, column by column, dtype and values.  Columns whose type the
parser does not know raise :class:`UnsupportedColumnError` before anything
is sent to the server, so the caller can take the record path instead.

For exports, ``copy_record_batches`` and ``copy_json_lines`` run the same
COPY and hand its rows, a batch at a time, to a writer in a worker thread:
Arrow record batches (the parser fills Arrow's buffers directly, no Python
object per value) or JSON lines (the parser writes them).  While one batch
is written the next is decoded; at most those two are held, so memory stays
bounded whatever the size of the result.

Exceptions::

    UnsupportedColumnError   a column (or the build) cannot take this path;
                             nothing was sent to the server
    ColumnMismatchError      the stream did not match ``columns`` (a stale
                             prepared statement); the stream was drained,
                             the session is unharmed
    ColumnTypeError          (exports) a value does not fit the Arrow type
                             the first batch gave its column
    ValueError, OverflowError, UnicodeDecodeError
                             a value asyncpg itself would refuse to decode
                             (raised after the stream ends, so the session's
                             transaction is left as it was; exports stop at
                             the first batch that holds one)

Import rules: this module imports asyncpg, numpy, pandas and pyarrow, never
IPython.
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import gc
import json
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, NamedTuple

import asyncpg
import asyncpg.types
import numpy as np
import pandas as pd
import pyarrow as pa
from asyncpg.pgproto import pgproto

try:  # compiled by the hatch build hook; absent in a source checkout
    from pgmagic import _pgcopy
except ImportError:  # pragma: no cover - exercised only without the build
    _pgcopy = None  # type: ignore[assignment]

_json_loads: Callable[[bytes], Any] | None
try:  # orjson: 3-7x faster than json.loads; used only where exact
    import orjson

    _json_loads = orjson.loads
except ImportError:  # pragma: no cover
    _json_loads = None

__all__ = [
    "ColumnMismatchError",
    "ColumnTypeError",
    "UnsupportedColumnError",
    "copy_frame",
    "copy_json_lines",
    "copy_record_batches",
    "copy_statement",
    "is_available",
    "supported_type_oids",
    "supports",
]

# Column kinds understood by _pgcopy.c (keep the numbers in sync).
_BOOL, _INT2, _INT4, _INT8, _OID = 1, 2, 3, 4, 5
_FLOAT4, _FLOAT8, _TEXT, _NUMERIC, _NUMERIC_FLOAT = 6, 7, 8, 9, 10
_TIMESTAMP, _TIMESTAMPTZ, _DATE, _INTERVAL, _TIME = 11, 12, 13, 14, 15
_TIMETZ, _UUID, _BYTEA, _JSON, _JSONB, _ARRAY = 16, 17, 18, 19, 20, 21
_VOID = 22  # export layouts only
# The parser's layouts.
_PANDAS, _ARROW, _JSONL = 0, 1, 2

_SCALAR_KINDS: Final[dict[int, int]] = {
    16: _BOOL,
    17: _BYTEA,
    18: _TEXT,  # "char": asyncpg gives bytes, the record path decodes them as UTF-8
    19: _TEXT,  # name
    20: _INT8,
    21: _INT2,
    23: _INT4,
    25: _TEXT,
    26: _OID,
    114: _JSON,
    700: _FLOAT4,
    701: _FLOAT8,
    1042: _TEXT,  # bpchar
    1043: _TEXT,  # varchar
    1082: _DATE,
    1083: _TIME,
    1114: _TIMESTAMP,
    1184: _TIMESTAMPTZ,
    1186: _INTERVAL,
    1266: _TIMETZ,
    1700: _NUMERIC,
    2950: _UUID,
    3802: _JSONB,
}

# array OID -> (element OID, element kind); elements become what asyncpg
# returns for them ("char" elements stay bytes).
_ARRAY_ELEMENTS: Final[dict[int, tuple[int, int]]] = {
    1000: (16, _BOOL),
    1001: (17, _BYTEA),
    1002: (18, _BYTEA),
    1003: (19, _TEXT),
    1005: (21, _INT2),
    1007: (23, _INT4),
    1009: (25, _TEXT),
    1014: (1042, _TEXT),
    1015: (1043, _TEXT),
    1016: (20, _INT8),
    1021: (700, _FLOAT4),
    1022: (701, _FLOAT8),
    1028: (26, _OID),
    1115: (1114, _TIMESTAMP),
    1182: (1082, _DATE),
    1183: (1083, _TIME),
    1185: (1184, _TIMESTAMPTZ),
    1187: (1186, _INTERVAL),
    1231: (1700, _NUMERIC),
    1270: (1266, _TIMETZ),
    2951: (2950, _UUID),
    199: (114, _JSON),
    3807: (3802, _JSONB),
}

# What exports take besides: void (a function called for its effect, always
# NULL), and "char" array elements as the text they are rather than bytes.
_EXPORT_KINDS: Final[dict[int, int]] = {2278: _VOID}
_EXPORT_ELEMENTS: Final[dict[int, tuple[int, int]]] = {1002: (18, _TEXT)}

# Types outside the table that are sent as their text, byte for byte what
# asyncpg's text-format fallback decodes: enums, citext and other types whose
# send and output functions are the built-in text ones.
_TEXTUAL_TYPES_SQL: Final = """
SELECT t.oid
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_proc s ON s.oid = t.typsend
JOIN pg_catalog.pg_proc o ON o.oid = t.typoutput
WHERE t.oid = ANY($1::pg_catalog.oid[])
  AND s.prolang = 12 AND o.prolang = 12
  AND ((s.prosrc = 'textsend' AND o.prosrc = 'textout')
       OR (s.prosrc = 'enum_send' AND o.prosrc = 'enum_out'))
"""

_COALESCE_AFTER: Final = 1 << 20  # bytes received before small chunks are coalesced
_SMALL_CHUNK: Final = 64 << 10
_COALESCE_WAIT: Final = 0.0005  # seconds; the event loop rounds it up to 1 ms
# An export batch ends at this many bytes of COPY data even when it has
# fewer rows than asked: wide rows must not make batches large.
_BATCH_BYTES: Final = 32 << 20

_STR_DTYPE: Final = pd.StringDtype("pyarrow", na_value=np.nan)
_UTC_DTYPE: Final = pd.DatetimeTZDtype(unit="us", tz="UTC")
_INT_DTYPES: Final[dict[int, type[np.generic]]] = {
    _INT2: np.int16,
    _INT4: np.int32,
    _INT8: np.int64,
    _OID: np.int64,
}
_NUMPY_DTYPES: Final[dict[int, str]] = {
    _FLOAT4: "float32",
    _FLOAT8: "float64",
    _NUMERIC_FLOAT: "float64",
    _TIMESTAMP: "M8[us]",
    _DATE: "M8[s]",
    _INTERVAL: "m8[us]",
}


class UnsupportedColumnError(Exception):
    """A result column cannot go through binary COPY; use the record path.

    Raised before anything is sent to the server.

    Parameters
    ----------
    column : str
        The column's name ("" when the whole path is unavailable).
    type_name : str
        The column's type as asyncpg names it.
    """

    def __init__(self, column: str, type_name: str) -> None:
        self.column = column
        self.type_name = type_name
        super().__init__(f"column {column!r} of type {type_name} is not supported by the COPY path")


class ColumnTypeError(ValueError):
    """A value does not fit the Arrow type its column was given.

    An export fixes its schema from the first batch (the scale and width of
    decimals, the dimensions of arrays); a later value that needs more is
    refused rather than silently rounded.

    Parameters
    ----------
    column : str
        The column's name.
    detail : str
        What did not fit.
    """

    def __init__(self, column: str, detail: str) -> None:
        self.column = column
        super().__init__(f"column {column!r}: {detail}")


class ColumnMismatchError(Exception):
    """The COPY stream did not match the columns it was decoded for.

    The statement was prepared before its tables changed (a stale cached
    statement).  The query ran to its end and its rows were dropped; the
    session and its transaction are as they were.  Prepare again and retry,
    or take the record path.
    """


def is_available() -> bool:
    """Tell whether the compiled parser was built and imports.

    Returns
    -------
    bool
        False in a source checkout that was never built.
    """
    return _pgcopy is not None


def supported_type_oids() -> frozenset[int]:
    """Return the built-in type OIDs the COPY path decodes.

    Types without a fixed OID are accepted too when ``pg_type`` shows they
    are sent as plain text (enums, ``citext``); :func:`copy_frame` looks
    them up once per connection.

    Returns
    -------
    frozenset of int
        Scalar and array type OIDs.

    Examples
    --------
    >>> 1184 in supported_type_oids()  # timestamptz
    True
    """
    return frozenset(_SCALAR_KINDS) | frozenset(_ARRAY_ELEMENTS)


def copy_statement(sql: str) -> str:
    """Return ``sql`` ready to be wrapped in ``COPY (...) TO STDOUT``.

    Trailing semicolons and whitespace go; a newline is added so a
    trailing ``--`` comment cannot swallow the closing parenthesis.

    Parameters
    ----------
    sql : str
        One statement that returns rows.

    Returns
    -------
    str
        The statement, to pass to ``copy_from_query``.
    """
    return sql.rstrip(" \t\r\n\f\v;") + "\n"


class _Plan(NamedTuple):
    """Per column: the parser's kind, the element kind and OID of arrays."""

    kinds: bytes
    elem_kinds: bytes
    elem_oids: tuple[int, ...]
    names: list[str]


async def _plan(
    conn: asyncpg.Connection,
    columns: Sequence[asyncpg.types.Attribute],
    numeric_as_float: bool,
    export: bool = False,
) -> _Plan:
    if _pgcopy is None:
        raise UnsupportedColumnError("", "(parser not built)")
    if not columns:
        raise UnsupportedColumnError("", "(no columns)")
    scalars = {**_SCALAR_KINDS, **_EXPORT_KINDS} if export else _SCALAR_KINDS
    arrays = {**_ARRAY_ELEMENTS, **_EXPORT_ELEMENTS} if export else _ARRAY_ELEMENTS
    kinds = bytearray()
    elem_kinds = bytearray()
    elem_oids: list[int] = []
    lookup: list[int] = []
    for attr in columns:
        oid = attr.type.oid
        kind = scalars.get(oid)
        if kind is not None:
            if kind == _NUMERIC and numeric_as_float:
                kind = _NUMERIC_FLOAT
            kinds.append(kind)
            elem_kinds.append(0)
            elem_oids.append(0)
        elif oid in arrays:
            elem_oid, elem_kind = arrays[oid]
            kinds.append(_ARRAY)
            elem_kinds.append(elem_kind)
            elem_oids.append(elem_oid)
        elif attr.type.kind == "scalar" and attr.type.schema != "pg_catalog":
            kinds.append(0)  # decided below
            elem_kinds.append(0)
            elem_oids.append(0)
            lookup.append(oid)
        else:
            raise UnsupportedColumnError(attr.name, attr.type.name)
    if lookup:
        textual = await _textual_oids(conn, lookup)
        for i, attr in enumerate(columns):
            if kinds[i] == 0:
                if attr.type.oid not in textual:
                    raise UnsupportedColumnError(attr.name, attr.type.name)
                kinds[i] = _TEXT
    return _Plan(bytes(kinds), bytes(elem_kinds), tuple(elem_oids), [a.name for a in columns])


# connection -> {type OID: sent as text}; OIDs are per database, so per connection
_textual_cache: weakref.WeakKeyDictionary[asyncpg.Connection, dict[int, bool]] = (
    weakref.WeakKeyDictionary()
)


async def _textual_oids(conn: asyncpg.Connection, oids: list[int]) -> set[int]:
    known = _textual_cache.setdefault(conn, {})
    missing = [oid for oid in oids if oid not in known]
    if missing:
        rows = await conn.fetch(_TEXTUAL_TYPES_SQL, missing)
        found = {row[0] for row in rows}
        known.update({oid: oid in found for oid in missing})
    return {oid for oid in oids if known[oid]}


class _GcPause:
    """Pauses the cyclic garbage collector while any COPY is being decoded.

    The parser allocates millions of objects that cannot form cycles, and
    the collector's passes over them would cost more than the decoding.
    Pauses nest and may interleave (two COPYs on one event loop, or on two
    loop threads): the collector is switched off by the first and back on
    by the last, and only if it was on to begin with.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._was_enabled:
                    gc.enable()


_gc_paused = _GcPause()


def _parser(
    plan: _Plan, layout: int = _PANDAS, keys: tuple[bytes, ...] | None = None
) -> _pgcopy.Parser:
    return _pgcopy.Parser(
        plan.kinds,
        plan.elem_kinds,
        plan.elem_oids,
        decimal.Decimal,
        pgproto.UUID,
        _json_loads,
        json.loads,
        layout=layout,
        keys=keys,
    )


class _FrameBuilder:
    """The parser, and the conversion of its buffers into a DataFrame."""

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan
        self._parser = _parser(plan)
        self.feed: Callable[[bytearray | bytes], None] = self._parser.feed
        self.parser = self._parser

    def frame(self) -> pd.DataFrame:
        """End the stream and build the frame (raises deferred value errors)."""
        parser = self._parser
        outs = parser.finish()
        n = parser.nrows
        arrays = {
            i: self._array(i, kind, out, n)
            for i, (kind, out) in enumerate(zip(self._plan.kinds, outs, strict=True))
        }
        frame = pd.DataFrame(arrays, copy=False)
        frame.columns = pd.Index(self._plan.names, dtype=object)
        return frame

    def _array(self, index: int, kind: int, out: tuple[Any, ...], n: int) -> Any:
        tag = out[0]
        if tag == "object":
            objects = np.empty(n, dtype=object)
            self._parser.take_objects(index, objects)
            return objects
        if tag == "text":
            _, validity, offsets, data, null_count = out
            arrow = pa.Array.from_buffers(
                pa.large_string(),
                n,
                [
                    None if validity is None else pa.py_buffer(validity),
                    pa.py_buffer(offsets),
                    pa.py_buffer(data),
                ],
                null_count=null_count,
            )
            return pd.array(arrow, dtype=_STR_DTYPE)
        _, values, mask_buf = out
        if kind in _INT_DTYPES or kind == _BOOL:
            mask = np.zeros(n, dtype=bool) if mask_buf is None else np.frombuffer(mask_buf, bool)
            if kind == _BOOL:
                return pd.arrays.BooleanArray(np.frombuffer(values, bool), mask)
            return pd.arrays.IntegerArray(np.frombuffer(values, _INT_DTYPES[kind]), mask)
        if kind == _TIMESTAMPTZ:
            return pd.array(np.frombuffer(values, "M8[us]"), dtype=_UTC_DTYPE)
        return np.frombuffer(values, _NUMPY_DTYPES[kind])


async def supports(
    conn: asyncpg.Connection,
    columns: Sequence[asyncpg.types.Attribute],
    numeric_as_float: bool = False,
) -> bool:
    """Whether :func:`copy_frame` can decode every column (nothing is sent for built-ins).

    Parameters
    ----------
    conn : asyncpg.Connection
    columns : sequence of asyncpg.types.Attribute
    numeric_as_float : bool

    Returns
    -------
    bool
    """
    try:
        await _plan(conn, columns, numeric_as_float)
    except UnsupportedColumnError:
        return False
    return True


async def copy_frame(
    conn: asyncpg.Connection,
    sql: str,
    columns: Sequence[asyncpg.types.Attribute],
    *,
    numeric_as_float: bool = False,
    timeout: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run ``sql`` through binary COPY and return its rows as a DataFrame.

    Parameters
    ----------
    conn : asyncpg.Connection
        The session's connection; temp tables and an open transaction stay
        as they are.
    sql : str
        A statement without parameters that returns rows, already prepared
        by the caller (which is where ``columns`` come from).
    columns : sequence of asyncpg.types.Attribute
        ``PreparedStatement.get_attributes()`` for ``sql``.
    numeric_as_float : bool, default False
        Decode ``numeric`` as float64 instead of ``decimal.Decimal``.
    timeout : float, optional
        Seconds before asyncpg cancels the COPY, as for ``fetch``.
    on_progress : callable, optional
        Called on the loop thread after each chunk with the rows decoded and
        the bytes received so far (progress bars).

    Returns
    -------
    pandas.DataFrame
        One column per attribute, with the dtypes of the record path.

    Raises
    ------
    UnsupportedColumnError
        Before running anything, when a column type is not supported or
        the parser was not built; take the record path instead.
    ColumnMismatchError
        After the stream ended, when it did not match ``columns``.
    ValueError, OverflowError, UnicodeDecodeError
        After the stream ended, for a value asyncpg would refuse to decode
        (the record path raises the same); the session is unharmed.

    Examples
    --------
    >>> stmt = await conn.prepare("SELECT * FROM t")  # doctest: +SKIP
    >>> df = await copy_frame(conn, "SELECT * FROM t", stmt.get_attributes())  # doctest: +SKIP
    """
    builder = _FrameBuilder(await _plan(conn, columns, numeric_as_float))
    feed = builder.feed
    received = 0

    parser = builder.parser

    async def sink(chunk: bytearray) -> None:
        nonlocal received
        feed(chunk)
        received += len(chunk)
        if on_progress is not None:
            on_progress(parser.nrows, received)
        await _pace(received, len(chunk))

    with _gc_paused():
        await conn.copy_from_query(
            copy_statement(sql), output=sink, format="binary", timeout=timeout
        )
        try:
            return builder.frame()
        except _pgcopy.ProtocolError as error:
            raise ColumnMismatchError(str(error)) from error


# ----------------------------------------------------------------- exports
_ARROW_TYPES: Final[dict[int, Any]] = {
    _BOOL: pa.bool_(),
    _INT2: pa.int16(),
    _INT4: pa.int32(),
    _INT8: pa.int64(),
    _OID: pa.int64(),
    _FLOAT4: pa.float32(),
    _FLOAT8: pa.float64(),
    _NUMERIC_FLOAT: pa.float64(),
    _TIMESTAMP: pa.timestamp("us"),
    _TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    _DATE: pa.date32(),
    _INTERVAL: pa.duration("us"),
    _TIME: pa.time64("us"),
    _UUID: pa.binary(16),
    # The parser's variable-width buffers have int64 offsets; the kinds are
    # cast to the 32-bit types below (batches are far below 2 GB).
    _TEXT: pa.large_string(),
    _JSON: pa.large_string(),
    _JSONB: pa.large_string(),
    _TIMETZ: pa.large_string(),
    _NUMERIC: pa.large_string(),
    _BYTEA: pa.large_binary(),
}
_WRITTEN_TYPES: Final[dict[Any, Any]] = {
    pa.large_string(): pa.string(),
    pa.large_binary(): pa.binary(),
}
# The uuid extension type arrived in pyarrow 18; before, the 16 bytes go as they are.
_uuid_type: Callable[[], Any] | None = getattr(pa, "uuid", None)


def _decimal_type(scale: int, int_digits: int) -> Any:
    digits = scale + int_digits
    if digits <= 38:
        return pa.decimal128(38, scale)
    if digits <= 76:
        return pa.decimal256(76, scale)
    raise ValueError(f"{digits} digits")


def _arrow_array(kind: int, elem_kind: int, out: tuple[Any, ...], wanted: Any) -> Any:
    """One column of a parser batch as an Arrow array, without copying its values.

    ``wanted`` is the column's type in the schema, or None for the first
    batch; only decimals (whose scale and width the data decides) use it.
    """
    length, null_count, validity, values, data, scale, int_digits, levels, child = out
    valid = None if validity is None else pa.py_buffer(validity)
    if kind == _VOID:
        return pa.nulls(length)
    if kind == _ARRAY:
        inner = wanted
        for _ in levels:
            inner = inner.value_type if inner is not None and pa.types.is_list(inner) else None
        array = _arrow_array(elem_kind, 0, child, inner)
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
    buffers = [valid, pa.py_buffer(values)]
    if data is not None:
        buffers.append(pa.py_buffer(data))
    array = pa.Array.from_buffers(storage, length, buffers, null_count=null_count)
    if kind == _NUMERIC:
        return array.cast(wanted or _decimal_type(scale, int_digits))
    if storage in _WRITTEN_TYPES:
        return array.cast(_WRITTEN_TYPES[storage])
    if kind == _UUID and _uuid_type is not None:
        return pa.ExtensionArray.from_storage(_uuid_type(), array)
    return array


class _RecordBatches:
    """Parser batches to record batches under one schema, fixed by the first batch."""

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan
        self._schema: Any = None

    def __call__(self, nrows: int, columns: list[tuple[Any, ...]]) -> Any:
        plan, schema = self._plan, self._schema
        arrays = []
        for i, out in enumerate(columns):
            wanted = None if schema is None else schema.field(i).type
            try:
                array = _arrow_array(plan.kinds[i], plan.elem_kinds[i], out, wanted)
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
    parser: _pgcopy.Parser,
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
        await _pace(received, len(chunk))

    try:
        await conn.copy_from_query(
            copy_statement(sql), output=sink, format="binary", timeout=timeout
        )
        nrows, payload = parser.finish()
        if nrows or not delivered:  # an empty result still gets its (empty) batch
            await hand_over(nrows, payload)
        if writing is not None:
            await writing
    except _pgcopy.ProtocolError as error:  # from take_batch() or finish()
        raise ColumnMismatchError(str(error)) from error
    finally:
        if writing is not None and not writing.done():
            # A worker thread cannot be stopped: let it end its batch before
            # the caller closes the file it writes to.
            await asyncio.wait([writing])
            if not writing.cancelled():
                writing.exception()  # the error raised is the first one
    return delivered


async def _pace(received: int, size: int) -> None:
    # asyncpg hands over whatever the socket holds, and a trip through the
    # event loop per 8-16 KB chunk costs more than decoding it.  Once a
    # result is known to be large, a small chunk means the client is ahead
    # of the server: wait about a millisecond so the next one is big.
    if received > _COALESCE_AFTER and size < _SMALL_CHUNK:
        await asyncio.sleep(_COALESCE_WAIT)


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
    timestamptz, timestamp                 timestamp[us, tz=UTC], timestamp[us]
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
    plan = await _plan(conn, columns, numeric_as_float, export=True)
    batches = _RecordBatches(plan)

    def deliver(nrows: int, payload: list[tuple[Any, ...]]) -> None:
        write(batches(nrows, payload))

    return await _copy_batches(
        conn,
        sql,
        _parser(plan, _ARROW),
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
) -> int:
    """Run ``sql`` through binary COPY and hand its rows to ``write`` as JSON lines.

    Each row is one JSON object, keys in column order, UTF-8, ending in a
    newline.  Numbers stay numbers (floats as Python's ``repr``, NaN and
    infinities null) except ``numeric``, which is its exact text as a
    string (NaN null); timestamps are ISO 8601 with microseconds (``Z`` for
    timestamptz), dates ``YYYY-MM-DD``, intervals as pandas writes them
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
    plan = await _plan(conn, columns, numeric_as_float, export=True)
    keys = tuple(
        (b"," if i else b"{") + json.dumps(name, ensure_ascii=False).encode() + b":"
        for i, name in enumerate(plan.names)
    )

    def deliver(nrows: int, payload: Any) -> None:
        write(memoryview(payload))

    return await _copy_batches(
        conn,
        sql,
        _parser(plan, _JSONL, keys),
        deliver,
        batch_rows=batch_rows,
        timeout=timeout,
        on_progress=on_progress,
    )
