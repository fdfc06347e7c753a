"""The dtype table, checked type by type against a real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import math
import uuid
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pgmagic.results import frames
from pgmagic.results.frames import Column, records_to_frame

UTC = dt.UTC

# (SQL expression producing a non-NULL value, type, expected dtype, expected Python value)
CASES: list[tuple[str, str, str, Any]] = [
    ("1", "int2", "Int16", 1),
    ("-2147483648", "int4", "Int32", -2147483648),
    ("9223372036854775807", "int8", "Int64", 9223372036854775807),
    ("4000000000", "oid", "Int64", 4000000000),
    ("true", "bool", "boolean", True),
    ("1.5", "float4", "float32", 1.5),
    ("'NaN'", "float8", "float64", math.nan),
    ("'-Infinity'", "float8", "float64", -math.inf),
    ("12.50", "numeric(6,2)", "object", Decimal("12.50")),
    ("'NaN'", "numeric", "object", Decimal("NaN")),
    ("'Infinity'", "numeric", "object", Decimal("Infinity")),
    ("'a,b \"c\" \\ é\n'", "text", "str", 'a,b "c" \\ é\n'),
    ("''", "text", "str", ""),
    ("'x'", "varchar(5)", "str", "x"),
    ("'ab'", "char(3)", "str", "ab "),
    ("'n'", "name", "str", "n"),
    ("'c'", '"char"', "str", "c"),
    ("'happy'", "mood", "str", "happy"),
    (
        "'2024-05-06 07:08:09.123456+02'",
        "timestamptz",
        "datetime64[us, UTC]",
        pd.Timestamp("2024-05-06 05:08:09.123456", tz="UTC"),
    ),
    (
        "'infinity'",
        "timestamptz",
        "datetime64[us, UTC]",
        pd.Timestamp("9999-12-31 23:59:59.999999", tz="UTC"),
    ),
    ("'-infinity'", "timestamptz", "datetime64[us, UTC]", pd.Timestamp("0001-01-01", tz="UTC")),
    ("'2024-05-06 07:08:09'", "timestamp", "datetime64[us]", pd.Timestamp("2024-05-06 07:08:09")),
    ("'2024-02-29'", "date", "datetime64[s]", pd.Timestamp("2024-02-29")),
    ("'infinity'", "date", "datetime64[s]", pd.Timestamp("9999-12-31")),
    (
        "'1 day 02:03:04.5'",
        "interval",
        "timedelta64[us]",
        pd.Timedelta(days=1, hours=2, minutes=3, seconds=4.5),
    ),
    ("'-1 month'", "interval", "timedelta64[us]", pd.Timedelta(days=-30)),
    ("'12:34:56'", "time", "object", dt.time(12, 34, 56)),
    (
        "'12:34:56+01'",
        "timetz",
        "object",
        dt.time(12, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    ),
    (
        "'12345678-1234-5678-1234-567812345678'",
        "uuid",
        "object",
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
    ),
    ("'\\x00ff'", "bytea", "object", b"\x00\xff"),
    ("'{\"a\": [1, 2.5, null]}'", "jsonb", "object", {"a": [1, 2.5, None]}),
    ("'[1, \"x\"]'", "json", "object", [1, "x"]),
    ("'{1,NULL,3}'", "int4[]", "object", [1, None, 3]),
    ("'{{a,b},{c,d}}'", "text[]", "object", [["a", "b"], ["c", "d"]]),
    ("'192.168.0.1/24'", "inet", "object", ipaddress.ip_interface("192.168.0.1/24")),
    ("'hello'", "citext_like", "str", "hello"),
]


async def _fetch(dsn: str, sql: str, setup: str = "") -> tuple[list[Column], list[Any]]:
    import asyncpg

    from pgmagic.results.statement import TypeCategories
    from pgmagic.runtime.connect import install_codecs

    conn = await asyncpg.connect(dsn)
    try:
        await install_codecs(conn)
        if setup:
            await conn.execute(setup)
        stmt = await conn.prepare(sql)
        records = await stmt.fetch()
        columns = await TypeCategories().columns(conn, stmt.get_attributes())
        return columns, records
    finally:
        await conn.close()


SETUP = """
DO $$ BEGIN
  CREATE TYPE mood AS ENUM ('sad', 'happy');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE DOMAIN citext_like AS text;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
