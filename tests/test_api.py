"""The awaitable Python API, on the pool and on the session."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import asyncpg
import pytest

import pgmagic
from pgmagic.errors import OptionError, ParameterError, QueryCancelled


@pytest.fixture(autouse=True)
def fresh_runtime(ip: Any) -> Any:
    # the ip fixture loads pgmagic (so the default runtime exists) and closes it after
    return ip


def test_fetch_binds_keywords_and_positionals() -> None:
    async def go() -> Any:
        by_name = await pgmagic.fetch("SELECT $x::int + 1 AS y", x=41)
        by_position = await pgmagic.fetch("SELECT $1::text || $2::text AS s", "a", "b")
        return by_name, by_position

    by_name, by_position = asyncio.run(go())
    assert by_name["y"].tolist() == [42]
    assert str(by_name.dtypes["y"]) == "Int32"
    assert by_position["s"].tolist() == ["ab"]


def test_fetchrow_fetchval_execute() -> None:
    async def go() -> Any:
        status = await pgmagic.execute(
            "CREATE TEMP TABLE api_t (id int PRIMARY KEY); INSERT INTO api_t VALUES (1), (2)",
            session=True,
        )
        row = await pgmagic.fetchrow("SELECT id FROM api_t WHERE id = $id", id=2, session=True)
        count = await pgmagic.fetchval("SELECT count(*) FROM api_t", session=True)
        return status, row, count

    status, row, count = asyncio.run(go())
    assert status == "INSERT 0 2"
    assert row["id"] == 2
    assert count == 2


def test_session_shares_state_with_cells(ip: Any) -> None:
    ip.run_cell("%pg CREATE TEMP TABLE shared (x int); INSERT INTO shared VALUES (7)")
    assert asyncio.run(pgmagic.fetchval("SELECT x FROM shared", session=True)) == 7
    # the pool is other connections: the temp table is not there
    with pytest.raises(asyncpg.UndefinedTableError):
        asyncio.run(pgmagic.fetchval("SELECT x FROM shared"))


def test_errors_keep_their_asyncpg_class() -> None:
    async def go() -> None:
        await pgmagic.execute("CREATE TABLE IF NOT EXISTS api_u (k text UNIQUE); TRUNCATE api_u")
        await pgmagic.execute("INSERT INTO api_u VALUES ('a')")
        await pgmagic.execute("INSERT INTO api_u VALUES ('a')")

    with pytest.raises(asyncpg.UniqueViolationError) as info:
        asyncio.run(go())
    lines = info.value._render_traceback_()  # type: ignore[attr-defined]
    assert lines[0].startswith("ERROR:  duplicate key value")
    assert any(line.startswith("DETAIL:") for line in lines)
    asyncio.run(pgmagic.execute("DROP TABLE api_u"))


def test_missing_parameter_is_raised_before_io() -> None:
    with pytest.raises(ParameterError, match=r"\$who"):
        asyncio.run(pgmagic.fetch("SELECT $who"))


def test_many_queries_run_at_once_on_the_pool(ip: Any) -> None:
    ip.run_cell("%config PgMagics.pool_max_size = 4")

    async def go() -> float:
        started = time.perf_counter()
        frames = await asyncio.gather(
            *(pgmagic.fetch("SELECT pg_sleep(0.5), $i::int AS i", i=i) for i in range(4))
        )
        assert sorted(int(f["i"].iloc[0]) for f in frames) == [0, 1, 2, 3]
        return time.perf_counter() - started

    elapsed = asyncio.run(go())
    # four half-second sleeps overlap: far less than the two seconds run in a row
    assert elapsed < 1.5


def test_top_level_await_in_a_shell(ip: Any) -> None:
    result = ip.run_cell("import pgmagic\nframe = await pgmagic.fetch('SELECT 5 AS five')")
    assert result.error_in_exec is None
    assert ip.user_ns["frame"]["five"].tolist() == [5]


def test_init_hook_runs_on_every_connection(ip: Any) -> None:
    calls: list[int] = []

    async def init(conn: Any) -> None:
        calls.append(conn.get_server_pid())
        await conn.execute("SET application_name = 'from-init'")

    ip.user_ns["my_init"] = init
    ip.run_cell("%config PgMagics.init = my_init")
    name = asyncio.run(pgmagic.fetchval("SELECT current_setting('application_name')"))
    assert name == "from-init"
    assert (
        ip.run_cell("%pg --scalar SELECT current_setting('application_name')").result == "from-init"
    )
    assert len(calls) >= 2


def test_unused_keyword_arguments_are_refused() -> None:
    with pytest.raises(ParameterError, match="not used by the SQL: y"):
        asyncio.run(pgmagic.fetch("SELECT $x::int", x=1, y=2))


def _running(sql: Any, fragment: str) -> list[Any]:
    return sql(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
        f"%{fragment}%",
    )


def test_a_timed_out_await_is_cancelled_on_the_server(sql: Any) -> None:
    async def go() -> None:
        await asyncio.wait_for(pgmagic.fetch("SELECT pg_sleep(30), 'api_timeout'"), 0.5)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        asyncio.run(go())
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while _running(sql, "api_timeout") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(sql, "api_timeout") == []
    assert asyncio.run(pgmagic.fetchval("SELECT 1")) == 1


def test_sigint_during_an_await_cancels_on_the_server(sql: Any) -> None:
    async def go() -> None:
        asyncio.get_running_loop().call_later(0.5, os.kill, os.getpid(), signal.SIGINT)
        await pgmagic.fetch("SELECT pg_sleep(30), 'api_sigint'")

    before = signal.getsignal(signal.SIGINT)
    started = time.monotonic()
    with pytest.raises(QueryCancelled) as caught:
        asyncio.run(go())
    assert time.monotonic() - started < 5
    assert caught.value._render_traceback_() == ["query cancelled"]
    assert _running(sql, "api_sigint") == []
    assert signal.getsignal(signal.SIGINT) is before
    assert asyncio.run(pgmagic.fetchval("SELECT 2")) == 2


def test_sigint_during_an_awaited_export_cancels_it(sql: Any, tmp_path: Any) -> None:
    target = tmp_path / "slow.parquet"

    async def go() -> None:
        asyncio.get_running_loop().call_later(1.0, os.kill, os.getpid(), signal.SIGINT)
        await pgmagic.to_file(
            "SELECT g, pg_sleep(0.01) AS api_export FROM generate_series(1, 100000) g", target
        )

    started = time.monotonic()
    with pytest.raises(QueryCancelled, match="export cancelled; no file was written"):
        asyncio.run(go())
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 5
    while _running(sql, "api_export") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(sql, "api_export") == []
    assert asyncio.run(pgmagic.fetchval("SELECT 3")) == 3


@pytest.mark.parametrize("session", [False, True])
def test_explain_gives_the_plan_and_rolls_back_what_it_measured(
    ip: Any, sql: Any, session: bool
) -> None:
    ip.run_cell("%pg -q DROP TABLE IF EXISTS api_explained; CREATE TABLE api_explained (x int)")
    ip.run_cell("%pg -q INSERT INTO api_explained SELECT generate_series(1, 10)")

    async def go() -> Any:
        estimate = await pgmagic.explain(
            "SELECT * FROM api_explained WHERE x > $low", low=5, session=session
        )
        measured = await pgmagic.explain(
            "DELETE FROM api_explained WHERE x > $1", 5, analyze=True, session=session
        )
        return estimate, measured

    estimate, measured = asyncio.run(go())
    assert not estimate.analyzed and "(api_explained.x > 5)" in estimate.text
    assert measured.analyzed and measured.root.title == "Delete on public.api_explained"
    assert "rolled back: EXPLAIN ANALYZE of a statement that writes" in measured.notes
    assert sql("SELECT count(*) FROM api_explained")[0][0] == 10
    ip.run_cell("%pg -q DROP TABLE api_explained")


def test_explain_of_what_cannot_be_explained_says_so() -> None:
    with pytest.raises(asyncpg.PostgresSyntaxError) as caught:
        asyncio.run(pgmagic.explain("VACUUM"))
    shown = caught.value._render_traceback_()  # type: ignore[attr-defined]
    assert shown[0] == 'ERROR:  syntax error at or near "VACUUM"'
    assert shown[-1].startswith("HINT:  EXPLAIN takes SELECT")


@pytest.mark.parametrize("where", ["current", "named"])
def test_conn_names_the_connection(ip: Any, second: tuple[str, str], where: str) -> None:
    ip.user_ns["second_dsn"] = second[1]
    ip.run_cell("%pg connect second $second_dsn")
    if where == "named":
        ip.run_cell("%pg use default")

    async def go() -> Any:
        return (
            await pgmagic.fetchval("SELECT current_database()", conn="second"),
            await pgmagic.fetchval("SELECT current_database()"),
            await pgmagic.execute("SELECT 1", conn="second", session=True),
            len(await pgmagic.fetch("SELECT 1 AS a", conn="default")),
        )

    on_second, on_current, tag, rows = asyncio.run(go())
    assert on_second == second[0] and tag == "SELECT 1" and rows == 1
    assert (on_current == second[0]) is (where == "current")


def test_an_unknown_conn_is_one_line() -> None:
    from pgmagic.errors import OptionError

    with pytest.raises(OptionError, match="no connection named 'nope'; connections: "):
        asyncio.run(pgmagic.fetchval("SELECT 1", conn="nope"))


def test_fetch_and_stream_take_a_frame_kind() -> None:
    import polars
    import pyarrow as pa

    sql = "SELECT g AS i, g * 0.5 AS n FROM generate_series(1, $k::int) g"

    async def go() -> Any:
        table = await pgmagic.fetch(sql, k=3, frame="arrow")
        frame = await pgmagic.fetch(sql, k=3, frame="polars")
        returned = await pgmagic.fetch(
            "CREATE TEMP TABLE api_kinds (n int); "
            "INSERT INTO api_kinds VALUES (1) RETURNING n::int8",
            session=True,
            frame="arrow",
        )
        chunks = [c async for c in pgmagic.stream(sql, k=3, chunksize=2, frame="arrow")]
        return table, frame, returned, chunks

    table, frame, returned, chunks = asyncio.run(go())
    assert isinstance(table, pa.Table) and table.schema.types == [pa.int32(), pa.decimal128(38, 1)]
    assert isinstance(frame, polars.DataFrame) and frame.to_arrow().to_pylist() == table.to_pylist()
    assert returned.schema.types == [pa.int64()] and returned.to_pylist() == [{"n": 1}]
    assert [c.num_rows for c in chunks] == [2, 1]
    assert pa.concat_tables(chunks).to_pylist() == table.to_pylist()


def test_a_bad_frame_kind_is_refused_before_io() -> None:
    with pytest.raises(OptionError, match="frame must be one of 'pandas', 'arrow', 'polars'"):
        asyncio.run(pgmagic.fetch("SELECT 1", frame="spark"))
    with pytest.raises(OptionError, match="frame must be one of"):
        pgmagic.stream("SELECT 1", frame="Arrow")
