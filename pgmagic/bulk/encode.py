"""The Python side of the binary COPY encoder (``_pgencode``) used by loads.

Each column of a chunk becomes its binary values: numpy for fixed-width
types, Arrow buffers for text, and the C encoder for objects and for the
interleaving into rows.  A column that cannot be written exactly as the
server would read its CSV text gets no binary plan, and the load goes as CSV.
pandas columns of ``pandas.ArrowDtype`` (Arrow tables and polars frames
become such, :func:`pgmagic.bulk.sources.arrow_frames`) are read from their
Arrow buffers.  The column types ``--create`` gives are in
:mod:`pgmagic.bulk.coltypes`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from pgmagic import _oids as oids
from pgmagic._oids import EncodeKind
from pgmagic.results import zones
from pgmagic.runtime.connect import json_bytes

__all__ = [
    "CHUNK_ROWS",
    "Target",
    "arrow_of",
    "binary_chunks",
    "binary_plan",
    "is_missing",
    "json_bytes",
    "pgencode",
    "read_in_zone",
]

try:
    from pgmagic import _pgencode as pgencode
except ImportError:  # a pure-Python build (PGMAGIC_NO_EXT=1): loads send CSV
    pgencode = None  # type: ignore[assignment]

# Small enough that converting one chunk overlaps the server parsing the last.
CHUNK_ROWS = 25_000


# ---------------------------------------------------------------- binary COPY
_TEXTS = (oids.TEXT, oids.VARCHAR, oids.BPCHAR)


# Object columns and list elements: the encoder for the target type.
_OBJECT_KINDS = {
    oids.BOOL: EncodeKind.BOOL, oids.INT2: EncodeKind.INT2, oids.INT4: EncodeKind.INT4,
    oids.INT8: EncodeKind.INT8, oids.FLOAT8: EncodeKind.FLOAT8, oids.NUMERIC: EncodeKind.NUMERIC,
    oids.TEXT: EncodeKind.TEXT, oids.VARCHAR: EncodeKind.TEXT, oids.BPCHAR: EncodeKind.TEXT,
    oids.BYTEA: EncodeKind.BYTEA, oids.UUID: EncodeKind.UUID, oids.DATE: EncodeKind.DATE,
    oids.TIME: EncodeKind.TIME, oids.JSON: EncodeKind.JSON, oids.JSONB: EncodeKind.JSONB,
}  # fmt: skip


_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, in microseconds since 1970


_PG_EPOCH_DAYS = 10_957


_TIMESTAMP_MIN_US = -210_866_803_200_000_000  # 4714-11-24 BC, the server's first instant


_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


_US_PER_DAY = 86_400_000_000


@dataclass(frozen=True, slots=True)
class Target:
    """A table column's type, as the encoder needs it."""

    oid: int
    elem_oid: int  # arrays: the element type's OID; 0 otherwise
    # timestamptz and its arrays: the session's TimeZone, which naive values are read in
    zone: str | None = None


def read_in_zone(frame: pd.DataFrame, targets: dict[str, Target]) -> pd.DataFrame:
    """``frame`` with naive datetimes going into timestamptz read in the session's zone.

    The server reads a naive time as a wall time in the session's
    ``TimeZone``; a naive datetime column (or naive ``datetime`` and ``date``
    objects) loaded into a timestamptz column means the same, whether it goes
    in binary or as CSV.

    Parameters
    ----------
    frame : pandas.DataFrame
    targets : dict
        The table's columns by name.

    Returns
    -------
    pandas.DataFrame
        ``frame`` itself when no column needed it.

    Raises
    ------
    ParameterError
        A naive value, and a ``TimeZone`` Python has no zone for.
    """
    out = None
    for i, name in enumerate(frame.columns):
        target = targets.get(str(name))
        if target is None or target.zone is None:
            continue
        series = frame.iloc[:, i]
        converted = _read_in_zone(series, target.zone, f"column {str(name)!r}")
        if converted is not series:
            if out is None:
                out = frame.copy(deep=False)
            out.isetitem(i, converted.array)
    return frame if out is None else out


