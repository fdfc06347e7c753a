"""Rows plus column types become a pandas DataFrame, through one dtype table.

=========================================  ==========================================
PostgreSQL                                 pandas
=========================================  ==========================================
int2, int4, int8 (oid)                     ``Int16``, ``Int32``, ``Int64`` (nullable)
bool                                       ``boolean`` (nullable)
float4, float8                             ``float32``, ``float64`` (NULL is NaN)
numeric                                    ``object`` of ``Decimal`` (or ``float64``)
text, varchar, char(n), name, enums, ...   ``str`` (pandas' string dtype, NULL is NaN)
timestamptz                                ``datetime64[us, <zone>]``: the session's
                                           ``TimeZone`` (UTC when Python has no
                                           such zone), the instants unchanged
timestamp                                  ``datetime64[us]``
date                                       ``datetime64[s]``
interval                                   ``timedelta64[us]`` (a month counts 30 days)
time, timetz                               ``object`` of ``datetime.time``
uuid                                       ``object`` of ``uuid.UUID``
bytea                                      ``object`` of ``bytes``
json, jsonb                                ``object`` of decoded Python values
arrays                                     ``object`` of lists (nested when multi-dim)
anything else                              ``object`` of what asyncpg returns
=========================================  ==========================================

The dtype depends only on the column's type, never on the values, so a 0-row
result has the same dtypes as a large one.

With ``dtype_backend="pyarrow"`` (pandas' own name for it), the columns are
``pandas.ArrowDtype`` instead, made by :func:`arrow_frame` from the Arrow
table of :mod:`pgmagic.results.arrow`, sharing its buffers (no Python object
per value):

=========================================  ==========================================
PostgreSQL                                 pandas, ``dtype_backend="pyarrow"``
=========================================  ==========================================
int2, int4, int8 (oid)                     ``int16[pyarrow]``, ``int32[pyarrow]``,
                                           ``int64[pyarrow]``
bool                                       ``bool[pyarrow]``
float4, float8                             ``float[pyarrow]``, ``double[pyarrow]``
numeric                                    ``decimal128(38, s)[pyarrow]``, or
                                           ``decimal256(76, s)[pyarrow]`` when wider
                                           (``double[pyarrow]`` with
                                           ``numeric_as_float``)
text, varchar, char(n), name, enums, ...   ``string[pyarrow]``
timestamptz                                ``timestamp[us, tz=<zone>][pyarrow]``: the
                                           session's ``TimeZone``
timestamp                                  ``timestamp[us][pyarrow]``
date                                       ``date32[day][pyarrow]``
interval                                   ``duration[us][pyarrow]``
time                                       ``time64[us][pyarrow]``
timetz                                     ``string[pyarrow]`` (``12:30:00+02:00``)
uuid                                       ``extension<arrow.uuid>[pyarrow]``
bytea                                      ``binary[pyarrow]``
json, jsonb                                ``string[pyarrow]``: the JSON text
arrays                                     ``list<item: ...>[pyarrow]``
=========================================  ==========================================
  ``infinity`` timestamps and dates
become the largest and smallest values Python's ``datetime`` holds, as asyncpg
decodes them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from pgmagic import _oids as oids
from pgmagic.errors import ColumnTypeError, PgMagicError

__all__ = [
    "Column",
    "Kind",
    "arrow_frame",
    "arrow_rows_frame",
    "kind_of",
    "records_to_frame",
    "to_frame",
]


class Kind(Enum):
    """What a PostgreSQL type becomes in a DataFrame."""

    INT16 = "Int16"
    INT32 = "Int32"
    INT64 = "Int64"
    BOOL = "boolean"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    NUMERIC = "numeric"
    STRING = "str"
    TIMESTAMPTZ = "datetime64[us, UTC]"
    TIMESTAMP = "datetime64[us]"
    DATE = "datetime64[s]"
    INTERVAL = "timedelta64[us]"
    OBJECT = "object"


_BY_OID: dict[int, Kind] = {
    oids.BOOL: Kind.BOOL,
    oids.CHAR: Kind.STRING,
    oids.NAME: Kind.STRING,
    oids.INT8: Kind.INT64,
    oids.INT2: Kind.INT16,
    oids.INT4: Kind.INT32,
    oids.TEXT: Kind.STRING,
    oids.OID: Kind.INT64,  # oid is unsigned 32-bit
    oids.FLOAT4: Kind.FLOAT32,
    oids.FLOAT8: Kind.FLOAT64,
    oids.BPCHAR: Kind.STRING,
    oids.VARCHAR: Kind.STRING,
    oids.DATE: Kind.DATE,
    oids.TIMESTAMP: Kind.TIMESTAMP,
    oids.TIMESTAMPTZ: Kind.TIMESTAMPTZ,
    oids.INTERVAL: Kind.INTERVAL,
    oids.NUMERIC: Kind.NUMERIC,
}

# pg_type.typcategory values whose columns hold plain text (enums, citext, ...).
_STRING_CATEGORIES = frozenset({"S", "E"})


#: Types whose values can fall outside what Python and pandas hold.
TIME_TYPES = frozenset({"date", "timestamp", "timestamptz", "interval", "time", "timetz"})
# Python's own words for such a value: "year 0 is out of range", "ordinal must
# be >= 1" (a date BC), "hour must be in 0..23" (24:00:00).
_RANGE_RE = re.compile(r"out of range|ordinal must be|must be in \d|must have magnitude")


@contextlib.contextmanager
def in_python_range(names: Sequence[str]) -> Iterator[None]:
    """Turn a value Python or pandas cannot hold into one line naming its column.

    Parameters
    ----------
    names : sequence of str
        The columns that may hold it (the first is named in the ``::text`` hint).

    Raises
    ------
    ColumnTypeError
        Instead of the ``OverflowError`` or ``ValueError`` of the conversion.
    """
    try:
        yield
    except (OverflowError, ValueError) as error:
        if isinstance(error, PgMagicError) or not _RANGE_RE.search(str(error)):
            raise
        what = (
            "a date before year 1 or after 9999, a time of 24:00, "
            "an infinite interval or one beyond 292,000 years"
        )
        if not names:
            raise ColumnTypeError(
                "",
                f"a column holds a value Python and pandas cannot ({what}): "
                "cast it to text in SQL (::text), or export as csv",
            ) from None
        raise ColumnTypeError(
            ", ".join(names),
            f"holds a value Python and pandas cannot ({what}); select it as text "
            f"({names[0]}::text) to see it as PostgreSQL writes it",
        ) from None


@dataclass(frozen=True, slots=True)
class Column:
    """A result column: its name and PostgreSQL type.

    Attributes
    ----------
    name : str
        Column name as the server reports it (may repeat within a result).
    oid : int
        Type OID.
    type_name : str
        Type name, for display.
    category : str
        ``pg_type.typcategory`` (``"S"`` string, ``"E"`` enum, ...), used only
        for types outside the built-in table.
    """

    name: str
    oid: int
    type_name: str = ""
    category: str = ""


def kind_of(column: Column) -> Kind:
    """The pandas representation of a column's type.

    Parameters
    ----------
    column : Column

    Returns
    -------
    Kind

    Examples
    --------
    >>> kind_of(Column("n", 23)).value
    'Int32'
    """
    kind = _BY_OID.get(column.oid)
    if kind is not None:
        return kind
    if column.category in _STRING_CATEGORIES:
        return Kind.STRING
    return Kind.OBJECT


def _objects(values: Sequence[Any]) -> np.ndarray[Any, Any]:
    # fromiter keeps lists as elements instead of broadcasting them into 2-D.
    return np.fromiter(values, dtype=object, count=len(values))


def _masked(values: Sequence[Any], np_dtype: str, fill: Any) -> tuple[np.ndarray[Any, Any], Any]:
    # Sequence.count compares by identity first, in C: a cheap NULL check.
    if values.count(None) == 0:
        return np.array(values, dtype=np_dtype), np.zeros(len(values), dtype=bool)
    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    data = np.array([fill if v is None else v for v in values], dtype=np_dtype)
    return data, mask


def _integers(np_dtype: str) -> Callable[[Sequence[Any]], Any]:
    def convert(values: Sequence[Any]) -> Any:
        data, mask = _masked(values, np_dtype, 0)
        return pd.arrays.IntegerArray(data, mask)

    return convert


def _booleans(values: Sequence[Any]) -> Any:
    data, mask = _masked(values, "bool", False)
    return pd.arrays.BooleanArray(data, mask)


def _floats(np_dtype: str) -> Callable[[Sequence[Any]], Any]:
    def convert(values: Sequence[Any]) -> Any:
        return np.array(values, dtype=np_dtype)

    return convert


def _with_dtype(dtype: Any) -> Callable[[Sequence[Any]], Any]:
    def convert(values: Sequence[Any]) -> Any:
        return pd.array(values, dtype=dtype)

    return convert


def _timedeltas(values: Sequence[Any]) -> Any:
    return np.array(values, dtype="timedelta64[us]")


_CONVERTERS: dict[Kind, Callable[[Sequence[Any]], Any]] = {
    Kind.INT16: _integers("int16"),
    Kind.INT32: _integers("int32"),
    Kind.INT64: _integers("int64"),
    Kind.BOOL: _booleans,
    Kind.FLOAT32: _floats("float32"),
    Kind.FLOAT64: _floats("float64"),
    Kind.NUMERIC: _objects,
    # Dtype objects, not their names: looking a name up costs more than
    # converting a one-row column.
    Kind.STRING: _with_dtype(pd.api.types.pandas_dtype("str")),
    Kind.TIMESTAMPTZ: _with_dtype(pd.DatetimeTZDtype(unit="us", tz="UTC")),
    Kind.TIMESTAMP: _with_dtype(np.dtype("datetime64[us]")),
    Kind.DATE: _with_dtype(np.dtype("datetime64[s]")),
    Kind.INTERVAL: _timedeltas,
    Kind.OBJECT: _objects,
}


# datetime's range, in microseconds since 1970 ('infinity' decodes to its ends)
_DT_MAX_US = 253_402_300_799_999_999
_DT_MIN_US = -62_135_596_800_000_000
_DAY_US = 86_400_000_000  # more than any zone's offset
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def in_zone(array: Any, zone: dt.tzinfo | None) -> Any:
    """A ``datetime64[us, UTC]`` array shown in ``zone``: the same instants, no copy.

    ``infinity`` and ``-infinity`` (datetime's largest and smallest values
    in UTC) become the largest and smallest local times datetime holds when
    the zone's offset would push them past its years.

    Parameters
    ----------
    array : pandas.arrays.DatetimeArray
    zone : datetime.tzinfo or None
        None or UTC leave the array as it is.

    Returns
    -------
    pandas.arrays.DatetimeArray

    Raises
    ------
    OverflowError
        A value whose local time in ``zone`` falls outside years 1-9999
        (use :func:`in_python_range` to name its column).
    """
    if zone is None or zone is dt.UTC:
        return array
    micros = array.asi8
    near = (micros > _DT_MAX_US - _DAY_US) | ((micros < _DT_MIN_US + _DAY_US) & ~array.isna())
    if near.any():
        micros = micros.copy()
        for i in np.flatnonzero(near).tolist():
            micros[i] = _inside(int(micros[i]), zone)
        array = pd.array(micros.view("M8[us]"), dtype=_UTC)
    return array.tz_convert(zone)


_UTC = pd.DatetimeTZDtype(unit="us", tz="UTC")


def _inside(micros: int, zone: dt.tzinfo) -> int:
    """An instant at the ends of datetime's range, kept inside it once shown in ``zone``."""
    top = micros > 0
    # the offset a day inside the range: no zone changes on the first or last day
    inside = _EPOCH + dt.timedelta(microseconds=micros + (-_DAY_US if top else _DAY_US))
    offset = inside.astimezone(zone).utcoffset() or dt.timedelta(0)
    local = micros + offset // dt.timedelta(microseconds=1)
    if _DT_MIN_US <= local <= _DT_MAX_US:
        return micros
    if micros in (_DT_MAX_US, _DT_MIN_US):  # 'infinity': the local end of the range
        return micros - (local - (_DT_MAX_US if top else _DT_MIN_US))
    raise OverflowError(f"year {10000 if top else 0} is out of range")


