"""LISTEN/NOTIFY: the listener connection, the bounded notification log, subscriptions.

One :class:`Listener` per runtime owns a dedicated connection opened with
:meth:`Runtime.connect`, never a pool member (the pool's reset runs
``UNLISTEN *``).  Every notification goes into the :class:`NotificationLog`
first; the log is bounded, and counts exactly what it drops.  Views (the feed
widget, the JupyterLab panel) are *sinks*: the listener asks them to pull from
the log at most every 50 ms, from the runtime's loop thread, so updates keep
flowing while the kernel is idle and while a cell is busy.

The listener's states (:class:`ListenerState`)::

    STOPPED ──first channel──▶ LISTENING ──connection lost──▶ RECONNECTING
       ▲                        │     ▲                          │
       └──no channel left────── ┘     └──LISTEN re-issued, gap───┘
                                          recorded in the log

Dead peers: TCP connections get keepalives and a ``TCP_USER_TIMEOUT``, and
every ``health_interval`` seconds the listener runs ``SELECT 1`` with a
timeout, which also catches a peer whose TCP stack still answers but whose
server does not (a hung proxy).  A unix-socket peer (the embedded server)
cannot vanish silently: its death closes the socket at once.

Threads: everything that touches the connection runs on the runtime's loop.
The log is also read from the kernel's main thread (export,
:func:`notification_log`), so it takes a lock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import itertools
import json
import logging
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import asyncpg
import pandas as pd

from pgmagic import query
from pgmagic.errors import ConnectError, OptionError
from pgmagic.runtime import Message, Runtime, default_runtime

__all__ = [
    "Gap",
    "Listener",
    "ListenerState",
    "Notification",
    "NotificationLog",
    "Notifications",
    "RateMeter",
    "Sink",
    "Status",
    "Subscriber",
    "check_channels",
    "listener_for",
    "notification_log",
    "notifications",
    "send",
    "unlisten",
]

_logger = logging.getLogger("pgmagic")

#: Seconds between two updates of a view (widget, panel).
BATCH_INTERVAL = 0.04
# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes, and pg_notify
# rejects longer channel names outright.
_MAX_CHANNEL_BYTES = 63
_RATE_WINDOW = 3.0
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0


class ListenerState(enum.Enum):
    """Where the listener connection stands; the values are the feed protocol's."""

    LISTENING = "listening"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


_TRANSITIONS = {
    ListenerState.STOPPED: {ListenerState.LISTENING},
    ListenerState.LISTENING: {ListenerState.RECONNECTING, ListenerState.STOPPED},
    ListenerState.RECONNECTING: {ListenerState.LISTENING, ListenerState.STOPPED},
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification as the kernel received it.

    Attributes
    ----------
    seq : int
        Position in the log; increases by one per item (notification or gap).
    time : float
        Epoch seconds when the kernel received it.
    channel : str
    pid : int
        Backend pid of the sending session.
    payload : str
    """

    kind: ClassVar[str] = "notification"
    seq: int
    time: float
    channel: str
    pid: int
    payload: str

    def to_item(self) -> dict[str, Any]:
        """The item as the feed widget and the panel comm carry it."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "time": self.time,
            "channel": self.channel,
            "pid": self.pid,
            "payload": self.payload,
        }


