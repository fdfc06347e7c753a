"""A hung network: a blackholing TCP proxy (loopback only) between pgmagic and PostgreSQL 15.

While the proxy is frozen (``tests/proxy.py``) the peer's TCP stack still
answers, so keepalives succeed, but nothing PostgreSQL sends or receives gets
through: only timeouts and health checks can tell.  A query ends with one
line about ``command_timeout`` within about that time (the next cell opens a
new connection, bounded by ``connect_timeout``), or, without it, when the user presses Ctrl-C (in a real kernel); the
next cell after the thaw works.  The listener's health check notices, says
"reconnecting" instead of "listening", and listens again after the thaw.
The measured seconds are in the "fault figures" section of the test summary.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pgmagic
from pgmagic.live.listener import Listener, ListenerState, listener_for
from pgmagic.live.log import Gap, Notification
from pgmagic.runtime.connections import default_runtime
from tests.faults.shown import one_line
from tests.kernels import Kernel
from tests.live.helpers import notify
from tests.proxy import Proxy
from tests.shell import fails, run

TIMEOUT = 1
# How long pgmagic waits, after a statement timed out or was cancelled, for the
# connection to settle (runtime/session.py, runtime/waiting.py): a bound, not a goal.
SETTLE = 10
# The listener's defaults: a health check every interval, failing after the timeout.
_DEFAULTS = inspect.signature(Listener).parameters
HEALTH_INTERVAL = float(_DEFAULTS["health_interval"].default)
HEALTH_TIMEOUT = float(_DEFAULTS["health_timeout"].default)


@pytest.fixture
def proxy(pg15_dsn: str) -> Iterator[Proxy]:
    """A proxy in front of PostgreSQL 15 (a role with a password, over TCP)."""
    front = Proxy(pg15_dsn)
    try:
        yield front
    finally:
        front.close()


@pytest.fixture
def shell(ip: Any, proxy: Proxy) -> Any:
    """The ``ip`` shell, connected through the proxy."""
    ip.user_ns["proxied_dsn"] = proxy.dsn
    run(ip, "%pg connect $proxied_dsn")
    return ip


def timed_cell(ip: Any, cell: str, capsys: Any) -> tuple[BaseException, str, float]:
    started = time.perf_counter()
    error, printed = fails(ip, cell, capsys)
    return error, printed, time.perf_counter() - started


def api_value() -> Any:
    return asyncio.run(pgmagic.fetchval("SELECT 41 + 1"))


def wait_until(predicate: Callable[[], Any], timeout: float) -> float:
    """Seconds until ``predicate()`` is true; fails after ``timeout``."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)
    return time.perf_counter() - started


# ---------------------------------------------------------------- command_timeout
@pytest.mark.timeout(120)
def test_a_blackholed_query_with_command_timeout_ends_with_one_line(
    shell: Any, proxy: Proxy, capsys: Any, figure: Callable[[str], None]
) -> None:
    ip = shell
    run(ip, f"%config PgMagics.command_timeout = {TIMEOUT}")
    assert run(ip, "%pg --scalar SELECT 1") == 1
    assert api_value() == 42  # a pool connection, open before the network hangs
    with proxy.silent():
        error, printed, cell_seconds = timed_cell(ip, "%pg --scalar SELECT 41 + 1", capsys)
        assert isinstance(error, TimeoutError)
        assert "PgMagics.command_timeout" in one_line(error, printed)
        assert cell_seconds < TIMEOUT + SETTLE + 3  # ends, whatever else it waits for
        started = time.perf_counter()
        with pytest.raises(TimeoutError) as raised:
            api_value()
        api_seconds = time.perf_counter() - started
        one_line(raised.value)
        assert api_seconds < 2 * TIMEOUT + 3
    # The network is back: the session (reopened if it had to be) and the pool work.
    assert run(ip, "%pg --scalar SELECT 41 + 1") == 42
    assert api_value() == 42
    figure(
        f"blackhole, command_timeout = {TIMEOUT} s: the cell ended after {cell_seconds:.2f} s, "
        f"an API call after {api_seconds:.2f} s"
    )


@pytest.mark.timeout(120)
def test_every_blackholed_cell_ends_within_about_its_command_timeout(
    shell: Any, proxy: Proxy, capsys: Any
) -> None:
    ip = shell
    run(ip, f"%config PgMagics.command_timeout = {TIMEOUT}")
    run(ip, f"%config PgMagics.connect_timeout = {TIMEOUT}")
    assert run(ip, "%pg --scalar SELECT 1") == 1
    with proxy.silent():
        cells = [timed_cell(ip, f"%pg --scalar SELECT {n}", capsys) for n in (2, 3)]
    problems = []
    # The first cell times out; its connection is given up, so the second
    # must open a new one, which connect_timeout bounds.
    expected = ("PgMagics.command_timeout", "PgMagics.connect_timeout")
    for n, (error, printed, seconds) in enumerate(cells, 1):
        try:
            assert expected[n - 1] in one_line(error, printed)
        except AssertionError as failed:
            problems.append(f"cell {n}: {failed}")
        if seconds > TIMEOUT + 2:
            problems.append(f"cell {n}: ended after {seconds:.1f} s, timeout {TIMEOUT} s")
    assert not problems, problems


