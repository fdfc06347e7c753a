"""The COPY path gives exactly the record path's frame, type by type.

The reference is the record path: asyncpg ``fetch`` on a connection with
pgmagic's session codecs (json/jsonb decoded with ``json.loads``), turned into
a frame by ``pgmagic.results.frames.records_to_frame`` when that module exists, and by
a literal reading of the dtype table below otherwise.  Every cell is compared
strictly: dtype, value, Python type, ``Decimal`` exponent, sign of zero,
time zone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import importlib
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import numpy as np
import pandas as pd
import pytest
from asyncpg.pgproto import pgproto

from pgmagic import _oids as oids
from pgmagic import errors
from pgmagic._oids import CopyKind, CopyLayout
from pgmagic.bulk import arrow
from pgmagic.results import arrow as results_arrow
from pgmagic.results import decode
from pgmagic.sql import copytext

pytestmark = pytest.mark.skipif(
    not decode.is_available(), reason="the _pgcopy extension is not built"
)

T = TypeVar("T")

# column name -> (SQL type, SQL literals, one per row; missing rows are NULL)
EDGE_VALUES: dict[str, tuple[str, list[str]]] = {
    "i2": ("int2", ["0", "-32768", "32767", "NULL", "7"]),
    "i4": ("int4", ["NULL", "-2147483648", "2147483647", "0"]),
    "i8": ("int8", ["-9223372036854775808", "9223372036854775807", "NULL", "1"]),
    "o": ("oid", ["0", "4294967295", "NULL", "12345"]),
    "b": ("bool", ["true", "false", "NULL"]),
    "f4": (
        "float4",
        ["1.5", "'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "NULL", "3.4e38", "1e-45", "0.1"],
    ),
    "f8": (
        "float8",
        [
            "0.1",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "'-0'",
            "NULL",
            "1.7976931348623157e308",
            "5e-324",
            "-2.5",
        ],
    ),
    "n": (
        "numeric",
        [
            "0",
            "0.00",
            "1.50",
            "-1.5",
            "1e20",
            "1e-20",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "123456789012345678901234567890.123456789",
            "NULL",
            "100000000",
            "0.0001",
            "-0.00010",
            "1.0000000000000000000000000000001",
            "9999.9999",
            "10000",
            "'1e-1000'::numeric * 0",
            "1e130000 / 1e130000",
            "12345678.9",
        ],
    ),
    "n2": ("numeric(12,2)", ["12.30", "NULL", "-0.01", "9999999999.99", "0"]),
    "t": (
        "text",
        [
            "''",
            "'a,b'",
            "'quote\"s and ''apostrophes'''",
            "E'new\\nline\\r\\n'",
            "E'back\\\\slash'",
            "E'tab\\tx'",
            "'ünïcödé ✓ 𝄞 日本'",
            "NULL",
            "repeat('long ', 5000)",
            "'\\N'",
            "' lead and trail '",
        ],
    ),
    "vc": ("varchar(10)", ["'abc'", "''", "NULL", "'ü'"]),
    "bp": ("char(5)", ["'ab'", "NULL", "''", "'abcde'"]),
    "nm": ("name", ["'pg_class'", "NULL", "''"]),
    "ch": ('"char"', ["'a'", "NULL", "'Z'", "''"]),
    "e": ("cf_mood", ["'happy'", "NULL", "'sad'", "'ok'"]),
    "ts": (
        "timestamp",
        [
            "'2020-02-29 12:34:56.789012'",
            "'infinity'",
            "'-infinity'",
            "NULL",
            "'0001-01-01 00:00:00'",
            "'9999-12-31 23:59:59.999999'",
            "'1969-12-31 23:59:59.999999'",
            "'2000-01-01'",
            "'1900-03-01 00:00:00.5'",
        ],
    ),
    "tstz": (
        "timestamptz",
        [
            "'2020-02-29 12:34:56.789012+05:30'",
            "'infinity'",
            "'-infinity'",
            "NULL",
            "'0001-01-01 00:00:00+00'",
            "'9999-12-31 23:59:59.999999+00'",
            "'1969-12-31 23:59:59.999999+00'",
            "'2000-01-01 00:00:00+00'",
        ],
    ),
    "d": (
        "date",
        [
            "'2020-02-29'",
            "'infinity'",
            "'-infinity'",
            "NULL",
            "'0001-01-01'",
            "'9999-12-31'",
            "'1969-12-31'",
            "'1970-01-01'",
            "'2000-01-01'",
        ],
    ),
    "iv": (
        "interval",
        [
            "'1 year 2 months 3 days 04:05:06.789'",
            "'-1 year -2 months'",
            "'-1 day +01:00'",
            "'-00:00:00.000001'",
            "NULL",
            "'100 years'",
            "'-1 mon'",
            "'25 months -3 days'",
            "'0'",
            "'-13 months 40 days -50:00:00'",
        ],
    ),
    "tm": ("time", ["'00:00'", "'23:59:59.999999'", "NULL", "'12:34:56.789'"]),
    "ttz": (
        "timetz",
        [
            "'12:34:56+05:30'",
            "'00:00:00-14:59'",
            "NULL",
            "'01:02:03.5+00'",
            "'10:00:00+00:00:30'",
            "'23:59:59.999999-00:00:59'",
        ],
    ),
    "u": (
        "uuid",
        [
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "NULL",
            "'00000000-0000-0000-0000-000000000000'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
        ],
    ),
    "by": ("bytea", ["'\\x'", "'\\x00ff10'", "NULL", "convert_to('ü', 'UTF8')"]),
    "j": (
        "json",
        [
            '\'{"a": [1, 2.5, "x"], "b": null}\'',
            "'[]'",
            "'\"str\"'",
            "'123456789012345678901234567890'",
            "'1e400'",
            "'\"\\ud83d\\ude00 \\u00e9\"'",
            '\'{"a": 1, "a": 2}\'',
            "NULL",
            "'null'",
            "'-0'",
            '\'{"deep": [[[[{"x": -1.5e-7}]]]]}\'',
            "'\"\\ud800\"'",
            "' { \"ws\" : true } '",
        ],
    ),
    "jb": (
        "jsonb",
        [
            '\'{"a": [1, 2.5, "x"], "b": null}\'',
            "'[]'",
            "'\"str\"'",
            "'123456789012345678901234567890'",
            "'1e400'",
            "'\"\\ud83d\\ude00\"'",
            "NULL",
            "'null'",
            "'{\"n\": 0.1000000000000000055511151231257827}'",
            "'12345678901234567.5'",
            '\'{"k": "v", "a": {"b": [true, false]}}\'',
        ],
    ),
    "ai4": (
        "int4[]",
        [
            "'{1,NULL,3}'",
            "'{}'",
            "'{{1,2},{3,4}}'",
            "NULL",
            "'[2:3]={7,8}'",
            "'{{{1},{2}},{{3},{4}}}'",
            "'{NULL}'",
        ],
    ),
    "atext": (
        "text[]",
        ['\'{"a,b","",NULL,"q\\"x","back\\\\\\\\slash","ü"}\'', "'{}'", "NULL", "'{{a,b},{c,d}}'"],
    ),
    "anum": ("numeric[]", ["'{1.50,NaN,NULL,-0.001,Infinity}'", "NULL", "'{}'"]),
    "adate": ("date[]", ["'{2020-01-01,infinity,-infinity,NULL}'", "NULL"]),
    "ats": ("timestamp[]", ["'{\"2020-01-01 10:00\",infinity,-infinity,NULL}'", "NULL"]),
    "atstz": ("timestamptz[]", ["'{\"2020-01-01 10:00+02\",infinity,-infinity,NULL}'", "NULL"]),
    "auuid": ("uuid[]", ["'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}'", "NULL"]),
    "abool": ("bool[]", ["'{t,f,NULL}'", "NULL"]),
    "af4": ("float4[]", ["'{1.5,NaN,-Infinity,NULL,0.1}'", "NULL"]),
    "af8": ("float8[]", ["'{0.1,NaN,-0,NULL}'", "NULL"]),
    "ai8": ("int8[]", ["'{-9223372036854775808,9223372036854775807}'", "NULL"]),
    "ai2": ("int2[]", ["'{-32768,32767,NULL}'", "NULL"]),
    "aoid": ("oid[]", ["'{0,4294967295}'", "NULL"]),
    "ajson": ("json[]", ["ARRAY['{\"a\": 1}'::json, NULL, '[1e400]']", "NULL"]),
    "ajsonb": ("jsonb[]", ["ARRAY['{\"b\": [2]}'::jsonb, 'null']", "NULL"]),
    "achar": ('"char"[]', ["'{a,b}'", "NULL"]),
    "aiv": ("interval[]", ['\'{"1 year","-1 day",NULL}\'', "NULL"]),
    "atm": ("time[]", ["'{00:00,23:59:59.999999}'", "NULL"]),
    "attz": ("timetz[]", ["'{\"12:00+05:30\"}'", "NULL"]),
    "abytea": ("bytea[]", ["ARRAY['\\x00'::bytea, NULL, '\\x']", "NULL"]),
    "avc": ("varchar[]", ["'{x,y}'", "NULL"]),
    "abp": ("char(3)[]", ["'{x,yy}'", "NULL"]),
    "anm": ("name[]", ["'{x}'", "NULL"]),
}


def _session_codecs(conn: asyncpg.Connection) -> Awaitable[None]:
    async def install() -> None:
        # what pgmagic's runtime installs on every session connection
        for name in ("json", "jsonb"):
            await conn.set_type_codec(
                name, schema="pg_catalog", encoder=json.dumps, decoder=json.loads, format="text"
            )

    return install()


def with_conn(dsn: str, body: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def go() -> T:
        conn = await asyncpg.connect(dsn)
        try:
            await _session_codecs(conn)
            return await body(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


# --------------------------------------------------------------------------
# the record path


def _reference_frame(
    columns: Sequence[Any], records: Sequence[Any], numeric_as_float: bool
) -> pd.DataFrame:
    """The dtype table, read literally, applied to asyncpg's values."""
    arrays: dict[int, Any] = {}
    for i, attr in enumerate(columns):
        values = [r[i] for r in records]
        oid = attr.type.oid
        name = attr.type.name
        if oid in (oids.INT2, oids.INT4, oids.INT8, oids.OID):
            np_dtype = {oids.INT2: "int16", oids.INT4: "int32"}.get(oid, "int64")
            mask = np.array([v is None for v in values], dtype=bool)
            data = np.array([0 if v is None else v for v in values], dtype=np_dtype)
            arrays[i] = pd.arrays.IntegerArray(data, mask)
        elif oid == oids.BOOL:
            mask = np.array([v is None for v in values], dtype=bool)
            data = np.array([bool(v) for v in values], dtype=bool)
            arrays[i] = pd.arrays.BooleanArray(data, mask)
        elif oid in (oids.FLOAT4, oids.FLOAT8):
            arrays[i] = np.array(
                [np.nan if v is None else v for v in values],
                dtype="float32" if oid == oids.FLOAT4 else "float64",
            )
        elif oid == oids.NUMERIC and numeric_as_float:
            arrays[i] = np.array([np.nan if v is None else float(v) for v in values])
        elif (
            oid in (oids.CHAR, oids.NAME, oids.TEXT, oids.BPCHAR, oids.VARCHAR) or name == "cf_mood"
        ):
            arrays[i] = pd.array(values, dtype="str")
        elif oid == oids.TIMESTAMPTZ:
            arrays[i] = pd.array(values, dtype="datetime64[us, UTC]")
        elif oid == oids.TIMESTAMP:
            arrays[i] = pd.array(values, dtype="datetime64[us]")
        elif oid == oids.DATE:
            arrays[i] = pd.array(values, dtype="datetime64[s]")
        elif oid == oids.INTERVAL:
            arrays[i] = np.array(values, dtype="timedelta64[us]")
        else:
            arrays[i] = np.fromiter(values, dtype=object, count=len(values))
    frame = pd.DataFrame(arrays, copy=False)
    frame.columns = pd.Index([c.name for c in columns], dtype=object)
    return frame