def to_frame(
    columns: Sequence[Column],
    values: Sequence[Sequence[Any]],
    *,
    numeric_as_float: bool = False,
    zone: dt.tzinfo | None = None,
) -> pd.DataFrame:
    """Build a DataFrame from column-wise Python values.

    Parameters
    ----------
    columns : sequence of Column
        The result's columns, in order.
    values : sequence of sequences
        One sequence of Python values per column, as asyncpg decodes them.
    numeric_as_float : bool
        Give ``numeric`` columns as ``float64`` instead of ``Decimal`` objects.
    zone : datetime.tzinfo, optional
        Show ``timestamptz`` columns in this zone (the session's); UTC if None.

    Returns
    -------
    pandas.DataFrame
    """
    arrays: dict[int, Any] = {}
    for i, (column, column_values) in enumerate(zip(columns, values, strict=True)):
        kind = kind_of(column)
        if kind is Kind.NUMERIC and numeric_as_float:
            kind = Kind.FLOAT64
        arrays[i] = _CONVERTERS[kind](column_values)
        if kind is Kind.TIMESTAMPTZ:
            with in_python_range([column.name]):
                arrays[i] = in_zone(arrays[i], zone)
    # The index given, not inferred from the arrays: a tenth of a small result's cost.
    frame = pd.DataFrame(arrays, index=pd.RangeIndex(len(values[0]) if values else 0), copy=False)
    frame.columns = pd.Index([c.name for c in columns], dtype=object)
    return frame