@pytest.mark.timeout(60)
def test_an_api_call_that_cannot_connect_through_a_blackhole_says_so(
    shell: Any, proxy: Proxy
) -> None:
    ip = shell
    run(ip, f"%config PgMagics.command_timeout = {TIMEOUT}")
    run(ip, f"%config PgMagics.connect_timeout = {TIMEOUT}")
    assert run(ip, "%pg --scalar SELECT 1") == 1  # the session only: no pool yet
    with proxy.silent(), pytest.raises(Exception) as raised:
        api_value()
    line = one_line(raised.value)
    assert "cancelled on the server" not in line, line
    assert "connect_timeout" in line, line


# ---------------------------------------------------------------- Ctrl-C
@pytest.mark.timeout(180)
def test_ctrl_c_frees_a_blackholed_cell_without_command_timeout(
    proxy: Proxy, figure: Callable[[str], None]
) -> None:
    with Kernel() as kernel:
        assert kernel.run("%load_ext pgmagic").status == "ok"
        connected = kernel.run(f"dsn = {proxy.dsn!r}\n%pg connect $dsn")
        assert connected.status == "ok", connected.text
        assert kernel.run("%pg --scalar SELECT 1").status == "ok"
        with proxy.silent():
            msg = kernel.send("%pg --scalar SELECT 41 + 1")
            # No command_timeout: the cell waits for the network as long as it takes.
            with pytest.raises(TimeoutError):
                kernel.collect(msg, timeout=2)
            sent = time.perf_counter()
            kernel.interrupt()
            reply = kernel.collect(msg, timeout=SETTLE + 10)
            once = time.perf_counter() - sent
            assert reply.error is not None and reply.error["traceback"] == ["query cancelled"]
            assert once < SETTLE + 3
            # A second Ctrl-C stops waiting for the cancel to be acknowledged.
            msg = kernel.send("%pg --scalar SELECT 41 + 2")
            with pytest.raises(TimeoutError):
                kernel.collect(msg, timeout=1)
            sent = time.perf_counter()
            kernel.interrupt()
            time.sleep(0.5)
            kernel.interrupt()
            reply = kernel.collect(msg, timeout=SETTLE + 10)
            twice = time.perf_counter() - sent
            assert reply.error is not None and reply.error["traceback"] == ["query cancelled"]
            assert twice < 3
        after = kernel.run("%pg --scalar SELECT 41 + 1", timeout=SETTLE + 10)
        assert after.status == "ok", after.text
        assert "42" in after.results[0]["text/plain"]
    figure(
        f"blackhole, no command_timeout: one Ctrl-C freed the cell after {once:.2f} s, "
        f"two Ctrl-C 0.5 s apart after {twice:.2f} s"
    )


# ---------------------------------------------------------------- LISTEN
@pytest.mark.timeout(120)
def test_a_blackholed_listener_stops_claiming_to_listen_and_resumes(
    shell: Any, proxy: Proxy, pg15_dsn: str, capsys: Any, figure: Callable[[str], None]
) -> None:
    ip = shell
    run(ip, "%pg listen blackholed")
    runtime = default_runtime(create=False)
    assert runtime is not None
    listener = listener_for(runtime)

    def payloads() -> list[str]:
        return [i.payload for i in listener.log.items() if isinstance(i, Notification)]

    notify(pg15_dsn, "blackholed", "before")
    wait_until(lambda: payloads() == ["before"], 5)
    with proxy.silent():
        frozen_at = time.time()
        noticed = wait_until(
            lambda: listener.state is not ListenerState.LISTENING,
            HEALTH_INTERVAL + HEALTH_TIMEOUT + 3,
        )
        assert listener.state is ListenerState.RECONNECTING
        capsys.readouterr()
        run(ip, "%pg status")
        status = capsys.readouterr().out
        assert "reconnecting on blackholed" in status, status
        notify(pg15_dsn, "blackholed", "lost")
    thawed = time.perf_counter()
    wait_until(lambda: listener.state is ListenerState.LISTENING, 20)
    resumed = time.perf_counter() - thawed
    notify(pg15_dsn, "blackholed", "after")
    wait_until(lambda: payloads()[-1:] == ["after"], 5)
    assert payloads() == ["before", "after"]
    (gap,) = [i for i in listener.log.items() if isinstance(i, Gap)]
    assert gap.start <= frozen_at < gap.end
    run(ip, "%pg status")
    assert "listening on blackholed" in capsys.readouterr().out
    figure(
        f"blackholed LISTEN: 'reconnecting' after {noticed:.1f} s (health check every "
        f"{HEALTH_INTERVAL:g} s, {HEALTH_TIMEOUT:g} s timeout), listening again "
        f"{resumed:.2f} s after the thaw"
    )
