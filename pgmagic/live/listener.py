"""LISTEN/NOTIFY: the listener connection, the bounded notification log, subscriptions.

One :class:`Listener` per runtime owns a dedicated connection opened with
:meth:`Runtime.connect`, never a pool member (the pool's reset runs
``UNLISTEN *``).  Every notification goes into the :class:`NotificationLog`
first; the log is bounded, and counts exactly what it drops.  Views (the feed
widget, the JupyterLab panel) are *sinks*: the listener asks them to pull from
the log, from the runtime's loop thread, so updates keep flowing while the
kernel is idle and while a cell is busy.

Updates are throttled on both edges: a notification that finds no update
within the last interval is shown at once, those that follow it within the
interval together at its end.  The interval is 8 ms, 25 ms while more than
two notifications per 8 ms come: each widget update resends its rows, so a
flood costs fewer, larger updates.  Rate refreshes (each second) and state
changes are shown at once and start no interval.

The listener's states (:class:`ListenerState`)::

    STOPPED ──first channel──▶ LISTENING ──connection lost──▶ RECONNECTING
       ▲                        │     ▲                          │
       └──no channel left────── ┘     └──LISTEN re-issued, gap───┘
                                          recorded in the log

Delivery check (:mod:`pgmagic.live.probe`): each new listener connection checks
that notifications reach it; through a transaction pooler they do not, and the
listener stops instead of claiming to listen.

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
import contextlib
import itertools
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence

import asyncpg

from pgmagic.errors import ConnectError, OptionError
from pgmagic.live.log import RATE_WINDOW, NotificationLog, check_channels, gap_message
from pgmagic.live.probe import delivers
from pgmagic.live.state import TRANSITIONS, ListenerState, Sink, Status, Subscriber
from pgmagic.runtime import dsn as dsn_module
from pgmagic.runtime.connect import enable_keepalive
from pgmagic.runtime.loop import Runtime

__all__ = [
    "Listener",
    "ListenerState",
    "Sink",
    "Status",
    "Subscriber",
    "gather_into",
    "listener_for",
    "listeners",
    "unlisten",
]

_logger = logging.getLogger("pgmagic")

#: Least seconds between two updates of a view (widget, panel), and under load.
BATCH_INTERVAL = 0.008
LOAD_INTERVAL = 0.025
_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0


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
        Least seconds between two updates of a view while notifications keep
        coming; the first after a quiet interval is shown at once.
    load_interval : float
        The interval while more than two notifications per ``batch_interval``
        come (at least ``batch_interval``).
    health_interval, health_timeout : float
        How often ``SELECT 1`` checks the connection, and how long it may take.
    keepalive : tuple of int
        TCP keepalive idle seconds, probe interval seconds and probe count.
    probe_timeout : float
        Seconds to wait for the delivery check's notification (module docstring).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        history: int = 10_000,
        batch_interval: float = BATCH_INTERVAL,
        load_interval: float = LOAD_INTERVAL,
        health_interval: float = 10.0,
        health_timeout: float = 5.0,
        keepalive: tuple[int, int, int] = (10, 5, 3),
        probe_timeout: float = 2.0,
    ) -> None:
        # Weak: the registry maps runtimes to listeners and must not keep them alive.
        self._runtime = weakref.ref(runtime)
        self.log = NotificationLog(history)
        if not 0 < batch_interval <= load_interval:
            raise ValueError(f"need 0 < {batch_interval=} <= {load_interval=}")
        self._batch_interval = batch_interval
        self._load_interval = load_interval
        self._interval = batch_interval
        self._arrived = 0  # notifications since the last flush: is it under load?
        self._health_interval = health_interval
        self._health_timeout = health_timeout
        self._keepalive = keepalive
        self._probe_timeout = probe_timeout
        #: Where to connect without ``--dsn`` (``PgMagics.listen_dsn``); None: the target.
        self.default_dsn: str | None = None
        # Where the current (or reconnecting) connection goes; None: the runtime's target.
        self._target: dsn_module.Target | None = None
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
        """Update the views at once after a quiet batch interval, else at the interval's end."""
        if self._flush_handle is not None or not self._sinks:
            return
        loop = self.runtime.loop
        delay = self._last_flush + self._interval - loop.time()
        if delay <= 0:
            # Soon rather than now: notifications asyncpg read together are
            # already queued ahead of this, so they leave in one update.
            self._flush_handle = loop.call_soon(self._flush)
        else:
            self._flush_handle = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        now = self.runtime.loop.time()
        # Two, not one: a sender catching up after a stall is no flood.
        loaded = self._arrived * self._batch_interval > 2 * (now - self._last_flush)
        self._interval = self._load_interval if loaded else self._batch_interval
        self._arrived = 0
        self._last_flush = now
        self._update_sinks()

    def _update_sinks(self) -> None:
        loop = self.runtime.loop
        status = self._status
        for sink in self._sinks:
            try:
                sink.update(self.log, status)
            except Exception:
                # One broken view (a closed comm) must not starve the others.
                _logger.exception("pgmagic: a notification view failed and was detached")
                self.remove_sink(sink)
        # Keep rates decaying to zero after a burst ends.
        if self._tick_handle is None and loop.time() - self._last_item < RATE_WINDOW + 1:
            self._tick_handle = loop.call_later(1.0, self._tick)

    def _tick(self) -> None:
        self._tick_handle = None
        if self._flush_handle is None:
            # No interval starts: a notification just after it still goes at once.
            self._update_sinks()

    def _set_state(self, state: ListenerState) -> None:
        if state is self._state:
            return
        if state not in TRANSITIONS[self._state]:
            raise RuntimeError(f"listener cannot go from {self._state.value} to {state.value}")
        self._state = state
        self._publish()
        # A state change is rare and worth showing at once, even a short
        # "reconnecting", with what a pending flush would have shown.
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._sinks:
            self._update_sinks()

    def _publish(self) -> None:
        self._status = Status(self._state, frozenset(self._wanted()), frozenset(self._listened))
        self._wake()
        if (gatherer := self._gatherer()) is not None:
            # Its views (the side panel) list this connection's channels too.
            gatherer._soon(gatherer._wake)

    def _gatherer(self) -> Listener | None:
        """The listener that gathers this one's notifications, if another does."""
        gatherer = _gatherer() if _gatherer is not None else None
        return gatherer if gatherer is not self else None

    def _wanted(self) -> set[str]:
        wanted = set(self._listened)
        for subscriber in self._subscribers:
            wanted |= subscriber.channels
        return wanted

    def _lock(self) -> asyncio.Lock:
        if self._op_lock is None:
            self._op_lock = asyncio.Lock()
        return self._op_lock

    async def listen(self, channels: Sequence[str], *, dsn: str | None = None) -> None:
        """LISTEN on channels for ``%pg listen`` (connects on first use).

        Parameters
        ----------
        channels : sequence of str
        dsn : str, optional
            Connect there instead of the target or :attr:`default_dsn`
            (``%pg listen --dsn``), e.g. past a transaction pooler.

        Raises
        ------
        ConnectError
            The first connection failed, or notifications do not arrive through
            it (a transaction pooler); nothing was started.
        OptionError
            ``dsn`` differs from where the listener already listens.
        """
        names = check_channels(channels)
        if dsn is not None:
            target = dsn_module.Target(dsn_module.normalize(dsn), "%pg listen --dsn")
            if self._state is not ListenerState.STOPPED and target != self._target:
                raise OptionError(
                    f"the listener already listens through {self._where()}; "
                    "run %pg unlisten --all first to listen through another DSN"
                )
            self._target = target
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
                if self._target is None and self.default_dsn:
                    url = dsn_module.normalize(self.default_dsn)
                    self._target = dsn_module.Target(url, "PgMagics.listen_dsn")
                conn = await self._connect()
                try:
                    await self._listen_all(conn, wanted)
                    if not await self._delivers(conn):
                        raise ConnectError(self._no_delivery())
                except BaseException:
                    self._forget(conn)
                    self._target = None  # the next start reads --dsn or listen_dsn afresh
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

    def _where(self) -> str:
        if self._target is not None:
            return self._target.describe()
        return self.runtime.describe_target()

    def _no_delivery(self) -> str:
        return (
            f"notifications do not arrive through {self._where()}, probably a transaction "
            "pooler such as pgbouncer: listen through a direct connection with %pg listen "
            '--dsn DIRECT_DSN CHANNEL ... or %config PgMagics.listen_dsn = "DIRECT_DSN"'
        )

    async def _open(self) -> asyncpg.Connection:
        if self._target is None:
            return await self.runtime.connect()
        return await self.runtime.connect_to(self._target)

    async def _delivers(self, conn: asyncpg.Connection) -> bool:
        return await delivers(conn, self._open, self._probe_timeout, self._where())

    async def _connect(self) -> asyncpg.Connection:
        conn = await self._open()
        enable_keepalive(conn, *self._keepalive)
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
        # The next start reads --dsn or PgMagics.listen_dsn afresh.
        self._target = None
        if conn is not None:
            conn.remove_termination_listener(self._on_terminated)
            try:
                await asyncio.wait_for(conn.close(), timeout=2)
            except (*_CONNECTION_LOST, asyncpg.PostgresError):
                conn.terminate()
        self._set_state(ListenerState.STOPPED)

    def _on_notify(self, conn: asyncpg.Connection, pid: int, channel: str, payload: str) -> None:
        if conn is not self._conn:
            return
        item = self.log.append(channel, pid, payload)
        self._last_alive = item.time
        for subscriber in self._subscribers:
            if channel in subscriber.channels:
                subscriber.push(item)
        self._arrived_now()
        if (gatherer := self._gatherer()) is not None:
            gatherer.gather(channel, pid, payload, self.runtime.connection_name())

    def gather(self, channel: str, pid: int, payload: str, connection: str) -> None:
        """Take in another connection's notification for the log's views, the side panel.

        Parameters
        ----------
        channel : str
        pid : int
        payload : str
        connection : str
            The name of the connection whose listener received it.
        """
        self.log.append(channel, pid, payload, connection)
        self._arrived_now()

    def _arrived_now(self) -> None:
        self._last_item = self.runtime.loop.time()
        self._arrived += 1
        self._wake()

    def _on_terminated(self, conn: asyncpg.Connection) -> None:
        if conn is self._conn and self._lost is not None:
            self._lost_at = time.time()
            self._lost.set()

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
                    delivers = await self._delivers(conn)
                except (ConnectError, *_CONNECTION_LOST, asyncpg.PostgresError):
                    self._forget(conn)
                    await asyncio.sleep(_backoff(attempt))
                    continue
                if not delivers:
                    self._forget(conn)
                    self._give_up(start)
                    return
                self._install(conn, wanted)
                end = time.time()
                self._last_alive = end
                gap = self.log.append_gap(start, end, gap_message(start, end))
                for subscriber in self._subscribers:
                    subscriber.push(gap)
                self._set_state(ListenerState.LISTENING)
                return

    def _give_up(self, start: float) -> None:
        """Stop after a reconnect whose notifications do not arrive (called holding the lock)."""
        message = self._no_delivery()
        _logger.warning("pgmagic: %s", message)
        self.runtime.note(f"pgmagic: stopped listening: {message}")
        gap = self.log.append_gap(start, time.time(), f"stopped listening: {message}")
        self._listened = []
        subscribers, self._subscribers = self._subscribers, ()
        for subscriber in subscribers:
            subscriber.push(gap)
            subscriber.end()
        # This runs in the supervisor itself: drop it instead of cancelling it.
        self._supervisor = None
        self._target = None
        self._set_state(ListenerState.STOPPED)


def _backoff(attempt: int) -> float:
    # Jitter keeps many kernels from hammering a restarting server in step.
    delay: float = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0 ** min(attempt, 16))
    return delay * random.uniform(0.5, 1.0)


_listeners: weakref.WeakKeyDictionary[Runtime, Listener] = weakref.WeakKeyDictionary()
_listeners_lock = threading.Lock()


# The side panel's listener, whose log also takes every other connection's notifications.
_gatherer: weakref.ref[Listener] | None = None


def gather_into(listener: Listener | None) -> None:
    """Have ``listener``'s log take in every other listener's notifications, too.

    Parameters
    ----------
    listener : Listener or None
        None stops gathering.
    """
    global _gatherer
    _gatherer = weakref.ref(listener) if listener is not None else None


def listeners() -> list[Listener]:
    """Every connection's listener that exists.

    Returns
    -------
    list of Listener
    """
    with _listeners_lock:
        return list(_listeners.values())


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