def _read_in_zone(series: pd.Series, name: str, what: str) -> pd.Series:
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        kind = dtype.pyarrow_dtype
        if pa.types.is_date(kind) or (pa.types.is_timestamp(kind) and kind.tz is None):
            # naive: the pandas column's way below (NULL becomes NaT)
            unit = kind.unit if pa.types.is_timestamp(kind) else "s"
            series = series.astype(np.dtype(f"datetime64[{unit}]"))
            dtype = series.dtype
    if pd.api.types.is_object_dtype(dtype):
        values = series.tolist()
        zone = zones.python_zone(name)
        converted = [None if is_missing(v) else zones.read_naive(v, zone, what) for v in values]
        if all(a is b for a, b in zip(converted, values, strict=True)):
            return series
        return pd.Series(converted, index=series.index, dtype=object, name=series.name)
    if not pd.api.types.is_datetime64_dtype(dtype) or isinstance(dtype, pd.DatetimeTZDtype):
        return series
    zone = zones.python_zone(name)
    if zone is None:
        zones.read_naive(dt.datetime(2000, 1, 1), None, what)  # raises, naming the column
    assert zone is not None
    local = series.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    odd = local.isna() & series.notna()
    if odd.any():
        # Skipped or repeated by a daylight-saving change: the server's choice
        # of offset (zones.wall_time), applied to the exact value.
        naive = series[odd]
        shifts = [
            w - zones.wall_time(w, zone).replace(tzinfo=None)
            for w in naive.dt.floor("us").dt.to_pydatetime()
        ]
        instants = (naive - pd.to_timedelta(shifts)).dt.tz_localize("UTC").dt.tz_convert(zone)
        local = local.where(~odd, instants)
    zoned: pd.Series = local
    return zoned


def is_missing(value: Any) -> bool:
    """NULL in a load, in either format: None, ``pd.NA``, ``NaT`` or a float NaN.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
    """
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and value != value)
    )


@dataclass(frozen=True, slots=True)
class _BinaryColumn:
    """How a DataFrame column becomes a table column's binary values."""

    kind: EncodeKind
    # a chunk of the column -> the buffers pgencode reads for this kind
    take: Callable[[pd.Series], tuple[Any, ...]]
    elem_kind: int = 0
    elem_oid: int = 0


def _mask(part: pd.Series) -> np.ndarray | None:
    mask = part.isna().to_numpy()
    return mask.view(np.uint8) if mask.any() else None


def _take_bools(part: pd.Series) -> tuple[Any, ...]:
    return np.ascontiguousarray(part.to_numpy(dtype=np.uint8, na_value=0)), _mask(part)


def _take_ints(native: np.dtype[Any], out: type[np.integer[Any]]) -> Callable[..., tuple[Any, ...]]:
    info = np.iinfo(out)

    def take(part: pd.Series) -> tuple[Any, ...]:
        values = part.to_numpy(dtype=native, na_value=0)
        if len(values) and (int(values.min()) < info.min or int(values.max()) > info.max):
            raise pgencode.Unencodable(f"integer out of range for {np.dtype(out)}")
        return np.ascontiguousarray(values, dtype=out), _mask(part)

    return take


def _take_floats(out: type[np.floating[Any]]) -> Callable[..., tuple[Any, ...]]:
    def take(part: pd.Series) -> tuple[Any, ...]:
        return np.ascontiguousarray(part.to_numpy(dtype=out, na_value=np.nan)), _mask(part)

    return take


def _take_datetimes(unit: str, date: bool) -> Callable[..., tuple[Any, ...]]:
    def take(part: pd.Series) -> tuple[Any, ...]:
        # a tz-aware column gives its UTC instants: what the CSV path writes
        raw = part.to_numpy(dtype=f"datetime64[{unit}]").view(np.int64)
        return _datetime_values(raw, _mask(part), unit, date)

    return take