async def record_frame(
    conn: asyncpg.Connection, sql: str, numeric_as_float: bool = False
) -> pd.DataFrame:
    stmt = await conn.prepare(sql)
    records = await stmt.fetch()
    columns = stmt.get_attributes()
    try:
        frames: Any = importlib.import_module("pgmagic.results.frames")  # the record path
    except ImportError:
        return _reference_frame(columns, records, numeric_as_float)
    cats = {
        r[0]: r[1]
        for r in await conn.fetch(
            "SELECT oid::int8, typcategory FROM pg_catalog.pg_type WHERE oid = any($1::oid[])",
            [a.type.oid for a in columns],
        )
    }
    cols = [
        frames.Column(a.name, a.type.oid, a.type.name, cats.get(a.type.oid, "")) for a in columns
    ]
    frame: pd.DataFrame = frames.records_to_frame(cols, records, numeric_as_float=numeric_as_float)
    return frame


async def fast_frame(
    conn: asyncpg.Connection, sql: str, numeric_as_float: bool = False
) -> pd.DataFrame:
    stmt = await conn.prepare(sql)
    return await decode.copy_frame(
        conn, sql, stmt.get_attributes(), numeric_as_float=numeric_as_float
    )


# --------------------------------------------------------------------------
# strict comparison


def same(a: Any, b: Any) -> bool:
    """Equal values of the same type; NaN equals NaN, -0.0 differs from 0.0."""
    if a is None or b is None:
        return a is b
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, decimal.Decimal):
        return str(a) == str(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, dt.datetime | dt.time):
        return (
            a == b and a.utcoffset() == b.utcoffset() and (a.tzinfo is None) == (b.tzinfo is None)
        )
    return bool(a == b)


