"""When the listener updates its views: at once after a quiet interval, batched under load.

A listener of its own with a 2-second batch interval makes "at once" and "at
the interval's end" tell apart by seconds, not milliseconds, on a loaded
machine; the views are plain sinks that record when each update came.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pgmagic.live.listener import Listener, ListenerState, Status
from pgmagic.live.log import Notification, NotificationLog
from pgmagic.runtime.loop import Runtime
from tests.live.helpers import notify, wait_until

INTERVAL = 2.0


@dataclass(frozen=True)
class Update:
    at: float
    state: ListenerState
    payloads: tuple[str, ...]


class Recorder:
    """A sink that keeps when each update came, the state it showed and the new payloads."""

    def __init__(self, log: NotificationLog) -> None:
        self._seq = log.last_seq
        self._lock = threading.Lock()
        self._updates: list[Update] = []

    def update(self, log: NotificationLog, status: Status) -> None:
        new = log.since(self._seq)
        if new:
            self._seq = new[-1].seq
        payloads = tuple(i.payload for i in new if isinstance(i, Notification))
        with self._lock:
            self._updates.append(Update(time.monotonic(), status.state, payloads))

    @property
    def updates(self) -> list[Update]:
        with self._lock:
            return list(self._updates)

    def showing(self, payload: str) -> Update | None:
        return next((u for u in self.updates if payload in u.payloads), None)


def wait_quiet(recorder: Recorder, interval: float = INTERVAL) -> None:
    """Wait until an interval has passed since the last update."""
    while (left := recorder.updates[-1].at + interval + 0.1 - time.monotonic()) > 0:
        time.sleep(left)


@contextlib.contextmanager
def started(dsn: str, batch: float, load: float) -> Iterator[tuple[Listener, Recorder]]:
    """A listener of its own on ``quiet``, with a recording sink, after an interval of quiet."""
    runtime = Runtime()
    runtime.set_target(dsn)
    listener = Listener(runtime, batch_interval=batch, load_interval=load)
    recorder = Recorder(listener.log)
    try:
        runtime.run(listener.listen(["quiet"]))
        listener.add_sink(recorder)
        # Adding the sink updated it, which started an interval: let it pass.
        wait_until(lambda: recorder.updates)
        wait_quiet(recorder, load)
        yield listener, recorder
    finally:
        runtime.close()


@pytest.fixture
def slow(dsn: str) -> Iterator[tuple[Listener, Recorder]]:
    with started(dsn, INTERVAL, INTERVAL) as started_listener:
        yield started_listener


def test_first_after_quiet_goes_at_once_and_the_rest_at_the_interval_end(
    slow: tuple[Listener, Recorder], dsn: str
) -> None:
    _, recorder = slow
    sent = time.monotonic()
    notify(dsn, "quiet", "first")
    first = wait_until(lambda: recorder.showing("first"))
    # Loop time and time.monotonic() are the same clock.
    assert first.at - sent < INTERVAL / 2

    notify(dsn, "quiet", "second")
    notify(dsn, "quiet", "third")
    later = wait_until(lambda: recorder.showing("third"), timeout=3 * INTERVAL)
    assert later.payloads == ("second", "third")
    assert later.at - first.at >= INTERVAL - 0.01
    between = [u for u in recorder.updates if first.at < u.at < later.at]
    assert not [u for u in between if u.payloads]

    # Quiet again: the next one is shown at once.
    wait_quiet(recorder)
    sent = time.monotonic()
    notify(dsn, "quiet", "fourth")
    assert wait_until(lambda: recorder.showing("fourth")).at - sent < INTERVAL / 2


def test_reconnecting_is_shown_at_once_within_an_interval(
    slow: tuple[Listener, Recorder], dsn: str, sql: Any
) -> None:
    listener, recorder = slow
    notify(dsn, "quiet", "starts an interval")
    shown = wait_until(lambda: recorder.showing("starts an interval"))
    notify(dsn, "quiet", "pending")
    wait_until(lambda: "pending" in [getattr(i, "payload", None) for i in listener.log.items()])
    assert recorder.showing("pending") is None
    killed = time.monotonic()
    sql("SELECT pg_terminate_backend($1)", listener.backend_pid)

    def reconnecting() -> Update | None:
        return next((u for u in recorder.updates if u.state is ListenerState.RECONNECTING), None)

    update = wait_until(reconnecting, timeout=3 * INTERVAL)
    assert update.at - killed < INTERVAL / 2
    assert update.at - shown.at < INTERVAL
    # What was pending leaves with the state change instead of at the interval's end.
    pending = recorder.showing("pending")
    assert pending is not None and pending.at <= update.at
    wait_until(lambda: listener.state is ListenerState.LISTENING, timeout=10)


def test_under_load_the_interval_stretches_and_light_load_shortens_it(dsn: str, sql: Any) -> None:
    batch, load = 0.5, INTERVAL
    with started(dsn, batch, load) as (_, recorder):
        notify(dsn, "quiet", "a")
        a = wait_until(lambda: recorder.showing("a"))
        # Three notifications within one short interval: that is load.
        sql("SELECT pg_notify('quiet', x) FROM unnest($1::text[]) x", ["b", "c", "d"])
        bcd = wait_until(lambda: recorder.showing("d"))
        assert bcd.payloads == ("b", "c", "d")
        assert bcd.at - a.at >= batch - 0.01
        notify(dsn, "quiet", "e")
        e = wait_until(lambda: recorder.showing("e"), timeout=3 * load)
        assert e.at - bcd.at >= load - 0.01
        # One notification in that long interval: light load, short intervals again.
        notify(dsn, "quiet", "f")
        f = wait_until(lambda: recorder.showing("f"), timeout=3 * load)
        notify(dsn, "quiet", "g")
        g = wait_until(lambda: recorder.showing("g"), timeout=3 * load)
        assert f.at - e.at < (batch + load) / 2
        assert g.at - f.at < (batch + load) / 2


def test_the_panel_filter_reads_another_connections_channel_by_its_label() -> None:
    from pgmagic.live.log import NotificationLog, matches

    log = NotificationLog(10)
    own = log.append("orders", 1, "mine")
    away = log.append("orders", 2, "theirs", "two")
    assert matches(own, "orders") and not matches(away, "orders")
    assert matches(away, "two: orders") and not matches(own, "two: orders")
    frame = log.to_frame(channel="two: orders")
    assert list(frame["payload"]) == ["theirs"] and list(frame["connection"]) == ["two"]
    # Per-channel counts are the log's own connection's.
    assert log.counts(["orders"]) == (1, 0) and log.counts() == (2, 0)