def _datetime_values(
    raw: np.ndarray[Any, Any], mask: np.ndarray[Any, Any] | None, unit: str, date: bool
) -> tuple[Any, ...]:
    """Instants since 1970 in ``unit`` as the binary values of a timestamp or date column."""
    if unit == "ns":
        # the server rounds text to microseconds, half to even
        micros, rest = np.divmod(raw, 1000)
        micros += (rest > 500) | ((rest == 500) & (micros % 2 == 1))
    else:
        scale = _US_PER_UNIT[unit]
        valid = raw if mask is None else raw[mask == 0]
        if len(valid) and (
            int(valid.min()) < _TIMESTAMP_MIN_US // scale
            or int(valid.max()) > np.iinfo(np.int64).max // scale
        ):
            raise pgencode.Unencodable("timestamp out of range")
        micros = raw * scale
    if date:  # a date column takes the day, as date_in does from timestamp text
        return (micros // _US_PER_DAY - _PG_EPOCH_DAYS).astype(np.int32), mask
    return micros - _PG_EPOCH_US, mask


def _take_timedeltas(part: pd.Series) -> tuple[Any, ...]:
    # the conversion the CSV path makes, so both round alike
    micros = part.to_numpy(dtype="timedelta64[us]").view(np.int64)
    return np.ascontiguousarray(micros), _mask(part)


def _take_arrow(part: pd.Series) -> tuple[Any, ...]:
    import pyarrow as pa

    try:
        array = pa.array(part, from_pandas=True)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
    except pa.ArrowException as error:
        raise pgencode.Unencodable(str(error)) from None
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        raise pgencode.Unencodable(f"{array.type} is not text")
    validity, offsets, data = array.buffers()
    width = 4 if pa.types.is_string(array.type) else 8
    return offsets, width, array.offset, b"" if data is None else data, validity


def _take_objects(part: pd.Series) -> tuple[Any, ...]:
    return (np.ascontiguousarray(part.to_numpy(dtype=object)),)


# ------------------------------------------------ pandas.ArrowDtype columns
# Arrow tables and polars frames are loaded as DataFrames of ArrowDtype
# columns (sources.arrow_frames); their buffers are read here without a
# Python object per value, except where the encoder takes objects (numeric,
# uuid, bytea, time, arrays).


def arrow_of(part: pd.Series) -> Any:
    """The Arrow array under a (chunk of an) ``pandas.ArrowDtype`` column, in one piece.

    Parameters
    ----------
    part : pandas.Series

    Returns
    -------
    pyarrow.Array
    """
    import pyarrow as pa

    array = pa.array(part.array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


def _arrow_mask(array: Any) -> np.ndarray[Any, Any] | None:
    if not array.null_count:
        return None
    mask: np.ndarray[Any, Any] = array.is_null().to_numpy(zero_copy_only=False)
    return mask.view(np.uint8)


def _arrow_numbers(array: Any, out: Any) -> np.ndarray[Any, Any]:
    """The values of a fixed-width array as ``out``, NULLs as 0 (the mask tells them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if array.null_count:
        array = pc.fill_null(array, pa.scalar(0 if not pa.types.is_boolean(array.type) else False))
    return np.ascontiguousarray(array.to_numpy(zero_copy_only=False), dtype=out)


def _take_arrow_numbers(out: Any) -> Callable[..., tuple[Any, ...]]:
    """Integers, floats or booleans as ``out``; an integer out of its range goes as CSV."""
    info = np.iinfo(out) if np.dtype(out).kind in "iu" else None

    def take(part: pd.Series) -> tuple[Any, ...]:
        array = arrow_of(part)
        values = _arrow_numbers(array, np.dtype(array.type.to_pandas_dtype()))
        if info is not None and len(values):
            low, high = int(values.min()), int(values.max())
            if low < info.min or high > info.max:
                raise pgencode.Unencodable(f"integer out of range for {np.dtype(out)}")
        return np.ascontiguousarray(values, dtype=out), _arrow_mask(array)

    return take


def _take_arrow_datetimes(unit: str, date: bool) -> Callable[..., tuple[Any, ...]]:
    def take(part: pd.Series) -> tuple[Any, ...]:
        import pyarrow as pa

        array = arrow_of(part)
        raw = _arrow_numbers(array.cast(pa.int64()), np.int64)
        return _datetime_values(raw, _arrow_mask(array), unit, date)

    return take


def _take_arrow_days(part: pd.Series) -> tuple[Any, ...]:
    import pyarrow as pa

    array = arrow_of(part)
    days = _arrow_numbers(array.cast(pa.int32()), np.int32)
    return (days - np.int32(_PG_EPOCH_DAYS)).astype(np.int32), _arrow_mask(array)


def _take_arrow_durations(unit: str) -> Callable[..., tuple[Any, ...]]:
    def take(part: pd.Series) -> tuple[Any, ...]:
        import pyarrow as pa

        array = arrow_of(part)
        raw = _arrow_numbers(array.cast(pa.int64()), np.int64)
        # numpy's conversion, as a timedelta64 column's (and the CSV path's)
        micros = raw.view(f"m8[{unit}]").astype("m8[us]").view(np.int64)
        return np.ascontiguousarray(micros), _arrow_mask(array)

    return take


def _take_arrow_nulls(part: pd.Series) -> tuple[Any, ...]:
    # Every row NULL: what the encoder writes for it does not depend on the kind.
    return np.zeros(len(part), dtype=np.uint8), np.ones(len(part), dtype=np.uint8)


def _take_arrow_objects(part: pd.Series) -> tuple[Any, ...]:
    values = arrow_of(part).to_pylist()
    return (np.fromiter(values, dtype=object, count=len(values)),)


def _take_arrow_uuids(part: pd.Series) -> tuple[Any, ...]:
    # fixed_size_binary(16): the 16 bytes, which the encoder takes as a UUID's
    values = [None if v is None else uuid.UUID(bytes=v) for v in arrow_of(part).to_pylist()]
    return (np.fromiter(values, dtype=object, count=len(values)),)


def _arrow_column(kind: Any, target: Target) -> _BinaryColumn | None:
    """The binary encoding of an ArrowDtype column of Arrow type ``kind``, or None (CSV)."""
    import pyarrow as pa

    types, oid = pa.types, target.oid
    if types.is_null(kind):
        return _BinaryColumn(EncodeKind.FIXED1, _take_arrow_nulls)
    if target.elem_oid:
        elem = _OBJECT_KINDS.get(target.elem_oid)
        if not (types.is_list(kind) or types.is_large_list(kind)) or elem is None:
            return None
        if elem in (EncodeKind.JSON, EncodeKind.JSONB):
            return None
        return _BinaryColumn(EncodeKind.ARRAY, _take_arrow_objects, elem, target.elem_oid)
    if types.is_boolean(kind):
        return (
            _BinaryColumn(EncodeKind.FIXED1, _take_arrow_numbers(np.uint8))
            if oid == oids.BOOL
            else None
        )
    if types.is_integer(kind) or types.is_floating(kind):
        column = _number_column(np.dtype(kind.to_pandas_dtype()), oid)
        if column is None:
            return None
        outs = {
            EncodeKind.FIXED2: np.int16,
            EncodeKind.FIXED4: np.float32 if oid == oids.FLOAT4 else np.int32,
            EncodeKind.FIXED8: np.float64 if oid == oids.FLOAT8 else np.int64,
            EncodeKind.NUMERIC_I64: np.int64,
            EncodeKind.NUMERIC_U64: np.uint64,
        }
        return _BinaryColumn(column.kind, _take_arrow_numbers(outs[column.kind]))
    if types.is_string(kind) or types.is_large_string(kind):
        if oid in (*_TEXTS, oids.JSON):
            return _BinaryColumn(EncodeKind.ARROW_TEXT, _take_arrow)
        if oid == oids.JSONB:
            return _BinaryColumn(EncodeKind.ARROW_JSONB, _take_arrow)
        return _BinaryColumn(EncodeKind.UUID, _take_arrow_objects) if oid == oids.UUID else None
    if types.is_timestamp(kind) and kind.unit in _UNITS:
        if oid in (oids.TIMESTAMP, oids.TIMESTAMPTZ):
            return _BinaryColumn(EncodeKind.FIXED8, _take_arrow_datetimes(kind.unit, date=False))
        if oid == oids.DATE:
            return _BinaryColumn(EncodeKind.FIXED4, _take_arrow_datetimes(kind.unit, date=True))
        return None
    if types.is_date32(kind) and oid == oids.DATE:
        return _BinaryColumn(EncodeKind.FIXED4, _take_arrow_days)
    if types.is_duration(kind) and oid == oids.INTERVAL:
        return _BinaryColumn(EncodeKind.INTERVAL, _take_arrow_durations(kind.unit))
    objects = {
        oids.TIME: types.is_time(kind),
        oids.NUMERIC: types.is_decimal(kind),
        oids.UUID: isinstance(kind, pa.BaseExtensionType) and kind.extension_name == "arrow.uuid",
        oids.BYTEA: types.is_binary(kind)
        or types.is_large_binary(kind)
        or types.is_fixed_size_binary(kind),
    }
    if objects.get(oid):
        return _BinaryColumn(_OBJECT_KINDS[oid], _take_arrow_objects)
    if oid == oids.UUID and types.is_fixed_size_binary(kind) and kind.byte_width == 16:
        return _BinaryColumn(EncodeKind.UUID, _take_arrow_uuids)
    return None


_UNITS = ("s", "ms", "us", "ns")


def _binary_column(series: pd.Series, target: Target | None) -> _BinaryColumn | None:
    """The binary encoding of a column into a table column, or None (send CSV)."""
    if target is None:
        return None
    oid = target.oid
    dtype: Any = series.dtype  # numpy or pandas: checked by kind below
    if isinstance(dtype, pd.ArrowDtype):
        return _arrow_column(dtype.pyarrow_dtype, target)
    if pd.api.types.is_object_dtype(dtype):
        if target.elem_oid:
            elem = _OBJECT_KINDS.get(target.elem_oid)
            if elem is None or elem in (EncodeKind.JSON, EncodeKind.JSONB):
                return None
            return _BinaryColumn(EncodeKind.ARRAY, _take_objects, elem, target.elem_oid)
        kind = _OBJECT_KINDS.get(oid)
        return None if kind is None else _BinaryColumn(kind, _take_objects)
    if target.elem_oid:
        return None
    if isinstance(dtype, pd.CategoricalDtype) and not pd.api.types.is_string_dtype(
        dtype.categories.dtype
    ):
        return None
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        if oid in (*_TEXTS, oids.JSON):
            return _BinaryColumn(EncodeKind.ARROW_TEXT, _take_arrow)
        if oid == oids.JSONB:
            return _BinaryColumn(EncodeKind.ARROW_JSONB, _take_arrow)
        if oid == oids.UUID and not isinstance(dtype, pd.CategoricalDtype):
            return _BinaryColumn(EncodeKind.UUID, _take_objects)
        return None
    if pd.api.types.is_bool_dtype(dtype):
        return _BinaryColumn(EncodeKind.FIXED1, _take_bools) if oid == oids.BOOL else None
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        return _number_column(np.dtype(getattr(dtype, "numpy_dtype", dtype)), oid)
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        unit = dtype.unit if isinstance(dtype, pd.DatetimeTZDtype) else np.datetime_data(dtype)[0]
        if unit not in ("s", "ms", "us", "ns"):
            return None
        if oid in (oids.TIMESTAMP, oids.TIMESTAMPTZ):
            return _BinaryColumn(EncodeKind.FIXED8, _take_datetimes(unit, date=False))
        if oid == oids.DATE:
            return _BinaryColumn(EncodeKind.FIXED4, _take_datetimes(unit, date=True))
        return None
    if pd.api.types.is_timedelta64_dtype(dtype) and oid == oids.INTERVAL:
        return _BinaryColumn(EncodeKind.INTERVAL, _take_timedeltas)
    return None


def _number_column(native: np.dtype[Any], oid: int) -> _BinaryColumn | None:
    ints: dict[int, tuple[EncodeKind, type[np.integer[Any]]]] = {
        oids.INT2: (EncodeKind.FIXED2, np.int16),
        oids.INT4: (EncodeKind.FIXED4, np.int32),
        oids.INT8: (EncodeKind.FIXED8, np.int64),
    }
    if native.kind in "iu":
        if oid in ints:
            kind, out = ints[oid]
            return _BinaryColumn(kind, _take_ints(native, out))
        if oid == oids.FLOAT4 and native.itemsize <= 2:  # exact in float32
            return _BinaryColumn(EncodeKind.FIXED4, _take_floats(np.float32))
        if oid == oids.FLOAT8:
            return _BinaryColumn(EncodeKind.FIXED8, _take_floats(np.float64))
        if oid == oids.NUMERIC and native == np.uint64:
            return _BinaryColumn(EncodeKind.NUMERIC_U64, _take_ints(native, np.uint64))
        if oid == oids.NUMERIC:
            return _BinaryColumn(EncodeKind.NUMERIC_I64, _take_ints(native, np.int64))
        return None
    if oid == oids.FLOAT4 and native.itemsize <= 4:
        return _BinaryColumn(EncodeKind.FIXED4, _take_floats(np.float32))
    if oid == oids.FLOAT8:
        return _BinaryColumn(EncodeKind.FIXED8, _take_floats(np.float64))
    return None


def binary_plan(frame: pd.DataFrame, targets: dict[str, Target]) -> list[_BinaryColumn] | None:
    """Each column's binary encoding, or None when any column must go as CSV."""
    if pgencode is None:
        return None
    plan = []
    for i, name in enumerate(frame.columns):
        column = _binary_column(frame.iloc[:, i], targets.get(str(name)))
        if column is None:
            return None
        plan.append(column)
    return plan


def binary_chunks(
    frames: Iterator[pd.DataFrame], targets: dict[str, Target]
) -> Iterator[tuple[bytes, int]]:
    """Binary COPY rows for each frame, with their row counts.

    Parameters
    ----------
    frames : iterator of DataFrame
    targets : dict
        The table's columns by name.

    Yields
    ------
    (bytes, int)

    Raises
    ------
    _pgencode.Unencodable
        A value cannot be written exactly; the caller restarts as CSV.
    """
    for frame in frames:
        plan = binary_plan(frame, targets)
        if plan is None:
            raise pgencode.Unencodable("a later batch has other column types")
        encoder = pgencode.Encoder(
            bytes(c.kind for c in plan),
            bytes(c.elem_kind for c in plan),
            tuple(c.elem_oid for c in plan),
            missing=(pd.NA, pd.NaT),
            uuid_type=uuid.UUID,
            decimal_type=Decimal,
            json_dumps=json_bytes,
            json_one=json_bytes,
        )
        columns = [frame.iloc[:, i] for i in range(frame.shape[1])]
        for start in range(0, len(frame), CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, len(frame))
            try:
                parts = [c.take(s.iloc[start:stop]) for c, s in zip(plan, columns, strict=True)]
            except (TypeError, ValueError, OverflowError) as error:
                # a conversion pandas or numpy refuses (an unusual dtype): CSV decides
                raise pgencode.Unencodable(str(error)) from error
            yield encoder.encode(parts, stop - start), stop - start
