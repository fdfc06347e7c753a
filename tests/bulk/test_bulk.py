"""Streaming, export, COPY load and --many, through a real shell and server."""

from __future__ import annotations

import gc
import gzip
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pandas as pd
import pyarrow.parquet as pq
import pytest

import pgmagic
from pgmagic.bulk.stream import Stream, StreamExpired, StreamState
from tests.shell import fails, run

EVENTS = """%%pg -q
CREATE TABLE IF NOT EXISTS events AS
SELECT g AS id,
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'name, "' || g || E'"\\n' END AS name,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' AS ts,
       (g * 1.25)::numeric(12, 2) AS amount,
       jsonb_build_object('k', g, 'tags', jsonb_build_array('a', g)) AS doc,
       ARRAY[g, g + 1] AS pair,
       g % 2 = 0 AS even,
       date '2024-01-01' + g AS day
FROM generate_series(1, 2500) g"""


@pytest.fixture
def events(ip: Any) -> Any:
    run(ip, EVENTS)
    return ip


def stream_backends(sql: Any) -> list[Any]:
    return sql(
        "SELECT state FROM pg_stat_activity WHERE application_name = 'pgmagic' "
        "AND state LIKE 'idle in transaction%'"
    )


# ------------------------------------------------------------------ streaming
def test_stream_yields_chunks_with_the_dtype_table(events: Any, sql: Any) -> None:
    events.user_ns["since"] = 100
    assert (
        run(
            events,
            "%%pg --stream --chunksize 1000 -o chunks\nSELECT * FROM events WHERE id >= $since ORDER BY id",
        )
        is None
    )
    stream = events.user_ns["chunks"]
    assert stream.state is StreamState.OPEN
    assert stream_backends(sql), "the open stream holds its transaction"
    sizes = []
    for frame in stream:
        sizes.append(len(frame))
        assert str(frame.dtypes["ts"]) == "datetime64[us, UTC]"
        assert str(frame.dtypes["id"]) == "Int32"
    assert sizes == [1000, 1000, 401]
    assert stream.state is StreamState.DONE and stream.rows == 2401
    assert not stream_backends(sql)


def test_stream_closed_early_or_abandoned_ends_its_transaction(events: Any, sql: Any) -> None:
    stream = run(events, "%pg --stream --chunksize 100 SELECT * FROM events")
    next(stream)
    stream.close()
    assert stream.state is StreamState.CLOSED
    assert not stream_backends(sql)
    run(events, "abandoned = %pg --stream --chunksize 100 SELECT * FROM events")
    run(events, "next(abandoned)")
    assert stream_backends(sql)
    run(events, "del abandoned")
    gc.collect()
    deadline = time.monotonic() + 5
    while stream_backends(sql) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stream_backends(sql)


def test_leaving_a_for_loop_early_ends_the_stream(events: Any, sql: Any) -> None:
    run(events, "%pg --stream --chunksize 100 -o peek SELECT * FROM events")
    run(events, "for frame in peek:\n    break")
    assert run(events, "len(frame)") == 100
    assert not stream_backends(sql)
    assert run(events, "peek.state.value") == "closed"
    # Nothing holds the table: DDL on it goes through at once.
    sql("DO $$BEGIN SET LOCAL lock_timeout = '2s'; ALTER TABLE events ADD COLUMN peeked int; END$$")
    sql("ALTER TABLE events DROP COLUMN peeked")
    # next() takes chunks one at a time and leaves the stream open.
    run(events, "%pg --stream --chunksize 100 -o steps SELECT * FROM events")
    run(events, "first, second = next(steps), next(steps)")
    assert stream_backends(sql)
    run(events, "steps.close()")
    # A loop run to its end, and an exception in its body, end it too.
    run(events, "%pg --stream --chunksize 100 -o failing SELECT * FROM events")
    fails(events, "for frame in failing:\n    1 / 0")
    assert not stream_backends(sql)


