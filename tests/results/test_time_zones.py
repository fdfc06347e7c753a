"""The session's TimeZone: every output says the same instant the same way, naive means wall time.

After ``SET TIME ZONE``, a timestamptz is the same instant, shown with the same
offset, on every path: a plain ``%pg`` (binary COPY the first time, Records
the next), ``--one``/``--scalar``, ``--stream``, ``--to`` CSV / JSON lines /
Parquet (through COPY, and through the cursor when COPY cannot take a column)
and the Python API on the pool and on the session.  A naive ``datetime`` bound
to timestamptz means what the same naive literal means to the server, on every
path that binds or loads values, including the wall times a daylight-saving
change skips or repeats.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import datetime as dt
import json
import random
import uuid
import zoneinfo
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
import pyarrow.parquet as pq
import pytest

import pgmagic
from pgmagic import _pgcopy
from pgmagic._oids import CopyKind, CopyLayout
from pgmagic.errors import ParameterError
from pgmagic.results import zones
from tests.shell import fails, run

# (SET TIME ZONE argument, the zone pandas and Parquet name)
ZONES = [
    ("'UTC'", "UTC"),
    ("'Asia/Kolkata'", "Asia/Kolkata"),  # +05:30; +05:21:10 in 1900
    ("'America/St_Johns'", "America/St_Johns"),  # -03:30, -02:30 in summer
    ("'Pacific/Chatham'", "Pacific/Chatham"),  # +12:45, +13:45 in (southern) summer
    ("INTERVAL '+05:45' HOUR TO MINUTE", "+05:45"),  # reported as <+05:45>-05:45
]

# Wall times, read by the server in the session's zone: winter, summer, a
# local mean time of 1900, and St John's spring-forward gap and fall-back overlap.
WALLS = [
    "2024-01-15 12:00:00",
    "2024-07-15 12:00:00.123456",
    "1900-06-01 00:00:00",
    "2024-03-10 02:30:00",
    "2024-11-03 01:30:00",
]

_ROWS = ", ".join(f"({i}, timestamp '{w}')" for i, w in enumerate(WALLS))
# ts is the naive literal read in the session's zone; the other columns are the
# server's own text, offset and instant for it.
QUERY = (
    "SELECT i, w::timestamptz AS ts, w::timestamptz::text AS server,"
    " extract(timezone FROM w::timestamptz)::int AS offset_s,"
    " (extract(epoch FROM w::timestamptz) * 1000000)::int8 AS micros"
    f" FROM (VALUES {_ROWS}) AS v(i, w) ORDER BY i"
)


def _check(values: Any, reference: pd.DataFrame, zone: str | None, where: str) -> None:
    """Each value is the reference instant with the reference offset (and in ``zone``)."""
    values = list(values)
    assert len(values) == len(reference), where
    for value, (_, row) in zip(values, reference.iterrows(), strict=True):
        # Python reads the offsets of local mean times (+05:21:10), pandas does not
        stamp = pd.Timestamp(dt.datetime.fromisoformat(value) if isinstance(value, str) else value)
        assert stamp.value // 1000 == row.micros, (where, value, row.server)
        assert stamp.utcoffset() == dt.timedelta(seconds=int(row.offset_s)), (where, value)
        if zone is not None:  # text has an offset, not a zone
            assert zones.zone_name(stamp.tzinfo) == zone, (where, stamp.tzinfo)


@pytest.fixture
def in_zone(ip: Any, request: Any) -> Iterator[tuple[str, pd.DataFrame]]:
    setting, zone = request.param
    run(ip, f"%pg SET TIME ZONE {setting}")
    yield zone, run(ip, f"%pg {QUERY}")


@pytest.mark.parametrize("in_zone", ZONES, indirect=True, ids=[z for _, z in ZONES])
def test_every_path_says_the_same_instant_the_same_way(
    ip: Any, in_zone: tuple[str, pd.DataFrame], tmp_path: Path
) -> None:
    zone, first = in_zone  # the first run of a query goes through binary COPY
    assert zones.zone_name(first["ts"].dt.tz) == zone
    _check(first["ts"], first, zone, "COPY path")
    again = run(ip, f"%pg {QUERY}")  # a short result runs through Records next time
    pd.testing.assert_frame_equal(again, first)
    for i in range(len(WALLS)):
        one = f"SELECT * FROM ({QUERY}) q WHERE i = {i}"
        _check([run(ip, f"%pg --scalar SELECT ts FROM ({one}) s")], first.iloc[[i]], zone, "scalar")
        record = run(ip, f"%pg --one {one}")
        assert record["micros"] == first["micros"][i]  # a Record keeps asyncpg's UTC datetime
        shown = ip.display_formatter.format(record)[0]["text/plain"]
        assert pd.Timestamp(record["ts"]).tz_convert(first["ts"].dt.tz).isoformat(sep=" ") in shown
    chunks = run(ip, f"%pg --stream --chunksize 2 {QUERY}")
    _check(pd.concat(list(chunks))["ts"], first, zone, "--stream")
    for session in (False, True):
        frame = asyncio.run(pgmagic.fetch(QUERY, session=session))
        _check(frame["ts"], first, zone, f"API session={session}")

    csv = tmp_path / "x.csv"
    run(ip, f"%pg -q --to {csv} {QUERY}")
    written = pd.read_csv(csv, dtype=str)
    assert list(written["ts"]) == list(written["server"])  # PostgreSQL's own text
    for query, how in ((QUERY, "COPY"), (f"SELECT *, point(1, 2) AS p FROM ({QUERY}) q", "cursor")):
        parquet = tmp_path / f"{how}.parquet"
        run(ip, f"%pg -q --to {parquet} {query}")
        assert pq.read_schema(parquet).field("ts").type.tz == zone
        _check(pd.read_parquet(parquet)["ts"], first, zone, f"Parquet ({how})")
        jsonl = tmp_path / f"{how}.jsonl"
        run(ip, f"%pg -q --to {jsonl} {query}")
        lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
        _check([line["ts"] for line in lines], first, None, f"JSON lines ({how})")


# (zone, wall time) pairs a naive value is bound in: every ZONES entry with
# every WALL, plus the gaps and overlaps of the zones that have them.
BINDS = [(setting, wall) for setting, _ in ZONES for wall in WALLS] + [
    ("'Pacific/Chatham'", "2024-09-29 02:45:00"),  # skipped: clocks go 02:45 -> 03:45
    ("'Pacific/Chatham'", "2024-04-07 03:00:00"),  # repeated: clocks go 03:45 -> 02:45
    ("'America/New_York'", "2024-03-10 02:30:00"),
    ("'America/New_York'", "2024-11-03 01:30:00"),
    ("'Australia/Lord_Howe'", "2024-10-06 02:15:00"),  # a half-hour gap
    ("'Europe/Moscow'", "2014-10-26 01:30:00"),  # repeated, both sides standard time
]


def _same(ip: Any, sql: str) -> None:
    assert run(ip, f"%pg --scalar {sql}") is True, sql


@pytest.mark.parametrize(("setting", "wall"), BINDS)
def test_a_naive_value_binds_as_the_naive_literal_reads(
    ip: Any, setting: str, wall: str, tmp_path: Path
) -> None:
    run(ip, f"%pg SET TIME ZONE {setting}")
    value = dt.datetime.fromisoformat(wall)
    ip.user_ns.update(w=value, ws=[value, None], d=value.date())
    literal = f"'{wall}'::timestamptz"
    # Records, and a list as an array
    _same(ip, f"SELECT $w::timestamptz = {literal}")
    _same(ip, f"SELECT $ws::timestamptz[] = ARRAY[{literal}, NULL]")
    _same(ip, f"SELECT $d::timestamptz = '{value.date()}'::timestamptz")
    # binary COPY, where values cross as text settings
    frame = run(ip, f"%pg SELECT $w::timestamptz AS b, {literal} AS l")
    assert frame["b"][0] == frame["l"][0]
    # --many, %pg load (binary from datetime64, CSV from objects) into a table
    # (not a temp table: behind a transaction pooler it would not last)
    table = f"tz_binds_{uuid.uuid4().hex[:12]}"
    run(ip, f"%pg CREATE TABLE {table} (src text, ts timestamptz)")
    try:
        ip.user_ns["rows"] = [("many", value)]
        run(ip, f"%pg -q --many rows INSERT INTO {table} VALUES ($1, $2)")
        ip.user_ns["df"] = pd.DataFrame({"src": ["binary"], "ts": [pd.Timestamp(value)]})
        objects = pd.DataFrame({"src": ["csv"], "ts": pd.Series([value], dtype=object)})
        ip.user_ns["objects"] = objects
        run(ip, f"%pg load df INTO {table} --append")
        run(ip, f"%pg load objects INTO {table} --append")
        found = run(ip, f"%pg SELECT src FROM {table} WHERE ts = {literal} ORDER BY src")
        assert found["src"].tolist() == ["binary", "csv", "many"]
    finally:
        run(ip, f"%pg DROP TABLE {table}")
    # streams, exports and the API run on pool connections, with the session's zone
    chunks = run(ip, f"%pg --stream SELECT $w::timestamptz = {literal} AS same")
    assert bool(pd.concat(list(chunks))["same"].all())
    csv = tmp_path / "b.csv"
    run(ip, f"%pg -q --to {csv} SELECT $w::timestamptz AS b, {literal} AS l")
    row = pd.read_csv(csv, dtype=str).iloc[0]
    assert row["b"] == row["l"]
    for session in (False, True):
        sql = f"SELECT $1::timestamptz = {literal}"
        assert asyncio.run(pgmagic.fetchval(sql, value, session=session)) is True, session


# Wall times every 15 minutes through the daylight-saving changes of these
# zones (and a few local mean times), read by the server and by zones.wall_time.
DIFFERENTIAL = [
    ("America/St_Johns", ["2024-03-10", "2024-11-03", "1935-03-30", "2011-11-06"]),
    ("Pacific/Chatham", ["2024-09-29", "2024-04-07"]),
    ("Australia/Lord_Howe", ["2024-10-06", "2024-04-07"]),
    ("Europe/Moscow", ["2014-10-26", "2011-03-27", "1919-07-01"]),
    ("America/New_York", ["2024-03-10", "2024-11-03", "1883-11-18"]),
    ("Asia/Kolkata", ["1941-10-01", "1942-05-15", "1854-06-28"]),
    ("Pacific/Apia", ["2011-12-29", "2011-12-30", "2011-12-31"]),  # a whole day skipped
]


@pytest.mark.parametrize(("zone", "days"), DIFFERENTIAL, ids=[z for z, _ in DIFFERENTIAL])
def test_wall_times_are_read_as_the_server_reads_them(dsn: str, zone: str, days: list[str]) -> None:
    walls = [
        dt.datetime.fromisoformat(day) + dt.timedelta(minutes=15 * k)
        for day in days
        for k in range(-8, 4 * 24 + 8)
    ]

    async def server() -> list[dt.datetime]:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"SET TIME ZONE '{zone}'")
            rows = await conn.fetch("SELECT w::timestamptz FROM unnest($1::timestamp[]) w", walls)
            return [r[0] for r in rows]
        finally:
            await conn.close()

    python = zones.python_zone(zone)
    assert python is not None
    mine = [zones.wall_time(w, python) for w in walls]
    theirs = asyncio.run(server())
    wrong = [(w, a, b) for w, a, b in zip(walls, mine, theirs, strict=True) if a != b]
    assert not wrong, wrong[:5]


# SET TIME ZONE forms, and the offset the server then gives 2024-07-01 12:00 UTC.
SETTINGS = [
    "'asia/kolkata'",
    "INTERVAL '+05:30' HOUR TO MINUTE",
    "5.5",
    "-3",
    "'UTC+3'",
    "'+3'",
    "'EST5EDT'",
    "'Etc/GMT-14'",
    "'GMT'",
    "LOCAL",
]


@pytest.mark.parametrize("setting", SETTINGS)
def test_the_zone_the_server_reports_has_the_servers_offsets(ip: Any, setting: str) -> None:
    run(ip, f"%pg SET TIME ZONE {setting}")
    name = run(ip, "%pg --scalar SHOW TimeZone")
    zone = zones.python_zone(name)
    assert zone is not None, name
    for instant in ("2024-01-01 12:00+00", "2024-07-01 12:00+00"):
        offset = run(ip, f"%pg --scalar SELECT extract(timezone FROM '{instant}'::timestamptz)")
        utc = dt.datetime.fromisoformat(instant + ":00")
        assert utc.astimezone(zone).utcoffset() == dt.timedelta(seconds=int(offset)), name


def test_a_zone_python_does_not_know_shows_utc_and_refuses_naive_values(
    ip: Any, capsys: Any
) -> None:
    run(ip, "%pg SET TIME ZONE 'XST3XDT,M3.2.0,M11.1.0'")  # a POSIX rule, no zone file
    frame = run(ip, "%pg SELECT '2024-07-01 12:00+00'::timestamptz AS ts")
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["ts"][0] == pd.Timestamp("2024-07-01 12:00", tz="UTC")
    ip.user_ns["w"] = dt.datetime(2024, 7, 1, 12)
    error, shown = fails(ip, "%pg SELECT $w::timestamptz", capsys)
    assert isinstance(error, ParameterError) and "$w" in str(error)
    assert "Traceback" not in shown and len(shown.strip().splitlines()) == 1
    ip.user_ns["w"] = dt.datetime(2024, 7, 1, 12, tzinfo=dt.UTC)
    assert run(ip, "%pg --scalar SELECT $w::timestamptz") == ip.user_ns["w"]


def test_pool_work_takes_the_session_zone_and_gives_it_back(ip: Any) -> None:
    default = run(ip, "%pg --scalar SHOW TimeZone")
    run(ip, "%pg SET TIME ZONE 'Pacific/Chatham'")
    assert asyncio.run(pgmagic.fetchval("SHOW TimeZone")) == "Pacific/Chatham"
    run(ip, "%pg RESET TIME ZONE")
    # the pool connection was reset when released: nothing leaks into later work
    assert asyncio.run(pgmagic.fetchval("SHOW TimeZone")) == default
    run(ip, "%pg BEGIN; SET LOCAL TIME ZONE 'Asia/Kolkata'")
    assert asyncio.run(pgmagic.fetchval("SHOW TimeZone")) == "Asia/Kolkata"
    run(ip, "%pg ROLLBACK")
    assert asyncio.run(pgmagic.fetchval("SHOW TimeZone")) == default


SPREAD = ["America/St_Johns", "Pacific/Chatham", "Europe/London", "Australia/Lord_Howe"]


@pytest.mark.parametrize("zone", SPREAD)
def test_json_lines_write_the_servers_offsets_in_every_century(
    ip: Any, zone: str, tmp_path: Path
) -> None:
    # Instants from year 1 to 9999: local mean times, every daylight-saving
    # rule, and the centuries after the zone files' last transition, where
    # the rules repeat every 400 years.
    run(ip, f"%pg SET TIME ZONE '{zone}'")
    query = (
        "SELECT '0001-01-03 00:00+00'::timestamptz"
        " + g * interval '4 years 1 month 9 days 7 hours 13 minutes' AS ts"
        " FROM generate_series(0, 2400) g"
    )
    run(ip, f"%pg -q --to {tmp_path / 'x.csv'} {query}")
    run(ip, f"%pg -q --to {tmp_path / 'x.jsonl'} {query}")
    server = pd.read_csv(tmp_path / "x.csv", dtype=str)["ts"].tolist()
    lines = [json.loads(line)["ts"] for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    python = zones.python_zone(zone)
    differ = []
    for text, written in zip(server, lines, strict=True):
        stamp = dt.datetime.fromisoformat(written)
        assert stamp.astimezone(python).utcoffset() == stamp.utcoffset(), written
        if stamp.utcoffset() != _offset_of(text):
            differ.append((written, text))
    assert not differ, differ[:5]


def _offset_of(text: str) -> dt.timedelta:
    """The offset at the end of the server's text: +05:30, +05:21:10, -03."""
    sign_at = max(text.rfind("+"), text.rfind("-"))
    parts = [int(p) for p in text[sign_at + 1 :].split(":")] + [0, 0]
    seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    return dt.timedelta(seconds=seconds if text[sign_at] == "+" else -seconds)


