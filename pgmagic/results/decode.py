"""Query results to pandas through binary ``COPY``: the fast path.

``copy_frame`` runs ``COPY (<query>) TO STDOUT (FORMAT binary)`` on the
session's own asyncpg connection and feeds the stream, chunk by chunk, to a
small C parser (``pgmagic._pgcopy``) that fills one buffer per column.  The
parser runs inside the COPY sink on the event-loop thread, so decoding (and
the Python objects that object columns need) overlaps with the server
producing the next rows; the finished buffers become numpy/pyarrow arrays
without a copy.

The frame is exactly what the record path (:mod:`pgmagic.results.frames`)
builds from asyncpg records, column by column, dtype and values.  Columns
whose type the parser does not know raise
:class:`~pgmagic.errors.UnsupportedColumnError` before anything is sent to
the server, so the caller can take the record path instead.  The plan of
columns and the parser are shared with the exports'
:mod:`pgmagic.bulk.arrow`, the parser's Arrow and JSON-lines side.

Errors: :class:`~pgmagic.errors.UnsupportedColumnError` (nothing was sent),
:class:`~pgmagic.errors.ColumnMismatchError` (the stream did not match the
columns of a stale prepared statement; the stream was drained, the session
is unharmed), and ValueError, OverflowError or UnicodeDecodeError for a
value asyncpg itself would refuse to decode (raised after the stream ends,
so the session's transaction is left as it was).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
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

from pgmagic import _oids as oids
from pgmagic._oids import CopyKind, CopyLayout
from pgmagic.errors import ColumnMismatchError, UnsupportedColumnError
from pgmagic.results import shown
from pgmagic.results.frames import in_python_range, in_zone
from pgmagic.sql.copytext import copy_statement

try:  # compiled by the hatch build hook; absent in a source checkout
    from pgmagic import _pgcopy as pgcopy
except ImportError:  # pragma: no cover - exercised only without the build
    pgcopy = None  # type: ignore[assignment]

_json_loads: Callable[[bytes], Any] | None
try:  # orjson: for the JSON texts the parser's own reader leaves aside; used only where exact
    import orjson

    _json_loads = orjson.loads
except ImportError:  # pragma: no cover
    _json_loads = None

__all__ = [
    "Plan",
    "copy_frame",
    "element_oid",
    "is_available",
    "new_parser",
    "pace",
    "pgcopy",
    "plan_columns",
    "supported_type_oids",
    "supports",
]

_SCALAR_KINDS: Final[dict[int, CopyKind]] = {
    oids.BOOL: CopyKind.BOOL,
    oids.BYTEA: CopyKind.BYTEA,
    # "char": asyncpg gives bytes, the record path decodes them as UTF-8
    oids.CHAR: CopyKind.TEXT,
    oids.NAME: CopyKind.TEXT,
    oids.INT8: CopyKind.INT8,
    oids.INT2: CopyKind.INT2,
    oids.INT4: CopyKind.INT4,
    oids.TEXT: CopyKind.TEXT,
    oids.OID: CopyKind.OID,
    oids.JSON: CopyKind.JSON,
    oids.FLOAT4: CopyKind.FLOAT4,
    oids.FLOAT8: CopyKind.FLOAT8,
    oids.BPCHAR: CopyKind.TEXT,
    oids.VARCHAR: CopyKind.TEXT,
    oids.DATE: CopyKind.DATE,
    oids.TIME: CopyKind.TIME,
    oids.TIMESTAMP: CopyKind.TIMESTAMP,
    oids.TIMESTAMPTZ: CopyKind.TIMESTAMPTZ,
    oids.INTERVAL: CopyKind.INTERVAL,
    oids.TIMETZ: CopyKind.TIMETZ,
    oids.NUMERIC: CopyKind.NUMERIC,
    oids.UUID: CopyKind.UUID,
    oids.JSONB: CopyKind.JSONB,
}

# array OID -> (element OID, element kind); elements become what asyncpg
# returns for them ("char" elements stay bytes).
_ARRAY_ELEMENTS: Final[dict[int, tuple[int, CopyKind]]] = {
    oids.BOOL_ARRAY: (oids.BOOL, CopyKind.BOOL),
    oids.BYTEA_ARRAY: (oids.BYTEA, CopyKind.BYTEA),
    oids.CHAR_ARRAY: (oids.CHAR, CopyKind.BYTEA),
    oids.NAME_ARRAY: (oids.NAME, CopyKind.TEXT),
    oids.INT2_ARRAY: (oids.INT2, CopyKind.INT2),
    oids.INT4_ARRAY: (oids.INT4, CopyKind.INT4),
    oids.TEXT_ARRAY: (oids.TEXT, CopyKind.TEXT),
    oids.BPCHAR_ARRAY: (oids.BPCHAR, CopyKind.TEXT),
    oids.VARCHAR_ARRAY: (oids.VARCHAR, CopyKind.TEXT),
    oids.INT8_ARRAY: (oids.INT8, CopyKind.INT8),
    oids.FLOAT4_ARRAY: (oids.FLOAT4, CopyKind.FLOAT4),
    oids.FLOAT8_ARRAY: (oids.FLOAT8, CopyKind.FLOAT8),
    oids.OID_ARRAY: (oids.OID, CopyKind.OID),
    oids.TIMESTAMP_ARRAY: (oids.TIMESTAMP, CopyKind.TIMESTAMP),
    oids.DATE_ARRAY: (oids.DATE, CopyKind.DATE),
    oids.TIME_ARRAY: (oids.TIME, CopyKind.TIME),
    oids.TIMESTAMPTZ_ARRAY: (oids.TIMESTAMPTZ, CopyKind.TIMESTAMPTZ),
    oids.INTERVAL_ARRAY: (oids.INTERVAL, CopyKind.INTERVAL),
    oids.NUMERIC_ARRAY: (oids.NUMERIC, CopyKind.NUMERIC),
    oids.TIMETZ_ARRAY: (oids.TIMETZ, CopyKind.TIMETZ),
    oids.UUID_ARRAY: (oids.UUID, CopyKind.UUID),
    oids.JSON_ARRAY: (oids.JSON, CopyKind.JSON),
    oids.JSONB_ARRAY: (oids.JSONB, CopyKind.JSONB),
}

# What exports take besides: void (a function called for its effect, always
# NULL), and "char" array elements as the text they are rather than bytes.
_EXPORT_KINDS: Final[dict[int, CopyKind]] = {oids.VOID: CopyKind.VOID}
_EXPORT_ELEMENTS: Final[dict[int, tuple[int, CopyKind]]] = {
    oids.CHAR_ARRAY: (oids.CHAR, CopyKind.TEXT),
}

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

_STR_DTYPE: Final = pd.StringDtype("pyarrow", na_value=np.nan)
_UTC_DTYPE: Final = pd.DatetimeTZDtype(unit="us", tz="UTC")
_INT_DTYPES: Final[dict[int, type[np.generic]]] = {
    CopyKind.INT2: np.int16,
    CopyKind.INT4: np.int32,
    CopyKind.INT8: np.int64,
    CopyKind.OID: np.int64,
}
_NUMPY_DTYPES: Final[dict[int, str]] = {
    CopyKind.FLOAT4: "float32",
    CopyKind.FLOAT8: "float64",
    CopyKind.NUMERIC_FLOAT: "float64",
    CopyKind.TIMESTAMP: "M8[us]",
    CopyKind.DATE: "M8[s]",
    CopyKind.INTERVAL: "m8[us]",
}


def is_available() -> bool:
    """Tell whether the compiled parser was built and imports.

    Returns
    -------
    bool
        False in a source checkout that was never built.
    """
    return pgcopy is not None


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


def element_oid(oid: int) -> int | None:
    """The element type of an array type the parser reads.

    Parameters
    ----------
    oid : int
        A type OID.

    Returns
    -------
    int or None
        None when ``oid`` is not such an array type.

    Examples
    --------
    >>> element_oid(1007)  # int4[]
    23
    """
    found = _ARRAY_ELEMENTS.get(oid)
    return None if found is None else found[0]


class Plan(NamedTuple):
    """Per column: the parser's kind, the element kind and OID of arrays."""

    kinds: bytes
    elem_kinds: bytes
    elem_oids: tuple[int, ...]
    names: list[str]


