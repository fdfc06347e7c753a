"""Session fixtures for tests that need PostgreSQL 15 or pgbouncer themselves.

Imported by ``tests/conftest.py``.  The servers start on first use, once per
session, and stop at its end.  When ``PGMAGIC_TEST_DSN`` is set (a parent
session running the suite against one server, or a developer's own server),
they never start and the tests using them are skipped.  When the packages
cannot be installed the tests are skipped too, except in CI (``CI`` set),
where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.servers import debian


def in_ci() -> bool:
    """Whether this runs in CI, where a missing server is a failure, not a skip."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def debian_servers() -> Iterator[debian.Servers]:
    """PostgreSQL 15 and pgbouncer (transaction pooling), running for the session."""
    if os.environ.get("PGMAGIC_TEST_DSN"):
        pytest.skip("PGMAGIC_TEST_DSN is set: this session runs against that server only")
    try:
        servers = debian.start()
    except debian.Unavailable as error:
        if in_ci():
            pytest.fail(f"PostgreSQL 15 and pgbouncer are required in CI: {error}")
        pytest.skip(f"PostgreSQL 15 and pgbouncer unavailable: {error}")
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def pg15_dsn(debian_servers: debian.Servers) -> str:
    """``pgmagic`` (with a password, not a superuser) on PostgreSQL 15 over TCP."""
    return debian_servers.pg15_dsn()


@pytest.fixture(scope="session")
def pgbouncer_dsn(debian_servers: debian.Servers) -> str:
    """``pgmagic`` through pgbouncer in transaction pooling mode, to PostgreSQL 15."""
    return debian_servers.pgbouncer_dsn()


@pytest.fixture(scope="session")
def pg15_superuser_dsn(debian_servers: debian.Servers) -> str:
    """The ``postgres`` superuser on PostgreSQL 15 (unix socket, trust), for setup."""
    return debian_servers.superuser_dsn()
