"""LISTEN/NOTIFY in a real IPython shell against a real server: feed, log, iterator, refresh."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import gc
import socket
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import numpy as np
import pandas as pd
import pytest

import pgmagic
from pgmagic.errors import OptionError, ParameterError
from pgmagic.frontend import feed, watch
from pgmagic.live import listener as listening
from pgmagic.live import refresh, send
from pgmagic.live.listener import Listener, ListenerState
from pgmagic.live.log import Gap, Notification, NotificationLog, check_channels
from pgmagic.runtime.connect import enable_keepalive
from pgmagic.runtime.connections import default_runtime
from pgmagic.runtime.loop import Runtime
from tests.live.helpers import listener, wait_until
from tests.proxy import Proxy
from tests.shell import fails, run


def view_for(*channels: str) -> feed.FeedView:
    views = [
        s
        for s in listener().sinks
        if isinstance(s, feed.FeedView) and s.channels == frozenset(channels)
    ]
    assert len(views) == 1
    return views[0]


def payloads(frame: pd.DataFrame) -> list[str]:
    return frame.loc[frame["kind"] == "notification", "payload"].tolist()


def test_listen_notify_shows_in_widget_and_log(ip: Any, sql: Any) -> None:
    run(ip, "%pg listen orders inventory")
    view = view_for("orders", "inventory")
    assert view.widget.state["listener"] == "listening"
    assert view.widget.state["channels"] == ["inventory", "orders"]
    run(ip, """%pg notify orders '{"id": 42}'""")
    ip.user_ns["payload"] = {"sku": "A-1", "qty": 2}
    run(ip, "%pg notify inventory $payload")
    sql("SELECT pg_notify('elsewhere', 'not ours')")
    sql("SELECT pg_notify('orders', 'from another connection')")

    items = wait_until(lambda: len(view.widget.items) == 3 and view.widget.items)
    assert [i["payload"] for i in items] == [
        '{"id": 42}',
        '{"sku":"A-1","qty":2}',
        "from another connection",
    ]
    assert [i["channel"] for i in items] == ["orders", "inventory", "orders"]
    session_pid = run(ip, "%pg --scalar SELECT pg_backend_pid()")
    assert items[0]["pid"] == items[1]["pid"] == session_pid != items[2]["pid"]
    assert [i["seq"] for i in items] == sorted(i["seq"] for i in items)
    wait_until(lambda: view.widget.state["count"] == 3)

    log = pgmagic.notification_log()
    assert list(log.columns) == ["seq", "time", "kind", "channel", "pid", "payload", "connection"]
    assert set(log["connection"]) == {""}
    assert str(log.dtypes["time"]) == "datetime64[us, UTC]"
    assert str(log.dtypes["pid"]) == "Int64"
    assert payloads(log) == [i["payload"] for i in items]
    assert log.attrs["dropped"] == 0
    assert (pd.Timestamp.now(tz="UTC") - log["time"].max()) < pd.Timedelta(seconds=10)


def test_notify_binds_the_payload_as_a_parameter(ip: Any) -> None:
    run(ip, "%pg listen odd")
    tricky = "it's $1 '); DROP TABLE x; --"
    ip.user_ns["tricky"] = tricky
    run(ip, "%pg notify odd $tricky")
    run(ip, '%pg notify odd "double quoted, $tricky stays text"')
    run(ip, "%pg notify odd bare words stay as written")
    run(ip, "%pg notify odd")
    wait_until(lambda: len(payloads(pgmagic.notification_log())) == 4)
    assert payloads(pgmagic.notification_log()) == [
        tricky,
        "double quoted, $tricky stays text",
        "bare words stay as written",
        "",
    ]


def test_notify_inside_a_transaction_waits_for_commit(ip: Any, capsys: Any) -> None:
    run(ip, "%pg listen tx")
    run(ip, "%pg BEGIN")
    capsys.readouterr()
    run(ip, "%pg notify tx queued")
    assert "delivers it when the transaction commits" in capsys.readouterr().out
    time.sleep(0.3)
    assert payloads(pgmagic.notification_log()) == []
    run(ip, "%pg COMMIT")
    wait_until(lambda: payloads(pgmagic.notification_log()) == ["queued"])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"at": dt.datetime(2026, 1, 2, 3, 4, 5)}, '{"at":"2026-01-02T03:04:05"}'),
        (
            {"at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},
            '{"at":"2026-01-02T03:04:05+00:00"}',
        ),
        ({"price": decimal.Decimal("1.10")}, '{"price":1.10}'),
        ({"id": 2**70}, '{"id":1180591620717411303424}'),
        ({"n": np.int64(7), "x": np.float64(0.5)}, '{"n":7,"x":0.5}'),
        ([1, (2, 3)], "[1,[2,3]]"),
        (12, "12"),
        (None, ""),
        ("as is: {not json", "as is: {not json"),
    ],
)
def test_notify_payload_is_json_as_bound_values_are(value: Any, text: str) -> None:
    assert send.payload_text(value) == text


def test_notify_payload_without_a_json_form_is_one_line(ip: Any) -> None:
    ip.user_ns["thing"] = {"f": object()}
    error = fails(ip, "%pg notify orders $thing")[0]
    assert isinstance(error, OptionError)
    assert str(error).startswith("cannot send a dict as a payload")


def test_notify_with_a_missing_variable_sends_nothing(ip: Any) -> None:
    run(ip, "%pg listen orders")
    error = fails(ip, "%pg notify orders $nope")[0]
    assert isinstance(error, ParameterError)
    assert "$nope" in str(error)
    run(ip, "%pg notify orders after")
    wait_until(lambda: payloads(pgmagic.notification_log()) == ["after"])


def test_unlisten_unknown_channel_and_all(ip: Any, capsys: Any) -> None:
    run(ip, "%pg listen orders inventory")
    error = fails(ip, "%pg unlisten nope")[0]
    assert isinstance(error, OptionError)
    assert "not listening on 'nope' (listening on: orders, inventory)" in str(error)
    assert listener().state is ListenerState.LISTENING
    for usage in ("%pg unlisten", "%pg unlisten --all orders"):
        assert isinstance(fails(ip, usage)[0], OptionError)

    run(ip, "%pg unlisten orders")
    assert listener().status.channels == {"inventory"}
    view = view_for("orders", "inventory")
    assert view.widget.state["listener"] == "listening"
    capsys.readouterr()
    run(ip, "%pg unlisten --all")
    assert "stopped listening on inventory" in capsys.readouterr().out
    assert listener().state is ListenerState.STOPPED
    wait_until(lambda: view.widget.state["listener"] == "stopped")
    assert view not in listener().sinks


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ('""', "cannot be empty"),
        ("x" * 64, "too long (64 bytes"),
        ("é" * 32, "too long (64 bytes"),
    ],
)
def test_bad_channel_names_are_rejected(ip: Any, channel: str, message: str) -> None:
    for cell in (f"%pg listen {channel}", f"%pg notify {channel} hi"):
        error = fails(ip, cell)[0]
        assert isinstance(error, OptionError)
        assert message in str(error)
    assert listener().state is ListenerState.STOPPED
    with pytest.raises(OptionError, match="NUL"):
        check_channels(["a\x00b"])


def test_channel_names_are_quoted_identifiers(ip: Any, sql: Any) -> None:
    weird = 'Mixed "quoted"; name'
    run(ip, f"%pg listen '{weird}' x{'y' * 62}")
    sql("SELECT pg_notify($1, 'exact')", weird)
    sql("SELECT pg_notify($1, 'lower')", weird.lower())
    sql("SELECT pg_notify($1, 'longest')", "x" + "y" * 62)
    wait_until(lambda: len(payloads(pgmagic.notification_log())) == 2)
    log = pgmagic.notification_log()
    assert payloads(log) == ["exact", "longest"]
    assert log["channel"].tolist() == [weird, "x" + "y" * 62]


def test_reconnects_after_the_backend_is_terminated(ip: Any, sql: Any) -> None:
    run(ip, "%pg listen orders")
    view = view_for("orders")
    states: list[str] = []
    listener().add_sink(_StateRecorder(states))
    old_pid = listener().backend_pid
    assert old_pid is not None
    killed_at = time.time()
    sql("SELECT pg_terminate_backend($1)", old_pid)

    wait_until(lambda: listener().backend_pid not in (None, old_pid))
    assert listener().state is ListenerState.LISTENING
    assert "reconnecting" in states
    sql("SELECT pg_notify('orders', 'after the gap')")
    wait_until(lambda: "after the gap" in payloads(pgmagic.notification_log()))

    log = pgmagic.notification_log()
    gaps = log[log["kind"] == "gap"]
    assert len(gaps) == 1
    message = gaps["payload"].iloc[0]
    assert message.startswith("disconnected ")
    assert message.endswith("notifications sent in this window were not received")
    assert gaps["channel"].isna().all() and gaps["pid"].isna().all()
    gap = next(i for i in listener().log.items() if isinstance(i, Gap))
    assert killed_at - 1 <= gap.start <= gap.end <= time.time()
    kinds = wait_until(lambda: [i["kind"] for i in view.widget.items] == ["gap", "notification"])
    assert kinds
    assert listener().status.channels == {"orders"}


class _StateRecorder:
    def __init__(self, states: list[str]) -> None:
        self.states = states

    def update(self, log: NotificationLog, status: listening.Status) -> None:
        self.states.append(status.state.value)


def test_flood_keeps_the_history_bounded_and_counts_drops(ip: Any, sql: Any, caplog: Any) -> None:
    run(ip, "%config PgMagics.notify_history = 100")
    try:
        flood(ip, sql, caplog)
    finally:
        # The shell's configuration outlives this test's pgmagic.
        run(ip, "%config PgMagics.notify_history = 10000")


def flood(ip: Any, sql: Any, caplog: Any) -> None:
    run(ip, "%pg listen flood")
    view = view_for("flood")
    sql("SELECT pg_notify('flood', g::text) FROM generate_series(1, 1000) g")
    wait_until(lambda: listener().log.counts() == (1000, 900))
    log = pgmagic.notification_log()
    assert payloads(log) == [str(n) for n in range(901, 1001)]
    assert log.attrs["dropped"] == 900
    state = wait_until(lambda: view.widget.state["count"] == 1000 and view.widget.state)
    assert state["dropped"] == 900
    # The widget keeps its own window of rows (whatever the history keeps),
    # filled by as many updates as the flood took.
    shown = [int(i["payload"]) for i in view.widget.items]
    assert len(shown) <= feed._WIDGET_ITEMS
    assert shown == sorted(shown) and shown[-1] == 1000

    # %config logs a rejected value instead of raising it.
    caplog.clear()
    run(ip, "%config PgMagics.notify_history = 0")
    assert "notify_history must be at least 1" in caplog.text
    assert listener().log.maxlen == 100
    run(ip, "%config PgMagics.notify_history = 10")
    assert listener().log.counts() == (1000, 990)
    assert len(pgmagic.notification_log()) == 10


def test_listen_again_replaces_the_earlier_widget(ip: Any) -> None:
    run(ip, "%pg listen a b")
    first = view_for("a", "b")
    run(ip, "%pg listen b a")
    second = view_for("a", "b")
    assert second is not first
    assert first.widget.state["listener"] == "stopped"
    assert second.widget.state["listener"] == "listening"


def test_notifications_iterator(ip: Any, dsn: str) -> None:
    async def main() -> list[Any]:
        received: list[Any] = []
        sender = await asyncpg.connect(dsn)
        iterator = pgmagic.notifications("jobs", "other")

        async def send() -> None:
            await wait_listening("jobs")
            for n in range(3):
                await sender.execute("SELECT pg_notify($1, $2)", "jobs", f"job {n}")
            await sender.execute("SELECT pg_notify('ignored', 'x')")

        task = asyncio.ensure_future(send())
        async for item in iterator:
            received.append(item)
            if len(received) == 3:
                break
        await task
        await iterator.aclose()
        await sender.close()
        return received

    items = asyncio.run(main())
    assert all(isinstance(i, Notification) for i in items)
    assert [i.payload for i in items] == ["job 0", "job 1", "job 2"]
    assert {i.channel for i in items} == {"jobs"}
    wait_until(lambda: listener().state is ListenerState.STOPPED)


async def wait_listening(channel: str) -> None:
    while channel not in listener().status.channels:
        await asyncio.sleep(0.01)


def test_slow_iterator_gets_a_gap_for_what_it_dropped(ip: Any, sql: Any) -> None:
    async def main() -> list[Any]:
        iterator = pgmagic.notifications("slow", buffer=5)
        first = asyncio.ensure_future(iterator.__anext__())
        await wait_listening("slow")
        await asyncio.to_thread(sql, "SELECT pg_notify('slow', 'first')")
        items = [await first]
        # Twenty more while the consumer is not looking: five fit the buffer.
        await asyncio.to_thread(
            sql, "SELECT pg_notify('slow', g::text) FROM generate_series(1, 20) g"
        )
        while listener().log.counts()[0] < 21:
            await asyncio.sleep(0.01)
        items += [await iterator.__anext__() for _ in range(6)]
        await iterator.aclose()
        return items

    items = asyncio.run(main())
    assert items[0].payload == "first"
    gap = items[1]
    assert isinstance(gap, Gap) and gap.kind == "gap"
    assert gap.message == "15 items dropped: this consumer fell behind (buffer=5)"
    assert [i.payload for i in items[2:]] == ["16", "17", "18", "19", "20"]


def test_iterator_ends_when_the_listener_closes(ip: Any) -> None:
    runtime = default_runtime(create=False)
    assert runtime is not None

    async def main() -> list[Any]:
        async def close_soon() -> None:
            await wait_listening("closing")
            await asyncio.to_thread(runtime.disconnect)

        closer = asyncio.ensure_future(close_soon())
        items = [item async for item in pgmagic.notifications("closing")]
        await closer
        return items

    assert asyncio.run(main()) == []
    assert listener().state is ListenerState.STOPPED


def test_iterator_rejects_bad_arguments(ip: Any) -> None:
    with pytest.raises(OptionError, match="at least one channel"):
        pgmagic.notifications()
    with pytest.raises(OptionError, match="buffer"):
        pgmagic.notifications("x", buffer=0)
    with pytest.raises(OptionError, match="too long"):
        pgmagic.notifications("x" * 64)


def test_async_with_listens_before_its_body(ip: Any) -> None:
    async def main() -> Any:
        async with pgmagic.notifications("ctx") as orders:
            assert "ctx" in listener().status.channels
            await pgmagic.execute("SELECT pg_notify('ctx', 'hello')")
            first = await anext(orders)
        assert "ctx" not in listener().status.channels
        return first

    assert asyncio.run(main()).payload == "hello"


def test_an_abandoned_iterator_unsubscribes(ip: Any) -> None:
    async def main() -> None:
        abandoned = pgmagic.notifications("abandoned")
        await abandoned.__aenter__()
        assert "abandoned" in listener().status.channels
        del abandoned
        gc.collect()

    asyncio.run(main())
    wait_until(lambda: "abandoned" not in listener().status.channels)


class Shown:
    """Collects what a refresh shows, rendered as the magic renders it."""

    def __init__(self, channels: list[str], every: float | None) -> None:
        self.bundles: list[tuple[dict[str, str], bool]] = []
        self.channels = frozenset(channels)
        self.every = every

    def __call__(self, run: refresh.Run, first: bool, stopped_at: float | None) -> None:
        bundle = watch.render(
            run, limit=20, channels=self.channels, every=self.every, stopped_at=stopped_at
        )
        self.bundles.append((bundle, first))

    def text(self, index: int = -1) -> str:
        return self.bundles[index][0]["text/plain"]


def start_refresh(ip: Any, sql_text: str, **options: Any) -> tuple[refresh.Refresh, Shown]:
    runtime = default_runtime(create=False)
    assert runtime is not None
    options = {"channels": [], "every": None, **options}
    shown = Shown(options["channels"], options["every"])
    started = refresh.start(runtime, sql_text, ip.user_ns, show=shown, **options)
    return started, shown


def test_refresh_on_notification(ip: Any, sql: Any) -> None:
    sql("DROP TABLE IF EXISTS refreshed")
    sql("CREATE TABLE refreshed (n int)")
    ip.user_ns["low"] = 0
    _, shown = start_refresh(
        ip, "SELECT count(*) AS n FROM refreshed WHERE n > $low", channels=["refreshed"]
    )
    assert shown.bundles[0][1] is True
    assert shown.text(0).startswith(" n\n---\n 0\n1 row × 1 column")
    assert "first run, run 1" in shown.text(0)
    assert "refreshes on NOTIFY refreshed" in shown.text(0)

    sql("INSERT INTO refreshed SELECT g FROM generate_series(1, 5) g")
    sql("SELECT pg_notify('refreshed', g::text) FROM generate_series(1, 30) g")
    wait_until(lambda: len(shown.bundles) >= 2)
    time.sleep(0.5)
    # Thirty notifications in one burst: debounced into one run.
    assert len(shown.bundles) == 2
    assert shown.bundles[1][1] is False
    assert "NOTIFY refreshed, run 2" in shown.text()
    assert shown.text().startswith(" n\n---\n 5\n")
    assert "<table>" in shown.bundles[1][0]["text/html"]
    assert "refreshes on NOTIFY refreshed" in shown.bundles[1][0]["text/html"]

    sql("DROP TABLE refreshed")
    sql("SELECT pg_notify('refreshed', '')")
    wait_until(lambda: len(shown.bundles) == 3)
    assert 'ERROR:  relation "refreshed" does not exist' in shown.text()
    assert "HINT:  --refresh-on and --watch run the query on a pool connection" in shown.text()

    run(ip, "%pg stop")
    assert "refresh stopped" in shown.text()
    stopped = len(shown.bundles)
    sql("SELECT pg_notify('refreshed', '')")
    time.sleep(0.4)
    assert len(shown.bundles) == stopped
    assert "refreshed" not in listener().status.channels


def test_refresh_runs_one_at_a_time(ip: Any, sql: Any) -> None:
    _, shown = start_refresh(ip, "SELECT pg_sleep(0.3), clock_timestamp()", channels=["busy"])
    for _ in range(5):
        sql("SELECT pg_notify('busy', '')")
        time.sleep(0.05)
    wait_until(lambda: len(shown.bundles) == 3, timeout=3)
    time.sleep(0.6)
    # One run for the first trigger, exactly one more for those during it.
    assert len(shown.bundles) == 3
    assert "NOTIFY busy, run 3)" in shown.text()


def test_watch_reruns_and_stop_ends_it(ip: Any, capsys: Any) -> None:
    _, shown = start_refresh(ip, "SELECT clock_timestamp() AS now", every=0.2)
    wait_until(lambda: len(shown.bundles) >= 3)
    assert "every 0.2 s" in shown.text()
    capsys.readouterr()
    run(ip, "%pg stop")
    assert capsys.readouterr().out == "stopped 1 refresh\n"
    assert "refresh stopped" in shown.text()
    count = len(shown.bundles)
    time.sleep(0.5)
    assert len(shown.bundles) == count
    run(ip, "%pg stop")
    assert capsys.readouterr().out == "stopped 0 refreshes\n"


def test_rerunning_a_refresh_replaces_it(ip: Any) -> None:
    first, _ = start_refresh(ip, "SELECT 1", every=5)
    second, _ = start_refresh(ip, "SELECT 1", every=5)
    assert first.stopped and not second.stopped


def test_refresh_cannot_see_session_temp_tables(ip: Any) -> None:
    run(ip, "%%pg\nCREATE TEMP TABLE scratch (n int)")
    error = fails(ip, "%%pg --refresh-on scratch\nSELECT * FROM scratch")[0]
    assert isinstance(error, asyncpg.UndefinedTableError)
    rendered = "\n".join(error._render_traceback_())  # type: ignore[attr-defined]
    assert "HINT:  --refresh-on and --watch run the query on a pool connection" in rendered
    assert "scratch" not in listener().status.channels


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%pg --watch 0.01\nSELECT 1", "at least 0.1 seconds"),
        ("%%pg --watch 1 -o x\nSELECT 1", "cannot be combined"),
        ("%%pg --refresh-on ''\nSELECT 1", "cannot be empty"),
    ],
)
def test_refresh_option_errors(ip: Any, cell: str, message: str) -> None:
    error = fails(ip, cell)[0]
    assert isinstance(error, OptionError)
    assert message in str(error)


# ---------------------------------------------------------------- dead peers
@pytest.fixture
def proxied(dsn: str) -> Iterator[tuple[Proxy, Runtime]]:
    proxy = Proxy(dsn)
    runtime = Runtime()
    runtime.set_target(proxy.dsn)
    try:
        yield proxy, runtime
    finally:
        proxy.frozen.clear()
        runtime.close()
        proxy.close()


def test_tcp_listener_has_keepalives_and_a_health_check(
    proxied: tuple[Proxy, Runtime], sql: Any
) -> None:
    proxy, runtime = proxied
    watched = Listener(runtime, health_interval=0.3, health_timeout=0.3)
    runtime.run(watched.listen(["hc"]))
    sock = watched._conn._transport.get_extra_info("socket")  # type: ignore[union-attr]
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 25_000
    old_pid = watched.backend_pid

    # The peer stops answering without closing anything: only the health
    # check can tell.
    proxy.frozen.set()
    frozen_at = time.time()
    wait_until(lambda: watched.state is ListenerState.RECONNECTING, timeout=3)
    proxy.frozen.clear()
    wait_until(lambda: watched.state is ListenerState.LISTENING, timeout=5)
    assert watched.backend_pid != old_pid
    (gap,) = [i for i in watched.log.items() if isinstance(i, Gap)]
    # The window starts when the peer was last heard from, before it froze.
    assert gap.start <= frozen_at < gap.end
    sql("SELECT pg_notify('hc', 'still here')")
    wait_until(lambda: [i.payload for i in watched.log.items() if isinstance(i, Notification)])
    runtime.run(watched.close())
    sql("SELECT pg_terminate_backend($1)", old_pid)


def test_unix_socket_listener_needs_no_keepalive(ip: Any, dsn: str) -> None:
    if "host=/" not in dsn:
        pytest.skip("the test server is not on a unix socket")
    run(ip, "%pg listen local")
    assert enable_keepalive(listener()._conn, 10, 5, 3) is False


def test_terminal_ipython_prints_notifications() -> None:
    """Terminal IPython has no widgets: %pg listen prints lines instead."""
    import os
    import subprocess
    import sys

    code = (
        "from IPython.terminal.interactiveshell import TerminalInteractiveShell\n"
        "import time\n"
        "ip = TerminalInteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'pgmagic')\n"
        "ip.run_line_magic('pg', 'listen term_channel')\n"
        "ip.run_line_magic('pg', \"notify term_channel 'hello from a terminal'\")\n"
        "time.sleep(1.5)\n"
        "ip.run_line_magic('unload_ext', 'pgmagic')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    ).stdout
    assert "listening on term_channel" in out
    assert "term_channel  pid" in out and "hello from a terminal" in out
    assert "FeedWidget" not in out
