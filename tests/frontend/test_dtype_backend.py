"""PgMagics.dtype_backend, --dtype-backend and dtype_backend=: pandas.ArrowDtype columns.

The reference is the record path: the session's asyncpg Record (``--one``)
for the same SQL.  Each cell runs twice, as in ``test_frame_kinds.py``: the
first run goes through COPY, the second (a result known to be short)
through Records.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import pgmagic
from pgmagic.errors import OptionError
from pgmagic.results import decode
from tests.shell import fails, run

pytestmark = pytest.mark.skipif(
    not decode.is_available(), reason="the _pgcopy extension is not built"
)

U = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"

# SQL expression -> the column's dtype, as pandas names it
TYPES: list[tuple[str, str]] = [
    ("7::int2", "int16[pyarrow]"),
    ("NULL::int4", "int32[pyarrow]"),
    ("9007199254740993::int8", "int64[pyarrow]"),
    ("42::oid", "int64[pyarrow]"),
    ("1.5::float4", "float[pyarrow]"),
    ("0.1::float8", "double[pyarrow]"),
    ("'NaN'::float8", "double[pyarrow]"),
    ("1.50::numeric", "decimal128(38, 2)[pyarrow]"),
    ("1e40::numeric + 0.5", "decimal256(76, 1)[pyarrow]"),
    ("NULL::numeric", "decimal128(38, 0)[pyarrow]"),
    ("'ü'::varchar(3)", "string[pyarrow]"),
    ("'x'::name", "string[pyarrow]"),
    ("'ab'::char(3)", "string[pyarrow]"),
    ("true", "bool[pyarrow]"),
    ("date '2024-01-02'", "date32[day][pyarrow]"),
    ("timestamp '2024-01-02 03:04:05.000006'", "timestamp[us][pyarrow]"),
    ("timestamptz '2024-01-02 03:04:05+00'", "timestamp[us, tz=Asia/Kolkata][pyarrow]"),
    ("interval '1 day 02:00'", "duration[us][pyarrow]"),
    ("time '12:30'", "time64[us][pyarrow]"),
    ("timetz '12:30+02'", "string[pyarrow]"),
    (f"'{U}'::uuid", "extension<arrow.uuid>[pyarrow]"),
    ("'\\x01ff'::bytea", "binary[pyarrow]"),
    ("'{\"a\": [1]}'::jsonb", "string[pyarrow]"),
    ("'[1, 2]'::json", "string[pyarrow]"),
    ("ARRAY[1, NULL]", "list<item: int32>[pyarrow]"),
    ("ARRAY[[1.5, 2], [3, NULL]]::numeric[]", "list<item: list<item: decimal128(38, 1)>>[pyarrow]"),
    ("ARRAY['a', NULL]::text[]", "list<item: string>[pyarrow]"),
]


def _python(value: Any) -> Any:
    """A value of an ArrowDtype column as asyncpg gives it."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, pd.Timedelta):
        return value.to_pytimedelta()
    return value


def _same(got: Any, record: Any) -> bool:
    if isinstance(record, dt.time) and record.tzinfo is not None:
        return bool(got == record.isoformat())  # timetz: its text, as on the Arrow path
    if isinstance(record, dict | list) and isinstance(got, str):
        return bool(json.loads(got) == record)  # JSON: its text
    if isinstance(record, float) and record != record:
        return got != got  # NaN stays NaN
    return bool(got == record)


@pytest.mark.parametrize(("expression", "dtype"), TYPES)
def test_each_type_equals_the_record(ip: Any, expression: str, dtype: str) -> None:
    run(ip, "%pg -q SET TimeZone = 'Asia/Kolkata'")
    record = run(ip, f"%pg --one SELECT {expression} AS v")
    for _ in ("copy", "records"):
        frame = run(ip, f"%%pg --dtype-backend pyarrow\nSELECT {expression} AS v")
        assert isinstance(frame["v"].dtype, pd.ArrowDtype)
        assert str(frame["v"].dtype) == dtype
        assert _same(_python(frame["v"].iloc[0]), record["v"]), (frame["v"].iloc[0], record["v"])


@pytest.mark.parametrize(("expression", "dtype"), TYPES)
def test_each_type_streamed(ip: Any, expression: str, dtype: str) -> None:
    run(ip, "%pg -q SET TimeZone = 'Asia/Kolkata'")
    whole = run(ip, f"%%pg --dtype-backend pyarrow\nSELECT {expression} AS v, 1 AS n")
    stream = run(
        ip,
        f"%%pg --stream --dtype-backend pyarrow\nSELECT {expression} AS v FROM generate_series(1, 3)",
    )
    chunks = list(stream)
    assert len(chunks) == 1 and len(chunks[0]) == 3
    assert str(chunks[0]["v"].dtype) == dtype
    expected = whole["v"].iloc[0]
    for got in chunks[0]["v"].tolist():
        assert (got is pd.NA and expected is pd.NA) or got == expected or got != got


