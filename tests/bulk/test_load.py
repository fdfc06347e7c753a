"""Binary COPY loads: every encodable type, byte for byte against the server, and the fallbacks."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest

import pgmagic
from pgmagic import _oids as oids
from pgmagic import _pgencode
from pgmagic._oids import EncodeKind
from pgmagic.bulk import coltypes, encode
from pgmagic.bulk import load as loading


def load(frame: Any, table: str, mode: str = "replace") -> loading.LoadResult:
    return asyncio.run(pgmagic.load_table(frame, table, mode=mode))


def texts(sql: Any, query: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in sql(query)]


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn)


def server_rows(dsn: str, query: str) -> bytes:
    """The rows of ``COPY (query) TO STDOUT (FORMAT binary)``, without header and trailer."""

    async def go() -> bytes:
        conn = await _connect(dsn)
        try:
            out = io.BytesIO()
            await conn.copy_from_query(query, output=out, format="binary")
            return out.getvalue()
        finally:
            await conn.close()

    data = asyncio.run(go())
    assert data.startswith(_pgencode.HEADER) and data.endswith(_pgencode.TRAILER)
    return data[len(_pgencode.HEADER) : -len(_pgencode.TRAILER)]


def our_rows(dsn: str, frame: pd.DataFrame, table: str) -> bytes:
    """What the encoder sends for the frame into the table."""

    async def targets() -> dict[str, Any]:
        conn = await _connect(dsn)
        try:
            return await loading._table_columns(conn, None, table)
        finally:
            await conn.close()

    found = asyncio.run(targets())
    return b"".join(chunk for chunk, _ in encode.binary_chunks(iter([frame]), found))


def same_rows(ours: bytes, theirs: bytes, frame: pd.DataFrame) -> None:
    """Byte equality, reported field by field."""
    # numeric_send writes ±Infinity with display scale 32 (bits of its header);
    # numeric_recv ignores the scale of special values, and the encoder sends 0
    for sign in (b"\xd0", b"\xf0"):
        theirs = theirs.replace(
            b"\x00\x00\x00\x08\x00\x00\x00\x00" + sign + b"\x00\x00\x20",
            b"\x00\x00\x00\x08\x00\x00\x00\x00" + sign + b"\x00\x00\x00",
        )
    mine, server = fields(ours, frame.shape[1]), fields(theirs, frame.shape[1])
    assert len(mine) == len(server)
    for r, (a, b) in enumerate(zip(mine, server, strict=True)):
        for name, x, y in zip(frame.columns, a, b, strict=True):
            assert x == y, (r, name)
    assert ours == theirs


# ------------------------------------------------------------------ the frame
UUIDS = [uuid.UUID("0c7119e3-a6a2-209d-a6a5-b90e5b5b75bd"), uuid.UUID(int=0), None]
DECIMALS = [
    Decimal("-1234567.8900"),
    Decimal("0.00"),
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    Decimal("1E+20"),
    Decimal("1.20E-7"),
    Decimal("-0"),
    Decimal("99999999999999999999.999999999999999999"),
    None,
]


def wide_frame() -> pd.DataFrame:
    n = len(DECIMALS)

    def cycle(values: list[Any]) -> list[Any]:
        return [values[i % len(values)] for i in range(n)]

    return pd.DataFrame(
        {
            "i8": pd.array(cycle([1, None, -(2**63), 2**63 - 1]), dtype="Int64"),
            "i2": np.array(cycle([-32768, 0, 32767]), dtype=np.int16),
            "u64": pd.array(cycle([2**64 - 1, 0, None]), dtype="UInt64"),
            "f8": cycle([1.5, float("nan"), float("inf"), -float("inf"), -0.0, 5e-324]),
            "f4": np.array(cycle([1.5, 3.4e38, -1e-45]), dtype=np.float32),
            "flag": cycle([True, False]),
            "maybe": pd.array(cycle([True, None, False]), dtype="boolean"),
            "txt": pd.array(
                cycle(["", "ünïcødé €😀", None, 'q"uote,\n\ttab\\back', "x" * 3000]), dtype="str"
            ),
            "price": DECIMALS,
            "at": pd.to_datetime(
                cycle(["2024-01-01T10:00:00.123456Z", None, "1901-12-13T20:45:52Z"]),
                utc=True,
                format="ISO8601",
            ),
            "local": pd.Series(
                pd.to_datetime(cycle(["2024-07-01T12:00:00", "2024-12-01T12:00:00"]))
            ).dt.tz_localize("Europe/Paris"),
            "naive": pd.to_datetime(
                cycle(
                    [
                        "2024-01-01T00:00:00.0000005",
                        "2024-01-01T00:00:00.0000015",
                        "1969-12-31T23:59:59.9999995",
                        None,
                    ]
                )
            ),
            "day": pd.to_datetime(cycle(["2024-02-29", "1969-12-31", "1900-01-01", None])).astype(
                "datetime64[s]"
            ),
            "wait": pd.to_timedelta(
                cycle(["1 day 2 hours", "-1us", "0s", None, pd.Timedelta(days=-3, microseconds=1)])
            ),
            "u": cycle(UUIDS),
            "doc": cycle([{"a": 1, "é": ["x", None, 2.5]}, None, {"n": {"deep": True}}]),
            "tags": cycle([["x", 'q"uote', None], [], None, ["ü"]]),
            "floats": cycle([[1.5, float("nan"), float("inf")], [1, 2]]),
            "bools": cycle([[True, None, False], None]),
            "raw": cycle([b"\x00\xff", b"", None, bytearray(b"ab")]),
            "when": cycle([dt.date(2000, 1, 1), dt.date(1, 1, 1), None, dt.date(9999, 12, 31)]),
            "clock": cycle([dt.time(0, 0), dt.time(23, 59, 59, 999999), None]),
        }
    )


def test_every_type_round_trips_in_binary(ip: Any, sql: Any) -> None:
    frame = wide_frame()
    result = load(frame, "bin_all")
    assert result.copy_format == "binary" and result.rows == len(frame)
    types = dict(
        sql(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'bin_all'::regclass AND attnum > 0"
        )
    )
    assert types["u64"] == "numeric(20,0)" and types["day"] == "date"
    assert types["tags"] == "text[]" and types["floats"] == "double precision[]"
    assert types["when"] == "date" and types["clock"] == "time without time zone"
    rows = texts(
        sql,
        "SELECT i8::text, i2::text, u64::text, f8::text, f4::text, flag::text, maybe::text,"
        " txt, price::text, (at AT TIME ZONE 'UTC')::text, (local AT TIME ZONE 'UTC')::text,"
        " naive::text, day::text, wait::text, u::text, doc::text, tags::text, floats::text,"
        ' bools::text, raw::text, "when"::text, clock::text FROM bin_all',
    )
    columns = list(zip(*rows, strict=True))
    assert columns[0][:4] == ("1", None, str(-(2**63)), str(2**63 - 1))
    assert columns[1][:3] == ("-32768", "0", "32767")
    assert columns[2][:3] == (str(2**64 - 1), "0", None)
    assert columns[3][:6] == ("1.5", None, "Infinity", "-Infinity", "-0", "5e-324")
    assert columns[4][:3] == ("1.5", "3.4e+38", "-1e-45")
    assert columns[5][:2] == ("true", "false") and columns[6][:3] == ("true", None, "false")
    assert columns[7][:5] == ("", "ünïcødé €😀", None, 'q"uote,\n\ttab\\back', "x" * 3000)
    assert columns[8] == (
        "-1234567.8900",
        "0.00",
        "NaN",
        "Infinity",
        "-Infinity",
        "100000000000000000000",
        "0.000000120",
        "0",
        "99999999999999999999.999999999999999999",
        None,
    )
    assert columns[9][:3] == ("2024-01-01 10:00:00.123456", None, "1901-12-13 20:45:52")
    assert columns[10][:2] == ("2024-07-01 10:00:00", "2024-12-01 11:00:00")
    # nanoseconds round half to even, as the server rounds text
    assert columns[11][:4] == (
        "2024-01-01 00:00:00",
        "2024-01-01 00:00:00.000002",
        "1970-01-01 00:00:00",
        None,
    )
    assert columns[12][:4] == ("2024-02-29", "1969-12-31", "1900-01-01", None)
    assert columns[13][:5] == (
        "1 day 02:00:00",
        "-1 days +23:59:59.999999",
        "00:00:00",
        None,
        "-3 days +00:00:00.000001",
    )
    assert columns[14][:3] == ("0c7119e3-a6a2-209d-a6a5-b90e5b5b75bd", str(uuid.UUID(int=0)), None)
    assert columns[15][:3] == ('{"a": 1, "é": ["x", null, 2.5]}', None, '{"n": {"deep": true}}')
    assert columns[16][:4] == ('{x,"q\\"uote",NULL}', "{}", None, "{ü}")
    assert columns[17][:2] == ("{1.5,NaN,Infinity}", "{1,2}")
    assert columns[18][:2] == ("{t,NULL,f}", None)
    assert columns[19][:4] == ("\\x00ff", "\\x", None, "\\x6162")
    assert columns[20][:4] == ("2000-01-01", "0001-01-01", None, "9999-12-31")
    assert columns[21][:3] == ("00:00:00", "23:59:59.999999", None)


ARRAYS = {
    "grid": ("int8[]", [[[1, 2], [3, 4]], [], [[None, -(2**63)]], None, [[[]]]]),
    "small": ("int2[]", [[1, -32768], None, [None], [], [3]]),
    "words": ("varchar[]", [["a", 'q"', "ü", None], [["x"], ["y"]], [], None, [""]]),
    "nums": ("numeric[]", [[Decimal("1.50"), 2, None], [], None, [Decimal("NaN")], [-1]]),
    "ids": (
        "uuid[]",
        [[uuid.UUID(int=5), "00000000-0000-0000-0000-000000000006"], None, [], [None], []],
    ),
    "days": ("date[]", [[dt.date(1999, 12, 31)], None, [], [None], [dt.date(2000, 1, 1)]]),
    "flags": ("bool[]", [(True, False), None, [], [None], [[True], [False]]]),
    "blobs": ("bytea[]", [[b"\\x00", b""], None, [], [None], [bytearray(b"z")]]),
}


def test_arrays_round_trip_byte_for_byte(ip: Any, sql: Any, dsn: str) -> None:
    ip.run_cell("%pg -q DROP TABLE IF EXISTS bin_arrays")
    definition = ", ".join(f"{name} {kind}" for name, (kind, _) in ARRAYS.items())
    ip.run_cell(f"%pg -q CREATE TABLE bin_arrays ({definition})")
    frame = pd.DataFrame({name: values for name, (_, values) in ARRAYS.items()})
    assert load(frame, "bin_arrays", mode="append").copy_format == "binary"
    assert texts(
        sql, "SELECT grid::text, words::text, nums::text, flags::text FROM bin_arrays"
    ) == [
        ("{{1,2},{3,4}}", '{a,"q\\"",ü,NULL}', "{1.50,2,NULL}", "{t,f}"),
        ("{}", "{{x},{y}}", "{}", None),
        (f"{{{{NULL,{-(2**63)}}}}}", "{}", None, "{}"),
        (None, None, "{NaN}", "{NULL}"),
        ("{}", '{""}', "{-1}", "{{t},{f}}"),
    ]
    same_rows(
        our_rows(dsn, frame, "bin_arrays"), server_rows(dsn, "SELECT * FROM bin_arrays"), frame
    )


def test_bytes_match_the_servers_own_binary_copy(ip: Any, dsn: str) -> None:
    frame = wide_frame().drop(columns=["doc"])  # jsonb comes back normalised
    frame["js"] = ['{"b":1, "a" : [1,2]}', None] * (len(frame) // 2)
    frame["u_text"] = ["{0C7119E3A6A2209Da6a5b90e5b5b75bd}", None] * (len(frame) // 2)
    frame["u_str"] = pd.array(["0c7119e3-a6a2-209d-a6a5-b90e5b5b75bd", None] * 5, dtype="str")
    setup = "%pg -q DROP TABLE IF EXISTS bin_exact"
    ip.run_cell(setup)
    definition = ", ".join(
        f'"{c}" {t}'
        for c, t in zip(
            frame.columns,
            [*(coltypes.pg_type_for(frame[c]) for c in frame.columns[:-3]), "json", "uuid", "uuid"],
            strict=True,
        )
    )
    ip.run_cell(f"%pg -q CREATE TABLE bin_exact ({definition})")
    assert load(frame, "bin_exact", mode="append").copy_format == "binary"
    same_rows(our_rows(dsn, frame, "bin_exact"), server_rows(dsn, "SELECT * FROM bin_exact"), frame)


NUMERICS = [
    "0",
    "0.000",
    "-0.001",
    "1",
    "10000",
    "10000.0001",
    "123456789.123456789",
    "-99999999",
    "1E+131071",
    "1.5E-10",
    "1E-16383",
    "0.1000",
    "3.14159265358979323846264338327950288419716939937510",
]


@pytest.mark.parametrize("text", NUMERICS)
def test_numeric_is_what_the_server_reads_from_the_same_text(
    ip: Any, sql: Any, dsn: str, text: str
) -> None:
    frame = pd.DataFrame({"n": [Decimal(text), -Decimal(text)]})
    assert load(frame, "bin_numeric").copy_format == "binary"
    back = sql("SELECT n::text = $1::numeric::text, n::text FROM bin_numeric", str(Decimal(text)))
    assert back[0][0], (back[0][1], str(Decimal(text)))
    expected = server_rows(
        dsn, f"SELECT '{Decimal(text)}'::numeric UNION ALL SELECT '{-Decimal(text)}'::numeric"
    )
    assert our_rows(dsn, frame, "bin_numeric") == expected


def test_numeric_from_integers_and_into_a_typed_column(ip: Any, sql: Any) -> None:
    ip.run_cell("%pg -q DROP TABLE IF EXISTS bin_typed")
    ip.run_cell("%pg -q CREATE TABLE bin_typed (n numeric(12, 2), i int4, f float8, v varchar(4))")
    frame = pd.DataFrame(
        {
            "n": [Decimal("1.005"), 7, np.int64(-3), None],
            "i": np.array([1, -(2**31), 2**31 - 1, 0], dtype=np.int64),
            "f": pd.array([1, None, 2**53 + 1, -1], dtype="Int64"),
            "v": ["abcd", "ab  ", "", None],
        }
    )
    assert load(frame, "bin_typed", mode="append").copy_format == "binary"
    assert texts(sql, "SELECT n::text, i::text, f::text, v FROM bin_typed") == [
        ("1.01", "1", "1", "abcd"),
        ("7.00", str(-(2**31)), None, "ab  "),
        ("-3.00", str(2**31 - 1), "9.007199254740992e+15", ""),
        (None, "0", "-1", None),
    ]


def test_timezone_of_the_session_does_not_move_instants(ip: Any, sql: Any) -> None:
    ip.run_cell("%pg -q SET TimeZone = 'America/New_York'")
    frame = pd.DataFrame(
        {
            "aware": pd.to_datetime(["2024-03-10T07:30:00Z"], utc=True).tz_convert("Asia/Tokyo"),
            "naive": pd.to_datetime(["2024-03-10T07:30:00"]),
        }
    )
    ip.run_cell("%pg -q DROP TABLE IF EXISTS bin_tz")
    ip.run_cell("%pg -q CREATE TABLE bin_tz (aware timestamptz, naive timestamptz)")
    assert load(frame, "bin_tz", mode="append").copy_format == "binary"
    # naive values are wall times in the session's zone, as the server reads
    # naive text: 07:30 EDT (the day DST began) is 11:30 UTC
    assert texts(
        sql, "SELECT extract(epoch FROM aware), extract(epoch FROM naive) FROM bin_tz"
    ) == [(Decimal("1710055800.000000"), Decimal("1710070200.000000"))]
    zone = ip.run_cell("%pg --scalar SHOW TimeZone").result
    assert zone == "America/New_York"


# ----------------------------------------------------------------- fallbacks
def test_columns_the_encoder_cannot_write_send_csv(ip: Any, sql: Any) -> None:
    ip.run_cell("%pg -q DROP TABLE IF EXISTS bin_fallback; DROP TYPE IF EXISTS mood")
    ip.run_cell("%pg -q CREATE TYPE mood AS ENUM ('sad', 'happy')")
    ip.run_cell("%pg -q CREATE TABLE bin_fallback (m mood, n numeric, i int4)")
    frame = pd.DataFrame({"m": ["happy", None], "n": [0.1, 2.5], "i": ["12", None]})
    result = load(frame, "bin_fallback", mode="append")
    assert result.copy_format == "csv" and result.rows == 2
    assert texts(sql, "SELECT m::text, n::text, i FROM bin_fallback") == [
        ("happy", "0.1", 12),
        (None, "2.5", None),
    ]


def test_a_value_found_half_way_restarts_as_csv(ip: Any, sql: Any) -> None:
    values: list[Any] = [Decimal(i) / 4 for i in range(60_000)]
    values[55_000] = "1.5"  # str: the binary encoder refuses, the server reads it
    frame = pd.DataFrame({"k": np.arange(60_000), "n": values})
    result = load(frame, "bin_restart")
    assert result.copy_format == "csv" and result.rows == 60_000
    assert texts(sql, "SELECT count(*), count(DISTINCT k), sum(n) FROM bin_restart") == [
        (
            60_000,
            60_000,
            sum(Decimal(i) / 4 for i in range(60_000)) - Decimal(55_000) / 4 + Decimal("1.5"),
        )
    ]
    assert texts(sql, "SELECT n::text FROM bin_restart WHERE k = 55000") == [("1.5",)]


def test_a_restart_inside_a_transaction_keeps_it(ip: Any, sql: Any, capsys: Any) -> None:
    ip.run_cell("%pg -q DROP TABLE IF EXISTS bin_keep, bin_ragged, bin_fine")
    ip.run_cell("%pg -q CREATE TABLE bin_ragged (t text[]); CREATE TABLE bin_fine (n text[])")
    ip.run_cell("%pg BEGIN")
    ip.run_cell("%pg CREATE TABLE bin_keep (x int)")
    # ragged: only the CSV path can have the server say what is wrong
    ip.user_ns["frame"] = pd.DataFrame({"t": [["a"], ["b", ["ragged"]]]})
    capsys.readouterr()
    failed = ip.run_cell("%pg load frame INTO bin_ragged --append")
    assert failed.error_in_exec is not None
    out = capsys.readouterr()
    assert "malformed array literal" in out.out + out.err
    ip.user_ns["fine"] = pd.DataFrame({"n": [[1, 2]]})  # ints for text[]: CSV, which works
    assert ip.run_cell("%pg load fine INTO bin_fine --append").error_in_exec is None
    ip.run_cell("%pg INSERT INTO bin_keep VALUES (1)")
    ip.run_cell("%pg COMMIT")
    assert texts(sql, "SELECT count(*) FROM bin_keep") == [(1,)]
    assert texts(sql, "SELECT n::text FROM bin_fine") == [("{1,2}",)]
    assert texts(sql, "SELECT count(*) FROM bin_ragged") == [(0,)]


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("int4", pd.array([1, 2**40], dtype="Int64"), "out of range for type integer"),
        ("numeric", [Decimal("1E+131072")], "value overflows numeric format"),
        ("uuid", ["not-a-uuid"], "invalid input syntax for type uuid"),
        ("int8[]", [[[1, 2], [3]]], "malformed array literal"),
    ],
)
def test_values_the_server_refuses_are_its_errors(
    ip: Any, sql: Any, capsys: Any, column: str, values: Any, message: str
) -> None:
    ip.run_cell("%pg -q DROP TABLE IF EXISTS bin_refused")
    ip.run_cell(
        f"%pg -q CREATE TABLE bin_refused (v {column}); INSERT INTO bin_refused VALUES (NULL)"
    )
    ip.user_ns["frame"] = pd.DataFrame({"v": values})
    capsys.readouterr()
    failed = ip.run_cell("%pg load frame INTO bin_refused --append")
    out = capsys.readouterr()
    assert failed.error_in_exec is not None and message in out.out + out.err
    assert texts(sql, "SELECT count(*) FROM bin_refused") == [(1,)]


def test_without_the_extension_loads_send_csv(
    ip: Any, sql: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encode, "pgencode", None)
    frame = pd.DataFrame({"k": [1, 2], "d": [Decimal("1.5"), None]})
    result = load(frame, "bin_none")
    assert result.copy_format == "csv"
    assert texts(sql, "SELECT k, d::text FROM bin_none ORDER BY k") == [(1, "1.5"), (2, None)]


def test_parquet_files_load_in_binary(ip: Any, sql: Any, tmp_path: Path) -> None:
    target = tmp_path / "x.parquet"
    table = pa.table(
        {
            "k": pa.array(range(60_000), pa.int64()),
            "s": pa.array([f"row {i}" if i % 3 else None for i in range(60_000)]),
            "d": pa.array(
                [dt.date(2024, 1, 1) + dt.timedelta(days=i % 400) for i in range(60_000)]
            ),
            "p": pa.array([Decimal(i) / 100 for i in range(60_000)], pa.decimal128(12, 2)),
        }
    )
    import pyarrow.parquet as pq

    pq.write_table(table, target, row_group_size=7_000)
    result = load(str(target), "bin_parquet")
    assert result.copy_format == "binary" and result.rows == 60_000
    assert texts(
        sql,
        "SELECT count(s), max(d)::text, sum(p)::text, pg_typeof(p)::text FROM bin_parquet"
        " GROUP BY 4",
    ) == [(40_000, "2025-02-03", str(sum(Decimal(i) / 100 for i in range(60_000))), "numeric")]


def test_categories_and_arrow_strings(ip: Any, sql: Any) -> None:
    frame = pd.DataFrame(
        {
            "c": pd.Categorical(["b", None, "a", "b"]),
            "s": pd.array(["x", None, "ü", ""], dtype=pd.ArrowDtype(pa.string())),
            "j": pd.array(['{"a": 1}', None, "[]", "2"], dtype="str"),
        }
    )
    ip.run_cell("%pg -q DROP TABLE IF EXISTS bin_cat")
    ip.run_cell("%pg -q CREATE TABLE bin_cat (c text, s varchar(3), j jsonb)")
    assert load(frame, "bin_cat", mode="append").copy_format == "binary"
    assert texts(sql, "SELECT c, s, j::text FROM bin_cat") == [
        ("b", "x", '{"a": 1}'),
        (None, None, None),
        ("a", "ü", "[]"),
        ("b", "", "2"),
    ]
    numbers = pd.DataFrame({"c": pd.Categorical([1, None, 2]), "s": "x", "j": "1"})
    assert load(numbers, "bin_cat", mode="append").copy_format == "csv"
    assert texts(sql, "SELECT c FROM bin_cat OFFSET 4") == [("1",), (None,), ("2",)]


def test_csv_files_still_go_as_csv(ip: Any, tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    target.write_text("k,v\n1,a\n2,b\n")
    assert load(str(target), "bin_csvfile").copy_format == "csv"


# ----------------------------------------------------------- the encoder alone
def objects(*values: Any) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        out[i] = value  # one by one: np.array would turn nested lists into dimensions
    return out


def encoder(*kinds: int, elem_kind: int = 0, oid: int = 0) -> Any:
    return _pgencode.Encoder(
        bytes(kinds),
        bytes([elem_kind] * len(kinds)),
        (oid,) * len(kinds),
        missing=(pd.NA, pd.NaT),
        uuid_type=uuid.UUID,
        decimal_type=Decimal,
        json_dumps=orjson.dumps,
        json_one=encode.json_bytes,
    )


def fields(out: bytes, ncols: int) -> list[list[bytes | None]]:
    """Binary COPY rows back into fields."""
    rows, pos = [], 0
    while pos < len(out):
        assert int.from_bytes(out[pos : pos + 2], "big") == ncols
        pos += 2
        row: list[bytes | None] = []
        for _ in range(ncols):
            n = int.from_bytes(out[pos : pos + 4], "big", signed=True)
            pos += 4
            row.append(None if n < 0 else out[pos : pos + n])
            pos += max(n, 0)
        rows.append(row)
    assert pos == len(out)
    return rows


@pytest.mark.parametrize("nrows", [0, 1, 3, 7, 1023, 1025])
def test_encoder_interleaves_odd_sizes(nrows: int) -> None:
    ints = np.arange(nrows, dtype=np.int64)
    mask = (ints % 3 == 0).astype(np.uint8)
    words = [None if i % 5 == 0 else "é" * (i % 4) for i in range(nrows + 3)]
    strings = pa.array(words, pa.string())[3:]  # an offset into the buffers, 32-bit offsets
    validity, offsets, data = strings.buffers()
    decimals = objects(*(None if i % 2 else Decimal(i) / 3 for i in range(nrows)))
    out = encoder(EncodeKind.FIXED8, EncodeKind.ARROW_TEXT, EncodeKind.NUMERIC).encode(
        [(ints, mask), (offsets, 4, strings.offset, data, validity), (decimals,)], nrows
    )
    rows = fields(out, 3)
    assert len(rows) == nrows
    for r, (number, text, decimal) in enumerate(rows):
        assert number == (None if r % 3 == 0 else r.to_bytes(8, "big"))
        word = words[r + 3]
        assert text == (None if word is None else word.encode())
        assert (decimal is None) == (r % 2 == 1)


def test_encoder_refuses_bad_buffers() -> None:
    with pytest.raises(ValueError, match="unsupported kind"):
        encoder(99)
    with pytest.raises(ValueError, match="unsupported kind"):
        encoder(EncodeKind.ARRAY, elem_kind=EncodeKind.JSON, oid=oids.JSON)
    with pytest.raises(ValueError, match="bytes, expected"):
        encoder(EncodeKind.FIXED8).encode([(np.zeros(2, np.int64), None)], 3)
    with pytest.raises(ValueError, match="expected an object array"):
        encoder(EncodeKind.TEXT).encode([(objects("a"),)], 2)
    with pytest.raises(ValueError, match="expected 2 columns"):
        encoder(EncodeKind.TEXT, EncodeKind.TEXT).encode([(objects("a"),)], 1)
    validity, offsets, _ = pa.array(["abc"], pa.string()).buffers()
    with pytest.raises(ValueError, match="offsets out of bounds"):
        encoder(EncodeKind.ARROW_TEXT).encode([(offsets, 4, 0, b"a", validity)], 1)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (EncodeKind.TEXT, 1),
        (EncodeKind.NUMERIC, 1.5),
        (EncodeKind.NUMERIC, Decimal("sNaN")),
        (EncodeKind.NUMERIC, Decimal("-NaN")),
        (EncodeKind.NUMERIC, Decimal("1E-16384")),
        (EncodeKind.NUMERIC, Decimal("1E+131072")),
        (EncodeKind.NUMERIC, True),
        (EncodeKind.INT2, 2**15),
        (EncodeKind.INT8, 2**63),
        (EncodeKind.INT8, False),
        (EncodeKind.UUID, "0c7119e3-a6a2-209d-a6a5-b90e5b5b75b"),
        (EncodeKind.UUID, "0c7119e3-a6a2-209d-a6a5-b90e5b5b75bd0"),
        (EncodeKind.UUID, "{0c7119e3a6a2209da6a5b90e5b5b75bd"),
        (EncodeKind.UUID, "0c7119e3a-6a2209da6a5b90e5b5b75bd"),
        (EncodeKind.DATE, dt.datetime(2024, 1, 1)),
        (EncodeKind.TIME, dt.time(1, tzinfo=dt.UTC)),
        (EncodeKind.BOOL, np.bool_(True)),
        (EncodeKind.FLOAT8, "1.5"),
        (EncodeKind.BYTEA, "text"),
        (EncodeKind.TEXT, "\ud800"),
    ],
)
def test_encoder_refuses_values(kind: int, value: Any) -> None:
    with pytest.raises(_pgencode.Unencodable, match="column 0"):
        encoder(kind).encode([(objects(value),)], 1)


@pytest.mark.parametrize(
    "value",
    [
        [[1, 2], [3]],
        [[1, 2], 3],
        [1, [2]],
        [[[[[[[1]]]]]]],
        [1.5],
        [True],
        "[1]",
        [[], [1]],
        [[], 1],
    ],
)
def test_encoder_refuses_lists_that_are_not_int8_arrays(value: Any) -> None:
    int8_arrays = encoder(EncodeKind.ARRAY, elem_kind=EncodeKind.INT8, oid=oids.INT8)
    with pytest.raises(_pgencode.Unencodable):
        int8_arrays.encode([(objects(value),)], 1)


def test_json_values_orjson_refuses_go_one_at_a_time() -> None:
    # Integers beyond 64 bits are what orjson refuses (written raw); Decimal stays exact.
    values = objects({"d": Decimal("1.50")}, "[1, 2]", None, {1: 2**70}, float("nan"), [1])
    out = encoder(EncodeKind.JSONB).encode([(values,)], len(values))
    assert [row[0] for row in fields(out, 1)] == [
        b'\x01{"d":1.50}',
        b"\x01[1, 2]",
        None,
        b'\x01{"1":1180591620717411303424}',
        None,
        b"\x01[1]",
    ]


def test_json_text_with_brackets_in_strings_splits_right() -> None:
    values = objects({"a": '],[,\\"}'}, [{"b": [1, "x,y"]}], "plain", 3, True)
    rows = fields(encoder(EncodeKind.JSON).encode([(values,)], len(values)), 1)
    assert [row[0] for row in rows] == [
        orjson.dumps({"a": '],[,\\"}'}),
        orjson.dumps([{"b": [1, "x,y"]}]),
        b"plain",
        b"3",
        b"true",
    ]


def test_uuids_from_every_shape() -> None:
    from asyncpg.pgproto.pgproto import UUID

    values = objects(
        UUID(b"\x01" * 16),
        uuid.UUID(int=1),
        "00000000-0000-0000-0000-000000000002",
        "{00000000000000000000000000000003}",
        "0000-0000-0000-0000-0000-0000-0000-0004",
    )
    rows = fields(encoder(EncodeKind.UUID).encode([(values,)], len(values)), 1)
    assert [row[0] for row in rows] == [
        b"\x01" * 16,
        *((i).to_bytes(16, "big") for i in range(1, 5)),
    ]


def test_nan_is_null_at_the_top_and_a_value_in_lists() -> None:
    float8_arrays = encoder(EncodeKind.ARRAY, elem_kind=EncodeKind.FLOAT8, oid=oids.FLOAT8)
    out = float8_arrays.encode([(objects(math.nan),)], 1)
    assert out == b"\x00\x01\xff\xff\xff\xff"
    out = float8_arrays.encode([(objects([math.nan]),)], 1)
    assert out.endswith(b"\x00\x00\x00\x08\x7f\xf8\x00\x00\x00\x00\x00\x00")