async def plan_columns(
    conn: asyncpg.Connection,
    columns: Sequence[asyncpg.types.Attribute],
    numeric_as_float: bool,
    export: bool = False,
) -> Plan:
    """The parser's plan for a result's columns: their kinds and dtypes.

    Parameters
    ----------
    conn : asyncpg.Connection
    columns : sequence of asyncpg.types.Attribute
    numeric_as_float : bool
    export : bool
        Plan for an export (more types: ``void``, ``"char"`` elements as text).

    Returns
    -------
    Plan

    Raises
    ------
    UnsupportedColumnError
        A column (or the build) cannot take the COPY path.
    """
    if pgcopy is None:
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
            if kind == CopyKind.NUMERIC and numeric_as_float:
                kind = CopyKind.NUMERIC_FLOAT
            kinds.append(kind)
            elem_kinds.append(0)
            elem_oids.append(0)
        elif oid in arrays:
            elem_oid, elem_kind = arrays[oid]
            kinds.append(CopyKind.ARRAY)
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
                kinds[i] = CopyKind.TEXT
    return Plan(bytes(kinds), bytes(elem_kinds), tuple(elem_oids), [a.name for a in columns])


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


def new_parser(
    plan: Plan,
    layout: int = CopyLayout.PANDAS,
    keys: tuple[bytes, ...] | None = None,
    zone: tuple[bytes, bytes, int] | None = None,
) -> pgcopy.Parser:
    """A C parser for a plan, filling pandas, Arrow or JSON-lines buffers.

    Parameters
    ----------
    plan : Plan
    layout : int
        ``CopyLayout.PANDAS``, ``CopyLayout.ARROW`` or ``CopyLayout.JSONL``.
    keys : tuple of bytes, optional
        JSON object keys, for JSON lines.
    zone : tuple, optional
        For JSON lines, the session's zone as
        :func:`pgmagic.results.zones.offset_table` gives it: timestamptz
        values are written with its offsets (``Z`` without one).

    Returns
    -------
    pgmagic._pgcopy.Parser
    """
    return pgcopy.Parser(
        plan.kinds,
        plan.elem_kinds,
        plan.elem_oids,
        decimal.Decimal,
        pgproto.UUID,
        _json_loads,
        json.loads,
        layout=layout,
        keys=keys,
        zone=zone,
    )