def records_to_frame(
    columns: Sequence[Column],
    records: Sequence[Sequence[Any]],
    *,
    numeric_as_float: bool = False,
    zone: dt.tzinfo | None = None,
) -> pd.DataFrame:
    """Build a DataFrame from rows (asyncpg Records or tuples).

    Parameters
    ----------
    columns : sequence of Column
        The result's columns, in order.
    records : sequence of rows
        Rows as asyncpg returns them.
    numeric_as_float : bool
        Give ``numeric`` columns as ``float64`` instead of ``Decimal`` objects.
    zone : datetime.tzinfo, optional
        Show ``timestamptz`` columns in this zone (the session's); UTC if None.

    Returns
    -------
    pandas.DataFrame
        Dtypes follow the table in this module's docstring; a 0-row result
        still has its columns and dtypes.

    Examples
    --------
    >>> records_to_frame([Column("n", 23)], [(1,), (None,)]).dtypes.iloc[0]
    Int32Dtype()
    """
    if records:
        values: Sequence[Sequence[Any]] = list(zip(*records, strict=True))
    else:
        values = [() for _ in columns]
    return to_frame(columns, values, numeric_as_float=numeric_as_float, zone=zone)


def arrow_rows_frame(
    columns: Sequence[Column], table: Any, *, zone: dt.tzinfo | None = None
) -> pd.DataFrame:
    """A few rows of an Arrow table as the DataFrame the pandas path gives for them.

    For drawing ``--arrow`` and ``--polars`` results as pandas ones are
    drawn: each value goes through Python, so pass only the rows shown.

    Parameters
    ----------
    columns : sequence of Column
        The result's columns; when their names are no longer the table's,
        every column is drawn as ``object``.
    table : pyarrow.Table
    zone : datetime.tzinfo, optional
        The session's zone, for timestamptz columns.

    Returns
    -------
    pandas.DataFrame
    """
    names = [str(name) for name in table.column_names]
    if [c.name for c in columns] != names:
        columns = [Column(name, 0) for name in names]
    values: list[list[Any]] = []
    as_float = False
    for i, column in enumerate(columns):
        python = table.column(i).to_pylist()
        if column.oid == oids.UUID:  # polars keeps a uuid as its 16 bytes
            python = [uuid.UUID(bytes=v) if isinstance(v, bytes) else v for v in python]
        # numeric_as_float made the column float64 (one flag covers the table)
        as_float = as_float or (
            column.oid == oids.NUMERIC and any(isinstance(v, float) for v in python)
        )
        values.append(python)
    return to_frame(columns, values, numeric_as_float=as_float, zone=zone)


def arrow_frame(table: Any) -> pd.DataFrame:
    """A ``pyarrow.Table`` as a DataFrame of ``pandas.ArrowDtype`` columns, sharing its buffers.

    What ``dtype_backend="pyarrow"`` gives: each column keeps its Arrow type
    (the table in this module's docstring), and no value becomes a Python
    object.  Built column by column, since ``Table.to_pandas`` confuses
    columns of the same name.

    Parameters
    ----------
    table : pyarrow.Table

    Returns
    -------
    pandas.DataFrame
        A 0-row table keeps its columns and dtypes.

    Examples
    --------
    >>> import pyarrow as pa
    >>> arrow_frame(pa.table({"n": pa.array([1, None], pa.int32())})).dtypes.iloc[0]
    int32[pyarrow]
    """
    arrays = {i: pd.arrays.ArrowExtensionArray(table.column(i)) for i in range(table.num_columns)}
    frame = pd.DataFrame(arrays, index=pd.RangeIndex(table.num_rows), copy=False)
    frame.columns = pd.Index([str(name) for name in table.column_names], dtype=object)
    return frame