# (zone, value, what a DataFrame shows, or None: the cell fails naming the column)
EDGES = [
    # 'infinity' is datetime's largest value in UTC, or the largest local time
    # where the zone's offset would push it past year 9999
    ("Asia/Kolkata", "infinity", "9999-12-31 23:59:59.999999+05:30"),
    ("America/St_Johns", "infinity", "9999-12-31 20:29:59.999999-03:30"),
    ("America/St_Johns", "-infinity", "0001-01-01 00:00:00-03:30:52"),
    ("Asia/Kolkata", "-infinity", "0001-01-01 05:53:28+05:53:28"),
    # an instant whose local time Python cannot hold: one line, as for year 10000
    ("Asia/Kolkata", "9999-12-31 23:00+00", None),
    ("America/St_Johns", "9999-12-31 23:00+00", "9999-12-31 19:30:00-03:30"),
    ("America/St_Johns", "0001-01-01 01:00+00", None),
]


@pytest.mark.parametrize(("zone", "value", "shown"), EDGES)
def test_the_ends_of_pythons_range_in_a_zone(ip: Any, zone: str, value: str, shown: Any) -> None:
    run(ip, f"%pg SET TIME ZONE '{zone}'")
    query = f"%pg SELECT '{value}'::timestamptz AS far"
    for _ in ("COPY", "Records"):
        if shown is None:
            error, _ = fails(ip, query)
            assert "column 'far'" in str(error) and "far::text" in str(error)
        else:
            stamp = run(ip, query)["far"][0]
            assert stamp.isoformat(sep=" ") == shown
    if shown is None:
        error, _ = fails(ip, f"%pg --scalar SELECT '{value}'::timestamptz AS far")
        assert "column 'far'" in str(error)