class _FrameBuilder:
    """The parser, and the conversion of its buffers into a DataFrame."""

    def __init__(
        self, plan: Plan, zone: dt.tzinfo | None = None, interval_style: str = "postgres"
    ) -> None:
        self.plan = plan
        self.zone = zone
        self.interval_style = interval_style
        # What the frame cannot hold, per column (see results.shown).
        self.aux: dict[int, Any] = {}
        self.new_parser = new_parser(plan)
        self.feed: Callable[[bytearray | bytes], None] = self.new_parser.feed
        self.parser = self.new_parser

    def frame(self) -> pd.DataFrame:
        """End the stream and build the frame (raises deferred value errors)."""
        parser = self.new_parser
        outs = parser.finish()
        n = parser.nrows
        arrays = {
            i: self._array(i, kind, out, n)
            for i, (kind, out) in enumerate(zip(self.plan.kinds, outs, strict=True))
        }
        frame = pd.DataFrame(arrays, copy=False)
        frame.columns = pd.Index(self.plan.names, dtype=object)
        shown.keep(frame, self.aux, self.interval_style)
        return frame

    def _array(self, index: int, kind: int, out: tuple[Any, ...], n: int) -> Any:
        tag = out[0]
        if len(out) == (4 if tag == "fixed" else 3):
            self.aux[index] = out[-1]
            out = out[:-1]
        if tag == "object":
            objects = np.empty(n, dtype=object)
            self.new_parser.take_objects(index, objects)
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
        if kind in _INT_DTYPES or kind == CopyKind.BOOL:
            mask = np.zeros(n, dtype=bool) if mask_buf is None else np.frombuffer(mask_buf, bool)
            if kind == CopyKind.BOOL:
                return pd.arrays.BooleanArray(np.frombuffer(values, bool), mask)
            return pd.arrays.IntegerArray(np.frombuffer(values, _INT_DTYPES[kind]), mask)
        if kind == CopyKind.TIMESTAMPTZ:
            utc = pd.array(np.frombuffer(values, "M8[us]"), dtype=_UTC_DTYPE)
            with in_python_range([self.plan.names[index]]):
                return in_zone(utc, self.zone)
        return np.frombuffer(values, _NUMPY_DTYPES[kind])


async def supports(
    conn: asyncpg.Connection,
    columns: Sequence[asyncpg.types.Attribute],
    numeric_as_float: bool = False,
    export: bool = False,
) -> bool:
    """Whether :func:`copy_frame` can decode every column (nothing is sent for built-ins).

    Parameters
    ----------
    conn : asyncpg.Connection
    columns : sequence of asyncpg.types.Attribute
    numeric_as_float : bool
    export : bool
        For Arrow (:func:`pgmagic.results.arrow.copy_table`) rather than pandas.

    Returns
    -------
    bool
    """
    try:
        await plan_columns(conn, columns, numeric_as_float, export)
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
    zone: dt.tzinfo | None = None,
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
    zone : datetime.tzinfo, optional
        Show ``timestamptz`` columns in this zone (the session's); UTC if None.

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
    # Reported by the server on every change; a pooler may not pass it on.
    style = getattr(conn.get_settings(), "IntervalStyle", "postgres")
    builder = _FrameBuilder(await plan_columns(conn, columns, numeric_as_float), zone, style)
    feed = builder.feed
    received = 0

    parser = builder.parser

    async def sink(chunk: bytearray) -> None:
        nonlocal received
        feed(chunk)
        received += len(chunk)
        if on_progress is not None:
            on_progress(parser.nrows, received)
        await pace(received, len(chunk))

    with _gc_paused():
        await conn.copy_from_query(
            copy_statement(sql), output=sink, format="binary", timeout=timeout
        )
        try:
            return builder.frame()
        except pgcopy.ProtocolError as error:
            raise ColumnMismatchError(str(error)) from error


async def pace(received: int, size: int) -> None:
    """Let a large result's small chunks coalesce: decoding per chunk costs more.

    Parameters
    ----------
    received : int
        Bytes received so far.
    size : int
        Bytes in the chunk just received.
    """
    # asyncpg hands over whatever the socket holds, and a trip through the
    # event loop per 8-16 KB chunk costs more than decoding it.  Once a
    # result is known to be large, a small chunk means the client is ahead
    # of the server: wait about a millisecond so the next one is big.
    if received > _COALESCE_AFTER and size < _SMALL_CHUNK:
        await asyncio.sleep(_COALESCE_WAIT)
