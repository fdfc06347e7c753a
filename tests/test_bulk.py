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
from pgmagic.streaming import Stream, StreamExpired, StreamState

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


def run(ip: Any, cell: str) -> Any:
    result = ip.run_cell(cell)
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


def fails(ip: Any, cell: str, capsys: Any) -> str:
    capsys.readouterr()
    result = ip.run_cell(cell)
    assert (result.error_in_exec or result.error_before_exec) is not None, cell
    captured = capsys.readouterr()
    return captured.out + captured.err


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


def test_stream_errors_show_in_the_defining_cell(events: Any, capsys: Any) -> None:
    out = fails(events, "%pg --stream SELECT nope FROM events", capsys)
    assert 'ERROR:  column "nope" does not exist' in out and "^" in out
    assert "Traceback" not in out
    out = fails(events, "%pg --stream CREATE TEMP TABLE x (a int)", capsys)
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


def test_export_with_null_and_array_parameters(events: Any, tmp_path: Path) -> None:
    events.user_ns.update(ids=[1, 2, 3], missing=None)
    target = tmp_path / "few.csv"
    run(
        events,
        f"%%pg --to {target} -q\nSELECT id FROM events WHERE id = any($ids) AND ($missing::text IS NULL) ORDER BY id",
    )
    assert target.read_text().split() == ["id", "1", "2", "3"]


def test_export_errors_leave_no_file(events: Any, tmp_path: Path, capsys: Any) -> None:
    for suffix in ("csv", "parquet"):
        out = fails(
            events, f"%pg --to {tmp_path / ('bad.' + suffix)} SELECT nope FROM events", capsys
        )
        assert 'column "nope" does not exist' in out and "Traceback" not in out
    assert list(tmp_path.iterdir()) == []
    out = fails(events, f"%pg --to {tmp_path / 'x.xlsx'} SELECT 1", capsys)
    assert "cannot tell the format" in out
    out = fails(events, "%pg --to /no/such/folder/x.csv SELECT 1", capsys)
    assert "does not exist" in out
    out = fails(
        events,
        f"%pg --to {tmp_path / 'x.csv'} INSERT INTO events (id) VALUES (1) RETURNING id",
        capsys,
    )
    assert "plain query" in out
    assert list(tmp_path.iterdir()) == []


def test_export_api(events: Any, tmp_path: Path) -> None:
    import asyncio

    result = asyncio.run(
        pgmagic.to_file("SELECT id FROM events WHERE id <= $n", tmp_path / "a.jsonl", n=5)
    )
    assert result.rows == 5 and (tmp_path / "a.jsonl").read_text().count("\n") == 5


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
    out = fails(ip, "%pg load frame INTO modes --create", capsys)
    assert "already exists" in out and "--append" in out
    run(ip, "%pg -q ALTER TABLE modes ADD PRIMARY KEY (k)")
    ip.user_ns["more"] = pd.DataFrame({"k": [*range(4, 250_000), 2]})
    out = fails(ip, "%pg load more INTO modes --append", capsys)
    assert "duplicate key" in out and "Traceback" not in out
    assert run(ip, "%pg --scalar SELECT count(*) FROM modes") == 3
    out = fails(ip, "%pg load frame INTO nowhere_table --append", capsys)
    assert "does not exist" in out and "--create" in out
    run(ip, "%pg load frame INTO modes --replace")
    assert run(ip, "%pg --scalar SELECT count(*) FROM modes") == 3
    out = fails(ip, "%pg load frame INTO modes --append --replace", capsys)
    assert "choose one" in out
    out = fails(ip, "%pg load frame modes", capsys)
    assert "usage" in out


def test_load_inside_a_transaction_uses_a_savepoint(ip: Any, capsys: Any) -> None:
    ip.user_ns["frame"] = pd.DataFrame({"k": [1]})
    run(ip, "%pg BEGIN")
    run(ip, "%pg CREATE TEMP TABLE keep (x int)")
    fails(ip, "%pg load frame INTO keep --create", capsys)
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
    out = fails(ip, "%%pg --many clash\nINSERT INTO m VALUES ($1, $2)", capsys)
    assert "duplicate key" in out
    assert run(ip, "%pg --scalar SELECT count(*) FROM m") == 5  # all or nothing


# ------------------------------------------------------------------ max_rows
def test_max_rows_stops_with_advice(events: Any, capsys: Any, sql: Any) -> None:
    run(events, "%config PgMagics.max_rows = 1000")
    out = fails(events, "%pg SELECT * FROM events", capsys)
    assert "more than 1,000 rows" in out and "--stream" in out and "--to" in out
    assert not stream_backends(sql)
    assert len(run(events, "%pg SELECT * FROM events LIMIT 1000")) == 1000


def test_bulk_options_are_checked(ip: Any, capsys: Any) -> None:
    assert "cannot be combined" in fails(ip, "%pg --stream --to x.csv SELECT 1", capsys)
    assert "exactly one statement" in fails(ip, "%%pg --stream\nSELECT 1; SELECT 2", capsys)
    assert "at least 1" in fails(ip, "%pg --stream --chunksize 0 SELECT 1", capsys)


def test_stream_state_repr(events: Any) -> None:
    stream = run(events, "%pg --stream --chunksize 5000 SELECT id FROM events")
    list(stream)
    assert "exhausted" in repr(stream) and "2,500 rows" in repr(stream)
    assert isinstance(stream, Stream)
    with pytest.raises(asyncpg.PostgresError):
        raise asyncpg.PostgresError("sanity: asyncpg errors are importable here")