def test_stream_errors_show_in_the_defining_cell(events: Any, capsys: Any) -> None:
    out = fails(events, "%pg --stream SELECT nope FROM events", capsys)[1]
    assert 'ERROR:  column "nope" does not exist' in out and "^" in out
    assert "Traceback" not in out
    out = fails(events, "%pg --stream CREATE TEMP TABLE x (a int)", capsys)[1]
    assert "returns rows" in out


def test_stream_idle_timeout_ends_a_forgotten_stream(events: Any, sql: Any, capsys: Any) -> None:
    run(events, "%config PgMagics.stream_idle_timeout = 0.5")
    stream = run(events, "%pg --stream --chunksize 10 SELECT * FROM events")
    next(stream)
    time.sleep(1.5)
    with pytest.raises(StreamExpired, match="stream_idle_timeout"):
        next(stream)
    assert not stream_backends(sql)
    assert stream.state is StreamState.CLOSED


def test_stream_api_async_for(events: Any) -> None:
    async def total() -> int:
        rows = 0
        async for frame in pgmagic.stream(
            "SELECT id FROM events WHERE id <= $n", n=250, chunksize=100
        ):
            rows += len(frame)
        return rows

    import asyncio

    assert asyncio.run(total()) == 250


# --------------------------------------------------------------------- export
@pytest.mark.parametrize("suffix", ["csv", "csv.gz", "parquet", "jsonl"])
def test_export_round_trips(events: Any, tmp_path: Path, suffix: str, capsys: Any) -> None:
    events.user_ns["low"] = 10
    target = tmp_path / f"events.{suffix}"
    capsys.readouterr()
    run(events, f"%%pg --to {target}\nSELECT * FROM events WHERE id > $low ORDER BY id")
    assert "2,490 rows → events." + suffix in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no partial files
    expected = run(events, "%pg SELECT * FROM events WHERE id > 10 ORDER BY id")
    if suffix.startswith("csv"):
        opener = gzip.open if suffix.endswith("gz") else open
        with opener(target, "rt") as handle:
            back = pd.read_csv(handle, keep_default_na=False, na_values=[""])
        assert back["id"].tolist() == expected["id"].tolist()
        assert back["name"].fillna("<NULL>").tolist() == expected["name"].fillna("<NULL>").tolist()
        assert back["pair"].iloc[0] == "{11,12}"
        assert json.loads(back["doc"].iloc[0]) == expected["doc"].iloc[0]
    elif suffix == "parquet":
        table = pq.read_table(target)
        assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
        assert str(table.schema.field("amount").type) == "decimal128(38, 2)"
        back = table.to_pandas()
        assert back["id"].tolist() == expected["id"].tolist()
        assert back["amount"].tolist() == expected["amount"].tolist()
        assert back["day"].iloc[0] == expected["day"].iloc[0].date()
    else:
        lines = target.read_text().splitlines()
        assert len(lines) == 2490
        first = json.loads(lines[0])
        assert first["id"] == 11 and first["doc"] == {"k": 11, "tags": ["a", 11]}
        assert Decimal(first["amount"]) == Decimal("13.75")


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_export_with_null_and_array_parameters(events: Any, tmp_path: Path, suffix: str) -> None:
    events.user_ns.update(ids=[1, 2, 3], missing=None, label="a'b")
    target = tmp_path / f"few.{suffix}"
    run(
        events,
        f"%%pg --to {target} -q\nSELECT id, $label AS label FROM events "
        "WHERE id = any($ids) AND ($missing::text IS NULL) ORDER BY id",
    )
    if suffix == "csv":
        assert target.read_text().split() == ["id,label", "1,a'b", "2,a'b", "3,a'b"]
    elif suffix == "parquet":
        assert pq.read_table(target).to_pydict() == {"id": [1, 2, 3], "label": ["a'b"] * 3}
    else:
        assert [json.loads(line) for line in target.read_text().splitlines()] == [
            {"id": i, "label": "a'b"} for i in (1, 2, 3)
        ]