@dataclass(frozen=True, slots=True)
class Gap:
    """A window in which notifications may have been missed.

    Attributes
    ----------
    seq : int
        Position in the log.
    time : float
        Epoch seconds when the gap was recorded (its end).
    start, end : float
        Epoch seconds of the window.
    message : str
        What happened, e.g. ``disconnected 12:01:03 to 12:01:05: ...``.
    """

    kind: ClassVar[str] = "gap"
    seq: int
    time: float
    start: float
    end: float
    message: str

    def to_item(self) -> dict[str, Any]:
        """The item as the feed widget and the panel comm carry it."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "time": self.time,
            "start": self.start,
            "end": self.end,
            "message": self.message,
        }


Item = Notification | Gap


def matches(item: Item, channel: str | None = None, text: str | None = None) -> bool:
    """Whether an item passes the panel's filters.

    Parameters
    ----------
    item : Notification or Gap
    channel : str, optional
        Exact channel; gaps concern every channel and always pass.
    text : str, optional
        Case-insensitive substring of the channel, payload or pid (of a
        gap's message).

    Returns
    -------
    bool
    """
    needle = (text or "").lower()
    if isinstance(item, Gap):
        return needle in item.message.lower()
    if channel is not None and item.channel != channel:
        return False
    return (
        needle in item.channel.lower() or needle in item.payload.lower() or needle in str(item.pid)
    )


class NotificationLog:
    """The bounded, thread-safe history of everything the listener received.

    Parameters
    ----------
    maxlen : int
        Items kept; the oldest are dropped, and counted, beyond it.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        _check_history(maxlen)
        self._lock = threading.Lock()
        self._items: collections.deque[Item] = collections.deque(maxlen=maxlen)
        self._seq = 0
        self._received = 0
        self._dropped = 0
        self._received_by_channel: collections.Counter[str] = collections.Counter()
        self._dropped_by_channel: collections.Counter[str] = collections.Counter()

    @property
    def maxlen(self) -> int:
        """Items kept at most."""
        maxlen = self._items.maxlen
        assert maxlen is not None
        return maxlen

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest item (0 before the first)."""
        return self._seq

    def append(self, channel: str, pid: int, payload: str) -> Notification:
        """Record a notification received now.

        Parameters
        ----------
        channel : str
        pid : int
        payload : str

        Returns
        -------
        Notification
        """
        with self._lock:
            self._seq += 1
            item = Notification(self._seq, time.time(), channel, pid, payload)
            self._push(item)
            self._received += 1
            self._received_by_channel[channel] += 1
        return item

    def append_gap(self, start: float, end: float, message: str) -> Gap:
        """Record a window in which notifications may have been missed.

        Parameters
        ----------
        start, end : float
            Epoch seconds.
        message : str

        Returns
        -------
        Gap
        """
        with self._lock:
            self._seq += 1
            gap = Gap(self._seq, time.time(), start, end, message)
            self._push(gap)
        return gap

    def _push(self, item: Item) -> None:
        if len(self._items) == self._items.maxlen:
            self._evicted(self._items[0])
        self._items.append(item)

    def _evicted(self, item: Item) -> None:
        self._dropped += 1
        if isinstance(item, Notification):
            self._dropped_by_channel[item.channel] += 1

    def since(self, seq: int) -> list[Item]:
        """Items newer than ``seq`` that the log still holds, oldest first.

        Parameters
        ----------
        seq : int

        Returns
        -------
        list of Notification or Gap
        """
        with self._lock:
            # seq numbers are contiguous in the deque, so the newest
            # (last_seq - seq) items are exactly the ones wanted.
            wanted = min(self._seq - seq, len(self._items))
            newest = list(itertools.islice(reversed(self._items), max(wanted, 0)))
        newest.reverse()
        return newest

    def items(self) -> list[Item]:
        """Every item held, oldest first."""
        with self._lock:
            return list(self._items)

    def counts(self, channels: Iterable[str] | None = None) -> tuple[int, int]:
        """Notifications received and dropped from the history.

        Parameters
        ----------
        channels : iterable of str, optional
            Count only these channels (notifications only); all items if None.

        Returns
        -------
        (received, dropped) : tuple of int
        """
        with self._lock:
            if channels is None:
                return self._received, self._dropped
            wanted = list(channels)
            return (
                sum(self._received_by_channel[c] for c in wanted),
                sum(self._dropped_by_channel[c] for c in wanted),
            )

    def resize(self, maxlen: int) -> None:
        """Keep at most ``maxlen`` items from now on, dropping (and counting) the oldest.

        Parameters
        ----------
        maxlen : int
        """
        _check_history(maxlen)
        with self._lock:
            if maxlen == self._items.maxlen:
                return
            while len(self._items) > maxlen:
                self._evicted(self._items.popleft())
            self._items = collections.deque(self._items, maxlen=maxlen)

    def to_frame(
        self,
        *,
        channel: str | None = None,
        text: str | None = None,
        after_seq: int | None = None,
    ) -> pd.DataFrame:
        """The history as a DataFrame, filtered as the panel filters.

        Parameters
        ----------
        channel, text : str, optional
            See :func:`matches`.
        after_seq : int, optional
            Only items with a larger ``seq``.

        Returns
        -------
        pandas.DataFrame
            Columns ``seq``, ``time`` (UTC), ``kind`` (``"notification"`` or
            ``"gap"``), ``channel``, ``pid``, ``payload`` (a gap's message);
            ``frame.attrs["dropped"]`` is how many items the history dropped.
        """
        with self._lock:
            held = list(self._items)
            dropped = self._dropped
        low = after_seq if after_seq is not None else 0
        rows = [i for i in held if i.seq > low and matches(i, channel, text)]
        notes = [i if isinstance(i, Notification) else None for i in rows]
        frame = pd.DataFrame(
            {
                "seq": pd.array([i.seq for i in rows], dtype="int64"),
                "time": pd.to_datetime([i.time for i in rows], unit="s", utc=True).as_unit("us"),
                "kind": pd.array([i.kind for i in rows], dtype="str"),
                "channel": pd.array([n.channel if n else None for n in notes], dtype="str"),
                "pid": pd.array([n.pid if n else None for n in notes], dtype="Int64"),
                "payload": pd.array(
                    [i.payload if isinstance(i, Notification) else i.message for i in rows],
                    dtype="str",
                ),
            }
        )
        frame.attrs["dropped"] = dropped
        return frame


def _check_history(maxlen: int) -> None:
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
        raise OptionError(f"the notification history needs a size of at least 1, got {maxlen!r}")


class RateMeter:
    """Items per second over the last few seconds, from running counts.

    Parameters
    ----------
    window : float
        Seconds the rate looks back.
    """

    def __init__(self, window: float = _RATE_WINDOW) -> None:
        self._window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def rate(self, count: int) -> float:
        """Record the running count now and give the recent rate.

        Parameters
        ----------
        count : int

        Returns
        -------
        float
        """
        now = time.monotonic()
        samples = self._samples
        samples.append((now, count))
        while len(samples) > 1 and now - samples[0][0] > self._window:
            samples.popleft()
        then, before = samples[0]
        # At least a second, so two notifications 5 ms apart do not read as 400/s.
        return (count - before) / max(now - then, 1.0)


@dataclass(frozen=True, slots=True)
class Status:
    """What views show about the listener.

    Attributes
    ----------
    state : ListenerState
    channels : frozenset of str
        Channels LISTENed for any reason (``%pg listen``, iterators, refreshes).
    listened : frozenset of str
        Channels ``%pg listen`` asked for.
    """

    state: ListenerState
    channels: frozenset[str]
    listened: frozenset[str]


class Sink(Protocol):
    """A view the listener updates: called on the loop thread, at most every 50 ms."""

    def update(self, log: NotificationLog, status: Status) -> None:
        """Pull what is new from ``log`` and show ``status``."""


class Subscriber(Protocol):
    """Code that wants each notification on some channels as it arrives."""

    @property
    def channels(self) -> frozenset[str]:
        """Channels to receive; gaps are pushed to every subscriber."""

    def push(self, item: Item) -> None:
        """Take one item; called on the loop thread, so it must not block."""

    def end(self) -> None:
        """The listener closed; no more items will come."""


def check_channels(channels: Iterable[str]) -> list[str]:
    """Validate channel names, keeping order and dropping repeats.

    Names are used exactly as written (case-sensitive, as ``pg_notify``
    takes them); ``LISTEN`` gets them as quoted identifiers.

    Parameters
    ----------
    channels : iterable of str

    Returns
    -------
    list of str

    Raises
    ------
    OptionError
        An empty name, a NUL character, or more than 63 bytes.
    """
    names: list[str] = []
    for name in channels:
        if not isinstance(name, str) or not name:
            raise OptionError("a channel name cannot be empty")
        if "\x00" in name:
            raise OptionError(f"a channel name cannot contain NUL characters: {name!r}")
        size = len(name.encode())
        if size > _MAX_CHANNEL_BYTES:
            raise OptionError(
                f"channel name too long ({size} bytes; PostgreSQL allows {_MAX_CHANNEL_BYTES}): "
                f"{name[:20]!r}..."
            )
        if name not in names:
            names.append(name)
    return names


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def _gap_message(start: float, end: float) -> str:
    return (
        f"disconnected {_clock(start)} to {_clock(end)}: "
        "notifications sent in this window were not received"
    )


def _enable_keepalive(conn: asyncpg.Connection, idle: int, interval: int, count: int) -> bool:
    """Turn on TCP keepalives on a connection's socket; False for unix sockets."""
    # asyncpg exposes no socket options; its transport is the documented asyncio one.
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = (
        (getattr(socket, "TCP_KEEPIDLE", getattr(socket, "TCP_KEEPALIVE", None)), idle),
        (getattr(socket, "TCP_KEEPINTVL", None), interval),
        (getattr(socket, "TCP_KEEPCNT", None), count),
        # Keepalives only probe an idle socket; this bounds how long a health
        # check written to a dead peer can stay unacknowledged.
        (getattr(socket, "TCP_USER_TIMEOUT", None), (idle + interval * count) * 1000),
    )
    for option, value in options:
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    return True


_CONNECTION_LOST = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
)


class Listener:
    """The dedicated LISTEN connection of a runtime, its log and its views.

    Use :func:`listener_for` to get the runtime's listener.  Coroutine methods
    run on the runtime's loop; :meth:`add_sink` and :meth:`remove_sink` may be
    called from any thread.

    Parameters
    ----------
    runtime : Runtime
    history : int
        Size of the :class:`NotificationLog`.
    batch_interval : float
        Seconds between two updates of a view.
    health_interval, health_timeout : float
        How often ``SELECT 1`` checks the connection, and how long it may take.
    keepalive : tuple of int
        TCP keepalive idle seconds, probe interval seconds and probe count.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        history: int = 10_000,
        batch_interval: float = BATCH_INTERVAL,
        health_interval: float = 10.0,
        health_timeout: float = 5.0,
        keepalive: tuple[int, int, int] = (10, 5, 3),
    ) -> None:
        # Weak: the registry maps runtimes to listeners and must not keep them alive.
        self._runtime = weakref.ref(runtime)
        self.log = NotificationLog(history)
        self._batch_interval = batch_interval
        self._health_interval = health_interval
        self._health_timeout = health_timeout
        self._keepalive = keepalive
        self._state = ListenerState.STOPPED
        self._status = Status(self._state, frozenset(), frozenset())
        self._conn: asyncpg.Connection | None = None
        self._active: set[str] = set()
        self._listened: list[str] = []
        self._subscribers: tuple[Subscriber, ...] = ()
        self._sinks: tuple[Sink, ...] = ()
        self._sinks_lock = threading.Lock()
        self._op_lock: asyncio.Lock | None = None
        self._lost: asyncio.Event | None = None
        self._lost_at: float | None = None
        self._last_alive = 0.0
        self._supervisor: asyncio.Task[None] | None = None
        self._closer_registered = False
        self._flush_handle: asyncio.Handle | None = None
        self._tick_handle: asyncio.Handle | None = None
        self._last_flush = float("-inf")
        self._last_item = float("-inf")

    # ------------------------------------------------------------------ facts
    @property
    def runtime(self) -> Runtime:
        """The runtime whose loop and target the listener uses."""
        runtime = self._runtime()
        if runtime is None:
            raise ConnectError("pgmagic's runtime is gone; run %reload_ext pgmagic")
        return runtime

    @property
    def state(self) -> ListenerState:
        """Listening, reconnecting or stopped."""
        return self._state

    @property
    def status(self) -> Status:
        """State and channels, as one consistent snapshot (safe from any thread)."""
        return self._status

    @property
    def backend_pid(self) -> int | None:
        """The server pid of the listener connection, or None while there is none."""
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The views updated from this listener."""
        return self._sinks

    # ------------------------------------------------------------------ views
    def add_sink(self, sink: Sink) -> None:
        """Start updating a view.

        Parameters
        ----------
        sink : Sink
        """
        with self._sinks_lock:
            self._sinks = (*self._sinks, sink)
        self._soon(self._wake)

    def remove_sink(self, sink: Sink) -> None:
        """Stop updating a view (no error if it was not there).

        Parameters
        ----------
        sink : Sink
        """
        with self._sinks_lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def _soon(self, callback: Callable[[], None]) -> None:
        runtime = self._runtime()
        if runtime is not None and not runtime.closed:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                runtime.loop.call_soon_threadsafe(callback)

    def _wake(self) -> None:
        """Schedule a view update, at most one per batch interval."""
        if self._flush_handle is not None or not self._sinks:
            return
        loop = self.runtime.loop
        delay = self._last_flush + self._batch_interval - loop.time()
        if delay <= 0:
            self._flush_handle = loop.call_soon(self._flush)
        else:
            self._flush_handle = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        loop = self.runtime.loop
        self._last_flush = loop.time()
        status = self._status
        for sink in self._sinks:
            try:
                sink.update(self.log, status)
            except Exception:
                # One broken view (a closed comm) must not starve the others.
                _logger.exception("pgmagic: a notification view failed and was detached")
                self.remove_sink(sink)
        # Keep rates decaying to zero after a burst ends.
        if self._tick_handle is None and loop.time() - self._last_item < _RATE_WINDOW + 1:
            self._tick_handle = loop.call_later(1.0, self._tick)

    def _tick(self) -> None:
        self._tick_handle = None
        if self._flush_handle is None:
            self._flush()

    def _set_state(self, state: ListenerState) -> None:
        if state is self._state:
            return
        if state not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"listener cannot go from {self._state.value} to {state.value}")
        self._state = state
        self._publish()
        # A state change is rare and worth showing at once, even a short
        # "reconnecting": flush now instead of waiting for the batch.
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        if self._sinks:
            self._flush()

    def _publish(self) -> None:
        self._status = Status(self._state, frozenset(self._wanted()), frozenset(self._listened))
        self._wake()

    # ------------------------------------------------------------- channels
    def _wanted(self) -> set[str]:
        wanted = set(self._listened)
        for subscriber in self._subscribers:
            wanted |= subscriber.channels
        return wanted

    def _lock(self) -> asyncio.Lock:
        if self._op_lock is None:
            self._op_lock = asyncio.Lock()
        return self._op_lock

    async def listen(self, channels: Sequence[str]) -> None:
        """LISTEN on channels for ``%pg listen`` (connects on first use).

        Parameters
        ----------
        channels : sequence of str

        Raises
        ------
        ConnectError
            The first connection failed; nothing was started.
        """
        names = check_channels(channels)
        added = [c for c in names if c not in self._listened]
        self._listened.extend(added)
        try:
            await self._sync()
        except BaseException:
            self._listened = [c for c in self._listened if c not in added]
            self._publish()
            raise

    async def unlisten(self, channels: Sequence[str] | None) -> list[str]:
        """Stop ``%pg listen`` on channels (all if None).

        Channels that an iterator or a refresh still needs stay LISTENed.

        Parameters
        ----------
        channels : sequence of str or None

        Returns
        -------
        list of str
            The channels ``%pg listen`` no longer listens to.

        Raises
        ------
        OptionError
            A channel ``%pg listen`` does not listen to.
        """
        if channels is None:
            removed = list(self._listened)
        else:
            removed = check_channels(channels)
            unknown = [c for c in removed if c not in self._listened]
            if unknown:
                listening = ", ".join(self._listened) or "no channel"
                raise OptionError(
                    f"not listening on {', '.join(map(repr, unknown))} (listening on: {listening})"
                )
        self._listened = [c for c in self._listened if c not in removed]
        await self._sync()
        return removed

    async def subscribe(self, subscriber: Subscriber) -> None:
        """Deliver notifications on the subscriber's channels to it.

        Parameters
        ----------
        subscriber : Subscriber
        """
        check_channels(subscriber.channels)
        self._subscribers = (*self._subscribers, subscriber)
        try:
            await self._sync()
        except BaseException:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)
            self._publish()
            raise

    async def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop delivering to a subscriber; UNLISTEN channels nobody needs.

        Parameters
        ----------
        subscriber : Subscriber
        """
        self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)
        await self._sync()

    async def _sync(self) -> None:
        """Make the connection LISTEN to exactly the wanted channels."""
        async with self._lock():
            wanted = self._wanted()
            if not wanted:
                await self._stop()
            elif self._state is ListenerState.STOPPED:
                conn = await self._connect()
                try:
                    await self._listen_all(conn, wanted)
                except BaseException:
                    self._forget(conn)
                    raise
                self._install(conn, wanted)
                self._last_alive = time.time()
                self._set_state(ListenerState.LISTENING)
                self._register_closer()
                self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
            elif self._conn is not None:
                # While reconnecting there is no connection: the new one
                # will LISTEN to whatever is wanted by then.
                await self._adjust(self._conn, wanted)
            self._publish()

    async def _adjust(self, conn: asyncpg.Connection, wanted: set[str]) -> None:
        try:
            for channel in sorted(wanted - self._active):
                await conn.add_listener(channel, self._on_notify)
                self._active.add(channel)
            for channel in sorted(self._active - wanted):
                self._active.discard(channel)
                await conn.remove_listener(channel, self._on_notify)
        except _CONNECTION_LOST:
            if not conn.is_closed():
                raise
            # Lost mid-way: the supervisor reconnects and LISTENs to all wanted.

    async def _listen_all(self, conn: asyncpg.Connection, channels: set[str]) -> None:
        for channel in sorted(channels):
            await conn.add_listener(channel, self._on_notify)

    async def _connect(self) -> asyncpg.Connection:
        conn = await self.runtime.connect()
        _enable_keepalive(conn, *self._keepalive)
        conn.add_termination_listener(self._on_terminated)
        return conn

    def _install(self, conn: asyncpg.Connection, channels: set[str]) -> None:
        self._conn = conn
        self._active = set(channels)
        self._lost = asyncio.Event()
        self._lost_at = None

    def _forget(self, conn: asyncpg.Connection) -> None:
        conn.remove_termination_listener(self._on_terminated)
        conn.terminate()

    def _register_closer(self) -> None:
        if not self._closer_registered:
            self._closer_registered = True
            self.runtime.add_closer(self._close_from_runtime)

    async def _close_from_runtime(self) -> None:
        # The runtime drops its closers once run: register again on next use.
        self._closer_registered = False
        await self.close()

    async def close(self) -> None:
        """Stop listening altogether; subscribers end, the log stays."""
        self._listened = []
        subscribers, self._subscribers = self._subscribers, ()
        for subscriber in subscribers:
            subscriber.end()
        async with self._lock():
            await self._stop()
        self._publish()

    async def _stop(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        conn, self._conn = self._conn, None
        self._active = set()
        if conn is not None:
            conn.remove_termination_listener(self._on_terminated)
            try:
                await asyncio.wait_for(conn.close(), timeout=2)
            except (*_CONNECTION_LOST, asyncpg.PostgresError):
                conn.terminate()
        self._set_state(ListenerState.STOPPED)

    # -------------------------------------------------------------- receiving
    def _on_notify(self, conn: asyncpg.Connection, pid: int, channel: str, payload: str) -> None:
        if conn is not self._conn:
            return
        item = self.log.append(channel, pid, payload)
        self._last_alive = item.time
        for subscriber in self._subscribers:
            if channel in subscriber.channels:
                subscriber.push(item)
        self._last_item = self.runtime.loop.time()
        self._wake()

    def _on_terminated(self, conn: asyncpg.Connection) -> None:
        if conn is self._conn and self._lost is not None:
            self._lost_at = time.time()
            self._lost.set()

    # ------------------------------------------------------------ reconnecting
    async def _supervise(self) -> None:
        while True:
            lost = self._lost
            assert lost is not None
            try:
                await asyncio.wait_for(lost.wait(), self._health_interval)
            except TimeoutError:
                if await self._healthy():
                    continue
            await self._reconnect()

    async def _healthy(self) -> bool:
        async with self._lock():
            conn = self._conn
            if conn is None or conn.is_closed():
                return False
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), self._health_timeout)
            except (*_CONNECTION_LOST, asyncpg.PostgresError):
                return False
        self._last_alive = time.time()
        return True

    async def _reconnect(self) -> None:
        # A loss reported by the connection itself happened just now; a failed
        # health check only tells that the peer was last heard from earlier.
        start = self._lost_at if self._lost_at is not None else self._last_alive
        async with self._lock():
            conn, self._conn = self._conn, None
            if conn is not None:
                self._forget(conn)
            self._set_state(ListenerState.RECONNECTING)
        for attempt in itertools.count():
            try:
                conn = await self._connect()
            except (ConnectError, *_CONNECTION_LOST, asyncpg.PostgresError):
                await asyncio.sleep(_backoff(attempt))
                continue
            async with self._lock():
                wanted = self._wanted()
                try:
                    await self._listen_all(conn, wanted)
                except (*_CONNECTION_LOST, asyncpg.PostgresError):
                    self._forget(conn)
                    await asyncio.sleep(_backoff(attempt))
                    continue
                self._install(conn, wanted)
                end = time.time()
                self._last_alive = end
                gap = self.log.append_gap(start, end, _gap_message(start, end))
                for subscriber in self._subscribers:
                    subscriber.push(gap)
                self._set_state(ListenerState.LISTENING)
                return


def _backoff(attempt: int) -> float:
    # Jitter keeps many kernels from hammering a restarting server in step.
    delay: float = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0 ** min(attempt, 16))
    return delay * random.uniform(0.5, 1.0)


_listeners: weakref.WeakKeyDictionary[Runtime, Listener] = weakref.WeakKeyDictionary()
_listeners_lock = threading.Lock()


def listener_for(runtime: Runtime) -> Listener:
    """The runtime's listener, created (unconnected) on first use.

    Parameters
    ----------
    runtime : Runtime

    Returns
    -------
    Listener
    """
    with _listeners_lock:
        listener = _listeners.get(runtime)
        if listener is None:
            listener = _listeners[runtime] = Listener(runtime)
        return listener


def unlisten(runtime: Runtime, channels: Sequence[str] | None) -> list[str]:
    """Stop ``%pg listen`` on channels, or on all of them when None.

    Parameters
    ----------
    runtime : Runtime
    channels : sequence of str or None

    Returns
    -------
    list of str
        The channels no longer listened to.
    """
    return runtime.run(listener_for(runtime).unlisten(channels))


def payload_text(value: Any) -> str:
    """The text ``pg_notify`` sends for a notebook value.

    Parameters
    ----------
    value : object
        A str is sent as is, None as an empty payload, and anything else as
        JSON (dicts, lists, numbers).

    Returns
    -------
    str
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as error:
        raise OptionError(f"cannot send a {type(value).__name__} as a payload: {error}") from None