def assert_same_frame(fast: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(fast.columns) == list(ref.columns)
    assert fast.columns.dtype == ref.columns.dtype
    assert len(fast) == len(ref)
    assert isinstance(fast.index, pd.RangeIndex)
    for i, name in enumerate(fast.columns):
        f, r = fast.iloc[:, i], ref.iloc[:, i]
        assert f.dtype == r.dtype, f"{name}: {f.dtype} != {r.dtype}"
        if f.dtype == object:
            for row, (x, y) in enumerate(zip(f.tolist(), r.tolist(), strict=True)):
                assert same(x, y), f"{name}[{row}]: {x!r} != {y!r}"
        else:
            pd.testing.assert_series_equal(f, r, check_exact=True, check_names=False)
            if f.dtype.kind == "f":
                assert np.array_equal(np.signbit(f.to_numpy()), np.signbit(r.to_numpy()))


# --------------------------------------------------------------------------
# tests


def _edge_table_sql() -> list[str]:
    nrows = max(len(v) for _, v in EDGE_VALUES.values())
    cols = ", ".join(f"{name} {typ}" for name, (typ, _) in EDGE_VALUES.items())
    statements = [
        "CREATE TYPE cf_mood AS ENUM ('sad', 'ok', 'happy')",
        f"CREATE TEMP TABLE edge (row_no int4, {cols})",
    ]
    for row in range(nrows):
        literals = [
            f"({vals[row]})::{typ}" if row < len(vals) else "NULL"
            for typ, vals in EDGE_VALUES.values()
        ]
        statements.append(f"INSERT INTO edge VALUES ({row}, {', '.join(literals)})")
    return statements


def test_every_supported_type_matches_the_record_path(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        async with conn.transaction():  # the temp table and enum vanish with it
            for statement in _edge_table_sql():
                await conn.execute(statement)
            sql = "SELECT * FROM edge ORDER BY row_no"
            for as_float in (False, True):
                fast = await fast_frame(conn, sql, as_float)
                ref = await record_frame(conn, sql, as_float)
                assert_same_frame(fast, ref)
            # every column of the table took the fast path
            stmt = await conn.prepare(sql)
            assert all(
                a.type.oid in decode.supported_type_oids() or a.type.name == "cf_mood"
                for a in stmt.get_attributes()
            )
            raise _Rollback

    with pytest.raises(_Rollback):
        with_conn(dsn, body)


class _Rollback(Exception):
    pass


def test_generated_rows_match(dsn: str) -> None:
    sql = """
        SELECT g::int8 AS id, (g % 7)::int2 AS small,
               CASE WHEN g % 10 = 0 THEN NULL ELSE g * 1.5 END::float8 AS f,
               CASE WHEN g % 3 = 0 THEN NULL ELSE ((g % 1000)::numeric / 7)::numeric(12, 2) END
                   AS num,
               CASE WHEN g % 11 = 0 THEN NULL ELSE repeat('x', g % 40) || g END AS txt,
               (g % 2 = 0) AS flag,
               timestamptz '2020-01-01' + g * interval '1 second' AS ts,
               date '2000-01-01' + (g % 10000) AS d,
               md5(g::text)::uuid AS u,
               jsonb_build_object('a', g, 'b', repeat('y', g % 5)) AS j,
               ARRAY[g, NULL, g + 1] AS arr
        FROM generate_series(1, 20000) g
    """

    async def body(conn: asyncpg.Connection) -> None:
        assert_same_frame(await fast_frame(conn, sql), await record_frame(conn, sql))

    with_conn(dsn, body)


def test_zero_rows_keep_their_dtypes(dsn: str) -> None:
    sql = (
        "SELECT 1::int4 AS a, 'x'::text AS b, 1.5::numeric AS c, now() AS d, "
        "'{}'::jsonb AS e, true AS f, ARRAY[1] AS g WHERE false"
    )

    async def body(conn: asyncpg.Connection) -> None:
        fast = await fast_frame(conn, sql)
        assert len(fast) == 0
        assert_same_frame(fast, await record_frame(conn, sql))

    with_conn(dsn, body)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 AS a, 2 AS a",  # duplicate names
        "SELECT 1 AS x;",
        "SELECT 1 AS x ;  \n ; ",
        "SELECT 1 AS x -- trailing comment",
        "VALUES (1, 'a'), (2, NULL)",
        "WITH t AS (SELECT 3 AS n) SELECT * FROM t",
        'SELECT 1 AS "Mixed Case", 2 AS "with space"',
    ],
)
def test_statement_shapes(dsn: str, sql: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        assert_same_frame(
            await fast_frame(conn, sql), await record_frame(conn, copytext.copy_statement(sql))
        )

    with_conn(dsn, body)


def test_session_state_is_kept(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        tr = conn.transaction()
        await tr.start()
        await conn.execute(
            "CREATE TEMP TABLE tmp_keep AS SELECT g AS n FROM generate_series(1, 5) g"
        )
        fast = await fast_frame(conn, "SELECT sum(n) AS s FROM tmp_keep")
        assert fast["s"].tolist() == [15]
        assert conn.is_in_transaction()
        await tr.rollback()

    with_conn(dsn, body)


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("'10000-01-01'::timestamp", OverflowError),
        ("'10000-01-01 00:00+00'::timestamptz", OverflowError),
        ("'4713-01-01 BC'::timestamp", OverflowError),
        ("'10000-01-01'::date", ValueError),
        ("'24:00:00'::time", ValueError),
        ("'infinity'::interval", OverflowError),
        ("ARRAY['10000-01-01'::date]", ValueError),
        ("'\\x80'::bytea::text", None),  # server rejects or passes: compared below
    ],
)
def test_values_asyncpg_refuses_raise_the_same_error(
    dsn: str, expr: str, error: type[Exception] | None
) -> None:
    sql = f"SELECT 1 AS ok, {expr} AS bad FROM generate_series(1, 3)"

    async def body(conn: asyncpg.Connection) -> None:
        try:
            await conn.fetch("SELECT " + expr)
        except asyncpg.PostgresError:
            pytest.skip("the server refuses this value")
        except Exception as exc:  # the record path's decode error
            expected: type[BaseException] = type(exc)
        else:
            if error is None:
                assert_same_frame(await fast_frame(conn, sql), await record_frame(conn, sql))
                return
            pytest.fail("asyncpg decoded a value expected to fail")
        assert error is None or issubclass(expected, error)
        async with conn.transaction():
            with pytest.raises(error or expected):
                await fast_frame(conn, sql)
            # the stream was consumed to its end: the transaction still works
            assert await conn.fetchval("SELECT 42") == 42

    with_conn(dsn, body)