def test_export_errors_leave_no_file(events: Any, tmp_path: Path, capsys: Any) -> None:
    for suffix in ("csv", "parquet", "jsonl"):
        out = fails(
            events, f"%pg --to {tmp_path / ('bad.' + suffix)} SELECT nope FROM events", capsys
        )[1]
        assert 'column "nope" does not exist' in out and "Traceback" not in out
    assert list(tmp_path.iterdir()) == []
    out = fails(events, f"%pg --to {tmp_path / 'x.xlsx'} SELECT 1", capsys)[1]
    assert "cannot tell the format" in out
    out = fails(events, "%pg --to /no/such/folder/x.csv SELECT 1", capsys)[1]
    assert "does not exist" in out
    out = fails(
        events,
        f"%pg --to {tmp_path / 'x.csv'} INSERT INTO events (id) VALUES (1) RETURNING id",
        capsys,
    )[1]
    assert "plain query" in out
    assert list(tmp_path.iterdir()) == []


def test_export_api(events: Any, tmp_path: Path) -> None:
    import asyncio

    result = asyncio.run(
        pgmagic.to_file("SELECT id FROM events WHERE id <= $n", tmp_path / "a.jsonl", n=5)
    )
    assert result.rows == 5 and (tmp_path / "a.jsonl").read_text().count("\n") == 5


TYPES_SQL = """SELECT 1::int2 AS i2, 2::int4 AS i4, 3::int8 AS i8, 1.5::float4 AS f4,
       'NaN'::float8 AS f8, 12.30::numeric(12, 2) AS num, 'x'::varchar AS txt, true AS flag,
       timestamptz '2024-01-01 12:00+02' AS ts, timestamp '2024-01-01 12:00' AS tsn,
       date '2024-02-29' AS day, interval '1 mon 2 days 03:00' AS iv, time '12:34:56.5' AS tm,
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '\\x00ff'::bytea AS b,
       '{"b": 1, "a": [true]}'::jsonb AS jb, '{"b" : 1}'::json AS js, ARRAY[1, NULL] AS arr,
       ARRAY[['a', 'b'], ['c', NULL]] AS grid, NULL::int4 AS nothing"""


def test_export_parquet_keeps_the_types(ip: Any, tmp_path: Path) -> None:
    import datetime as dt
    import uuid

    target = tmp_path / "types.parquet"
    run(ip, f"%%pg --to {target} -q\n{TYPES_SQL}")
    table = pq.read_table(target)
    assert {f.name: str(f.type) for f in table.schema} == {
        "i2": "int16",
        "i4": "int32",
        "i8": "int64",
        "f4": "float",
        "f8": "double",
        "num": "decimal128(38, 2)",
        "txt": "string",
        "flag": "bool",
        "ts": "timestamp[us, tz=UTC]",
        "tsn": "timestamp[us]",
        "day": "date32[day]",
        "iv": "duration[us]",
        "tm": "time64[us]",
        "u": "extension<arrow.uuid>",
        "b": "binary",
        "jb": "string",
        "js": "string",
        "arr": "list<element: int32>",
        "grid": "list<element: list<element: string>>",
        "nothing": "int32",
    }
    row = table.to_pylist()[0]
    assert row["f8"] != row["f8"]  # NaN stays NaN, not null
    assert row["num"] == Decimal("12.30")
    assert row["ts"] == dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)
    assert row["iv"] == dt.timedelta(days=32, hours=3)  # a month is 30 days
    assert row["tm"] == dt.time(12, 34, 56, 500000)
    assert row["u"] == uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert row["b"] == b"\x00\xff"
    assert row["jb"] == '{"a": [true], "b": 1}'  # the server's text (jsonb orders keys)
    assert row["js"] == '{"b" : 1}'  # json is kept as written
    assert row["arr"] == [1, None] and row["grid"] == [["a", "b"], ["c", None]]
    assert row["nothing"] is None


