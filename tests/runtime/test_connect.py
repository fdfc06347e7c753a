"""Opening connections: startup settings, keepalives, the init hook, no secret in a repr."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from pgmagic.errors import ConnectError
from pgmagic.runtime.connect import CHECK_INTERVAL, Connected
from pgmagic.runtime.dsn import resolve
from tests.shell import fails, run


def test_connected_facts_never_show_the_password() -> None:
    dsn = "postgresql://alice:s3cr%40t-pw@db.example.com/app"
    connected = Connected(resolve(dsn), dsn)
    assert "s3cr" not in repr(connected)
    assert "s3cr" not in str(connected)


def test_session_and_pool_connections_check_for_a_vanished_client(ip: Any) -> None:
    shown = "SELECT current_setting('client_connection_check_interval')"
    assert run(ip, f"%pg --scalar {shown}") == CHECK_INTERVAL
    ip.user_ns["pgmagic_api"] = __import__("pgmagic")
    assert run(ip, f'await pgmagic_api.fetchval("{shown}")') == CHECK_INTERVAL


def test_a_dsn_that_sets_the_check_interval_keeps_its_own(ip: Any, dsn: str) -> None:
    joiner = "&" if "?" in dsn else "?"
    ip.user_ns["own"] = f"{dsn}{joiner}client_connection_check_interval=7s"
    run(ip, "%pg connect $own")
    assert run(ip, "%pg --scalar SHOW client_connection_check_interval") == "7s"


def test_an_init_hook_that_raises_is_one_line(ip: Any, capsys: Any) -> None:
    run(ip, "async def broken_init(conn):\n    raise ValueError('no codec for you')")
    run(ip, "%config PgMagics.init = broken_init")
    error, out = fails(ip, "%pg SELECT 1", capsys)
    assert isinstance(error, ConnectError)
    assert error._render_traceback_() == [
        "ConnectError: PgMagics.init failed on a new connection: ValueError: no codec for you"
    ]
    assert "Traceback" not in out
    run(ip, "%config PgMagics.init = None")
    assert run(ip, "%pg --scalar SELECT 1") == 1


@pytest.mark.parametrize("where", ["embedded", "pg15"])
def test_status_and_banner_show_the_full_server_version(
    ip: Any, capsys: Any, where: str, request: Any
) -> None:
    if where == "pg15":
        ip.user_ns["version_dsn"] = request.getfixturevalue("pg15_dsn")
        run(ip, "%pg connect $version_dsn")
    exact = run(ip, "%pg --scalar SHOW server_version").split()[0]
    assert re.fullmatch(r"\d+\.\d+|\d+(beta|rc)\d+", exact), exact
    capsys.readouterr()
    run(ip, "%pg status")
    assert f"PostgreSQL {exact}\n" in capsys.readouterr().out
    if where == "pg15":
        run(ip, "%pg connect $version_dsn")
        assert f"(PostgreSQL {exact}," in capsys.readouterr().out


# A work database's libpq variables, which must not reach the embedded server.
WORK_ENVIRONMENT = [
    ("PGTARGETSESSIONATTRS", "standby"),
    ("PGSSLMODE", "require"),
    ("PGOPTIONS", "-c search_path=nowhere"),
    ("PGSERVICE", "no_such_service"),
    ("PGSSLROOTCERT", "/nonexistent/root.crt"),
    ("PGPASSFILE", "/nonexistent/pgpass"),
]


@pytest.mark.parametrize(("name", "value"), WORK_ENVIRONMENT)
def test_the_embedded_server_ignores_the_libpq_environment(
    ip: Any, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    if os.environ.get("PGMAGIC_TEST_DSN"):
        pytest.skip("this session runs against PGMAGIC_TEST_DSN, not the embedded server")
    for base, setting in (("PGHOST", "10.9.9.9"), ("PGPORT", "6543"), ("PGUSER", "nobody")):
        monkeypatch.setenv(base, setting)
    monkeypatch.setenv(name, value)
    run(ip, "%pg connect --embedded")
    assert run(ip, "%pg --scalar SELECT current_setting('search_path')") == '"$user", public'