"""


@pytest.fixture(scope="module")
def typed(dsn: str) -> tuple[list[Column], list[Any]]:
    selects = [f"({expr})::{typ} AS c{i}" for i, (expr, typ, _, _) in enumerate(CASES)]
    nulls = [f"NULL::{typ}" for _, typ, _, _ in CASES]
    sql = f"SELECT {', '.join(selects)} UNION ALL SELECT {', '.join(nulls)}"
    return asyncio.run(_fetch(dsn, sql, SETUP))


@pytest.mark.parametrize(
    ("index", "case"), list(enumerate(CASES)), ids=[f"{c[1]}:{c[0]}" for c in CASES]
)
def test_type(
    typed: tuple[list[Column], list[Any]], index: int, case: tuple[str, str, str, Any]
) -> None:
    columns, records = typed
    frame = records_to_frame(columns, records)
    _, _, dtype, expected = case
    series = frame.iloc[:, index]
    assert str(series.dtype) == dtype
    value = series.iloc[0]
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(value)
    elif isinstance(expected, Decimal) and expected.is_nan():
        assert value.is_nan()
    else:
        assert value == expected
    assert pd.isna(series.iloc[1]) or series.iloc[1] is None


def test_zero_rows_keep_dtypes(typed: tuple[list[Column], list[Any]]) -> None:
    columns, _ = typed
    frame = records_to_frame(columns, [])
    assert frame.shape == (0, len(CASES))
    assert [str(t) for t in frame.dtypes] == [c[2] for c in CASES]


def test_numeric_as_float(typed: tuple[list[Column], list[Any]]) -> None:
    columns, records = typed
    frame = records_to_frame(columns, records, numeric_as_float=True)
    assert str(frame["c8"].dtype) == "float64"
    assert frame["c8"].iloc[0] == 12.5
    assert np.isnan(frame["c8"].iloc[1])


def test_duplicate_and_unnamed_columns(dsn: str) -> None:
    columns, records = asyncio.run(_fetch(dsn, "SELECT 1 AS a, 2 AS a, 3"))
    frame = records_to_frame(columns, records)
    assert list(frame.columns) == ["a", "a", "?column?"]
    assert frame.iloc[0].tolist() == [1, 2, 3]


def test_kind_of_unknown_type_is_object() -> None:
    assert frames.kind_of(Column("x", 600)) is frames.Kind.OBJECT  # point
    assert frames.kind_of(Column("x", 99999, category="E")) is frames.Kind.STRING


def test_large_result_builds_columns(dsn: str) -> None:
    columns, records = asyncio.run(
        _fetch(
            dsn,
            "SELECT g::int4 AS i, CASE WHEN g % 10 = 0 THEN NULL ELSE g::text END AS t FROM generate_series(1, 10000) g",
        )
    )
    frame = records_to_frame(columns, records)
    assert frame["i"].sum() == 10000 * 10001 // 2
    assert frame["t"].isna().sum() == 1000


def test_copy_path_and_record_path_agree_through_the_magic(ip: Any, dsn: str) -> None:
    from pgmagic.results import cell
    from pgmagic.runtime.connections import default_runtime

    cases = [c for c in CASES if c[1] != "inet"]  # inet takes the record path
    selects = [f"({expr})::{typ} AS c{i}" for i, (expr, typ, _, _) in enumerate(cases)]
    nulls = [f"NULL::{typ}" for _, typ, _, _ in cases]
    ip.run_cell_magic("pg", "-q", SETUP)
    ip.run_cell_magic(
        "pg",
        "-q",
        f"CREATE TEMP TABLE every_type AS SELECT {', '.join(selects)} UNION ALL SELECT {', '.join(nulls)}",
    )
    runtime = default_runtime()
    assert runtime is not None
    # Long enough (over 2,000 rows) to leave the Record path for COPY.
    sql = "SELECT every_type.* FROM every_type, generate_series(1, 1500) WHERE $n::int = 0"
    fast = cell.run_cell(runtime, sql, {"n": 0})
    assert fast.shown is not None and fast.shown.frame is not None, "took the COPY path"

    async def no_op(conn: Any) -> None:
        return None

    ip.user_ns["no_op"] = no_op
    ip.run_line_magic("config", "PgMagics.init = no_op")  # an init hook turns the COPY path off
    slow = cell.run_cell(runtime, sql, {"n": 0})
    assert slow.shown is not None and slow.shown.frame is None, "took the record path"
    pd.testing.assert_frame_equal(fast.value, slow.value)
    assert [str(t) for t in fast.value.dtypes] == [c[2] for c in cases]
    assert len(fast.value) == 3000


def test_a_short_result_takes_the_record_path_next_time(ip: Any) -> None:
    from pgmagic.results import cell
    from pgmagic.runtime.connections import default_runtime

    runtime = default_runtime()
    assert runtime is not None
    sql = "SELECT g FROM generate_series(1, $n::int) g"
    first = cell.run_cell(runtime, sql, {"n": 3})
    again = cell.run_cell(runtime, sql, {"n": 3})
    big = cell.run_cell(runtime, sql, {"n": 5000})  # read as Records this time: still right
    after = cell.run_cell(runtime, sql, {"n": 5000})
    assert first.shown is not None and first.shown.frame is not None  # new SQL: COPY
    assert again.shown is not None and again.shown.frame is None  # known short: Records
    assert big.shown is not None and big.shown.frame is None
    assert after.shown is not None and after.shown.frame is not None  # known long: COPY
    pd.testing.assert_frame_equal(big.value, after.value)
    assert big.value["g"].tolist() == list(range(1, 5001))


def test_a_writing_query_runs_once_whatever_the_path(
    ip: Any,
) -> None:
    ip.run_cell_magic("pg", "-q", "CREATE TEMP TABLE side_effects (n int)")
    ip.run_cell_magic(
        "pg",
        "-q",
        "CREATE FUNCTION pg_temp.note(i int) RETURNS int LANGUAGE sql AS "
        "'INSERT INTO side_effects VALUES (i) RETURNING i'",
    )
    ip.run_cell_magic("pg", "-q", "CREATE TEMP SEQUENCE once")
    for rows in (5000, 10, 10):
        frame = ip.run_cell_magic(
            "pg",
            "",
            f"SELECT pg_temp.note(g), nextval('once') AS n FROM generate_series(1, {rows}) g",
        )
        assert len(frame) == rows
    assert ip.run_line_magic("pg", "--scalar SELECT count(*) FROM side_effects") == 5020
    assert ip.run_line_magic("pg", "--scalar SELECT last_value FROM once") == 5020


def test_unsupported_column_falls_back_to_records(ip: Any) -> None:
    from pgmagic.results import cell
    from pgmagic.runtime.connections import default_runtime

    runtime = default_runtime()
    assert runtime is not None
    outcome = cell.run_cell(runtime, "SELECT '10.0.0.1'::inet AS ip, 1 AS n", {})
    assert outcome.shown is not None and outcome.shown.frame is None
    assert str(outcome.value["ip"].iloc[0]) == "10.0.0.1"
