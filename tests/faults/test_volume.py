"""Volume: a thousand concurrent API calls, a hundred thousand notifications, counted exactly."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pgmagic
from pgmagic.live.listener import listener_for
from pgmagic.runtime.connect import Settings
from pgmagic.runtime.connections import default_runtime
from tests.shell import run


def _sessions(sql: Any) -> int:
    return int(
        sql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")[0][0]
    )


def test_a_thousand_concurrent_api_calls(ip: Any, sql: Any) -> None:
    # A cold start: the first calls find no pool and must not each open a
    # connection of their own (that exhausted max_connections once).
    run(ip, "%pg disconnect")
    before = _sessions(sql)

    async def main() -> list[Any]:
        calls = [pgmagic.fetchval("SELECT $n::int * 2", n=n) for n in range(1000)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert results == [n * 2 for n in range(1000)]
    # The pool's connections, one trial connection, and the two of _sessions.
    assert _sessions(sql) - before <= Settings.pool_max_size + 3


def test_a_hundred_thousand_notifications_are_counted_exactly(ip: Any, sql: Any) -> None:
    run(ip, "%pg listen flood100k")
    runtime = default_runtime(create=False)
    assert runtime is not None
    log = listener_for(runtime).log
    assert log.counts(["flood100k"]) == (0, 0)
    sql("SELECT pg_notify('flood100k', g::text) FROM generate_series(1, 100000) g")
    deadline = time.monotonic() + 60
    while log.counts(["flood100k"])[0] < 100_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    received, dropped = log.counts(["flood100k"])
    assert received == 100_000
    kept = [i for i in log.items() if getattr(i, "channel", None) == "flood100k"]
    # Received = kept + dropped, and what is kept is the newest, in order.
    assert len(kept) + dropped == received
    payloads = [int(i.payload) for i in kept]
    assert payloads == list(range(100_001 - len(kept), 100_001))
