"""Server restarts, crashes and killed backends, on a PostgreSQL 15 of this module's own.

The server is restarted with ``pg_ctl`` (fast and immediate shutdown), stopped
under an idle session, crashed with SIGKILL of one backend (the postmaster then
restarts the whole cluster), and its backends are terminated while idle and
mid-query.  After each, the next cell either works (with the one-line "session
reopened" note) or, when a transaction died, fails once with one line and
commits nothing; the API's pool recovers too.  The seconds from the server
being back to the first working cell (the median of a few restarts) are in
the "fault figures" section of the test summary.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

import pgmagic
from pgmagic.errors import ConnectError, TransactionLost
from tests.faults.shown import one_line
from tests.servers import debian
from tests.servers.fixtures import in_ci
from tests.shell import fails, run

ROUNDS = 3
REOPENED = "connection was lost and has been reopened"
# A crashed cluster runs crash recovery before it accepts connections again.
RECOVERY_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server() -> Iterator[debian.Servers]:
    """A private PostgreSQL 15: restarting it disturbs no other test."""
    try:
        servers = debian.start()
    except debian.Unavailable as error:
        if in_ci():
            pytest.fail(f"PostgreSQL 15 is required in CI: {error}")
        pytest.skip(f"PostgreSQL 15 unavailable: {error}")
    try:
        # The cluster runs with synchronous_commit off, for speed: a crash or an
        # immediate shutdown would lose what the tests themselves committed.
        servers.psql(f"ALTER ROLE {debian.USER} SET synchronous_commit = on")
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def shell(ip: Any, server: debian.Servers) -> Any:
    """The ``ip`` shell, its ``%%pg`` session on the private server."""
    ip.user_ns["private_dsn"] = server.pg15_dsn()
    run(ip, "%pg connect $private_dsn")
    return ip


def pg_ctl(server: debian.Servers, command: str, *options: str) -> None:
    """``pg_ctl COMMAND`` as the cluster's owner, waiting until it is done."""
    args = [str(debian.PG_BIN / "pg_ctl"), command, "-D", str(server.data_dir)]
    # The log file, or the postmaster would keep our stdout pipe open.
    args += ["-l", str(server.postgres_log), "-w", "-t", "60", *options]
    if command in ("start", "restart"):
        args += ["-o", f"-p {server.pg_port}"]
    done = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=90,
        check=False,
        **debian.as_owner(server.folder),
    )
    assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}\n{server.logs()}"


