"""Object columns on the COPY path hold exactly what asyncpg's own fetch gives.

The parser builds ``Decimal`` objects in place and reads JSON texts itself
(``pgmagic/_c/pgcopy.c``); these tests compare each value, its type and (for
Decimal) its sign, digits and exponent with the record path, for the edges of
both and for many generated values, alone and inside arrays.
"""

from __future__ import annotations

import decimal
import json
from typing import Any

import asyncpg
import numpy as np
import pytest
from asyncpg.pgproto import pgproto

from pgmagic._oids import CopyKind
from pgmagic.results import decode
from tests.results.test_decode import assert_same_frame, fast_frame, record_frame, with_conn

pytestmark = pytest.mark.skipif(not decode.is_available(), reason="parser not built")

NUMERICS = [
    "0",
    "0.00",
    "-0.00",
    "'-0'",
    "1",
    "-1",
    "1.50",
    "9999",
    "10000",
    "10000.0001",
    "0.0001",
    "0.00001",
    "-0.000000001",
    "1e20",
    "1e-20",
    "-1e20",
    "1e-1000",
    "'1e-1000'::numeric * 0",
    "1e130000 / 1e130000",
    "'NaN'",
    "'Infinity'",
    "'-Infinity'",
    "12345678.9",
    "9999999999999999999",  # 19 digits: one word
    "10000000000000000000",  # 20 digits: two words
    "-99999999999999999999999999999999999999.99999999999999999999",
    # 76 digits, the most the object holds
    "repeat('7', 40)::numeric + ('0.' || repeat('3', 36))::numeric",
    # 77 and more: built from their text
    "repeat('9', 77)::numeric",
    "('1.' || repeat('0', 100) || '1')::numeric",
    "repeat('12345', 200)::numeric",
    "(2::numeric ^ 300)",
    "round(1::numeric / 3, 1000)",
    "0.1::numeric(1000, 999)",
    "123.456::numeric(20, 10)",
    "'0.5'::numeric(3, 2)",
    "1e-6",
    "1e-7",
    "1000000",
    "1e6::numeric(20, 0)",
]

JSONS = [
    "'{}'",
    "'[]'",
    "'null'",
    "'true'",
    "'false'",
    "'0'",
    "'-0'",
    "'-0.0'",
    "'0.0'",
    "'1.5'",
    "'0.1'",
    "'0.30000000000000004'",
    "'1e-7'",
    "'1.5E+300'",
    "'1e308'",
    "'1.7976931348623157e308'",
    "'5e-324'",
    "'2.2250738585072014e-308'",
    "'1e-320'",
    "'123456789012345678'",
    "'-123456789012345678'",
    "'1234567890123456789'",
    "'-9223372036854775808'",
    "'9223372036854775808'",
    "'1180591620717411303424'",  # 2**70
    "'-1180591620717411303424'",
    "'123456789012345.6'",
    "'1234567890123456.7'",
    "'9007199254740993'",
    "'9007199254740993.0'",
    "'0.000001234'",
    "'100e-2'",
    "'12.5e1'",
    "'1E22'",
    "'1e23'",
    "'4.35'",
    "'\"\"'",
    "'\"a\"'",
    "'\"sixteen chars 16\"'",
    "'\"seventeen chars17\"'",
    "'\"ünïcödé ✓ 𝄞 日本\"'",
    "'\"\\u00e9\\u4e2d\\ud83d\\ude00\"'",
    '\'"\\" \\\\ \\/ \\b \\f \\n \\r \\t"\'',
    "'\"\\u0001\\u001f\"'",
    "'\"' || repeat('x', 300) || '\\n\"'",
    "'\"' || repeat('ü', 300) || '\\t\"'",
    '\'{"a": 1, "b": "x"}\'',
    '\'{"b": 1, "a": [1, 2.5, "x", null, true, false, {}, []]}\'',
    "'[[[[[[[[[[1]]]]]]]]]]'",
    "repeat('[', 70) || repeat(']', 70)",
    "repeat('{\"k\": ', 70) || '1' || repeat('}', 70)",
    # more keys than the parser collects before it builds the dict
    "(SELECT jsonb_object_agg('k' || i, i ORDER BY i) FROM generate_series(1, 20) i)",
    "(SELECT jsonb_object_agg('k' || i, i ORDER BY i) FROM generate_series(1, 16) i)",
    """'{"a": 2, "b": ["y"]}'""",
    """'{"a": {"a": {"b": 1}}, "b": 3}'""",
    "'{\"n\": 0.1000000000000000055511151231257827}'",
    "'12345678901234567.5'",
    "'1e400'",
    "'-1e400'",
    "'1' || repeat('0', 400)",
    "'0.' || repeat('0', 400) || '1'",
]

