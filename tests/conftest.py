"""Shared fixtures: a real PostgreSQL server and real IPython shells.

The server is the embedded one (in a fresh temporary data folder, so a user's
own embedded database is never touched), or the one ``PGMAGIC_TEST_DSN`` names.
The environment is set at import time so kernels that tests and nbval start
inherit it.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

_DATA_DIR = tempfile.mkdtemp(prefix="pgmagic-test-")
# Registered before the embedded server's own exit hook, so it runs after the
# server has stopped (atexit is last-in, first-out).
atexit.register(shutil.rmtree, _DATA_DIR, True)
for _name in (
    "DATABASE_URL",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGSERVICE",
):
    os.environ.pop(_name, None)
os.environ["PGMAGIC_DATA_DIR"] = os.path.join(_DATA_DIR, "pgdata")
if os.environ.get("PGMAGIC_TEST_DSN"):
    os.environ["PGMAGIC_DSN"] = os.environ["PGMAGIC_TEST_DSN"]
else:
    os.environ.pop("PGMAGIC_DSN", None)
# Kernels started by tests must not pick up a user's IPython profile or startup files.
os.environ["IPYTHONDIR"] = os.path.join(_DATA_DIR, "ipython")
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")


def _server_dsn() -> str:
    if os.environ.get("PGMAGIC_TEST_DSN"):
        return os.environ["PGMAGIC_TEST_DSN"]
    from pgmagic import embedded

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
        for name in set(shell.user_ns) - before:
            shell.user_ns.pop(name, None)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    from pgmagic.runtime import default_runtime

    runtime = default_runtime(create=False)
    if runtime is not None:
        runtime.close()