def send(
    runtime: Runtime,
    channel: str,
    payload: Any = None,
    *,
    on_message: Callable[[Message], None] | None = None,
) -> bool:
    """Send one notification from the ``%%pg`` session (``%pg notify``).

    Inside an open transaction the server delivers it on ``COMMIT``, as with
    ``NOTIFY``.

    Parameters
    ----------
    runtime : Runtime
    channel : str
    payload : object, optional
        See :func:`payload_text`; always bound as a parameter.
    on_message : callable, optional
        Receives notes and server messages.

    Returns
    -------
    bool
        Whether delivery waits for the session's transaction to commit.

    Examples
    --------
    >>> send(runtime, "orders", {"id": 42})  # doctest: +SKIP
    False
    """
    (name,) = check_channels([channel])
    query.run_cell(
        runtime,
        "SELECT pg_notify($1, $2)",
        {},
        (name, payload_text(payload)),
        mode=query.Mode.SCALAR,
        quiet=True,
        on_message=on_message,
    )
    return runtime.run(_in_transaction(runtime))


async def _in_transaction(runtime: Runtime) -> bool:
    session = await runtime.session()
    return session.conn is not None and session.conn.is_in_transaction()


class _Queue:
    """A subscriber that hands items to an async iterator on another loop."""

    def __init__(
        self, channels: frozenset[str], loop: asyncio.AbstractEventLoop, maxlen: int
    ) -> None:
        self._channels = channels
        self._loop = loop
        self._maxlen = maxlen
        self._lock = threading.Lock()
        self._items: collections.deque[Item] = collections.deque()
        # What fell out of the buffer since the consumer last looked: how
        # many, the first and the last.
        self._dropped = 0
        self._dropped_span: tuple[Item, Item] | None = None
        self._ended = False
        self._waiting = False
        self._ready = asyncio.Event()

    @property
    def channels(self) -> frozenset[str]:
        return self._channels

    def push(self, item: Item) -> None:
        with self._lock:
            if len(self._items) >= self._maxlen:
                oldest = self._items.popleft()
                first = self._dropped_span[0] if self._dropped_span else oldest
                self._dropped_span = (first, oldest)
                self._dropped += 1
            self._items.append(item)
            self._signal()

    def end(self) -> None:
        with self._lock:
            self._ended = True
            self._signal()

    def _signal(self) -> None:
        # Only a waiting consumer needs a cross-thread wake-up: at thousands
        # of notifications a second, one per batch is plenty.
        if self._waiting:
            self._waiting = False
            with contextlib.suppress(RuntimeError):  # the consumer's loop is gone
                self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self) -> Item | None:
        while True:
            with self._lock:
                if self._dropped_span is not None:
                    (first, last), count = self._dropped_span, self._dropped
                    self._dropped_span, self._dropped = None, 0
                    return Gap(
                        last.seq,
                        time.time(),
                        first.time,
                        last.time,
                        f"{count} items dropped: this consumer fell behind (buffer={self._maxlen})",
                    )
                if self._items:
                    return self._items.popleft()
                if self._ended:
                    return None
                self._ready.clear()
                self._waiting = True
            await self._ready.wait()


