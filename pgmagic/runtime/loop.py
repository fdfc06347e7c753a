"""The kernel-wide runtime: one asyncio loop on a daemon thread owns every asyncpg object.

Why a thread of our own: the kernel's loop does not run while a cell runs
synchronous code, interrupts of an ``await`` only land when it finishes
(ipykernel #881), and terminal IPython runs no loop between prompts.  A loop on a
daemon thread keeps listeners alive in all of those, and a magic that waits on it
can cancel on the server when Ctrl-C arrives.

Threads: the main (kernel) thread calls :meth:`Runtime.run`, which submits a
coroutine and waits; only the loop thread touches asyncpg objects.  Messages the
server sends while a statement runs (NOTICE, WARNING) and one-line notes of our
own travel through a thread-safe queue and are handed to the waiting thread.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import queue
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from pgmagic.errors import ConnectError
from pgmagic.runtime import dsn as dsn_module
from pgmagic.runtime import embedded
from pgmagic.runtime.connect import (
    KEEPALIVE,
    Connected,
    Settings,
    connect_error,
    enable_keepalive,
    install_codecs,
    is_pooler,
    opened_without_cache,
    refused_check_interval,
    server_settings,
    server_version,
    statement_cache_size,
)
from pgmagic.runtime.history import History
from pgmagic.runtime.messages import Message, MessageKind
from pgmagic.runtime.waiting import Running

if TYPE_CHECKING:
    from pgmagic.runtime.session import Session

__all__ = ["LoopThread", "Message", "Running", "Runtime", "Settings"]

T = TypeVar("T")


# What a failed connection attempt raises (besides ValueError for a bad DSN).
_CONNECT_ERRORS = (
    TimeoutError,
    OSError,
    OverflowError,  # a port outside 0-65535 reaches the socket call as such
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class LoopThread:
    """An asyncio loop running on a daemon thread of its own, until :meth:`stop`.

    Every runtime of a kernel shares one (see
    :class:`pgmagic.runtime.connections.Connections`): asyncpg objects must
    stay on the loop that made them, and a connection added later must not
    cost a thread.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="pgmagic-runtime", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for its thread (bounded); safe to call twice."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


