"""The PostgreSQL column types ``--create`` gives a load's columns.

A pandas column's type follows its dtype (for object columns, its first
value); an Arrow one's (a polars frame's, an Arrow table's, a
``pandas.ArrowDtype`` column's) is the inverse of
:mod:`pgmagic.results.arrow`'s table, so that a result loaded back makes a
table of the same types.  The tables are in :mod:`pgmagic.bulk.load`'s
docstring.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pandas as pd

from pgmagic.errors import OptionError

__all__ = ["arrow_pg_type", "pg_type_for"]


def _first(values: pd.Series) -> Any:
    # block by block: dropna() over a million objects costs more than the load's setup
    for start in range(0, len(values), 1024):
        non_null = values.iloc[start : start + 1024].dropna()
        if len(non_null):
            return non_null.iloc[0]
    return None


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
    if isinstance(dtype, pd.ArrowDtype):
        found = arrow_pg_type(dtype.pyarrow_dtype)
        if found is None:
            raise OptionError(
                f"column {str(series.name)!r}: no PostgreSQL type for Arrow's "
                f"{dtype.pyarrow_dtype}; convert it first (a struct to JSON text, for example)"
            )
        return found
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


def arrow_pg_type(kind: Any) -> str | None:
    """The PostgreSQL column type ``--create`` gives an Arrow type; None if there is none.

    The inverse of :mod:`pgmagic.results.arrow`'s table, so that a result
    loaded back makes a table of the same types (JSON, which comes back as
    text, becomes ``text``).

    Parameters
    ----------
    kind : pyarrow.DataType

    Returns
    -------
    str or None

    Examples
    --------
    >>> import pyarrow as pa
    >>> arrow_pg_type(pa.list_(pa.decimal128(38, 2)))
    'numeric[]'
    """
    import pyarrow as pa

    types = pa.types
    if types.is_list(kind) or types.is_large_list(kind) or types.is_fixed_size_list(kind):
        inner = kind.value_type
        while types.is_list(inner) or types.is_large_list(inner):
            inner = inner.value_type  # PostgreSQL arrays of any dimension are one type
        element = arrow_pg_type(inner)
        return None if element is None or types.is_null(inner) else f"{element}[]"
    if types.is_dictionary(kind):
        return arrow_pg_type(kind.value_type)
    if isinstance(kind, pa.BaseExtensionType):
        return "uuid" if kind.extension_name == "arrow.uuid" else None
    if types.is_integer(kind):
        signed = {8: "smallint", 16: "smallint", 32: "integer", 64: "bigint"}
        unsigned = {8: "smallint", 16: "integer", 32: "bigint", 64: "numeric(20)"}
        return (signed if types.is_signed_integer(kind) else unsigned)[kind.bit_width]
    if types.is_floating(kind):
        return "double precision" if kind.bit_width == 64 else "real"
    if types.is_timestamp(kind):
        return "timestamp" if kind.tz is None else "timestamptz"
    for check, pg_type in _arrow_pg_types():
        if check(kind):
            return pg_type
    return None


@functools.cache
def _arrow_pg_types() -> tuple[tuple[Callable[[Any], bool], str], ...]:
    import pyarrow as pa

    types = pa.types
    return (
        (types.is_null, "text"),
        (types.is_boolean, "boolean"),
        (types.is_decimal, "numeric"),
        (types.is_string, "text"),
        (types.is_large_string, "text"),
        (lambda k: getattr(types, "is_string_view", lambda _: False)(k), "text"),
        (types.is_date, "date"),
        (types.is_duration, "interval"),
        (types.is_time, "time"),
        (types.is_binary, "bytea"),
        (types.is_large_binary, "bytea"),
        (types.is_fixed_size_binary, "bytea"),
        (lambda k: getattr(types, "is_binary_view", lambda _: False)(k), "bytea"),
    )


def _all_midnight(series: pd.Series) -> bool:
    values = series.dropna().to_numpy(dtype="datetime64[s]").astype("int64")
    return bool(len(values)) and bool((values % 86400 == 0).all())