def _runtime() -> Runtime:
    runtime = default_runtime()
    assert runtime is not None
    return runtime


def _unsubscribe(runtime: Runtime, listener: Listener, queue: _Queue) -> None:
    # Also runs from a finalizer, on whatever thread collects the iterator.
    with contextlib.suppress(ConnectError, RuntimeError):
        runtime.submit(listener.unsubscribe(queue))


class Notifications:
    """Notifications on some channels as they arrive; see :func:`notifications`.

    Parameters
    ----------
    channels : sequence of str
    buffer : int
    """

    def __init__(self, channels: Sequence[str], buffer: int) -> None:
        self.channels = frozenset(check_channels(channels))
        if not self.channels:
            raise OptionError("name at least one channel")
        if buffer < 1:
            raise OptionError(f"buffer must be at least 1, got {buffer}")
        self._buffer = buffer
        self._queue: _Queue | None = None
        self._release: weakref.finalize[..., Any] | None = None

    async def _start(self) -> _Queue:
        if self._queue is None:
            runtime = _runtime()
            listener = listener_for(runtime)
            queue = _Queue(self.channels, asyncio.get_running_loop(), self._buffer)
            await asyncio.wrap_future(runtime.submit(listener.subscribe(queue)))
            self._queue = queue
            # An iterator left by ``break`` is never closed: unsubscribe when
            # it is collected.
            self._release = weakref.finalize(self, _unsubscribe, runtime, listener, queue)
        return self._queue

    async def __aenter__(self) -> Notifications:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Notifications:
        return self

    async def __anext__(self) -> Item:
        item = await (await self._start()).get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop receiving (UNLISTEN channels nobody else needs)."""
        detached = self._release.detach() if self._release is not None else None
        if detached is not None:
            _, _, (runtime, listener, queue), _ = detached
            with contextlib.suppress(ConnectError):
                await asyncio.wrap_future(runtime.submit(listener.unsubscribe(queue)))


def notifications(*channels: str, buffer: int = 10_000) -> Notifications:
    """Notifications on channels as they arrive, for ``async for`` (and ``async with``).

    Runs on pgmagic's runtime, so notifications keep arriving while other
    cells run.  The LISTEN starts with the first ``await``: enter ``async
    with`` to be sure it is active before you send.  Iteration ends when the
    listener closes (``%pg disconnect``, unloading pgmagic).  Besides
    :class:`Notification` items it yields a :class:`Gap` (``item.kind ==
    "gap"``) whenever notifications may have been missed: after a reconnect,
    or when the consumer fell more than ``buffer`` items behind.
    Interrupting an ``await`` in a notebook lands only when the next item
    arrives (ipykernel #881).

    Parameters
    ----------
    *channels : str
        Channel names, exactly as sent (case-sensitive).
    buffer : int
        Items held for a slow consumer before the oldest are dropped.

    Returns
    -------
    Notifications
        An async iterator and async context manager.

    Raises
    ------
    OptionError
        No channel, a bad channel name, or a buffer under 1.

    Examples
    --------
    >>> async for n in pgmagic.notifications("orders"):  # doctest: +SKIP
    ...     print(n.channel, n.payload)
    >>> async with pgmagic.notifications("orders") as orders:  # doctest: +SKIP
    ...     await pgmagic.execute("INSERT INTO orders DEFAULT VALUES")
    ...     first = await anext(orders)
    """
    return Notifications(channels, buffer)


def notification_log() -> pd.DataFrame:
    """Everything the kernel received (up to ``PgMagics.notify_history``) as a DataFrame.

    Returns
    -------
    pandas.DataFrame
        Columns ``seq``, ``time`` (tz-aware UTC), ``kind`` (``"notification"``
        or ``"gap"``), ``channel``, ``pid``, ``payload``; a gap row carries
        its message in ``payload`` and no channel or pid.
        ``frame.attrs["dropped"]`` counts the items the bounded history dropped.

    Examples
    --------
    >>> pgmagic.notification_log().tail()  # doctest: +SKIP
    """
    return listener_for(_runtime()).log.to_frame()