class Runtime:
    """One database connection's target, pool and session, on a background loop.

    The kernel's runtimes (one per named connection, see
    :class:`pgmagic.runtime.connections.Connections`) share a loop thread;
    the magics and the Python API use the current one
    (:func:`pgmagic.runtime.connections.default_runtime`).

    Parameters
    ----------
    settings : Settings, optional
        Connection settings; read again whenever the pool is (re)created.
    thread : LoopThread, optional
        The loop to run on, left running by :meth:`close`; without one the
        runtime starts a loop thread of its own and stops it when it closes.
    name : str, optional
        The connection's name in ``%pg connections`` and the query history;
        without one, :meth:`connection_name` derives it from the target.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        thread: LoopThread | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.name = name
        self._owns_thread = thread is None
        self._thread = thread or LoopThread()
        self._loop = self._thread.loop
        self._messages: queue.SimpleQueue[Message] = queue.SimpleQueue()
        # Where messages go when a wait names no receiver (streams, exports,
        # loads): the front sets it per magic call, None under --quiet.
        self.printer: Callable[[Message], None] | None = None
        self._explicit_dsn: str | None = None
        # %pg connect --pooler: treat the target as a transaction pooler
        # whatever the detection says (a pooler that passes the real pid on).
        self._pooler_forced = False
        self._connected: Connected | None = None
        self._pool: asyncpg.Pool | None = None
        self._pool_settings: tuple[Any, ...] | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._session: Session | None = None
        self._closed = False
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._resources: weakref.WeakSet[Any] = weakref.WeakSet()
        self.history = History(note=self.note, connection_name=self.connection_name)
        atexit.register(self.close)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runtime's event loop (runs on its own daemon thread)."""
        return self._loop

    @property
    def has_connected(self) -> bool:
        """Whether a database target has been reached (completion never starts one)."""
        return self._connected is not None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the runtime loop from any thread.

        Parameters
        ----------
        coro : coroutine

        Returns
        -------
        concurrent.futures.Future
        """
        if self._closed:
            coro.close()
            raise ConnectError("pgmagic's runtime is closed; run %reload_ext pgmagic")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(
        self,
        coro: Coroutine[Any, Any, T],
        on_message: Callable[[Message], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> T:
        """Run a coroutine on the runtime loop and wait; Ctrl-C cancels it.

        Parameters
        ----------
        coro : coroutine
            The work to do (it may touch asyncpg objects).
        on_message : callable, optional
            Called in the waiting thread for each message (NOTICE, notes)
            while the coroutine runs and after it ends.
        on_tick : callable, optional
            Called in the waiting thread about every 50 ms while waiting
            (progress displays).

        Returns
        -------
        The coroutine's result.

        Raises
        ------
        QueryCancelled
            The user interrupted; the operation was cancelled on the server.
        """
        return self.start(coro).wait(on_message, on_tick)

    def start(self, coro: Coroutine[Any, Any, T]) -> Running[T]:
        """Start a coroutine on the runtime loop; wait for it later.

        For work the waiting thread does alongside the coroutine (feeding a
        COPY, say); :meth:`run` is ``start(coro).wait()``.

        Parameters
        ----------
        coro : coroutine

        Returns
        -------
        Running
        """
        if self._closed:
            coro.close()
            raise ConnectError("pgmagic's runtime is closed; run %reload_ext pgmagic")
        return Running(self, coro)

    def drain(self, on_message: Callable[[Message], None] | None) -> None:
        """Hand queued messages to ``on_message`` (or drop them if None).

        Parameters
        ----------
        on_message : callable or None
        """
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                return
            if on_message is not None:
                on_message(message)

    def post(self, message: Message) -> None:
        """Queue a message for the thread that waits on the runtime.

        Parameters
        ----------
        message : Message
        """
        self._messages.put(message)

    def note(self, text: str) -> None:
        """Queue one of our own one-line notes.

        Parameters
        ----------
        text : str
        """
        self.post(Message(MessageKind.INFO, text))

    def set_target(self, dsn: str | None, *, pooler: bool = False) -> None:
        """Connect to another database (``%pg connect``), keeping the old one on failure.

        The new target is tried first; only when a connection to it succeeds
        are the current session, pool and listeners closed (psql keeps the old
        connection the same way when a new one fails).

        Parameters
        ----------
        dsn : str or None
            A DSN, ``"embedded"``, or None to go back to the environment.
        pooler : bool
            Treat the target as a transaction pooler without detecting it
            (``%pg connect --pooler``): no named prepared statements.

        Raises
        ------
        ConnectError
            The new target cannot be reached; nothing changed.
        """
        target = dsn_module.resolve(dsn)
        self.run(self._switch(dsn, target, pooler))

    async def _switch(self, explicit: str | None, target: dsn_module.Target, pooler: bool) -> None:
        connected = await self._resolve(target, pooler)
        trial = await self._open(connected)
        await trial.close()
        await self._disconnect()
        self._explicit_dsn = explicit
        self._pooler_forced = pooler
        self._connected = connected

    def disconnect(self) -> None:
        """Close the session, the pool and every listener; the next use reconnects."""
        self.run(self._disconnect())

    async def _lock(self) -> asyncio.Lock:
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        return self._connect_lock

    async def target(self) -> Connected:
        """Resolve the target, starting the embedded server if it is the one."""
        if self._connected is not None:
            return self._connected
        async with await self._lock():
            if self._connected is None:
                target = dsn_module.resolve(self._explicit_dsn)
                self._connected = await self._resolve(target, self._pooler_forced)
            return self._connected

    async def _resolve(self, target: dsn_module.Target, pooler: bool = False) -> Connected:
        if not target.embedded:
            return Connected(target, target.dsn, pooler=True if pooler else None)
        server = await asyncio.to_thread(embedded.start)
        # The server package stops the server in an atexit hook; ours must run
        # first (atexit is last-in, first-out) so connections close cleanly.
        atexit.unregister(self.close)
        atexit.register(self.close)
        return Connected(target, server.dsn, server, pooler=False)

    async def connect(self) -> asyncpg.Connection:
        """Open a new connection to the target, with pgmagic's codecs and the init hook.

        Returns
        -------
        asyncpg.Connection

        Raises
        ------
        ConnectError
            The server could not be reached; the message never holds a password.
        """
        connected = await self.target()
        try:
            return await self._open(connected)
        except ConnectError:
            if connected.embedded_server is None:
                raise
        # The embedded server stopped under us (a reboot, pg_ctl stop): start it again.
        self._connected = None
        return await self._open(await self.target())

    async def connect_to(self, target: dsn_module.Target) -> asyncpg.Connection:
        """Open a connection to another database, set up as :meth:`connect` does.

        For a listener that must bypass a transaction pooler in front of the
        target (``%pg listen --dsn``).

        Parameters
        ----------
        target : pgmagic.runtime.dsn.Target
            Not embedded.

        Returns
        -------
        asyncpg.Connection

        Raises
        ------
        ConnectError
            The server could not be reached; the message never holds a password.
        """
        return await self._open(Connected(target, target.dsn))

    async def _open(self, connected: Connected) -> asyncpg.Connection:
        try:
            try:
                conn = await self._connect(connected)
            except asyncpg.PostgresError as error:
                if connected.check_interval is not None or not refused_check_interval(error):
                    raise
                connected.check_interval = False
                conn = await self._connect(connected)
        except _CONNECT_ERRORS as error:
            raise connect_error(connected, error) from None
        except ValueError:
            # asyncpg could not read the DSN; its message may quote part of it.
            raise ConnectError(
                f"cannot read the connection string {connected.target.describe()} "
                f"(from {connected.target.source}): write it as "
                "postgresql://user:password@host:port/dbname, with special characters "
                "in the password percent-encoded (@ as %40, : as %3A, / as %2F)"
            ) from None
        if connected.check_interval is None:
            connected.check_interval = True
        if connected.pooler is None:
            try:
                connected.pooler = await is_pooler(conn, self.settings.connect_timeout)
            except BaseException as error:
                conn.terminate()
                if isinstance(error, _CONNECT_ERRORS):
                    raise connect_error(connected, error) from None
                raise
            if not connected.pooler:
                # A direct connection: reopen with the statement cache (once per target).
                conn.terminate()
                return await self._open(connected)
        if connected.pooler is not False:
            opened_without_cache(conn)
        conn.add_log_listener(self._on_log)
        try:
            await self._setup(conn)
        except BaseException:
            conn.terminate()
            raise
        server = connected.embedded_server
        if server is not None and server.first_in_process and not connected.announced:
            connected.announced = True
            self.note(
                f"pgmagic: using embedded PostgreSQL {server_version(conn)} "
                f"(data in {server.data_dir}, started in {server.startup_seconds:.1f} s)"
            )
        return conn

    async def _connect(self, connected: Connected) -> asyncpg.Connection:
        return await asyncpg.connect(
            connected.dsn,
            timeout=self.settings.connect_timeout,
            command_timeout=self.settings.command_timeout,
            server_settings=server_settings(connected),
            **statement_cache_size(connected),
        )

    def _on_log(self, conn: asyncpg.Connection, message: Any) -> None:
        # NOTICE and WARNING from any of our connections reach the cell that waits.
        severity = getattr(message, "severity", None) or "NOTICE"
        lines = [f"{severity}:  {message.message}"]
        for attribute, label in (("detail", "DETAIL"), ("hint", "HINT")):
            value = getattr(message, attribute, None)
            if value:
                lines.append(f"{label}:  {value}")
        self.post(Message(MessageKind.SERVER, "\n".join(lines), severity))

    def attach_log(self, conn: asyncpg.Connection) -> None:
        """Send ``conn``'s NOTICEs and WARNINGs to the cell that waits.

        Parameters
        ----------
        conn : asyncpg.Connection
            A pool connection; call :meth:`detach_log` before releasing it
            (asyncpg warns about listeners left on released connections).
        """
        conn.add_log_listener(self._on_log)

    def detach_log(self, conn: asyncpg.Connection) -> None:
        """Undo :meth:`attach_log` (harmless if the connection is gone).

        Parameters
        ----------
        conn : asyncpg.Connection
        """
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.remove_log_listener(self._on_log)

    @contextlib.asynccontextmanager
    async def acquire(self, *, notices: bool = True) -> AsyncIterator[asyncpg.Connection]:
        """A pool connection whose NOTICEs reach the cell that waits.

        Parameters
        ----------
        notices : bool
            False for background jobs: no cell waits for their NOTICEs.

        Yields
        ------
        asyncpg.Connection
        """
        pool = await self.pool()
        try:
            conn = await pool.acquire()
        except _CONNECT_ERRORS as error:
            # A new pool connection that could not open: connect_timeout, not
            # the command timeout a TimeoutError would otherwise be taken for.
            raise connect_error(await self.target(), error) from None
        if notices:
            self.attach_log(conn)
        try:
            yield conn
        finally:
            if notices:
                self.detach_log(conn)
            await pool.release(conn)

    async def _setup(self, conn: asyncpg.Connection) -> None:
        enable_keepalive(conn, *KEEPALIVE)
        await install_codecs(conn)
        if self.settings.init is not None:
            try:
                await self.settings.init(conn)
            except Exception as error:
                # The user's hook: one line, and no frame whose locals hold the DSN.
                raise ConnectError(
                    f"PgMagics.init failed on a new connection: {type(error).__name__}: {error}"
                ) from None

    async def pool(self) -> asyncpg.Pool:
        """The connection pool, created on first use and rebuilt if settings changed.

        Returns
        -------
        asyncpg.Pool
        """
        wanted = (
            self.settings.pool_min_size,
            self.settings.pool_max_size,
            self.settings.max_inactive_connection_lifetime,
            self.settings.command_timeout,
            self.settings.init,
        )
        if self._pool is not None and self._pool_settings == wanted:
            return self._pool
        connected = await self.target()  # takes the lock itself; asyncio locks do not nest
        async with await self._lock():
            if connected.check_interval is None or connected.pooler is None:
                # Learn whether the server takes the startup settings, and
                # whether a pooler answers, before a pool of connections asks
                # for them: once, under the lock, or a burst of first calls
                # would each open a trial connection.
                await (await self._open(connected)).close()
            if self._pool is not None and self._pool_settings != wanted:
                old, self._pool = self._pool, None
                await _close_pool(old)
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        connected.dsn,
                        min_size=self.settings.pool_min_size,
                        max_size=self.settings.pool_max_size,
                        max_inactive_connection_lifetime=self.settings.max_inactive_connection_lifetime,
                        command_timeout=self.settings.command_timeout,
                        timeout=self.settings.connect_timeout,
                        init=self._setup,
                        server_settings=server_settings(connected),
                        **statement_cache_size(connected),
                    )
                except (
                    TimeoutError,
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as error:
                    raise connect_error(connected, error) from None
                self._pool_settings = wanted
            return self._pool

    async def session(self) -> Session:
        """The sticky session (created on first use), reconnected if it was lost.

        Returns
        -------
        pgmagic.session.Session
        """
        from pgmagic.runtime.session import Session

        if self._session is None:
            self._session = Session(self)
        await self._session.ensure_connected()
        return self._session

    async def carried_settings(self) -> list[tuple[str, str]]:
        """The session's settings that pool work should use too (see Session)."""
        if self._session is None:
            return []
        return await self._session.carried_settings()

    async def apply_carried_settings(self, conn: asyncpg.Connection) -> None:
        """Make the session's search_path and time zone local to ``conn``'s transaction.

        Parameters
        ----------
        conn : asyncpg.Connection
            A pool connection inside a transaction.
        """
        for name, value in await self.carried_settings():
            await conn.execute(f"SELECT set_config('{name}', $1, true)", value)

    @property
    def time_zone(self) -> str | None:
        """The session's ``TimeZone``, as the server last reported it (None before a session)."""
        return self._session.time_zone if self._session is not None else None

    async def carry_time_zone(self, conn: asyncpg.Connection) -> None:
        """Give a pool connection the session's time zone, for work outside a transaction.

        The Python API and refreshes run statements that may not run inside a
        transaction block (``VACUUM``), so the setting is the connection's
        own, not a transaction's; the pool resets it (``RESET ALL``) when the
        connection is released.  No round trip unless the zones differ: the
        server reports each connection's zone.

        Parameters
        ----------
        conn : asyncpg.Connection
            A pool connection, just acquired.
        """
        zone = self.time_zone
        if zone and getattr(conn.get_settings(), "TimeZone", None) != zone:
            await conn.fetchval("SELECT set_config('TimeZone', $1, false)", zone)

    def add_closer(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Register a coroutine function to run on the loop when the runtime closes.

        Parameters
        ----------
        closer : callable returning an awaitable
            Listeners, streams and other features that hold connections use this.
        """
        self._closers.append(closer)

    def track(self, resource: Any) -> None:
        """Close ``resource`` (an object with ``async aclose()``) when the runtime closes.

        Held weakly: a resource collected earlier closes itself.

        Parameters
        ----------
        resource : object
        """
        self._resources.add(resource)

    async def _disconnect(self) -> None:
        for resource in list(self._resources):
            with contextlib.suppress(Exception):
                await resource.aclose()
        closers, self._closers = self._closers, []
        for closer in closers:
            # One feature's failure to close must not keep the others open.
            with contextlib.suppress(Exception):
                await closer()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await _close_pool(pool)
        self._connected = None

    def pool_if_open(self) -> asyncpg.Pool | None:
        """The pool if it has been created, without creating it."""
        return self._pool

    def behind_pooler(self) -> bool:
        """Whether the connected target is a pooler (detected, or ``--pooler``)."""
        return self._connected is not None and self._connected.pooler is True

    def describe_target(self) -> str:
        """A password-free description of where the runtime connects."""
        if self._connected is not None:
            return self._connected.target.describe()
        return dsn_module.resolve(self._explicit_dsn).describe()

    def connection_name(self) -> str:
        """The connection's name: the one it was given, else ``embedded`` or ``default``.

        Without a name this is the connection ``%pg connect DSN`` retargets,
        named after whether it uses the embedded server.
        """
        if self.name is not None:
            return self.name
        if self._connected is not None:
            embedded_target = self._connected.target.embedded
        else:
            try:
                embedded_target = dsn_module.resolve(self._explicit_dsn).embedded
            except ConnectError:
                embedded_target = False  # a target that no longer resolves is still ours
        return dsn_module.EMBEDDED if embedded_target else "default"

    def session_if_open(self) -> Session | None:
        """The session if it has been created, without creating it."""
        return self._session

    def close(self) -> None:
        """Close every connection, and the loop thread if it is the runtime's own.

        Safe to call twice.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        if self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._disconnect(), self._loop)
            with contextlib.suppress(concurrent.futures.TimeoutError, Exception):
                future.result(timeout=10)
        if self._owns_thread:
            self._thread.stop()
        # After the connections: a cancelled statement is recorded as it ends.
        self.history.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<pgmagic.Runtime {self.connection_name()} {state} target={self.describe_target()!r}>"
        )


async def _close_pool(pool: asyncpg.Pool) -> None:
    # Bounded: over a dead network a graceful close would wait forever.
    try:
        await asyncio.wait_for(pool.close(), timeout=5)
    except (TimeoutError, OSError, asyncpg.InterfaceError):
        pool.terminate()
