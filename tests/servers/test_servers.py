"""The fixtures give what they promise: PostgreSQL 15, a password, pgbouncer in front."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest


def fetchval(dsn: str, query: str, **options: Any) -> Any:
    async def go() -> Any:
        # statement_cache_size=0: no named prepared statements, which pgbouncer 1.18 cannot pool.
        conn = await asyncpg.connect(dsn, statement_cache_size=0, **options)
        try:
            return await conn.fetchval(query)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_pg15_is_postgresql_15_with_an_ordinary_role(pg15_dsn: str) -> None:
    assert fetchval(pg15_dsn, "SHOW server_version_num").startswith("15")
    assert fetchval(pg15_dsn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False


def test_the_superuser_is_a_superuser(pg15_superuser_dsn: str) -> None:
    assert fetchval(pg15_superuser_dsn, "SELECT current_setting('is_superuser')") == "on"


@pytest.mark.parametrize("which", ["pg15_dsn", "pgbouncer_dsn"])
def test_a_wrong_password_is_refused(which: str, request: pytest.FixtureRequest) -> None:
    dsn: str = request.getfixturevalue(which)
    # pgbouncer 1.18 answers a failed SCRAM exchange with a protocol violation (08P01),
    # PostgreSQL with invalid_password (28P01).
    refused = (asyncpg.InvalidPasswordError, asyncpg.ProtocolViolationError)
    with pytest.raises(refused, match="authentication failed"):
        fetchval(dsn, "SELECT 1", password="wrong")


def test_pgbouncer_reaches_postgresql_15(pgbouncer_dsn: str) -> None:
    assert fetchval(pgbouncer_dsn, "SHOW server_version_num").startswith("15")