def superuser(server: debian.Servers, sql: str, *args: Any) -> list[Any]:
    """Rows of ``sql`` run as the superuser on a connection of its own."""

    async def go() -> list[Any]:
        conn = await asyncpg.connect(server.superuser_dsn())
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def checkpointer(server: debian.Servers) -> int:
    """The checkpointer's pid: a crash restart of the cluster starts a new one."""
    rows = superuser(server, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
    return int(rows[0][0])


def wait_for_crash_restart(server: debian.Servers, before: int) -> float:
    """Wait until the cluster has restarted after a crash and accepts connections.

    ``before`` is the checkpointer's pid before the crash; returns when the
    server was back (``time.perf_counter()``).
    """
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        try:
            if checkpointer(server) != before:
                return time.perf_counter()
        except (OSError, IndexError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"no crash restart within {RECOVERY_TIMEOUT} s\n{server.logs()}")
        time.sleep(0.02)


def backend_pid(ip: Any) -> int:
    return int(run(ip, "%pg --scalar SELECT pg_backend_pid()"))


def api_value() -> Any:
    return asyncio.run(pgmagic.fetchval("SELECT 41 + 1"))


def kill_when_active(server: debian.Servers, pid: int, how: str) -> threading.Thread:
    """In the background: wait until ``pid`` runs a statement, then end it ``how``."""

    def kill() -> None:
        deadline = time.monotonic() + 10
        query = "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
        while not superuser(server, query, pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # well inside the statement
        if how == "terminate":
            superuser(server, "SELECT pg_terminate_backend($1)", pid)
        else:
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------- restarts
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_the_next_cell_works_after_a_restart(
    shell: Any, server: debian.Servers, capsys: Any, figure: Callable[[str], None], mode: str
) -> None:
    ip = shell
    seconds: list[float] = []
    for _ in range(ROUNDS):
        old = backend_pid(ip)
        assert api_value() == 42  # the pool holds a connection the restart kills
        pg_ctl(server, "restart", "-m", mode)
        back = time.perf_counter()
        capsys.readouterr()
        assert run(ip, "%pg --scalar SELECT 41 + 1") == 42
        seconds.append(time.perf_counter() - back)
        assert REOPENED in capsys.readouterr().out
        assert backend_pid(ip) != old
        assert api_value() == 42
    figure(
        f"{mode} restart: first cell {statistics.median(seconds):.3f} s after the server "
        f"was back (median of {ROUNDS}; {', '.join(f'{s:.3f}' for s in seconds)})"
    )
    assert max(seconds) < 5


@pytest.mark.parametrize("in_transaction", [False, True], ids=["idle", "in-transaction"])
def test_a_cell_while_the_server_is_down_fails_with_one_line(
    shell: Any, server: debian.Servers, capsys: Any, in_transaction: bool
) -> None:
    ip = shell
    run(ip, "%pg DROP TABLE IF EXISTS down; CREATE TABLE down (n int)")
    if in_transaction:
        run(ip, "%%pg\nBEGIN;\nINSERT INTO down VALUES (1)")
    pg_ctl(server, "stop", "-m", "fast")
    try:
        error, printed = fails(ip, "%%pg\nINSERT INTO down VALUES (2);\nCOMMIT", capsys)
        assert isinstance(error, ConnectError)
        assert "cannot connect to" in one_line(error, printed)
    finally:
        pg_ctl(server, "start")
    if in_transaction:
        # The failed connect does not count as acknowledging the lost transaction.
        error, printed = fails(ip, "%%pg\nINSERT INTO down VALUES (2);\nCOMMIT", capsys)
        assert isinstance(error, TransactionLost)
        one_line(error, printed)
        assert run(ip, "%pg --scalar SELECT count(*) FROM down") == 0
    run(ip, "%pg INSERT INTO down VALUES (3)")
    assert run(ip, "%pg --scalar SELECT string_agg(n::text, ',') FROM down") == "3"


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_transaction_open_across_a_restart_is_not_half_committed(
    shell: Any, server: debian.Servers, capsys: Any, mode: str
) -> None:
    ip = shell
    run(ip, "%pg DROP TABLE IF EXISTS lost_tx; CREATE TABLE lost_tx (n int)")
    run(ip, "%%pg\nBEGIN;\nINSERT INTO lost_tx VALUES (1)")
    pg_ctl(server, "restart", "-m", mode)
    error, printed = fails(ip, "%%pg\nINSERT INTO lost_tx VALUES (2);\nCOMMIT", capsys)
    assert isinstance(error, TransactionLost)
    assert "nothing of it was committed" in one_line(error, printed)
    assert run(ip, "%pg --scalar SELECT count(*) FROM lost_tx") == 0
    # Acknowledged: the cell after runs, outside any transaction.
    run(ip, "%pg INSERT INTO lost_tx VALUES (3)")
    assert run(ip, "%pg --scalar SELECT string_agg(n::text, ',') FROM lost_tx") == "3"


# ---------------------------------------------------------------- killed backends
@pytest.mark.parametrize("how", ["terminate", "sigkill"])
def test_the_next_cell_works_after_an_idle_backend_is_killed(
    shell: Any, server: debian.Servers, capsys: Any, figure: Callable[[str], None], how: str
) -> None:
    ip = shell
    pid = backend_pid(ip)
    assert api_value() == 42
    if how == "terminate":
        assert superuser(server, "SELECT pg_terminate_backend($1)", pid)[0][0] is True
        back = killed = time.perf_counter()
    else:
        # A backend killed by a signal is a crash: the postmaster ends every
        # other backend and restarts the cluster through crash recovery.
        before = checkpointer(server)
        killed = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        back = wait_for_crash_restart(server, before)
    capsys.readouterr()
    assert run(ip, "%pg --scalar SELECT 41 + 1") == 42
    after = time.perf_counter() - back
    if how == "terminate":
        figure(f"pg_terminate_backend of the idle session: next cell took {after:.3f} s")
    else:
        figure(
            f"SIGKILL of the idle session's backend: cluster back {back - killed:.3f} s "
            f"after the kill, first cell {after:.3f} s after that"
        )
    assert REOPENED in capsys.readouterr().out
    assert api_value() == 42


@pytest.mark.parametrize("how", ["terminate", "sigkill"])
def test_a_query_whose_backend_is_killed_fails_with_one_line(
    shell: Any, server: debian.Servers, capsys: Any, how: str
) -> None:
    ip = shell
    before = checkpointer(server)
    killer = kill_when_active(server, backend_pid(ip), how)
    started = time.perf_counter()
    error, printed = fails(ip, "%pg SELECT pg_sleep(30)", capsys)
    assert time.perf_counter() - started < 10
    killer.join()
    line = one_line(error, printed)
    assert isinstance(error, asyncpg.PostgresConnectionError), line
    assert "the connection was lost; the next cell reconnects" in line
    if how == "sigkill":
        wait_for_crash_restart(server, before)


# What the server runs, and whether pgmagic wraps it in a transaction of its own.
STATEMENTS = {
    "do-block": "%pg DO $$BEGIN PERFORM pg_sleep(30); END$$",
    "records-path": "%pg SELECT pg_sleep(30)",
    "copy-path": "%pg SELECT g FROM generate_series(1, 3) g, pg_sleep($seconds) s",
}


@pytest.mark.parametrize(
    ("how", "statement"),
    [
        ("terminate", "do-block"),
        ("sigkill", "do-block"),
        ("terminate", "records-path"),
        ("terminate", "copy-path"),
    ],
)
def test_the_cell_after_a_query_whose_backend_is_killed_runs(
    shell: Any, server: debian.Servers, capsys: Any, how: str, statement: str
) -> None:
    ip = shell
    ip.user_ns["seconds"] = 30
    before = checkpointer(server)
    killer = kill_when_active(server, backend_pid(ip), how)
    error, printed = fails(ip, STATEMENTS[statement], capsys)
    killer.join()
    one_line(error, printed)
    if how == "sigkill":
        wait_for_crash_restart(server, before)
    # No transaction was open: nothing to acknowledge, the session is reopened.
    assert run(ip, "%pg --scalar SELECT 41 + 1") == 42
    assert REOPENED in capsys.readouterr().out


def test_a_transaction_lost_mid_query_is_refused_once(
    shell: Any, server: debian.Servers, capsys: Any
) -> None:
    ip = shell
    run(ip, "%pg DROP TABLE IF EXISTS lost_mid; CREATE TABLE lost_mid (n int)")
    run(ip, "%%pg\nBEGIN;\nINSERT INTO lost_mid VALUES (1)")
    killer = kill_when_active(server, backend_pid(ip), "terminate")
    error, printed = fails(ip, "%pg SELECT pg_sleep(30)", capsys)
    killer.join()
    one_line(error, printed)
    error, printed = fails(ip, "%%pg\nINSERT INTO lost_mid VALUES (2);\nCOMMIT", capsys)
    assert isinstance(error, TransactionLost)
    one_line(error, printed)
    assert run(ip, "%pg --scalar SELECT count(*) FROM lost_mid") == 0