def test_many_rows_with_nulls_equal_the_default_frame(ip: Any) -> None:
    sql = (
        "SELECT g AS i, g * 0.5 AS n, 'row ' || g AS t, g % 2 = 0 AS b, "
        "CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS maybe, "
        "CASE WHEN g % 5 = 0 THEN NULL ELSE md5(g::text)::uuid END AS u, "
        "timestamptz '2024-01-01' + g * interval '1 minute' AS ts "
        "FROM generate_series(1, 2500) g"
    )
    reference = run(ip, f"%%pg\n{sql}")
    frame = run(ip, f"%%pg --dtype-backend pyarrow\n{sql}")
    assert len(frame) == 2500 and list(frame.columns) == list(reference.columns)
    for name in frame.columns:
        expected = [None if pd.isna(v) else v for v in reference[name].tolist()]
        got = [None if pd.isna(v) else v for v in frame[name].tolist()]
        assert got == expected, name
    assert frame["maybe"].isna().sum() == 833 and frame["u"].isna().sum() == 500


def test_zero_rows_keep_the_dtypes(ip: Any) -> None:
    sql = (
        "SELECT 1::int4 AS a, 'x'::text AS b, 1.5::numeric AS c, now() AS d, "
        "'{}'::jsonb AS e, ARRAY[1] AS g WHERE false"
    )
    frame = run(ip, f"%%pg --dtype-backend pyarrow\n{sql}")
    assert len(frame) == 0 and list(frame.columns) == ["a", "b", "c", "d", "e", "g"]
    assert all(isinstance(d, pd.ArrowDtype) for d in frame.dtypes)
    assert [str(d) for d in frame.dtypes[:3]] == [
        "int32[pyarrow]",
        "string[pyarrow]",
        "decimal128(38, 0)[pyarrow]",
    ]


def test_returning_and_numeric_as_float_take_the_record_path(ip: Any) -> None:
    run(ip, "%pg -q CREATE TEMP TABLE backend_t (id int4, n numeric(6,2), tags text[])")
    frame = run(
        ip,
        "%%pg --dtype-backend pyarrow\n"
        "INSERT INTO backend_t VALUES (1, 2.5, '{a,b}'), (2, NULL, NULL) RETURNING *",
    )
    assert [str(d) for d in frame.dtypes] == [
        "int32[pyarrow]",
        "decimal128(38, 2)[pyarrow]",
        "list<item: string>[pyarrow]",
    ]
    assert frame["n"].tolist()[0] == Decimal("2.50") and frame["tags"].tolist()[0] == ["a", "b"]
    assert frame["n"].isna().tolist() == [False, True]
    run(ip, "%config PgMagics.numeric_as_float = True")
    frame = run(ip, "%pg --dtype-backend pyarrow SELECT 1.5::numeric AS n")
    assert str(frame["n"].dtype) == "double[pyarrow]" and frame["n"].iloc[0] == 1.5


def test_repeated_column_names_keep_their_own_dtypes(ip: Any) -> None:
    frame = run(ip, "%pg --dtype-backend pyarrow SELECT 1 AS a, 'x' AS a")
    assert [str(d) for d in frame.dtypes] == ["int32[pyarrow]", "string[pyarrow]"]
    assert frame.iloc[0].tolist() == [1, "x"]


def test_the_config_trait_and_the_per_cell_override(ip: Any) -> None:
    run(ip, "%config PgMagics.dtype_backend = 'pyarrow'")
    assert str(run(ip, "%pg SELECT 1 AS x")["x"].dtype) == "int32[pyarrow]"
    assert str(run(ip, "%pg --dtype-backend numpy_nullable SELECT 1 AS x")["x"].dtype) == "Int32"
    # the other kinds are unaffected
    assert isinstance(run(ip, "%pg --arrow SELECT 1 AS x"), pa.Table)
    assert run(ip, "%pg --one SELECT 1 AS x")["x"] == 1
    run(ip, "%config PgMagics.dtype_backend = 'numpy_nullable'")
    assert str(run(ip, "%pg SELECT 1 AS x")["x"].dtype) == "Int32"


