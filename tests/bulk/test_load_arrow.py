"""Loading Arrow tables, polars frames and ArrowDtype DataFrames: from their Arrow buffers.

What ``--arrow``, ``--polars`` and ``dtype_backend="pyarrow"`` give back
must load into a table of the same column types with equal values; so must
polars' own types.  The reference is the server: the loaded table compared
with the source table in SQL, and values read back with asyncpg outside
pgmagic.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import pgmagic
from pgmagic.errors import OptionError
from pgmagic.results import decode
from tests.shell import fails, run

polars = pytest.importorskip("polars")
pytestmark = pytest.mark.skipif(
    not decode.is_available(), reason="the _pgcopy extension is not built"
)

# Columns of the source table: every type the Arrow table reads back as one of
# its own (json is text there, so it comes back as text: left out).
SOURCE_COLUMNS = {
    "i2": "smallint",
    "i4": "integer",
    "i8": "bigint",
    "f4": "real",
    "f8": "double precision",
    "n": "numeric",
    "t": "text",
    "b": "boolean",
    "d": "date",
    "ts": "timestamp without time zone",
    "tz": "timestamp with time zone",
    "iv": "interval",
    "tm": "time without time zone",
    "u": "uuid",
    "by": "bytea",
    "ai": "integer[]",
    "at": "text[]",
    "an": "numeric[]",
    "a2": "bigint[]",
}

_SOURCE_SQL = """
CREATE TABLE {name} AS
SELECT g AS k,
       g::int2 AS i2, (g * 1000)::int4 AS i4, (g::int8 << 40) AS i8,
       (g / 4.0)::float4 AS f4, g / 3.0::float8 AS f8,
       CASE WHEN g = 2 THEN 1e30::numeric + 0.25 ELSE g / 8.0 END AS n,
       'row ' || g || ' ü' AS t, g % 2 = 0 AS b,
       date '2024-02-29' + g AS d,
       timestamp '2024-01-01 00:00:00.000001' + g * interval '1 hour' AS ts,
       timestamptz '2024-03-31 01:30+00' + g * interval '1 hour' AS tz,
       g * interval '1 day 02:03:04.000005' - interval '3 days' AS iv,
       time '00:00' + g * interval '1 minute 0.5 second' AS tm,
       md5(g::text)::uuid AS u, decode(md5(g::text), 'hex') AS by,
       ARRAY[g, NULL, -g] AS ai, ARRAY['a' || g, NULL] AS at,
       ARRAY[g / 2.0, NULL]::numeric[] AS an,
       ARRAY[[g, 2], [3, g]]::int8[] AS a2
