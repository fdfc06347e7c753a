"""The sticky session connection ``%%pg`` cells share.

``%%pg`` cells share one connection, so ``SET``, temp tables, ``BEGIN`` in one
cell and ``COMMIT`` in a later one, and savepoints behave as in psql.  What a
statement does on it is decided above (:func:`pgmagic.results.statement.run_statement`);
the session runs statements in order, one cell at a time, tracks the
transaction state, and reopens a lost connection with a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from pgmagic.errors import TransactionLost, blame
from pgmagic.runtime.connect import server_version

if TYPE_CHECKING:
    from pgmagic.runtime.loop import Runtime

__all__ = ["Session", "Step", "TransactionState"]

# How long a cancelled statement may take to end before its connection is given up.
_SETTLE_SECONDS = 10.0

S = TypeVar("S")
R = TypeVar("R")
T = TypeVar("T")
# How one statement runs on a connection: given by the layer above.
Step = Callable[[asyncpg.Connection, S], Awaitable[R]]


class TransactionState(enum.Enum):
    """Transaction state of the session, as pgAdmin and psql's prompt show it."""

    IDLE = "idle"
    IN_TRANSACTION = "in transaction"
    FAILED = "failed (ROLLBACK needed)"


class Session:
    """The sticky connection ``%%pg`` cells share.

    Parameters
    ----------
    runtime : Runtime
        Owner of the loop and the connection target.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.conn: asyncpg.Connection | None = None
        self._failed = False
        # Set when the connection died inside a transaction; the next cell is refused.
        self._lost_transaction = False
        # Whether the user's transaction was open at the last statement boundary:
        # the connection's own status may be pgmagic's BEGIN around a cursor.
        self._user_transaction = False
        self._identity: tuple[str, str] = ("", "")
        # One statement at a time on the session: API calls with session=True
        # may be awaited while another is still running.
        self._busy = asyncio.Lock()

    @property
    def state(self) -> TransactionState:
        """Idle, in a transaction, or in a failed transaction."""
        if self.conn is None or self.conn.is_closed() or not self.conn.is_in_transaction():
            return TransactionState.IDLE
        return TransactionState.FAILED if self._failed else TransactionState.IN_TRANSACTION

    async def ensure_connected(self) -> asyncpg.Connection:
        """Connect on first use; reconnect, with a note, after the connection was lost.

        Returns
        -------
        asyncpg.Connection
        """
        if self.conn is not None and not self.conn.is_closed():
            return self.conn
        lost = self.conn is not None
        if self.conn is not None:
            self._lost_transaction |= self._user_transaction
        self._user_transaction = False
        conn = await self._runtime.connect()
        row = await conn.fetchrow("SELECT current_database(), session_user")
        self._identity = (row[0], row[1])
        self.conn = conn
        self._failed = False
        if lost and not self._lost_transaction:
            self._runtime.note(
                "pgmagic: the session connection was lost and has been reopened; "
                "SET values and temp tables were reset"
            )
        return conn

    def _refuse_after_lost_transaction(self) -> None:
        if self._lost_transaction:
            self._lost_transaction = False
            raise TransactionLost()

    async def run(
        self,
        statements: Sequence[S],
        step: Step[S, R],
        on_result: Callable[[R], None] | None = None,
    ) -> list[R]:
        """Run statements in order on the session; stop at the first error.

        Parameters
        ----------
        statements : sequence
            What ``step`` takes, one per statement.
        step : callable
            ``await step(conn, statement)`` runs one statement.
        on_result : callable, optional
            Called on the loop thread with each statement's result.

        Returns
        -------
        list
            What ``step`` returned, per statement.

        Raises
        ------
        asyncpg.PostgresError
            Blamed on the failing statement (:func:`pgmagic.errors.blame`).
        """
        async with self._busy:
            return await self._run(statements, step, on_result)

    async def _run(
        self,
        statements: Sequence[S],
        step: Step[S, R],
        on_result: Callable[[R], None] | None,
    ) -> list[R]:
        conn = await self.ensure_connected()
        self._refuse_after_lost_transaction()
        results: list[R] = []

        async def first_step(c: asyncpg.Connection) -> R:
            return await step(c, statements[0])

        for index, statement in enumerate(statements):
            try:
                if index == 0:
                    conn, result = await self._begin(conn, first_step)
                else:
                    result = await step(conn, statement)
            except asyncpg.PostgresError as error:
                self._failed = self._user_transaction = _in_transaction(
                    conn, self._user_transaction
                )
                blame(error, statement)
                raise
            except (asyncio.CancelledError, TimeoutError):
                await asyncio.shield(self._settle(conn))
                raise
            self._failed = False
            self._user_transaction = _in_transaction(conn, self._user_transaction)
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results

    async def _begin(
        self, conn: asyncpg.Connection, first: Callable[[asyncpg.Connection], Awaitable[T]]
    ) -> tuple[asyncpg.Connection, T]:
        """Run the first command of some work; reopen a connection that died while idle."""
        try:
            return conn, await first(conn)
        except (asyncpg.InternalClientError, asyncpg.InterfaceError) as error:
            # The connection died while idle and asyncpg noticed only now,
            # before sending anything (its protocol refuses to start, or
            # reports the connection closed): reopen it and run the command
            # there, unless a transaction died with it.
            died_idle = isinstance(error, asyncpg.InternalClientError) or conn.is_closed()
            # Inside the user's transaction it is gone either way, also when
            # asyncpg reports the death on this command before closing.
            lost = self._user_transaction and isinstance(error, asyncpg.ConnectionDoesNotExistError)
            if not (died_idle or lost):
                raise
            self._lost_transaction |= self._user_transaction
            conn.terminate()
            conn = await self.ensure_connected()
            self._refuse_after_lost_transaction()
            return conn, await first(conn)

    async def _settle(self, conn: asyncpg.Connection) -> None:
        # After a cancel, asyncpg sends the cancel request in the background; the
        # next query waits until the server has acknowledged it, so the backend
        # is idle (or idle in a failed transaction, where this query fails
        # harmlessly) when the cell ends.  No answer within the command timeout
        # (a dead network): the connection is given up, and the next cell opens
        # a new one, or reports the transaction lost with it.
        timeout = min(_SETTLE_SECONDS, self._runtime.settings.command_timeout or _SETTLE_SECONDS)
        try:
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=timeout)
        except asyncpg.PostgresError:
            pass
        except (TimeoutError, asyncpg.InterfaceError, OSError):
            conn.terminate()
        self._failed = self._user_transaction = _in_transaction(conn, self._user_transaction)

    @property
    def time_zone(self) -> str | None:
        """The session's ``TimeZone`` as the server last reported it (no round trip)."""
        conn = self.conn
        if conn is None or conn.is_closed():
            return None
        return getattr(conn.get_settings(), "TimeZone", None)

    async def carried_settings(self) -> list[tuple[str, str]]:
        """Settings that work on other connections should share with the session.

        Streams and exports run on pool connections; without the session's
        ``search_path`` and time zone, ``SET search_path`` in a cell would not
        apply to them.  The time zone is known without asking (the server
        reports each change); ``search_path`` is read from the session when
        it is free to answer.

        Returns
        -------
        list of (name, value)
        """
        zone = self.time_zone
        carried = [("TimeZone", zone)] if zone else []
        conn = self.conn
        if conn is None or conn.is_closed() or self.state is TransactionState.FAILED:
            return carried
        if self._busy.locked():
            return carried
        path = await conn.fetchval("SELECT current_setting('search_path')")
        return [("search_path", path), *carried]

    async def private_state(self) -> tuple[list[str], list[str], bool] | None:
        """What only the session has, which work on pool connections does not see.

        Returns
        -------
        (list of str, list of str, bool) or None
            The session's temp relations, the settings a ``SET`` changed in
            it (beyond ``search_path`` and ``TimeZone``, which pool work
            carries over), and whether a transaction is open.  None when
            the session is not open, busy, or in a failed transaction.
        """
        conn = self.conn
        if conn is None or conn.is_closed() or self._busy.locked():
            return None
        if self.state is TransactionState.FAILED:
            return None
        async with self._busy:
            row = await conn.fetchrow(_PRIVATE_STATE)
        return list(row[0]), list(row[1]), self._user_transaction or conn.is_in_transaction()

    @contextlib.asynccontextmanager
    async def atomic(self, *, undo: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """All-or-nothing work on the session: a transaction, or a savepoint inside one.

        Inside a transaction the user opened, a savepoint keeps their
        transaction alive if this work fails; otherwise the work gets a
        transaction of its own.  Either way the session is left as it was
        found when the work fails or is cancelled.

        Parameters
        ----------
        undo : bool
            Roll the work back when it succeeds too (``EXPLAIN ANALYZE``
            measures a statement; it must not change anything).

        Yields
        ------
        asyncpg.Connection
        """
        async with self._busy:
            conn = await self.ensure_connected()
            self._refuse_after_lost_transaction()

            async def start(c: asyncpg.Connection) -> bool:
                nested: bool = c.is_in_transaction()
                await c.execute("SAVEPOINT pgmagic_atomic" if nested else "BEGIN")
                return nested

            conn, nested = await self._begin(conn, start)
            # One message, so that a cancel cannot fall between its two commands.
            rollback = (
                "ROLLBACK TO SAVEPOINT pgmagic_atomic; RELEASE SAVEPOINT pgmagic_atomic"
                if nested
                else "ROLLBACK"
            )
            try:
                yield conn
            except BaseException:
                self._failed = False
                if not conn.is_closed():
                    # Shielded: cancelled work must still undo what it did.
                    with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
                        await asyncio.shield(conn.execute(rollback))
                raise
            if undo:
                await asyncio.shield(conn.execute(rollback))
            else:
                await conn.execute("RELEASE SAVEPOINT pgmagic_atomic" if nested else "COMMIT")

    async def status(self) -> dict[str, Any]:
        """Facts for ``%pg status``.

        Returns
        -------
        dict
            server version, database, user, backend pid, transaction state,
            pool size and idle count.
        """
        async with self._busy:
            conn = await self.ensure_connected()
            # Ask the server: a backend killed since the last cell is noticed
            # here, so the facts below are about the connection that is.
            try:
                await asyncio.wait_for(conn.execute("SELECT 1"), timeout=5)
            except asyncpg.PostgresError as error:
                # A failed transaction answers with an error and is still there;
                # a shutdown (57P) or connection error (08) means it is not.
                if (error.sqlstate or "")[:3] in ("57P", "080", "08P"):
                    conn.terminate()
            except (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError):
                # asyncpg may report the death before the close, or, when the
                # server's goodbye arrived while idle, refuse to start the query.
                conn.terminate()
            if conn.is_closed():
                conn = await self.ensure_connected()
        info: dict[str, Any] = {
            "target": self._runtime.describe_target(),
            "server": f"PostgreSQL {server_version(conn)}",
            "database": self._identity[0],
            "user": self._identity[1],
            "backend pid": conn.get_server_pid(),
            "transaction": self.state.value,
        }
        if self._lost_transaction:
            info["transaction"] = (
                "lost with the old connection, nothing of it committed (the next cell says so)"
            )
        if self._runtime.behind_pooler():
            info["backend pid"] = "one per transaction (a pooler chooses it)"
            info["pooler"] = (
                "yes: no named prepared statements; SET, temp tables and LISTEN "
                "do not outlive a transaction"
            )
        pool = self._runtime.pool_if_open()
        if pool is None:
            info["pool"] = "not started (opens on first API call)"
        else:
            info["pool"] = (
                f"{pool.get_size()} open, {pool.get_idle_size()} idle, max {pool.get_max_size()}"
            )
        return info

    async def close(self) -> None:
        """Close the session connection (the server ends any open transaction)."""
        conn, self.conn = self.conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                conn.terminate()


def _in_transaction(conn: asyncpg.Connection, unknown: bool = False) -> bool:
    """Whether the server's last word on ``conn`` was "in a transaction".

    After our own BEGIN (a cursor, a COPY with bound values) this is ours; read
    it at statement boundaries only.  A connection asyncpg aborted has no
    protocol left to ask: then ``unknown``.
    """
    if conn.is_closed():
        return unknown
    try:
        return bool(conn.is_in_transaction())
    except AttributeError:
        return unknown


_PRIVATE_STATE = """
SELECT
  ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c
        WHERE c.relnamespace = pg_catalog.pg_my_temp_schema() ORDER BY 1),
  ARRAY(SELECT s.name FROM pg_catalog.pg_settings s
        WHERE s.source = 'session' AND s.name NOT IN ('TimeZone', 'search_path') ORDER BY 1)
"""
