"""Shared fixtures: a real PostgreSQL server and real IPython shells.

The environment (which server, a private data folder) is set by the root
``conftest.py``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

# PostgreSQL 15 and pgbouncer for the tests that need them (tests/servers/).
from tests.servers.fixtures import (  # noqa: F401
    debian_servers,
    pg15_dsn,
    pg15_superuser_dsn,
    pgbouncer_dsn,
)


def _server_dsn() -> str:
    if os.environ.get("PGMAGIC_TEST_DSN"):
        return os.environ["PGMAGIC_TEST_DSN"]
    from pgmagic.runtime import embedded

    return embedded.start().dsn


@pytest.fixture(scope="session")
def dsn() -> str:
    """A DSN for the test server, for checks made outside pgmagic."""
    return _server_dsn()


def run_sql(dsn: str, sql: str, *args: Any) -> list[Any]:
    """Run SQL on a fresh connection of its own and return the rows."""

    async def go() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def with_database(dsn: str, database: str) -> str:
    """``dsn`` (a URL) naming another database."""
    parts = urllib.parse.urlsplit(dsn)
    query = [
        (key, value)
        for key, value in urllib.parse.parse_qsl(parts.query)
        if key not in ("dbname", "database")
    ]
    return urllib.parse.urlunsplit(
        parts._replace(path=f"/{database}", query=urllib.parse.urlencode(query))
    )


@pytest.fixture(scope="session")
def second(dsn: str) -> Iterator[tuple[str, str]]:
    """(name, DSN) of a second database on the test server, dropped afterwards."""
    name = f"pgmagic_second_{secrets.token_hex(4)}"
    try:
        run_sql(dsn, f"CREATE DATABASE {name}")
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip("the test server's role may not create databases")
    try:
        yield name, with_database(dsn, name)
    finally:
        run_sql(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def sql(dsn: str) -> Any:
    """``sql("SELECT ...", *args)`` on a connection outside pgmagic."""
    return lambda query, *args: run_sql(dsn, query, *args)


@pytest.fixture
def ip() -> Iterator[Any]:
    """A real IPython shell with pgmagic loaded; unloaded (all closed) afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "pgmagic")
    before = set(shell.user_ns)
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "pgmagic")
        # %config writes into the shell's config; do not let it leak into the next test.
        shell.config.pop("PgMagics", None)
        for name in set(shell.user_ns) - before:
            shell.user_ns.pop(name, None)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    from pgmagic.runtime.connections import default_connections

    connections = default_connections(create=False)
    if connections is not None:
        connections.close()
