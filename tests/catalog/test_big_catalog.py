"""Completion on a catalog of 20,000 tables of 20 columns, built in a database of its own.

Checks that the snapshot and the completions are right at that size, and
prints what they cost (snapshot time and memory, latency per request); the
speed itself is measured in ``benchmarks/bench_complete.py`` and
``benchmarks/bench_complete_browser.py``, not asserted here.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

TABLES = 20_000
COLUMNS = [*("id", "prev"), *(f"c{i}" for i in range(18))]


async def _build(dsn: str, name: str) -> str:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    target = dsn.replace("/postgres?", f"/{name}?", 1)
    conn = await asyncpg.connect(target)
    cols = ", ".join(f"{c} int" for c in COLUMNS[2:])
    try:
        # COMMIT every 1,000 tables: one transaction would need 20,000 locks.
        await conn.execute(
            f"DO $$ BEGIN FOR i IN 1..{TABLES} LOOP "
            f"EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, prev int REFERENCES t%s, "
            f"{cols})', i, greatest(i - 1, 1)); "
            "IF i % 1000 = 0 THEN COMMIT; END IF; END LOOP; END $$"
        )
    finally:
        await conn.close()
    return target


async def _drop(dsn: str, name: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def big_dsn(dsn: str) -> Iterator[str]:
    """A database of 20,000 tables, each with a foreign key to the one before."""
    if "/postgres?" not in dsn:
        pytest.skip("needs a server DSN naming database 'postgres' (the embedded one's form)")
    name = f"pgmagic_big_{secrets.token_hex(4)}"
    started = time.perf_counter()
    try:
        target = asyncio.run(_build(dsn, name))
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip("the test server's user may not create databases")
    print(f"\n{TABLES:,} tables built in {time.perf_counter() - started:.1f} s")
    try:
        yield target
    finally:
        asyncio.run(_drop(dsn, name))


def _timed(call: Any, repeat: int = 20) -> tuple[Any, float]:
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        samples.append((time.perf_counter() - started) * 1000)
    return result, statistics.median(samples)


def test_completion_is_right_on_20000_tables(ip: Any, big_dsn: str) -> None:
    from pgmagic.catalog import snapshot as catalog
    from pgmagic.frontend.complete import complete_code
    from pgmagic.runtime.connections import default_runtime

    ip.user_ns["big_dsn"] = big_dsn
    ip.run_line_magic("pg", "connect $big_dsn")
    runtime = default_runtime()
    assert runtime is not None
    tracemalloc.start()
    started = time.perf_counter()
    snap = catalog.current(runtime, fresh=True)
    seconds = time.perf_counter() - started
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert sum(1 for r in snap.relations if r.schema == "public") == TABLES

    def ask(code: str) -> list[str]:
        pos = code.index("|")
        found = complete_code(code.replace("|", ""), pos, {}, runtime)
        assert found is not None
        return [s.text for s in found[1]]

    names, from_ms = _timed(lambda: ask("%%pg\nSELECT * FROM t1999|"))
    assert names[:11] == ["t1999", *(f"t1999{i}" for i in range(10))]
    qualified, _ = _timed(lambda: ask("%%pg\nSELECT * FROM public.t1999|"), 1)
    assert qualified[:11] == names[:11]
    columns, alias_ms = _timed(lambda: ask(f"%%pg\nSELECT x.| FROM t{TABLES} x"))
    assert columns[: len(COLUMNS)] == COLUMNS
    joins, join_ms = _timed(
        lambda: ask(f"%%pg\nSELECT * FROM t{TABLES} a JOIN t{TABLES - 1} b ON |")
    )
    assert joins[0] == "a.prev = b.id"
    print(
        f"snapshot {seconds:.2f} s, {memory / 2**20:.1f} MiB; median per request: "
        f"FROM {from_ms:.1f} ms, alias. {alias_ms:.2f} ms, JOIN ON {join_ms:.2f} ms"
    )
    # Memory is the one bound worth holding here: 20,000 relations in well under 64 MiB.
    assert memory < 64 * 2**20