def test_the_offset_table_agrees_with_zoneinfo_in_every_zone() -> None:
    # The C writer's table, read as it reads it (400-year cycle included),
    # against zoneinfo itself, for every 10th zone Python knows.
    cycle = 146_097 * 86_400 * 1_000_000
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    rng = random.Random(12)
    for name in sorted(zoneinfo.available_timezones())[::10]:
        zone = zones.python_zone(name)
        assert zone is not None, name
        table = zones.offset_table(zone)
        if table is None:
            continue
        at, offsets = array.array("q", table[0]), array.array("i", table[1])
        for _ in range(100):
            micros = rng.randrange(-62_135_510_400_000_000, 253_402_214_400_000_000)
            folded = micros
            if folded >= table[2]:
                folded -= ((folded - table[2]) // cycle + 1) * cycle
            mine = offsets[bisect.bisect_right(at, folded) - 1]
            instant = epoch + dt.timedelta(microseconds=micros)
            theirs = instant.astimezone(zone).utcoffset()
            assert theirs is not None and mine == theirs.total_seconds(), (name, instant)


@pytest.mark.parametrize(
    ("zone", "error"),
    [
        ("x", TypeError),
        ((1, 2, 3), TypeError),
        ((b"", b"", 0), ValueError),  # not even the first entry
        ((b"\0" * 8, b"\0" * 8, 0), ValueError),  # two offsets for one instant
    ],
)
def test_the_parser_refuses_a_malformed_zone_table(zone: Any, error: type) -> None:
    with pytest.raises(error):
        _pgcopy.Parser(
            bytes([CopyKind.TIMESTAMPTZ]),
            b"\0",
            (0,),
            Decimal,
            uuid.UUID,
            None,
            json.loads,
            layout=CopyLayout.JSONL,
            keys=(b'{"ts":',),
            zone=zone,
        )