def test_unsupported_type_raises_before_running(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        sql = "SELECT 1 AS a, point(1, 2) AS p, pg_advisory_xact_lock(4242) AS lock"
        stmt = await conn.prepare(sql)
        async with conn.transaction():
            with pytest.raises(errors.UnsupportedColumnError) as info:
                await decode.copy_frame(conn, sql, stmt.get_attributes())
            assert info.value.column == "p"
            # nothing ran: the advisory lock was not taken
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
            )
            assert held == 0

    with_conn(dsn, body)


def test_unsupported_user_types(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("CREATE TYPE pair AS (a int, b int)")
            await conn.execute("CREATE TYPE cf_moodx AS ENUM ('x')")
            for sql in ("SELECT ROW(1, 2)::pair AS p", "SELECT ARRAY['x'::cf_moodx] AS m"):
                stmt = await conn.prepare(sql)
                with pytest.raises(errors.UnsupportedColumnError):
                    await decode.copy_frame(conn, sql, stmt.get_attributes())
            sql = "SELECT 'x'::cf_moodx AS m"
            stmt = await conn.prepare(sql)
            assert_same_frame(
                await decode.copy_frame(conn, sql, stmt.get_attributes()),
                await record_frame(conn, sql),
            )
            raise _Rollback

    with pytest.raises(_Rollback):
        with_conn(dsn, body)


def test_chunk_boundaries_anywhere(dsn: str) -> None:
    """The parser gives the same columns however the stream is cut."""
    from pgmagic import _pgcopy

    sql = "SELECT * FROM edge ORDER BY row_no"

    async def body(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            for statement in _edge_table_sql():
                await conn.execute(statement)
            stmt = await conn.prepare(sql)
            plan = await decode.plan_columns(conn, stmt.get_attributes(), False)
            chunks: list[bytes] = []

            async def sink(chunk: bytearray) -> None:
                chunks.append(bytes(chunk))

            await conn.copy_from_query(sql, output=sink, format="binary")
            stream = b"".join(chunks)

            def parse(pieces: list[bytes]) -> list[Any]:
                parser = _pgcopy.Parser(
                    plan.kinds,
                    plan.elem_kinds,
                    plan.elem_oids,
                    decimal.Decimal,
                    pgproto.UUID,
                    decode._json_loads,
                    json.loads,
                )
                for piece in pieces:
                    parser.feed(piece)
                outs = parser.finish()
                result = []
                for i, out in enumerate(outs):
                    if out[0] == "object":
                        arr = np.empty(parser.nrows, dtype=object)
                        parser.take_objects(i, arr)
                        result.append(arr.tolist())
                    else:
                        result.append([bytes(b) if b is not None else None for b in out[1:]])
                return result

            whole = parse([stream])
            for step in (1, 3, 7, 64, 1000):
                pieces = [stream[k : k + step] for k in range(0, len(stream), step)]
                cut = parse(pieces)
                for a, b in zip(whole, cut, strict=True):
                    assert len(a) == len(b)
                    assert all(same(x, y) for x, y in zip(a, b, strict=True))
            raise _Rollback

    with pytest.raises(_Rollback):
        with_conn(dsn, body)


def test_truncated_stream_is_an_error() -> None:
    from pgmagic import _pgcopy

    parser = _pgcopy.Parser(
        bytes([CopyKind.INT4]),
        b"\0",
        (0,),
        decimal.Decimal,
        pgproto.UUID,
        None,
        json.loads,
    )
    header = b"PGCOPY\n\xff\r\n\0" + b"\0" * 8
    parser.feed(header + b"\x00\x01\x00\x00\x00\x04\x00\x00\x00\x05")
    assert parser.nrows == 1
    with pytest.raises(_pgcopy.ProtocolError, match="ended early"):
        parser.finish()

    def parser_for_one_int4() -> _pgcopy.Parser:
        return _pgcopy.Parser(
            bytes([CopyKind.INT4]), b"\0", (0,), decimal.Decimal, pgproto.UUID, None, json.loads
        )

    # a malformed stream is drained silently and reported by finish()
    for stream in (
        header + b"\x00\x02",  # a row with two fields for one column
        b"not a copy stream at all",
        header + b"\x00\x01\x00\x00\x00\x08" + b"\x00" * 8 + b"\xff\xff",  # 8-byte int4
        header + b"\xff\xff" + b"trailing",
    ):
        parser = parser_for_one_int4()
        parser.feed(stream)
        parser.feed(b"\x00\x01more data is ignored")
        with pytest.raises(_pgcopy.ProtocolError):
            parser.finish()


def test_stale_columns_leave_the_transaction_usable(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE shifty AS SELECT g::int4 AS n FROM generate_series(1, 3) g"
            )
            sql = "SELECT * FROM shifty"
            stale = (await conn.prepare(sql)).get_attributes()
            for change in (
                "ALTER TABLE shifty ALTER COLUMN n TYPE int8",
                "ALTER TABLE shifty ADD COLUMN extra text",
            ):
                await conn.execute(change)
                with pytest.raises(errors.ColumnMismatchError):
                    await decode.copy_frame(conn, sql, stale)
                assert await conn.fetchval("SELECT count(*) FROM shifty") == 3
            raise _Rollback

    with pytest.raises(_Rollback):
        with_conn(dsn, body)


def test_unavailable_parser_is_unsupported(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    monkeypatch.setattr(decode, "pgcopy", None)
    assert not decode.is_available()

    async def body(conn: asyncpg.Connection) -> None:
        stmt = await conn.prepare("SELECT 1 AS a")
        with pytest.raises(errors.UnsupportedColumnError):
            await decode.copy_frame(conn, "SELECT 1 AS a", stmt.get_attributes())

    with_conn(dsn, body)


def test_copy_statement() -> None:
    assert copytext.copy_statement("SELECT 1;  \n") == "SELECT 1\n"
    assert copytext.copy_statement("SELECT 1 -- c") == "SELECT 1 -- c\n"


def test_gc_state_is_restored(dsn: str) -> None:
    import gc

    async def body(conn: asyncpg.Connection) -> None:
        gc.disable()
        try:
            await fast_frame(conn, "SELECT 1 AS a")
            assert not gc.isenabled()
        finally:
            gc.enable()
        await fast_frame(conn, "SELECT 1 AS a")
        assert gc.isenabled()

    with_conn(dsn, body)


def test_gc_pauses_interleave() -> None:
    import gc

    assert gc.isenabled()
    first, second = decode._gc_paused(), decode._gc_paused()
    first.__enter__()
    second.__enter__()
    assert not gc.isenabled()
    first.__exit__(None, None, None)  # the first ends before the second
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_timeout_cancels_and_the_session_survives(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        sql = "SELECT 1 AS a FROM pg_sleep(5)"
        stmt = await conn.prepare(sql)
        with pytest.raises(asyncio.TimeoutError):
            await decode.copy_frame(conn, sql, stmt.get_attributes(), timeout=0.2)
        assert await conn.fetchval("SELECT 42") == 42

    with_conn(dsn, body)


# --------------------------------------------------------------------------
# export layouts: Arrow record batches and JSON lines

# columns the Arrow layout refuses: numerics wider than a decimal, arrays whose
# values differ in dimensions
ARROW_REFUSES = {"n": errors.ColumnTypeError, "ai4": ValueError, "atext": ValueError}
TZ_COLUMNS = {"tstz", "atstz"}
CHAR_COLUMNS = {"ch", "achar"}
JSON_COLUMNS = {"j", "jb", "ajson", "ajsonb"}
FLOAT4_COLUMNS = {"f4", "af4"}


async def _record_rows(conn: asyncpg.Connection, sql: str) -> tuple[list[str], list[Any]]:
    stmt = await conn.prepare(sql)
    return [a.name for a in stmt.get_attributes()], list(await stmt.fetch())


async def arrow_table(conn: asyncpg.Connection, sql: str, **options: Any) -> Any:
    import pyarrow as pa

    stmt = await conn.prepare(sql)
    batches: list[Any] = []
    rows = await arrow.copy_record_batches(
        conn, sql, stmt.get_attributes(), batches.append, **options
    )
    table = pa.Table.from_batches(batches)
    assert rows == table.num_rows
    return table


async def json_lines(conn: asyncpg.Connection, sql: str, **options: Any) -> list[str]:
    stmt = await conn.prepare(sql)
    pieces: list[bytes] = []
    rows = await arrow.copy_json_lines(
        conn, sql, stmt.get_attributes(), lambda lines: pieces.append(bytes(lines)), **options
    )
    text = b"".join(pieces).decode()
    assert text.count("\n") == rows and (not text or text.endswith("\n"))
    return text.splitlines()


def _utc_naive(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None)


def _duration_json(value: dt.timedelta) -> str:
    # what DataFrame.to_json(date_format="iso", date_unit="us") writes
    text = pd.Series(np.array([value], dtype="m8[us]")).to_json(
        orient="values", date_format="iso", date_unit="us"
    )
    return str(json.loads(text)[0])


def expected_json(column: str, value: Any) -> Any:
    """The JSON value a record-path value becomes in a JSON line."""
    if value is None or column in JSON_COLUMNS:
        return value
    if isinstance(value, list):
        return [expected_json(column, v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        # float4 as the shortest text that reads back as the same float4
        return float(str(np.float32(value))) if column in FLOAT4_COLUMNS else value
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return None
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, bytes):
        return value.decode() if column in CHAR_COLUMNS else "\\x" + value.hex()
    if isinstance(value, dt.datetime):
        text = _utc_naive(value).isoformat(timespec="microseconds")
        return text + "Z" if column in TZ_COLUMNS else text
    if isinstance(value, dt.timedelta):
        return _duration_json(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, pgproto.UUID):
        return str(value)
    return value


def same_arrow(column: str, got: Any, value: Any) -> bool:
    """An Arrow value (as to_pylist gives it) matches a record-path value."""
    if column in JSON_COLUMNS and isinstance(got, str):  # JSON null is not SQL NULL
        return json.loads(got) == value
    if value is None or got is None:
        # numeric NaN and infinities have no decimal form
        lost = isinstance(value, decimal.Decimal) and not value.is_finite()
        return got is None and (value is None or lost)
    if isinstance(value, list):
        return len(got) == len(value) and all(
            same_arrow(column, g, v) for g, v in zip(got, value, strict=True)
        )
    if isinstance(value, decimal.Decimal):
        return isinstance(got, decimal.Decimal) and got == value
    if isinstance(value, bytes) and column in CHAR_COLUMNS:
        return bool(got == value.decode())
    if isinstance(value, dt.datetime):
        return _utc_naive(got) == _utc_naive(value) and (got.tzinfo is not None) == (
            column in TZ_COLUMNS
        )
    if isinstance(value, dt.time) and value.tzinfo is not None:
        return bool(got == value.isoformat())
    if isinstance(value, pgproto.UUID):
        return str(got) == str(value)
    return same(got, value)


def test_export_layouts_match_the_record_path(dsn: str) -> None:
    import pyarrow as pa

    async def body(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            for statement in _edge_table_sql():
                await conn.execute(statement)
            sql = "SELECT * FROM edge ORDER BY row_no"
            names, records = await _record_rows(conn, sql)
            server_text = {
                name: [
                    r[0] for r in await conn.fetch(f"SELECT {name}::text FROM edge ORDER BY row_no")
                ]
                for name in ("n", "n2", "j", "jb")
            }

            lines = await json_lines(conn, sql)
            assert len(lines) == len(records)
            for row, (line, record) in enumerate(zip(lines, records, strict=True)):
                got = json.loads(line)
                assert list(got) == names
                for name, value in zip(names, record, strict=True):
                    assert got[name] == expected_json(name, value), (name, row, got[name], value)
                for name in ("n", "n2"):  # numeric is the server's own text
                    text = server_text[name][row]
                    assert got[name] == (None if text == "NaN" else text)
                for name in ("j", "jb"):  # JSON nested byte for byte
                    if server_text[name][row] is not None:
                        assert f'"{name}":{server_text[name][row]}' in line

            for name in names:
                column_sql = f"SELECT {name} FROM edge ORDER BY row_no"
                if name in ARROW_REFUSES:
                    with pytest.raises(ARROW_REFUSES[name]):
                        await arrow_table(conn, column_sql)
                    continue
                table = await arrow_table(conn, column_sql)
                values = [r[names.index(name)] for r in records]
                got = table.column(0).to_pylist()
                assert all(same_arrow(name, g, v) for g, v in zip(got, values, strict=True)), (
                    name,
                    got,
                    values,
                )
                if name in ("j", "jb"):
                    assert got == server_text[name]
            table = await arrow_table(
                conn, "SELECT i2, i4, i8, o, f4, f8, n2, b, t, ts, tstz, d, iv, tm, u, by FROM edge"
            )
            assert [str(t) for t in table.schema.types] == [
                "int16",
                "int32",
                "int64",
                "int64",
                "float",
                "double",
                "decimal128(38, 2)",
                "bool",
                "string",
                "timestamp[us]",
                "timestamp[us, tz=UTC]",
                "date32[day]",
                "duration[us]",
                "time64[us]",
                "extension<arrow.uuid>" if hasattr(pa, "uuid") else "fixed_size_binary[16]",
                "binary",
            ]
            raise _Rollback

    with pytest.raises(_Rollback):
        with_conn(dsn, body)


def _parse_in_batches(
    plan: Any, layout: int, stream: bytes, step: int, seed: int
) -> list[tuple[int, Any]]:
    """Feed ``stream`` in pieces of ``step`` bytes, taking batches at random."""
    import random

    keys = tuple(f",{n}:".encode() for n in plan.names) if layout == CopyLayout.JSONL else None
    parser = decode.new_parser(plan, layout, keys)
    rng = random.Random(seed)
    batches = []
    for k in range(0, len(stream), step):
        parser.feed(stream[k : k + step])
        if parser.nrows and rng.random() < 0.3:
            batches.append(parser.take_batch())
    batches.append(parser.finish())
    return batches


def _combine(plan: Any, layout: int, batches: list[tuple[int, Any]]) -> Any:
    import pyarrow as pa

    if layout == CopyLayout.JSONL:
        return b"".join(bytes(payload) for _, payload in batches)
    convert = results_arrow.RecordBatches(plan)
    return pa.Table.from_batches([convert(n, columns) for n, columns in batches])


def test_export_batches_cut_anywhere(dsn: str) -> None:
    """Batches taken anywhere, from a stream cut anywhere, add up to the whole."""
    nrows = max(len(v) for _, v in EDGE_VALUES.values())
    arrow_columns = ", ".join(n for n in EDGE_VALUES if n not in ARROW_REFUSES)

    async def body(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            for statement in _edge_table_sql():
                await conn.execute(statement)
            for layout, columns in ((CopyLayout.JSONL, "*"), (CopyLayout.ARROW, arrow_columns)):
                sql = f"SELECT {columns} FROM edge ORDER BY row_no"
                stmt = await conn.prepare(sql)
                plan = await decode.plan_columns(conn, stmt.get_attributes(), False, export=True)
                chunks: list[bytes] = []

                async def sink(chunk: bytearray, chunks: list[bytes] = chunks) -> None:
                    chunks.append(bytes(chunk))

                await conn.copy_from_query(sql, output=sink, format="binary")
                stream = b"".join(chunks)
                whole = _combine(
                    plan, layout, _parse_in_batches(plan, layout, stream, len(stream), 0)
                )
                for step, seed in ((1, 1), (3, 2), (7, 3), (64, 4), (1000, 5)):
                    batches = _parse_in_batches(plan, layout, stream, step, seed)
                    assert sum(n for n, _ in batches) == nrows
                    assert len(batches) > 2 or step == 1000
                    cut = _combine(plan, layout, batches)
                    if layout == CopyLayout.JSONL:
                        assert cut == whole
                        continue
                    assert cut.schema == whole.schema
                    for a, b in zip(cut.columns, whole.columns, strict=True):  # NaN == NaN here
                        assert same(a.to_pylist(), b.to_pylist())
            raise _Rollback

    with pytest.raises(_Rollback):
        with_conn(dsn, body)


def test_take_batch_contract() -> None:
    def parser(layout: int) -> Any:
        plan = decode.Plan(bytes([CopyKind.INT4, CopyKind.TEXT]), b"\0\0", (0, 0), ["a", "b"])
        keys = (b'{"a":', b',"b":') if layout == CopyLayout.JSONL else None
        return decode.new_parser(plan, layout, keys)

    header = b"PGCOPY\n\xff\r\n\0" + b"\0" * 8
    row = b"\x00\x02" + b"\x00\x00\x00\x04\x00\x00\x00\x07" + b"\x00\x00\x00\x02hi"
    null_row = b"\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff"
    with pytest.raises(ValueError, match="layout"):
        parser(CopyLayout.PANDAS).take_batch()

    jsonl = parser(CopyLayout.JSONL)
    jsonl.feed(header + row + row[:5])  # a row and a half
    assert jsonl.nrows == 1
    n, lines = jsonl.take_batch()
    assert (n, bytes(lines), jsonl.nrows) == (1, b'{"a":7,"b":"hi"}\n', 0)
    assert jsonl.take_batch()[0] == 0  # nothing new: an empty batch
    jsonl.feed(row[5:] + null_row + b"\xff\xff")
    n, lines = jsonl.finish()
    assert (n, bytes(lines)) == (2, b'{"a":7,"b":"hi"}\n{"a":null,"b":null}\n')
    with pytest.raises(RuntimeError, match="finished"):
        jsonl.take_batch()

    arrow = parser(CopyLayout.ARROW)
    arrow.feed(header + null_row)
    n, columns = arrow.take_batch()
    assert n == 1 and [c[:2] for c in columns] == [(1, 1), (1, 1)]
    arrow.feed(row + b"\xff\xff")
    n, columns = arrow.finish()
    length, nulls, validity, values, data = columns[1][:5]
    assert (length, nulls, validity, bytes(values), bytes(data)) == (
        1,
        0,
        None,
        (0).to_bytes(8, "little") + (2).to_bytes(8, "little"),
        b"hi",
    )
    with pytest.raises(decode.pgcopy.ProtocolError, match="ended early"):
        truncated = parser(CopyLayout.ARROW)
        truncated.feed(header + row)
        truncated.finish()
    with pytest.raises(ValueError, match="key per column"):
        decode.new_parser(decode.Plan(bytes([CopyKind.INT4]), b"\0", (0,), ["a"]), CopyLayout.JSONL)
    with pytest.raises(ValueError, match="unsupported kind"):
        decode.new_parser(decode.Plan(bytes([CopyKind.VOID]), b"\0", (0,), ["v"]))


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("'10000-01-01'::timestamp", OverflowError),
        ("'10000-01-01'::date", ValueError),
        ("'24:00:00'::time", ValueError),
        ("'infinity'::interval", OverflowError),
        ("ARRAY['10000-01-01'::date]", ValueError),
    ],
)
@pytest.mark.parametrize("layout", ["arrow", "jsonl"])
def test_export_stops_at_values_asyncpg_refuses(
    dsn: str, expr: str, error: type[Exception], layout: str
) -> None:
    export = arrow_table if layout == "arrow" else json_lines

    async def body(conn: asyncpg.Connection) -> None:
        # the bad value at the end of a short result (raised when the stream
        # ends) and in the middle of a long one (the COPY is cancelled)
        for sql in (
            f"SELECT g, CASE WHEN g = 3 THEN {expr} END AS bad FROM generate_series(1, 3) g",
            f"SELECT g, CASE WHEN g = 30000 THEN {expr} END AS bad FROM generate_series(1, 300000) g",
        ):
            with pytest.raises(error):
                await export(conn, sql, batch_rows=1000)
            assert await conn.fetchval("SELECT 42") == 42

    with_conn(dsn, body)


def test_decimal_type_comes_from_the_first_batch(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        table = await arrow_table(
            conn,
            "SELECT (CASE WHEN g = 1 THEN 'NaN' WHEN g = 2 THEN 'Infinity' "
            "ELSE round(g / 4.0, 3) END)::numeric AS v, ARRAY[g * 1.5] AS a "
            "FROM generate_series(1, 5) g",
        )
        assert str(table.schema.field("v").type) == "decimal128(38, 3)"
        assert str(table.schema.field("a").type) == "list<item: decimal128(38, 1)>"
        assert table.column("v").to_pylist() == [
            None,
            None,
            *(decimal.Decimal(g) / 4 for g in (3, 4, 5)),
        ]
        wide = await arrow_table(conn, "SELECT 1e40::numeric + 0.5 AS v")
        assert str(wide.schema.field("v").type) == "decimal256(76, 1)"
        assert wide.column("v").to_pylist() == [decimal.Decimal("1" + "0" * 40 + ".5")]
        # a later batch needs more: refused, not rounded (asyncio reads at most
        # 256 KB at a time, so the first batch ends long before row 50,000)
        with pytest.raises(errors.ColumnTypeError, match="more digits"):
            await arrow_table(
                conn,
                "SELECT CASE WHEN g < 50000 THEN 1.5 ELSE 1.25 END AS v FROM generate_series(1, 100000) g",
                batch_rows=1000,
            )
        with pytest.raises(errors.ColumnTypeError, match="76"):
            await arrow_table(conn, "SELECT 1e-100::numeric AS v")
        as_float = await arrow_table(conn, "SELECT 1.5::numeric AS v", numeric_as_float=True)
        assert str(as_float.schema.field("v").type) == "double"
        assert json.loads(
            (await json_lines(conn, "SELECT 1.5 AS v", numeric_as_float=True))[0]
        ) == {"v": 1.5}

    with_conn(dsn, body)


def test_export_of_nothing_keeps_the_schema(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        sql = "SELECT 1::int4 AS a, 'x'::text AS b, 1.5::numeric AS c, ARRAY[1] AS d WHERE false"
        table = await arrow_table(conn, sql)
        assert table.num_rows == 0
        assert [str(t) for t in table.schema.types] == [
            "int32",
            "string",
            "decimal128(38, 0)",
            "list<item: int32>",
        ]
        assert await json_lines(conn, sql) == []

    with_conn(dsn, body)


def test_export_kinds(dsn: str) -> None:
    """void is exported (as null), not framed; unknown types raise before running."""

    async def body(conn: asyncpg.Connection) -> None:
        sql = "SELECT g, pg_sleep(0) AS v FROM generate_series(1, 2) g"
        stmt = await conn.prepare(sql)
        with pytest.raises(errors.UnsupportedColumnError):
            await decode.copy_frame(conn, sql, stmt.get_attributes())
        assert (await arrow_table(conn, sql)).column("v").null_count == 2
        assert await json_lines(conn, sql) == ['{"g":1,"v":null}', '{"g":2,"v":null}']
        sql = "SELECT 1 AS a, point(1, 2) AS p, pg_advisory_lock(4243) AS lock"
        stmt = await conn.prepare(sql)
        with pytest.raises(errors.UnsupportedColumnError):
            await arrow.copy_record_batches(conn, sql, stmt.get_attributes(), print)
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243"
        )
        assert held == 0
        lines = await json_lines(
            conn, """SELECT E'tab\\t"q"\\u0001 ü' AS "we""ird", '{"a":\n1}'::json AS j"""
        )
        assert lines == ['{"we\\"ird":"tab\\t\\"q\\"\\u0001 ü","j":{"a": 1}}']

    with_conn(dsn, body)


def test_stale_columns_in_an_export(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "CREATE TEMP TABLE shifty_export AS SELECT g::int4 AS n FROM generate_series(1, 3) g"
        )
        sql = "SELECT * FROM shifty_export"
        stale = (await conn.prepare(sql)).get_attributes()
        await conn.execute("ALTER TABLE shifty_export ALTER COLUMN n TYPE int8")
        for export in (arrow.copy_record_batches, arrow.copy_json_lines):
            with pytest.raises(errors.ColumnMismatchError):
                await export(conn, sql, stale, lambda batch: None)
            assert await conn.fetchval("SELECT 42") == 42

    with_conn(dsn, body)