@pytest.mark.parametrize("value", ["'arrow'", "'PyArrow'", "None", "3"])
def test_a_bad_config_value_is_refused_in_one_line(ip: Any, caplog: Any, value: str) -> None:
    run(ip, f"%config PgMagics.dtype_backend = {value}")
    assert "PgMagics.dtype_backend" in caplog.text
    magics = ip.magics_manager.registry["PgMagics"]
    assert magics.dtype_backend == "numpy_nullable"
    ip.run_line_magic("reload_ext", "pgmagic")  # the refused value must not break loading
    assert str(run(ip, "%pg SELECT 1 AS x")["x"].dtype) == "Int32"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--dtype-backend arrow SELECT 1", "--dtype-backend must be numpy_nullable or pyarrow"),
        ("--dtype-backend pyarrow --arrow SELECT 1", "shapes pandas DataFrames, not --arrow"),
        ("--dtype-backend pyarrow --polars SELECT 1", "not --polars"),
        ("--dtype-backend pyarrow --one SELECT 1", "does not combine with --one"),
        ("--dtype-backend pyarrow --to x.csv SELECT 1", "--to"),
        ("--dtype-backend pyarrow --explain SELECT 1", "--explain"),
    ],
)
def test_bad_cell_options(ip: Any, line: str, message: str) -> None:
    error, _ = fails(ip, f"%pg {line}")
    assert isinstance(error, OptionError) and message in str(error)
    assert "\n" not in str(error)


def test_the_option_needs_pandas_rows(ip: Any) -> None:
    run(ip, "%config PgMagics.frame = 'arrow'")
    error, _ = fails(ip, "%pg --dtype-backend pyarrow SELECT 1")
    assert isinstance(error, OptionError) and "(add --pandas)" in str(error)
    frame = run(ip, "%pg --pandas --dtype-backend pyarrow SELECT 1 AS x")
    assert str(frame["x"].dtype) == "int32[pyarrow]"


def test_display_is_the_default_result_table(ip: Any) -> None:
    sql = (
        f"SELECT g AS n, 'r' || g AS t, '{U}'::uuid AS u, ARRAY[g, NULL] AS a "
        "FROM generate_series(1, 30) g"
    )
    value = run(ip, f"%%pg --dtype-backend pyarrow\n{sql}")
    reference = run(ip, f"%%pg\n{sql}")
    formatted, _ = ip.display_formatter.format(value)
    expected, _ = ip.display_formatter.format(reference)
    text = formatted["text/plain"]
    assert "30 rows × 4 columns" in text and "(first 20 shown; the DataFrame holds all)" in text
    assert text.splitlines()[:22] == expected["text/plain"].splitlines()[:22]
    assert U in text and "[1, null]" in text
    assert formatted["text/html"].count("<tr>") == 21


@pytest.mark.parametrize("chunksize", [2, 50_000])
def test_streamed_chunks(ip: Any, chunksize: int) -> None:
    stream = run(
        ip,
        f"%%pg --stream --chunksize {chunksize} --dtype-backend pyarrow\n"
        "SELECT g AS i, (g / 4.0)::numeric(8, 3) AS n, NULLIF(g, 3) AS m "
        "FROM generate_series(1, 5) g",
    )
    chunks = list(stream)
    assert [len(c) for c in chunks] == ([2, 2, 1] if chunksize == 2 else [5])
    assert all(str(c["n"].dtype) == "decimal128(38, 3)[pyarrow]" for c in chunks)
    values = [v for c in chunks for v in c["n"].tolist()]
    assert values == [Decimal(g) / 4 for g in range(1, 6)]
    assert [v for c in chunks for v in c["m"].isna().tolist()] == [False, False, True, False, False]


def test_the_api(ip: Any) -> None:
    run(ip, "%pg -q SELECT 1")  # the default runtime exists

    async def body() -> None:
        frame = await pgmagic.fetch("SELECT $1::int8 AS n", 5, dtype_backend="pyarrow")
        assert str(frame["n"].dtype) == "int64[pyarrow]" and frame["n"].tolist() == [5]
        default = await pgmagic.fetch("SELECT 1 AS n")
        assert str(default["n"].dtype) == "Int32"
        with pytest.raises(OptionError, match="dtype_backend must be one of"):
            await pgmagic.fetch("SELECT 1", dtype_backend="arrow")
        with pytest.raises(OptionError, match="dtype_backend must be one of"):
            pgmagic.stream("SELECT 1", dtype_backend="numpy")
        chunks = [
            c
            async for c in pgmagic.stream(
                "SELECT g FROM generate_series(1, 3) g", chunksize=2, dtype_backend="pyarrow"
            )
        ]
        assert [str(c["g"].dtype) for c in chunks] == ["int32[pyarrow]"] * 2

    asyncio.run(body())


def test_polars_missing_does_not_matter(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)  # what an absent package looks like
    frame = run(ip, "%pg --dtype-backend pyarrow SELECT 1 AS x")
    assert str(frame["x"].dtype) == "int32[pyarrow]"
    error, _ = fails(ip, "%pg --polars SELECT 1")
    assert "pip install 'pgmagic[polars]'" in str(error) and "\n" not in str(error)
