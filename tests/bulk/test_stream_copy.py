"""--stream with --arrow, --polars or dtype_backend="pyarrow": chunks from the COPY parser.

Each chunk must hold exactly ``chunksize`` rows (the last the rest), with the
values and types of the whole result; the COPY must end on the server when
the stream ends early, is abandoned, or sits unread past its idle timeout.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import pgmagic
from pgmagic.bulk.stream import StreamExpired, StreamState
from pgmagic.results import decode
from tests.shell import fails, run

polars = pytest.importorskip("polars")
pytestmark = pytest.mark.skipif(
    not decode.is_available(), reason="the _pgcopy extension is not built"
)

SQL = (
    "SELECT g AS id, CASE WHEN g % 7 = 0 THEN NULL ELSE 'r' || g END AS name, "
    "(g / 8.0)::numeric(12, 3) AS amount, "
    "jsonb_build_object('k', g, 'ü', NULL) AS doc, ARRAY[g, NULL] AS pair, "
    "timestamptz '2024-01-01 00:00+00' + g * interval '1 second' AS ts "
    "FROM generate_series(1, {n}) g ORDER BY g"
)

# Large enough that the COPY is still running after the first chunks (no ORDER BY:
# the first rows come at once).
BIG = "SELECT g AS id, 'r' || g AS name FROM generate_series(1, 3000000) g"

OPTIONS = {"arrow": "--arrow", "polars": "--polars", "pyarrow": "--dtype-backend pyarrow"}


def _table(chunk: Any) -> pa.Table:
    if isinstance(chunk, pa.Table):
        return chunk
    if isinstance(chunk, pd.DataFrame):
        return pa.table(
            [pa.array(chunk.iloc[:, i].array) for i in range(chunk.shape[1])],
            names=[str(c) for c in chunk.columns],
        )
    return chunk.to_arrow()


def copy_backends(sql: Any) -> list[Any]:
    """pgmagic's backends still in a COPY or its transaction."""
    return sql(
        "SELECT state FROM pg_stat_activity WHERE application_name = 'pgmagic' "
        "AND state <> 'idle' AND query LIKE 'COPY%'"
    )


def _gone(sql: Any) -> bool:
    deadline = time.monotonic() + 5
    while copy_backends(sql) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not copy_backends(sql)


@pytest.mark.parametrize("kind", list(OPTIONS))
def test_chunks_equal_the_whole_result(ip: Any, kind: str) -> None:
    n = 120_001
    whole = run(ip, f"%%pg {OPTIONS[kind]}\n{SQL.format(n=n)}")
    stream = run(ip, f"%%pg --stream --chunksize 50000 {OPTIONS[kind]}\n{SQL.format(n=n)}")
    chunks = list(stream)
    assert [len(c) for c in chunks] == [50_000, 50_000, 20_001]
    assert type(chunks[0]) is type(whole)
    assert stream.state is StreamState.DONE and stream.rows == n and stream.chunks == 3
    joined = pa.concat_tables([_table(c) for c in chunks])
    reference = _table(whole)
    assert joined.schema == reference.schema
    assert joined.equals(reference)


def test_the_chunks_are_the_parsers(ip: Any) -> None:
    # JSON as the server writes it (the Records' would be json.dumps's "\u00fc")
    chunk = next(iter(run(ip, '%pg --stream --arrow SELECT \'{"a": "ü"}\'::jsonb AS j')))
    assert chunk.column("j").to_pylist() == ['{"a": "ü"}']


def test_small_chunks_and_parameters(ip: Any) -> None:
    ip.user_ns["top"] = 5
    stream = run(
        ip,
        "%%pg --stream --chunksize 2 --polars\n"
        "SELECT g AS i, g::text AS t FROM generate_series(1, $top) g",
    )
    chunks = list(stream)
    assert [c.height for c in chunks] == [2, 2, 1]
    assert [v for c in chunks for v in c["t"].to_list()] == ["1", "2", "3", "4", "5"]


def test_an_empty_result_has_no_chunks(ip: Any) -> None:
    stream = run(ip, "%pg --stream --arrow SELECT 1 AS x WHERE false")
    assert list(stream) == [] and stream.state is StreamState.DONE


def test_ending_early_or_abandoning_ends_the_copy(ip: Any, sql: Any) -> None:
    stream = run(ip, f"%pg --stream --chunksize 1000 --arrow {BIG}")
    assert next(stream).num_rows == 1000
    assert copy_backends(sql), "the COPY waits for the reader"
    stream.close()
    assert stream.state is StreamState.CLOSED
    with pytest.raises(StopIteration):  # rows parsed but not handed out end with it
        next(stream)
    assert _gone(sql)
    run(ip, f"abandoned = %pg --stream --chunksize 1000 --polars {BIG}")
    run(ip, "next(abandoned)")
    assert copy_backends(sql)
    run(ip, "del abandoned")
    gc.collect()
    assert _gone(sql)
    # a loop left with break ends it too, and the pool is usable afterwards
    run(ip, f"%pg --stream --chunksize 1000 --arrow -o peek {BIG}")
    run(ip, "for chunk in peek:\n    break")
    assert _gone(sql)
    assert run(ip, "%pg --scalar SELECT 1") == 1


def test_an_unread_copy_expires(ip: Any, sql: Any) -> None:
    run(ip, "%config PgMagics.stream_idle_timeout = 0.5")
    stream = run(ip, f"%pg --stream --chunksize 1000 --arrow {BIG}")
    next(stream)
    time.sleep(1.5)
    assert _gone(sql)
    with pytest.raises(StreamExpired, match="stream_idle_timeout") as raised:
        for _ in range(10):  # the batches already parsed come first
            next(stream)
    assert "\n" not in str(raised.value)
    assert stream.state is StreamState.CLOSED


def test_a_server_error_half_way(ip: Any, capsys: Any) -> None:
    stream = run(
        ip,
        "%%pg --stream --chunksize 10 --arrow\n"
        "SELECT 1 / (g - 150000) AS x FROM generate_series(1, 200000) g",
    )
    run(ip, "seen = []")
    ip.user_ns["s"] = stream
    _, out = fails(ip, "for chunk in s:\n    seen.append(chunk)", capsys)
    assert "division by zero" in out
    assert stream.state is StreamState.CLOSED
    assert run(ip, "%pg --scalar SELECT 2") == 2


def test_the_api(ip: Any) -> None:
    run(ip, "%pg -q SELECT 1")

    async def body() -> list[Any]:
        return [
            c
            async for c in pgmagic.stream(
                "SELECT g FROM generate_series(1, $n) g", n=5, chunksize=2, frame="arrow"
            )
        ]

    chunks = asyncio.run(body())
    assert [c.num_rows for c in chunks] == [2, 2, 1]
    assert [v for c in chunks for v in c.column("g").to_pylist()] == [1, 2, 3, 4, 5]