FROM generate_series(1, 5) g
UNION ALL
SELECT 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL
"""


def _types(sql: Any, table: str) -> dict[str, str]:
    rows = sql(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        table,
    )
    return {r[0]: r[1] for r in rows}


def _differences(sql: Any, one: str, other: str) -> int:
    """Rows in one query's result and not the other's, either way."""
    rows = sql(
        f"SELECT count(*) FROM (({one} EXCEPT ALL {other}) UNION ALL ({other} EXCEPT ALL {one})) d"
    )
    return int(rows[0][0])


@pytest.mark.parametrize(
    ("option", "left_out"),
    [
        ("--arrow", ()),
        ("--dtype-backend pyarrow", ()),
        # polars keeps a uuid as its 16 bytes and a numeric over 38 digits as text
        ("--polars", ("u", "n")),
    ],
)
def test_a_result_loads_back_into_the_same_types(
    ip: Any, sql: Any, option: str, left_out: tuple[str, ...]
) -> None:
    run(ip, "%pg -q SET TimeZone = 'America/New_York'")
    run(ip, "%pg -q DROP TABLE IF EXISTS arrow_src, arrow_back")
    run(ip, "%pg -q " + " ".join(_SOURCE_SQL.format(name="arrow_src").split()))
    columns = ", ".join(["k", *(c for c in SOURCE_COLUMNS if c not in left_out)])
    # the first run through COPY, the second (short) through Records: both load alike
    for path in ("copy", "records"):
        value = run(ip, f"%%pg {option}\nSELECT {columns} FROM arrow_src ORDER BY k")
        ip.user_ns["value"] = value
        result = asyncio.run(pgmagic.load_table(value, "arrow_back", mode="replace"))
        assert result.copy_format == "binary" and result.rows == 6, path
        expected = {c: t for c, t in _types(sql, "arrow_src").items() if c not in left_out}
        assert _types(sql, "arrow_back") == expected, path
        assert _differences(sql, f"SELECT {columns} FROM arrow_src", "TABLE arrow_back") == 0, path
    run(ip, "%pg load value INTO arrow_magic --replace")
    assert _differences(sql, "TABLE arrow_back", "TABLE arrow_magic") == 0
    assert _types(sql, "arrow_magic") == _types(sql, "arrow_back")


def test_polars_types(ip: Any, sql: Any) -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    frame = polars.DataFrame(
        {
            "i8": polars.Series([1, None, -128], dtype=polars.Int8),
            "i16": polars.Series([1, None, 32767], dtype=polars.Int16),
            "i32": polars.Series([1, None, -(2**31)], dtype=polars.Int32),
            "i64": polars.Series([1, None, 2**63 - 1], dtype=polars.Int64),
            "u32": polars.Series([1, None, 2**32 - 1], dtype=polars.UInt32),
            "u64": polars.Series([1, None, 2**64 - 1], dtype=polars.UInt64),
            "f32": polars.Series([1.5, None, float("inf")], dtype=polars.Float32),
            "f64": [0.1, None, float("nan")],
            "s": ["ü", None, ""],
            "flag": [True, None, False],
            "day": [dt.date(2024, 2, 29), None, dt.date(1, 1, 1)],
            "naive": [dt.datetime(2024, 1, 1, 12, 0, 0, 7), None, dt.datetime(1900, 1, 1)],
            "zoned": polars.Series(
                [dt.datetime(2024, 7, 1, 12), None, dt.datetime(2024, 1, 1)]
            ).dt.replace_time_zone("Europe/Berlin"),
            "wait": [dt.timedelta(days=-1, microseconds=5), None, dt.timedelta(0)],
            "price": polars.Series(
                [Decimal("1.50"), None, Decimal("-99999999.99")], dtype=polars.Decimal(10, 2)
            ),
            "ints": [[1, None, 3], None, []],
            "words": [["a", None], ["ü"], None],
            "raw": [b"\x00\xff", None, b""],
            "nothing": polars.Series([None, None, None], dtype=polars.Null),
            "cat": polars.Series(["x", None, "y"], dtype=polars.Categorical),
            "clock": [dt.time(23, 59, 59, 999999), None, dt.time(0)],
        }
    )
    result = asyncio.run(pgmagic.load_table(frame, "polars_in", mode="replace"))
    assert result.copy_format == "binary" and result.rows == 3
    assert _types(sql, "polars_in") == {
        "i8": "smallint",
        "i16": "smallint",
        "i32": "integer",
        "i64": "bigint",
        "u32": "bigint",
        "u64": "numeric(20,0)",
        "f32": "real",
        "f64": "double precision",
        "s": "text",
        "flag": "boolean",
        "day": "date",
        "naive": "timestamp without time zone",
        "zoned": "timestamp with time zone",
        "wait": "interval",
        "price": "numeric",
        "ints": "bigint[]",
        "words": "text[]",
        "raw": "bytea",
        "nothing": "text",
        "cat": "text",
        "clock": "time without time zone",
    }
    rows = sql("SELECT * FROM polars_in")
    got = {name: [row[name] for row in rows] for name in frame.columns}
    for name in frame.columns:
        expected = frame[name].to_list()
        if name == "f64":
            assert got[name][:2] == expected[:2] and got[name][2] != got[name][2]  # NaN
        elif name == "u64":
            assert got[name] == [None if v is None else Decimal(v) for v in expected]
        elif name == "zoned":
            assert [v and v.astimezone(berlin) for v in got[name]] == expected
        else:
            assert got[name] == expected, name


def test_arrow_shapes_into_an_existing_table(ip: Any, sql: Any) -> None:
    run(ip, "%pg -q SET TimeZone = 'Asia/Kolkata'")
    run(
        ip,
        "%pg -q DROP TABLE IF EXISTS arrow_into; CREATE TABLE arrow_into "
        "(k int4, doc jsonb, u uuid, at timestamptz, n float8)",
    )
    table = pa.table(
        {
            "k": pa.array([1, 2], pa.int64()),  # int64 values into int4
            "doc": ['{"a": [1, "ü"]}', None],
            "u": ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", None],
            "at": pa.array([dt.datetime(2024, 1, 1), None], pa.timestamp("ms")),  # naive
            "n": pa.array([1, None], pa.int32()),
        }
    )
    for source in (
        table,
        table.to_batches()[0],
        pa.RecordBatchReader.from_batches(table.schema, table.to_batches()),
    ):
        result = asyncio.run(pgmagic.load_table(source, "arrow_into", mode="append"))
        assert result.copy_format == "binary" and result.rows == 2
    rows = sql("SELECT k, doc::text, u::text, at, n FROM arrow_into ORDER BY k")
    assert len(rows) == 6
    # a naive time is a wall time in the session's zone, as the server reads one
    kolkata = dt.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("Asia/Kolkata"))
    assert tuple(rows[0]) == (
        1,
        '{"a": [1, "ü"]}',
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        kolkata,
        1.0,
    )
    assert tuple(rows[-1]) == (2, None, None, None, None)


def test_an_integer_out_of_range_restarts_as_csv_and_the_server_refuses_it(ip: Any) -> None:
    run(ip, "%pg -q DROP TABLE IF EXISTS arrow_small; CREATE TABLE arrow_small (k int2)")
    ip.user_ns["wide"] = pa.table({"k": pa.array([1, 70_000], pa.int64())})
    error, _ = fails(ip, "%pg load wide INTO arrow_small --append")
    assert "out of range" in str(error)
    assert run(ip, "%pg --scalar SELECT count(*) FROM arrow_small") == 0


def test_columns_the_encoder_cannot_write_go_as_csv(ip: Any, sql: Any) -> None:
    run(ip, "%pg -q DROP TABLE IF EXISTS arrow_csv; DROP TYPE IF EXISTS arrow_mood")
    run(ip, "%pg -q CREATE TYPE arrow_mood AS ENUM ('sad', 'happy')")
    run(
        ip,
        "%pg -q CREATE TABLE arrow_csv (m arrow_mood, ints int4[], raw bytea, iv interval, "
        "p float8)",
    )
    table = pa.table(
        {
            "m": ["happy", None],
            "ints": [[1, None], None],
            "raw": [b"\x01\xff", None],
            "iv": pa.array([dt.timedelta(days=1, microseconds=1), None], pa.duration("us")),
            "p": pa.array([Decimal("1.25"), None], pa.decimal128(5, 2)),
        }
    )
    result = asyncio.run(pgmagic.load_table(table, "arrow_csv", mode="append"))
    assert result.copy_format == "csv" and result.rows == 2
    rows = sql("SELECT m::text, ints, raw, iv, p FROM arrow_csv ORDER BY m")
    assert tuple(rows[0]) == (
        "happy",
        [1, None],
        b"\x01\xff",
        dt.timedelta(days=1, microseconds=1),
        1.25,
    )
    assert tuple(rows[1]) == (None,) * 5


def test_fixed_size_binary_into_uuid_goes_binary(ip: Any, sql: Any) -> None:
    run(ip, "%pg -q DROP TABLE IF EXISTS arrow_uuid; CREATE TABLE arrow_uuid (u uuid)")
    raw = bytes.fromhex("a0eebc999c0b4ef8bb6d6bb9bd380a11")
    table = pa.table({"u": pa.array([raw, None], pa.binary(16))})
    result = asyncio.run(pgmagic.load_table(table, "arrow_uuid", mode="append"))
    assert result.copy_format == "binary"
    assert [r[0] for r in sql("SELECT u::text FROM arrow_uuid")] == [
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        None,
    ]


def test_zero_rows_make_the_table(ip: Any, sql: Any) -> None:
    frame = polars.DataFrame(
        {"a": polars.Series([], dtype=polars.Int32), "b": polars.Series([], dtype=polars.String)}
    )
    result = asyncio.run(pgmagic.load_table(frame, "arrow_empty", mode="replace"))
    assert result.rows == 0
    assert _types(sql, "arrow_empty") == {"a": "integer", "b": "text"}
    empty = run(ip, "%pg --dtype-backend pyarrow SELECT 1::int2 AS x WHERE false")
    asyncio.run(pgmagic.load_table(empty, "arrow_empty2", mode="replace"))
    assert _types(sql, "arrow_empty2") == {"x": "smallint"}


def test_unsupported_types_are_one_line_naming_the_column(ip: Any) -> None:
    ip.user_ns["nested"] = pa.table({"ok": [1], "point": [{"x": 1, "y": 2}]})
    error, _ = fails(ip, "%pg load nested INTO arrow_struct --create")
    assert isinstance(error, OptionError)
    assert "column 'point'" in str(error) and "\n" not in str(error)
    ip.user_ns["number"] = 5
    error, _ = fails(ip, "%pg load number INTO arrow_nothing --create")
    assert isinstance(error, OptionError) and "an Arrow table" in str(error)
    with pytest.raises(OptionError, match="not a int"):
        asyncio.run(pgmagic.load_table(5, "arrow_nothing"))


def test_a_pandas_frame_of_arrow_dtypes(ip: Any, sql: Any) -> None:
    frame = pd.DataFrame(
        {
            "k": pd.array([1, None], dtype="int64[pyarrow]"),
            "s": pd.array(["x", None], dtype="string[pyarrow]"),
            "when": pd.array([dt.date(2024, 1, 1), None], dtype=pd.ArrowDtype(pa.date32())),
        }
    )
    result = asyncio.run(pgmagic.load_table(frame, "arrow_pandas", mode="replace"))
    assert result.copy_format == "binary"
    assert _types(sql, "arrow_pandas") == {"k": "bigint", "s": "text", "when": "date"}
    assert [tuple(r) for r in sql("SELECT * FROM arrow_pandas ORDER BY k")] == [
        (1, "x", dt.date(2024, 1, 1)),
        (None, None, None),
    ]