def test_export_jsonl_lines(ip: Any, tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "types.jsonl"
    run(ip, f"%%pg --to {target} -q\n{TYPES_SQL}")
    [line] = target.read_text().splitlines()
    assert json.loads(line) == {
        "i2": 1,
        "i4": 2,
        "i8": 3,
        "f4": 1.5,
        "f8": None,
        "num": "12.30",
        "txt": "x",
        "flag": True,
        "ts": "2024-01-01T10:00:00.000000Z",
        "tsn": "2024-01-01T12:00:00.000000",
        "day": "2024-02-29",
        "iv": "P32DT3H0M0S",
        "tm": "12:34:56.500000",
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "b": "\\x00ff",
        "jb": {"a": [True], "b": 1},
        "js": {"b": 1},
        "arr": [1, None],
        "grid": [["a", "b"], ["c", None]],
        "nothing": None,
    }
    for suffix in ("jsonl", "parquet"):
        out = fails(ip, f"%pg --to {tmp_path / ('dup.' + suffix)} SELECT 1 AS a, 2 AS a", capsys)[1]
        assert "distinct column names" in out
    assert list(tmp_path.iterdir()) == [target]


def test_export_empty_result_keeps_the_schema(events: Any, tmp_path: Path) -> None:
    run(events, f"%pg --to {tmp_path / 'none.parquet'} -q SELECT * FROM events WHERE false")
    table = pq.read_table(tmp_path / "none.parquet")
    assert table.num_rows == 0 and str(table.schema.field("amount").type) == "decimal128(38, 0)"
    run(events, f"%pg --to {tmp_path / 'none.jsonl'} -q SELECT * FROM events WHERE false")
    assert (tmp_path / "none.jsonl").read_bytes() == b""


def test_export_falls_back_for_types_copy_cannot_decode(events: Any, tmp_path: Path) -> None:
    for suffix in ("parquet", "jsonl"):
        target = tmp_path / f"points.{suffix}"
        run(events, f"%pg --to {target} -q SELECT id, point(id, 2) AS p FROM events WHERE id <= 3")
        rows = (
            pq.read_table(target).to_pylist()
            if suffix == "parquet"
            else [json.loads(line) for line in target.read_text().splitlines()]
        )
        assert [r["id"] for r in rows] == [1, 2, 3] and all(r["p"] for r in rows)


def test_export_refuses_numerics_wider_than_the_first_batch(
    ip: Any, tmp_path: Path, capsys: Any
) -> None:
    target = tmp_path / "scale.parquet"
    out = fails(
        ip,
        f"%%pg --to {target} --chunksize 1000\n"
        "SELECT CASE WHEN g < 50000 THEN 1.5 ELSE 1.25 END AS v FROM generate_series(1, 100000) g",
        capsys,
    )[1]
    assert "column 'v': a numeric value needs more digits" in out and "export as csv" in out
    assert "Traceback" not in out
    assert list(tmp_path.iterdir()) == []


def test_export_memory_stays_bounded(ip: Any, tmp_path: Path) -> None:
    """200,000 rows of about 300 bytes: the export holds a few batches, not the result."""
    import tracemalloc

    import pyarrow as pa

    from pgmagic.bulk import export
    from pgmagic.results import cell
    from pgmagic.runtime.connections import default_runtime

    run(
        ip,
        "%pg -q CREATE TABLE IF NOT EXISTS export_wide AS SELECT g AS id, g * 1.5 AS f, "
        "repeat(md5(g::text), 8) AS t FROM generate_series(1, 200000) g",
    )
    runtime = default_runtime()
    assert runtime is not None
    bound = cell.bind_one("SELECT * FROM export_wide", {})
    data_size = 200_000 * (8 + 8 + 256)
    ticks: list[tuple[int, int, float]] = []
    arrow_peak = 0

    def tick(progress: export.Progress) -> None:
        nonlocal arrow_peak
        arrow_peak = max(arrow_peak, pa.total_allocated_bytes())
        ticks.append(progress.snapshot())

    for suffix in ("jsonl", "parquet"):
        ticks.clear()
        arrow_peak = 0
        tracemalloc.start()
        try:
            result = export.export(
                runtime, bound, tmp_path / f"wide.{suffix}", chunksize=5_000, on_tick=tick
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.rows == 200_000
        assert peak < data_size / 4, (suffix, peak)
        assert arrow_peak < data_size / 4, (suffix, arrow_peak)
        rows = [t[0] for t in ticks]
        assert rows == sorted(rows) and len(set(rows)) > 2  # progress moved while it ran
        assert 0 < ticks[-1][1] <= result.size


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_export_ctrl_c_cancels_the_copy(
    ip: Any, tmp_path: Path, sql: Any, suffix: str, capsys: Any
) -> None:
    import _thread
    import threading

    copying = (
        "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY%slow_copy%' "
        "AND state = 'active' AND pid <> pg_backend_pid()"
    )

    def interrupt() -> None:
        deadline = time.monotonic() + 10
        while not sql(copying) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # batches are being written
        _thread.interrupt_main()

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    out = fails(
        ip,
        f"%pg --to {tmp_path / ('slow.' + suffix)} --chunksize 5 "
        "SELECT g, pg_sleep(0.002) AS slow_copy FROM generate_series(1, 100000) g",
        capsys,
    )[1]
    interrupter.join()
    assert "export cancelled; no file was written" in out
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 5
    while sql(copying):
        assert time.monotonic() < deadline, "the COPY still runs"
        time.sleep(0.05)


# ----------------------------------------------------------------------- load
def test_load_dataframe_creates_typed_table(ip: Any, capsys: Any) -> None:
    frame = pd.DataFrame(
        {
            "id": pd.array([1, 2, None], dtype="Int64"),
            "name": pd.array(["a", "", None], dtype="str"),
            "score": [1.5, float("nan"), 3.0],
            "flag": [True, False, True],
            "at": pd.to_datetime(["2024-01-01T10:00Z", "2024-01-02T11:00Z", None], utc=True),
            "doc": [{"a": 1}, None, {"b": [1, 2]}],
            "tags": [["x", 'q"uote'], [], None],
            "price": [Decimal("1.10"), Decimal("2.25"), None],
            "wait": pd.to_timedelta(["1 day", "2 hours", None]),
        }
    )
    ip.user_ns["frame"] = frame
    capsys.readouterr()
    run(ip, "%pg load frame INTO loaded --replace")
    assert "3 rows → loaded (created)" in capsys.readouterr().out
    types = run(
        ip,
        "%pg SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'loaded' ORDER BY ordinal_position",
    )
    assert types["data_type"].tolist() == [
        "bigint",
        "text",
        "double precision",
        "boolean",
        "timestamp with time zone",
        "jsonb",
        "ARRAY",
        "numeric",
        "interval",
    ]
    back = run(ip, "%pg SELECT * FROM loaded")
    assert back["id"].tolist()[:2] == [1, 2] and pd.isna(back["id"].iloc[2])
    assert back["name"].iloc[1] == "" and pd.isna(back["name"].iloc[2])
    assert pd.isna(back["score"].iloc[1])
    assert back["doc"].tolist() == [{"a": 1}, None, {"b": [1, 2]}]
    assert back["tags"].tolist() == [["x", 'q"uote'], [], None]
    assert back["price"].tolist() == [Decimal("1.10"), Decimal("2.25"), None]
    assert back["wait"].iloc[0] == pd.Timedelta(days=1)
    assert back["at"].iloc[1] == pd.Timestamp("2024-01-02T11:00Z")


def test_load_modes_and_failure_leaves_table_unchanged(ip: Any, capsys: Any) -> None:
    ip.user_ns["frame"] = pd.DataFrame({"k": [1, 2, 3]})
    run(ip, "%pg -q DROP TABLE IF EXISTS modes")
    run(ip, "%pg load frame INTO modes --create")
    out = fails(ip, "%pg load frame INTO modes --create", capsys)[1]
    assert "already exists" in out and "--append" in out
    run(ip, "%pg -q ALTER TABLE modes ADD PRIMARY KEY (k)")
    ip.user_ns["more"] = pd.DataFrame({"k": [*range(4, 250_000), 2]})
    out = fails(ip, "%pg load more INTO modes --append", capsys)[1]
    assert "duplicate key" in out and "Traceback" not in out
    assert run(ip, "%pg --scalar SELECT count(*) FROM modes") == 3
    out = fails(ip, "%pg load frame INTO nowhere_table --append", capsys)[1]
    assert "does not exist" in out and "--create" in out
    run(ip, "%pg load frame INTO modes --replace")
    assert run(ip, "%pg --scalar SELECT count(*) FROM modes") == 3
    out = fails(ip, "%pg load frame INTO modes --append --replace", capsys)[1]
    assert "choose one" in out
    out = fails(ip, "%pg load frame modes", capsys)[1]
    assert "usage" in out


def test_load_inside_a_transaction_uses_a_savepoint(ip: Any, capsys: Any) -> None:
    ip.user_ns["frame"] = pd.DataFrame({"k": [1]})
    run(ip, "%pg BEGIN")
    run(ip, "%pg CREATE TEMP TABLE keep (x int)")
    fails(ip, "%pg load frame INTO keep --create", capsys)[1]
    run(ip, "%pg INSERT INTO keep VALUES (1)")  # the transaction is still healthy
    run(ip, "%pg load frame INTO pg_temp.loaded_in_tx --create")
    run(ip, "%pg COMMIT")
    assert run(ip, "%pg --scalar SELECT count(*) FROM keep") == 1


def test_load_files(events: Any, tmp_path: Path) -> None:
    for suffix in ("csv", "csv.gz", "parquet"):
        target = tmp_path / f"e.{suffix}"
        run(events, f"%pg --to {target} -q SELECT id, name, amount, ts FROM events ORDER BY id")
        run(events, f"%pg load {target} INTO from_file --replace -q")
        back = run(events, "%pg SELECT * FROM from_file ORDER BY id")
        original = run(events, "%pg SELECT id, name, amount, ts FROM events ORDER BY id")
        assert back["id"].tolist() == original["id"].tolist()
        assert back["name"].fillna("<NULL>").tolist() == original["name"].fillna("<NULL>").tolist()
        assert [float(v) for v in back["amount"]] == [float(v) for v in original["amount"]]


def test_load_api(ip: Any) -> None:
    import asyncio

    result = asyncio.run(
        pgmagic.load_table(pd.DataFrame({"v": [1, 2]}), "api_loaded", mode="replace")
    )
    assert result.rows == 2


# ----------------------------------------------------------------------- many
def test_many_from_dataframe_list_and_dicts(ip: Any, capsys: Any) -> None:
    run(ip, "%pg -q CREATE TEMP TABLE m (id int PRIMARY KEY, name text)")
    ip.user_ns["rows"] = pd.DataFrame({"name": ["a", None], "id": pd.array([1, 2], dtype="Int64")})
    capsys.readouterr()
    run(ip, "%%pg --many rows\nINSERT INTO m VALUES ($id, $name)")
    assert "× 2 rows" in capsys.readouterr().out
    ip.user_ns["tuples"] = [(3, "c"), (4, "d")]
    run(ip, "%%pg --many tuples\nINSERT INTO m VALUES ($1, $2)")
    ip.user_ns["dicts"] = [{"id": 5, "name": "e"}]
    run(ip, "%%pg --many dicts\nINSERT INTO m VALUES ($id, $name)")
    assert run(ip, "%pg SELECT id, name FROM m ORDER BY id")["name"].fillna("-").tolist() == [
        "a",
        "-",
        "c",
        "d",
        "e",
    ]
    ip.user_ns["clash"] = [(6, "f"), (1, "dup")]
    out = fails(ip, "%%pg --many clash\nINSERT INTO m VALUES ($1, $2)", capsys)[1]
    assert "duplicate key" in out
    assert run(ip, "%pg --scalar SELECT count(*) FROM m") == 5  # all or nothing


# ------------------------------------------------------------------ max_rows
def test_max_rows_stops_with_advice(events: Any, capsys: Any, sql: Any) -> None:
    run(events, "%config PgMagics.max_rows = 1000")
    out = fails(events, "%pg SELECT * FROM events", capsys)[1]
    assert "more than 1,000 rows" in out and "--stream" in out and "--to" in out
    assert not stream_backends(sql)
    assert len(run(events, "%pg SELECT * FROM events LIMIT 1000")) == 1000


def test_bulk_options_are_checked(ip: Any, capsys: Any) -> None:
    assert "cannot be combined" in fails(ip, "%pg --stream --to x.csv SELECT 1", capsys)[1]
    assert "exactly one statement" in fails(ip, "%%pg --stream\nSELECT 1; SELECT 2", capsys)[1]
    assert "at least 1" in fails(ip, "%pg --stream --chunksize 0 SELECT 1", capsys)[1]


def test_stream_state_repr(events: Any) -> None:
    stream = run(events, "%pg --stream --chunksize 5000 SELECT id FROM events")
    list(stream)
    assert "exhausted" in repr(stream) and "2,500 rows" in repr(stream)
    assert isinstance(stream, Stream)
    with pytest.raises(asyncpg.PostgresError):
        raise asyncpg.PostgresError("sanity: asyncpg errors are importable here")


def test_load_takes_expressions_and_quoted_names(ip: Any, capsys: Any) -> None:
    ip.user_ns["frame"] = pd.DataFrame({"k": [1, 2, 3], "v": ["a", "b", "c"]})
    run(ip, '%pg -q DROP TABLE IF EXISTS "Odd Name"')
    capsys.readouterr()
    run(ip, '%pg load frame[frame.k > 1][["k"]] INTO "Odd Name" --create')
    assert '2 rows → "Odd Name" (created)' in capsys.readouterr().out
    run(ip, '%pg load frame.head(1) INTO "Odd Name" --replace')
    assert "(replaced)" in capsys.readouterr().out
    assert run(ip, '%pg --scalar SELECT count(*) FROM "Odd Name"') == 1
    out = fails(ip, "%pg load no_such_thing INTO t --create", capsys)[1]
    assert "no such file" in out


def test_export_fallback_writes_composites_and_ranges_as_psql_does(ip: Any, tmp_path: Path) -> None:
    sql = "SELECT ROW(1, 'a b') AS r, int4range(1, 5) AS rg, '10.0.0.1'::inet AS ip"
    for suffix in ("parquet", "jsonl"):
        target = tmp_path / f"odd.{suffix}"
        run(ip, f"%pg --to {target} -q {sql}")
        if suffix == "parquet":
            row = pq.read_table(target).to_pylist()[0]
            assert row == {"r": '(1,"a b")', "rg": "[1,5)", "ip": "10.0.0.1"}
        else:  # JSON has arrays: an anonymous record is one
            row = json.loads(target.read_text().splitlines()[0])
            assert row == {"r": [1, "a b"], "rg": "[1,5)", "ip": "10.0.0.1"}


def test_export_and_stream_show_server_notices(ip: Any, tmp_path: Path, capsys: Any) -> None:
    run(
        ip,
        "%pg -q CREATE OR REPLACE FUNCTION loud_one() RETURNS int LANGUAGE plpgsql AS "
        "$$BEGIN RAISE NOTICE 'computing loud_one'; RETURN 1; END$$",
    )
    try:
        capsys.readouterr()
        run(ip, f"%pg --to {tmp_path / 'loud.csv'} SELECT loud_one()")
        assert "NOTICE:  computing loud_one" in capsys.readouterr().out
        run(ip, f"%pg --to {tmp_path / 'quiet.csv'} -q SELECT loud_one()")
        assert "NOTICE" not in capsys.readouterr().out
    finally:
        run(ip, "%pg -q DROP FUNCTION loud_one()")
