"""Arrow results: the COPY path's table, the Records' table, and polars, type by type.

The reference is the record path: asyncpg ``fetch`` with pgmagic's session
codecs.  :func:`pgmagic.results.arrow.copy_table` must give the values of the
Records (as ``tests/results/test_decode.py`` reads them for exports) with
exactly the Parquet export's types; :func:`records_to_table` must give the
same types and values from the Records themselves.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import asyncpg
import pyarrow as pa
import pytest

from pgmagic.errors import ColumnTypeError, OptionError
from pgmagic.results import arrow, decode
from pgmagic.results.frames import Column
from tests.results.test_decode import (
    ARROW_REFUSES,
    EDGE_VALUES,
    JSON_COLUMNS,
    _edge_table_sql,
    _Rollback,
    arrow_table,
    same,
    same_arrow,
    with_conn,
)

pytestmark = pytest.mark.skipif(
    not decode.is_available(), reason="the _pgcopy extension is not built"
)

_EDGE_SQL = "SELECT {} FROM edge ORDER BY row_no"


async def _columns(conn: asyncpg.Connection, stmt: Any) -> list[Column]:
    attributes = stmt.get_attributes()
    categories = {
        r[0]: r[1]
        for r in await conn.fetch(
            "SELECT oid::int8, typcategory::text FROM pg_catalog.pg_type WHERE oid = any($1::oid[])",
            [a.type.oid for a in attributes],
        )
    }
    return [
        Column(a.name, a.type.oid, a.type.name, categories.get(a.type.oid, "")) for a in attributes
    ]


async def _both(conn: asyncpg.Connection, sql: str, **options: Any) -> tuple[Any, Any, list[Any]]:
    """The COPY path's table, the Records' table, and the Records."""
    stmt = await conn.prepare(sql)
    records = list(await stmt.fetch())
    copied = await arrow.copy_table(conn, sql, stmt.get_attributes(), **options)
    converted = arrow.records_to_table(await _columns(conn, stmt), records, **options)
    return copied, converted, records


def _same_json(got: Any, reference: Any) -> bool:
    """JSON text equal as JSON; a JSON null may be NULL (the Records cannot tell them apart)."""
    if isinstance(got, list):
        return len(got) == len(reference) and all(
            _same_json(g, r) for g, r in zip(got, reference, strict=True)
        )
    if reference is None or got is None:
        return got == reference or json.loads(got or reference) is None
    return bool(json.loads(got) == json.loads(reference))


def test_every_type_matches_the_records_and_the_export(dsn: str) -> None:
    """Per column of the edge table: values, NULLs and types, on both paths."""

    async def body(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            for statement in _edge_table_sql():
                await conn.execute(statement)
            for name in EDGE_VALUES:
                sql = _EDGE_SQL.format(name)
                if name in ARROW_REFUSES:
                    stmt = await conn.prepare(sql)
                    with pytest.raises(ValueError):
                        await arrow.copy_table(conn, sql, stmt.get_attributes())
                    with pytest.raises(ColumnTypeError):
                        arrow.records_to_table(await _columns(conn, stmt), await stmt.fetch())
                    continue
                copied, converted, records = await _both(conn, sql)
                values = [r[0] for r in records]
                got = copied.column(0).to_pylist()
                assert all(same_arrow(name, g, v) for g, v in zip(got, values, strict=True)), (
                    name,
                    got,
                    values,
                )
                # exactly the Parquet export's schema
                assert copied.schema == (await arrow_table(conn, sql)).schema, name
                assert converted.schema == copied.schema, name
                again = converted.column(0).to_pylist()
                if name in JSON_COLUMNS:
                    assert _same_json(again, got), (name, again, got)
                else:
                    assert same(again, got), (name, again, got)
                assert converted.column(0).null_count >= copied.column(0).null_count
            raise _Rollback

    with pytest.raises(_Rollback):
        with_conn(dsn, body)


@pytest.mark.parametrize(
    ("sql", "types"),
    [
        ("SELECT 1.5::numeric AS v", ["double"]),
        # the COPY path's plan keeps arrays' elements decimal
        ("SELECT ARRAY[1.5, NULL]::numeric[] AS v", ["list<item: decimal128(38, 1)>"]),
    ],
)
def test_numeric_as_float(dsn: str, sql: str, types: list[str]) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        copied, converted, _ = await _both(conn, sql, numeric_as_float=True)
        assert [str(t) for t in copied.schema.types] == types
        assert converted.schema == copied.schema
        assert converted.to_pylist() == copied.to_pylist()

    with_conn(dsn, body)


def test_zero_rows_keep_the_schema(dsn: str) -> None:
    sql = (
        "SELECT 1::int4 AS a, 'x'::text AS b, 1.5::numeric AS c, now() AS d, "
        "'{}'::jsonb AS e, true AS f, ARRAY[1] AS g, gen_random_uuid() AS u WHERE false"
    )

    async def body(conn: asyncpg.Connection) -> None:
        copied, converted, _ = await _both(conn, sql)
        assert copied.num_rows == converted.num_rows == 0
        assert converted.schema == copied.schema
        assert copied.column_names == list("abcdefgu")

    with_conn(dsn, body)


def test_a_large_result_is_one_table_of_few_chunks(dsn: str) -> None:
    sql = "SELECT g::int8 AS id, md5(g::text) AS t, g / 7.0 AS n FROM generate_series(1, 300000) g"

    async def body(conn: asyncpg.Connection) -> None:
        stmt = await conn.prepare(sql)
        table = await arrow.copy_table(conn, sql, stmt.get_attributes(), zone="Asia/Kolkata")
        assert table.num_rows == 300_000
        assert table.column("id").to_pylist()[:3] == [1, 2, 3]
        assert table.column("t").type == pa.string()
        assert table.column("n").num_chunks == table.column("id").num_chunks

    with_conn(dsn, body)


def test_timestamptz_carries_the_zone(dsn: str) -> None:
    sql = "SELECT timestamptz '2024-01-01 12:00+00' AS t"

    async def body(conn: asyncpg.Connection) -> None:
        copied, converted, records = await _both(conn, sql, zone="Asia/Kolkata")
        assert copied.schema.field("t").type == pa.timestamp("us", tz="Asia/Kolkata")
        assert converted.schema == copied.schema
        assert copied.column(0).to_pylist() == [records[0][0]]  # the same instant

    with_conn(dsn, body)


def test_types_outside_the_parser_are_text_as_psql_prints_them() -> None:
    import ipaddress

    columns = [Column("ip", 869, "inet"), Column("r", 3904, "int4range")]
    table = arrow.records_to_table(columns, [(ipaddress.ip_address("10.0.0.1"), None)])
    assert table.schema.types == [pa.string(), pa.string()]
    assert table.to_pylist() == [{"ip": "10.0.0.1", "r": None}]


@pytest.mark.parametrize(
    "rows",
    [
        [(["a", "b"],), ([["c", "d"]],)],  # 1-D, then 2-D
        [([["c", "d"]],), (["abc"],)],  # 2-D, then 1-D: never read as letters
    ],
)
def test_arrays_of_different_dimensions_are_refused(rows: list[Any]) -> None:
    with pytest.raises(ColumnTypeError, match="column 'a'"):
        arrow.records_to_table([Column("a", 1009, "_text")], rows)


def test_a_later_chunk_keeps_the_first_chunks_types() -> None:
    import decimal

    columns = [Column("n", 1700, "numeric")]
    first = arrow.records_to_table(columns, [(decimal.Decimal("1.50"),)])
    later = arrow.records_to_table(columns, [(decimal.Decimal("2"),)], schema=first.schema)
    assert later.schema == first.schema
    assert later.column(0).to_pylist() == [decimal.Decimal("2.00")]
    with pytest.raises(ColumnTypeError):
        arrow.records_to_table(columns, [(decimal.Decimal("1.123"),)], schema=first.schema)


def test_polars_shares_the_types(dsn: str) -> None:
    polars = pytest.importorskip("polars")
    sql = (
        "SELECT 1::int4 AS i, 1.50::numeric AS n, 1e40::numeric + 0.5 AS wide, "
        "'x'::text AS t, ARRAY[1, 2] AS a, date '2024-01-01' AS d, interval '1 day' AS iv, "
        "timestamptz '2024-01-01 00:00+00' AS ts, '{\"a\": 1}'::jsonb AS j"
    )

    async def body(conn: asyncpg.Connection) -> None:
        copied, _, _ = await _both(conn, sql, zone="+05:30")
        frame = arrow.to_polars(copied)
        assert isinstance(frame, polars.DataFrame)
        assert dict(frame.schema) == {
            "i": polars.Int32,
            "n": polars.Decimal(38, 2),
            "wide": polars.String,  # decimal256: polars has no such type
            "t": polars.String,
            "a": polars.List(polars.Int32),
            "d": polars.Date,
            "iv": polars.Duration("us"),
            "ts": polars.Datetime("us", "UTC"),  # a fixed offset: polars needs a named zone
            "j": polars.String,
        }
        assert frame.row(0)[:2] == (1, copied.column("n")[0].as_py())
        assert frame["wide"][0] == "10000000000000000000000000000000000000000.5"

    with_conn(dsn, body)


def test_polars_refuses_repeated_names() -> None:
    pytest.importorskip("polars")
    table = pa.table([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(OptionError, match="distinct column names"):
        arrow.to_polars(table)


def test_without_polars_one_line_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)  # what an absent package looks like
    with pytest.raises(OptionError) as raised:
        arrow.to_polars(pa.table({"a": [1]}))
    message = str(raised.value)
    assert "pip install 'pgmagic[polars]'" in message
    assert "\n" not in message
