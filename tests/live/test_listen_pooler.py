"""LISTEN through a transaction pooler: the delivery check, ``--dsn`` and ``PgMagics.listen_dsn``.

pgbouncer in transaction mode lends the server connection that ran LISTEN to
other clients, so notifications never reach the listener; the listener must
say so instead of claiming to listen (issue 9, item 6).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

import asyncpg
import pytest

import pgmagic
from pgmagic.errors import ConnectError, OptionError
from pgmagic.live.listener import Listener, ListenerState
from pgmagic.runtime import dsn as dsn_module
from pgmagic.runtime.connections import default_runtime
from pgmagic.runtime.loop import Runtime
from tests.live.helpers import listener, notify, wait_until
from tests.shell import fails, run


def password(dsn: str) -> str:
    secret = urllib.parse.urlsplit(dsn).password
    assert secret, "the fixtures' DSNs carry a password"
    return urllib.parse.unquote(secret)


def received(channel: str) -> list[str]:
    frame = pgmagic.notification_log()
    rows = frame[(frame["kind"] == "notification") & (frame["channel"] == channel)]
    return list(rows["payload"])


def test_listen_through_transaction_pooler_fails_in_one_line(
    ip: Any, capsys: Any, pgbouncer_dsn: str
) -> None:
    run(ip, f"%pg connect {pgbouncer_dsn}")
    error, printed = fails(ip, "%pg listen chan", capsys)
    assert isinstance(error, ConnectError)
    shown = error._render_traceback_()
    assert len(shown) == 1 and "\n" not in shown[0]
    assert "transaction pooler" in shown[0] and "pgbouncer" in shown[0]
    assert "--dsn" in shown[0] and "PgMagics.listen_dsn" in shown[0]
    assert password(pgbouncer_dsn) not in shown[0] + printed
    assert listener().state is ListenerState.STOPPED
    run(ip, "%pg status")
    status = capsys.readouterr().out
    assert "listener" in status and "not listening" in status
    assert "listening on" not in status


def test_listen_dsn_option_bypasses_the_pooler(
    ip: Any, capsys: Any, pgbouncer_dsn: str, pg15_dsn: str
) -> None:
    run(ip, f"%pg connect {pgbouncer_dsn}")
    run(ip, f"%pg listen --dsn '{pg15_dsn}' chan")
    assert listener().state is ListenerState.LISTENING
    notify(pg15_dsn, "chan", "direct")
    assert wait_until(lambda: received("chan")) == ["direct"]
    # The session itself still goes through pgbouncer, and its NOTIFY arrives too.
    run(ip, "%pg notify chan 'from the session'")
    wait_until(lambda: received("chan") == ["direct", "from the session"])
    # Another DSN while listening is refused: one listener connection at a time.
    error, _ = fails(ip, f"%pg listen --dsn {pgbouncer_dsn} other")
    assert isinstance(error, OptionError) and "unlisten --all" in str(error)
    assert password(pgbouncer_dsn) not in str(error)
    run(ip, "%pg status")
    status = capsys.readouterr().out
    assert "listening on chan" in status
    assert password(pg15_dsn) not in status


def test_listen_dsn_config_bypasses_the_pooler(
    ip: Any, capsys: Any, pgbouncer_dsn: str, pg15_dsn: str
) -> None:
    ip.user_ns["direct"] = pg15_dsn
    run(ip, "%config PgMagics.listen_dsn = direct")
    run(ip, f"%pg connect {pgbouncer_dsn}")
    run(ip, "%pg listen chan2")
    notify(pg15_dsn, "chan2", "configured")
    assert wait_until(lambda: received("chan2")) == ["configured"]
    capsys.readouterr()
    run(ip, "%config PgMagics")
    listing = capsys.readouterr().out
    assert "listen_dsn" in listing and "***" in listing
    assert password(pg15_dsn) not in listing


@pytest.mark.parametrize("form", ["--dsn {dsn}", "--dsn={dsn}", '--dsn "{dsn}"', "--dsn $wrong"])
def test_no_password_in_a_failed_direct_connection(
    ip: Any, capsys: Any, pg15_dsn: str, form: str
) -> None:
    wrong = pg15_dsn.replace(urllib.parse.quote(password(pg15_dsn), safe=""), "Wr0ng-s3cret")
    assert wrong != pg15_dsn
    ip.user_ns["wrong"] = wrong
    error, printed = fails(ip, f"%pg listen {form.format(dsn=wrong)} chan", capsys)
    assert isinstance(error, ConnectError)
    shown = "\n".join(error._render_traceback_()) + printed + repr(error)
    assert "Wr0ng-s3cret" not in shown and password(pg15_dsn) not in shown
    assert "***" in shown
    assert listener().state is ListenerState.STOPPED


def test_listen_dsn_repr_and_bad_values(ip: Any, caplog: Any, pg15_dsn: str) -> None:
    magics = ip.magics_manager.registry["PgMagics"]
    run(ip, f"%config PgMagics.listen_dsn = {pg15_dsn!r}")
    assert magics.listen_dsn == pg15_dsn  # the real value connects
    assert password(pg15_dsn) not in repr(magics.listen_dsn)
    assert repr(magics.listen_dsn) == repr(dsn_module.redact(pg15_dsn))
    run(ip, "%config PgMagics.listen_dsn = ''")
    assert magics.listen_dsn is None
    # %config logs a refused value instead of raising; the value stays as it was.
    run(ip, "%config PgMagics.listen_dsn = 'mysql://u:s3cr3t@h/db'")
    assert magics.listen_dsn is None
    assert "listen_dsn" in caplog.text and "s3cr3t" not in caplog.text
    for usage in ("%pg listen --dsn", "%pg listen --dsn ''", "%pg listen --bogus chan"):
        error, _ = fails(ip, usage)
        assert isinstance(error, OptionError) and "usage" in str(error)


def test_embedded_listen_is_unchanged_and_hides_the_probe(ip: Any, sql: Any) -> None:
    run(ip, "%pg listen chan3")
    state = listener().status
    assert state.state is ListenerState.LISTENING
    assert state.channels == frozenset({"chan3"})
    sql("SELECT pg_notify('chan3', 'here')")
    assert wait_until(lambda: received("chan3")) == ["here"]
    frame = pgmagic.notification_log()
    assert not frame["channel"].fillna("").str.startswith("pgmagic_probe").any()
    # The probe channel is UNLISTENed again on the listener's own connection.
    pid = listener().backend_pid
    assert pid is not None
    rows = sql(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'idle'",
        pid,
    )
    assert rows[0][0] == 1


def test_probe_cost_on_a_direct_connection(ip: Any) -> None:
    runtime = default_runtime()
    assert runtime is not None
    probe = Listener(runtime)

    async def measure() -> float:
        conn = await runtime.connect()
        try:
            start = time.perf_counter()
            assert await probe._delivers(conn)
            return time.perf_counter() - start
        finally:
            await conn.close()

    # One round trip and a notification: far below the probe's 2 s timeout.
    assert min(runtime.run(measure()) for _ in range(5)) < 0.5


def test_reconnect_into_a_pooler_stops_with_a_gap(
    pgbouncer_dsn: str, pg15_dsn: str, pg15_superuser_dsn: str
) -> None:
    runtime = Runtime()
    try:
        probe = Listener(runtime, probe_timeout=0.3, health_interval=0.2)
        runtime.run(probe.listen(["chan4"], dsn=pg15_dsn))
        assert probe.state is ListenerState.LISTENING
        pid = probe.backend_pid
        # As if the direct DSN now led to a pooler: the reconnect's check fails.
        probe._target = dsn_module.Target(dsn_module.normalize(pgbouncer_dsn), "%pg listen --dsn")

        async def kill() -> None:
            conn = await asyncpg.connect(pg15_superuser_dsn)
            try:
                await conn.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await conn.close()

        asyncio.run(kill())
        wait_until(lambda: probe.state is ListenerState.STOPPED, timeout=15)
        assert probe.status.channels == frozenset()
        frame = probe.log.to_frame()
        gaps = frame[frame["kind"] == "gap"]["payload"].tolist()
        assert gaps and "transaction pooler" in gaps[-1]
        assert password(pgbouncer_dsn) not in gaps[-1]
    finally:
        runtime.close()
