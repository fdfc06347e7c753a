"""Behind a transaction pooler: detected, no named prepared statement, never a wrong value.

pgbouncer 1.18 in transaction pooling mode hands each transaction whichever
server connection is free, so a statement prepared in one transaction is
missing (or another client's) in the next. These tests run several clients
at once, which is what makes the server connections change hands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

import pgmagic
from pgmagic.runtime.connections import default_runtime
from pgmagic.runtime.loop import Runtime
from tests.shell import fails, run

CLIENTS = 6
CALLS = 150


@pytest.fixture
def pooled(pgbouncer_dsn: str) -> Iterator[Runtime]:
    runtime = Runtime()
    runtime.set_target(pgbouncer_dsn)
    try:
        yield runtime
    finally:
        runtime.close()


async def _hammer(dsn: str, seed: int) -> int:
    """Another client through the pooler: it makes server connections change hands."""
    conn = await asyncpg.connect(dsn, statement_cache_size=0)
    try:
        for i in range(CALLS):
            await conn.fetchval("SELECT $1::int + $2::int", seed, i)
    finally:
        await conn.close()
    return CALLS


def test_a_pooler_is_detected_and_a_direct_server_is_not(pooled: Runtime, pg15_dsn: str) -> None:
    async def probe(runtime: Runtime) -> bool:
        conn = await runtime.connect()
        await conn.close()
        return runtime.behind_pooler()

    assert pooled.run(probe(pooled)) is True
    direct = Runtime()
    try:
        direct.set_target(pg15_dsn)
        assert direct.run(probe(direct)) is False
    finally:
        direct.close()


def test_concurrent_pool_calls_through_the_pooler_are_all_right(
    pooled: Runtime, pgbouncer_dsn: str
) -> None:
    async def one(client: int, i: int) -> tuple[int, int]:
        async with pooled.acquire() as conn:
            got = await conn.fetchval("SELECT $1::int * 1000 + $2::int", client, i)
        return got, client * 1000 + i

    async def main() -> list[Any]:
        calls = [one(c, i) for c in range(CLIENTS) for i in range(CALLS)]
        others = [_hammer(pgbouncer_dsn, n) for n in range(2)]
        return await asyncio.gather(*calls, *others, return_exceptions=True)

    results = pooled.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    pairs = results[: CLIENTS * CALLS]
    wrong = [pair for pair in pairs if pair[0] != pair[1]]
    assert wrong == []


def test_cells_and_api_calls_through_the_pooler_are_never_wrong(
    ip: Any, pgbouncer_dsn: str
) -> None:
    """The session's cells (COPY path with $name, Records path) while the pool churns."""
    ip.user_ns["pgbouncer_dsn"] = pgbouncer_dsn
    run(ip, "%pg connect $pgbouncer_dsn")

    async def churn() -> list[int]:
        return list(
            await asyncio.gather(
                *(pgmagic.fetchval("SELECT $n::int", n=n) for n in range(300)),
                _hammer(pgbouncer_dsn, 7),
            )
        )

    runtime = default_runtime()
    assert runtime is not None
    task = runtime.submit(churn())
    wrong = []
    for x in range(60):
        ip.user_ns["x"] = x
        frame = run(ip, "%pg SELECT $x::int AS x, g FROM generate_series(1, 3) g")
        scalar = run(ip, "%pg --scalar SELECT $x::int + 1")
        if frame["x"].tolist() != [x] * 3 or scalar != x + 1:
            wrong.append(x)
    assert task.result(timeout=120)[:300] == list(range(300))
    assert wrong == []


def test_status_says_pooler_and_connect_pooler_forces_it(
    ip: Any, capsys: Any, pgbouncer_dsn: str, pg15_dsn: str
) -> None:
    ip.user_ns.update(pgbouncer_dsn=pgbouncer_dsn, pg15_dsn=pg15_dsn, x=5)
    run(ip, "%pg connect $pgbouncer_dsn")
    capsys.readouterr()
    run(ip, "%pg status")
    out = capsys.readouterr().out
    assert "pooler" in out and "no named prepared statements" in out
    assert "one per transaction" in out

    run(ip, "%pg connect --pooler $pg15_dsn")
    assert run(ip, "%pg --scalar SELECT $x::int") == 5
    capsys.readouterr()
    run(ip, "%pg status")
    assert "no named prepared statements" in capsys.readouterr().out

    run(ip, "%pg connect $pg15_dsn")
    capsys.readouterr()
    run(ip, "%pg status")
    assert "pooler" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%pg connect --pooler", "usage: %pg connect [--pooler]"),
        ("%pg connect --pooler --embedded", "--pooler needs a DSN"),
    ],
)
def test_connect_pooler_usage_errors_are_one_line(ip: Any, line: str, message: str) -> None:
    error, _ = fails(ip, line)
    assert message in str(error)
    assert "\n" not in str(error)