# accepted by json but not by jsonb: left as typed
JSON_ONLY = [
    '\'  { "ws" :\t true ,\n"a" : [ ] } \'',
    '\'{"a": 1, "a": 2, "b": 3}\'',
    """'{"b": 1, "a": 2}'""",
    """'{"a": 1, "b": 2, "a": 3}'""",
    """'{"a": 1, "b": 2}'""",
    "'\"\\ud800\"'",
    "'\"\\udc00x\"'",
    "'\"\\ud800\\u0041\"'",
    "'\"\\u0000\"'",
    "'1E400'",
    "'[1e400, -1e400, 1e-400]'",
]


@pytest.fixture(params=["orjson", "json.loads"])
def json_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With orjson the parser's own reader takes only what orjson cannot read
    exactly; without it, every text."""
    if request.param == "json.loads":
        monkeypatch.setattr(decode, "_json_loads", None)


def _values_sql(values: list[str], typ: str) -> str:
    rows = ", ".join(f"({i}, ({v})::{typ})" for i, v in enumerate(values))
    return f"SELECT v FROM (VALUES {rows}, ({len(values)}, NULL)) AS t(i, v) ORDER BY i"


def _same_decimals(fast: list[Any], ref: list[Any]) -> None:
    for x, y in zip(fast, ref, strict=True):
        assert type(x) is type(y)
        if isinstance(x, decimal.Decimal):
            assert str(x) == str(y) and x.as_tuple() == y.as_tuple()
            if x.is_finite():
                assert x == y and hash(x) == hash(y)
                # arithmetic sees the same value
                assert str(x * 3 - 1) == str(y * 3 - 1)


def _compare(conn_sql: str, dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        fast = await fast_frame(conn, conn_sql)
        ref = await record_frame(conn, conn_sql)
        assert_same_frame(fast, ref)
        _same_decimals(fast.iloc[:, 0].tolist(), ref.iloc[:, 0].tolist())

    with_conn(dsn, body)


def test_numeric_edges_match_asyncpg(dsn: str) -> None:
    _compare(_values_sql(NUMERICS, "numeric"), dsn)


def test_numeric_array_edges_match_asyncpg(dsn: str) -> None:
    elements = ", ".join(f"({v})::numeric" for v in NUMERICS)
    _compare(
        f"SELECT ARRAY[{elements}, NULL] AS a UNION ALL SELECT '{{{{1.5,NULL}},{{NaN,-0.01}}}}'"
        " UNION ALL SELECT '{}' UNION ALL SELECT NULL",
        dsn,
    )


def test_generated_numerics_match_asyncpg(dsn: str) -> None:
    # every weight and scale from 1e-40 to 1e40, positive and negative, with
    # repeats (the cache) and without
    sql = """
        SELECT round((CASE WHEN g % 2 = 0 THEN -1 ELSE 1 END)
                     * (g * 7919 % 1000003)::numeric * 10::numeric ^ (g % 81 - 40), g % 50)
        FROM generate_series(1, 20000) g
        UNION ALL
        SELECT ((g % 13)::numeric / 4)::numeric(10, 3) FROM generate_series(1, 2000) g
    """
    _compare(sql, dsn)


@pytest.mark.parametrize("typ", ["json", "jsonb"])
def test_json_edges_match_json_loads(dsn: str, json_reader: None, typ: str) -> None:
    values = JSONS + (JSON_ONLY if typ == "json" else [])
    _compare(_values_sql(values, typ), dsn)


@pytest.mark.parametrize("typ", ["json", "jsonb"])
def test_json_arrays_match_json_loads(dsn: str, json_reader: None, typ: str) -> None:
    elements = ", ".join(f"({v})::{typ}" for v in JSONS)
    _compare(
        f"SELECT ARRAY[{elements}, NULL] AS a UNION ALL SELECT NULL"
        f" UNION ALL SELECT ARRAY[ARRAY['1'::{typ}, NULL], ARRAY['{{}}'::{typ}, '\"x\"'::{typ}]]"
        f" UNION ALL SELECT '{{}}'::{typ}[]",
        dsn,
    )


def test_generated_jsonb_matches_json_loads(dsn: str, json_reader: None) -> None:
    # floats of every length (a quotient has up to 17 digits), keys repeating
    # across rows and new ones, strings of every length around the cache's.
    # No random() and no temp table: both reads must see the same values, also
    # through a transaction pooler.
    sql = """
        SELECT jsonb_build_object(
                   'id', g, 'f', (g * 7919 % 100003)::float8 / 100003 * 10 ^ (g % 40 - 20),
                   'neg', -g / 7.0,
                   'k' || (g % 300), repeat('s', g % 40),
                   'arr', jsonb_build_array(g % 3 = 0, NULL, (g * 1.5)::float8, 'ü' || g),
                   'big', (g::numeric * 10 ^ 25)::text::jsonb) AS j
        FROM generate_series(1, 5000) g
    """
    _compare(sql, dsn)


def test_malformed_json_raises_what_json_loads_raises() -> None:
    plan = decode.Plan(bytes([CopyKind.JSON]), b"\0", (0,), ["j"])
    for text in [b"{", b"[1,]", b"01", b'"\x01"', b"1 2", b"", b"\xff", b'{"a" 1}']:
        parser = decode.new_parser(plan)
        row = b"\x00\x01" + len(text).to_bytes(4, "big") + text
        parser.feed(b"PGCOPY\n\xff\r\n\x00" + bytes(8) + row + b"\xff\xff")
        with pytest.raises(ValueError) as caught:
            parser.finish()
        with pytest.raises(type(caught.value)):
            json.loads(text.decode())


def test_decimals_are_built_in_place_here() -> None:
    plan = decode.Plan(bytes([CopyKind.NUMERIC]), b"\0", (0,), ["n"])
    assert decode.new_parser(plan).decimal_fast


class _MyDecimal(decimal.Decimal):
    pass


def test_another_decimal_type_takes_its_constructor() -> None:
    # the layout probe refuses a type it cannot vouch for; values are built by
    # calling it, as before
    parser = decode.pgcopy.Parser(
        bytes([CopyKind.NUMERIC]), b"\0", (0,), _MyDecimal, pgproto.UUID, None, json.loads
    )
    assert not parser.decimal_fast
    # 12.50: ndigits 2, weight 0, sign +, dscale 2, digits 12 and 5000
    value = bytes.fromhex("0002 0000 0000 0002 000c 1388")
    row = b"\x00\x01" + len(value).to_bytes(4, "big") + value
    parser.feed(b"PGCOPY\n\xff\r\n\x00" + bytes(8) + row + b"\xff\xff")
    parser.finish()
    out = np.empty(1, dtype=object)
    parser.take_objects(0, out)
    assert type(out[0]) is _MyDecimal and str(out[0]) == "12.50"


def test_json_floats_match_for_many_digit_counts(dsn: str, json_reader: None) -> None:
    texts = []
    for digits in range(1, 25):
        for exp in (-30, -23, -22, -5, 0, 5, 22, 23, 30):
            mantissa = "".join(str((digits * 7 + i * 3) % 10) for i in range(digits)) or "0"
            texts.append(f"'{mantissa[0]}.{mantissa[1:] or '0'}e{exp}'")
    _compare(_values_sql(texts, "json"), dsn)
