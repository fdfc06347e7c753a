"""The sticky session connection, and how one statement runs on any connection.

``%%pg`` cells share one connection, so ``SET``, temp tables, ``BEGIN`` in one
cell and ``COMMIT`` in a later one, and savepoints behave as in psql.  Every
statement is prepared first (Parse/Describe), which gives the column types even
for a 0-row result, then executed with its bound values.

Prepared statements are cached per session, keyed by SQL text, but only used
outside transaction blocks: a stale cached plan ("cached plan must not change
result type") is then a harmless error we retry once, whereas inside a
transaction it would abort the user's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg

from pgmagic.frames import Column
from pgmagic.params import BoundStatement
from pgmagic.runtime import Message, MessageKind

if TYPE_CHECKING:
    from pgmagic.runtime import Runtime

__all__ = ["Session", "StatementResult", "TransactionState", "execute"]

_CACHE_SIZE = 100
# OIDs below this are built-in types, whose pandas mapping is fixed in frames.py.
_FIRST_USER_OID = 16384


class TransactionState(enum.Enum):
    """Transaction state of the session, as pgAdmin and psql's prompt show it."""

    IDLE = "idle"
    IN_TRANSACTION = "in transaction"
    FAILED = "failed (ROLLBACK needed)"


@dataclass(slots=True)
class StatementResult:
    """What one statement returned.

    Attributes
    ----------
    status : str
        The command tag, e.g. ``SELECT 3``, ``INSERT 0 1``, ``CREATE TABLE``.
    columns : list of Column or None
        Result columns, or None when the statement returns no rows.
    records : list
        Rows as asyncpg Records (empty when ``columns`` is None).
    elapsed : float
        Seconds from sending the statement to receiving the last row.
    """

    status: str
    columns: list[Column] | None
    records: list[Any] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def returns_rows(self) -> bool:
        """Whether the statement has a row description (SELECT, RETURNING, ...)."""
        return self.columns is not None


class _Categories:
    """``pg_type.typcategory`` of non-built-in types, cached per connection."""

    def __init__(self) -> None:
        self._known: dict[int, str] = {}

    async def columns(self, conn: asyncpg.Connection, attributes: Sequence[Any]) -> list[Column]:
        unknown = {
            a.type.oid for a in attributes if a.type.oid >= _FIRST_USER_OID
        } - self._known.keys()
        if unknown:
            rows = await conn.fetch(
                "SELECT oid::int8, typcategory::text FROM pg_catalog.pg_type "
                "WHERE oid = any($1::oid[])",
                list(unknown),
            )
            self._known.update({r[0]: r[1] for r in rows})
        return [
            Column(a.name, a.type.oid, a.type.name, self._known.get(a.type.oid, ""))
            for a in attributes
        ]


def _is_stale(error: BaseException) -> bool:
    return isinstance(
        error, asyncpg.InvalidCachedStatementError | asyncpg.InvalidSQLStatementNameError
    )


async def _prepare_and_fetch(
    conn: asyncpg.Connection,
    bound: BoundStatement,
    timeout: float | None,
    cache: OrderedDict[str, Any] | None,
) -> tuple[Any, list[Any]]:
    if cache is not None:
        stmt = cache.get(bound.sql)
        if stmt is not None:
            cache.move_to_end(bound.sql)
            try:
                return stmt, await stmt.fetch(*bound.args, timeout=timeout)
            except asyncpg.PostgresError as error:
                if not _is_stale(error):
                    raise
                cache.clear()
    stmt = await conn.prepare(bound.sql, timeout=timeout)
    if cache is not None:
        cache[bound.sql] = stmt
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return stmt, await stmt.fetch(*bound.args, timeout=timeout)


async def execute(
    conn: asyncpg.Connection,
    bound: BoundStatement,
    *,
    timeout: float | None = None,
    cache: OrderedDict[str, Any] | None = None,
    categories: _Categories | None = None,
) -> StatementResult:
    """Prepare and run one bound statement on a connection.

    Parameters
    ----------
    conn : asyncpg.Connection
    bound : BoundStatement
        SQL with ``$n`` placeholders and the values.
    timeout : float, optional
        Seconds before the statement is cancelled on the server.
    cache : OrderedDict, optional
        Prepared statements by SQL text; used only outside transactions.
    categories : optional
        Type-category cache for this connection.

    Returns
    -------
    StatementResult

    Raises
    ------
    asyncpg.PostgresError
        The server rejected the statement; the error keeps its asyncpg class.
    """
    started = time.perf_counter()
    use_cache = cache is not None and not conn.is_in_transaction()
    stmt, records = await _prepare_and_fetch(conn, bound, timeout, cache if use_cache else None)
    attributes = stmt.get_attributes()
    columns = None
    if attributes or records:
        columns = await (categories or _Categories()).columns(conn, attributes)
    return StatementResult(
        stmt.get_statusmsg() or "", columns, records, time.perf_counter() - started
    )


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
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._categories = _Categories()
        self._failed = False
        self._identity: tuple[str, str] = ("", "")

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
        conn = await self._runtime.connect()
        conn.add_log_listener(self._on_log)
        row = await conn.fetchrow("SELECT current_database(), session_user")
        self._identity = (row[0], row[1])
        self.conn = conn
        self._cache.clear()
        self._categories = _Categories()
        self._failed = False
        if lost:
            self._runtime.note(
                "pgmagic: the session connection was lost and has been reopened; "
                "SET values, temp tables and any open transaction were reset"
            )
        return conn

    def _on_log(self, conn: asyncpg.Connection, message: Any) -> None:
        severity = getattr(message, "severity", None) or "NOTICE"
        lines = [f"{severity}:  {message.message}"]
        for attribute, label in (("detail", "DETAIL"), ("hint", "HINT")):
            value = getattr(message, attribute, None)
            if value:
                lines.append(f"{label}:  {value}")
        self._runtime.post(Message(MessageKind.SERVER, "\n".join(lines), severity))

    async def run(
        self,
        statements: Sequence[BoundStatement],
        *,
        on_result: Callable[[StatementResult, bool], None] | None = None,
        timeout: float | None = None,
    ) -> list[StatementResult]:
        """Run statements in order on the session; stop at the first error.

        Parameters
        ----------
        statements : sequence of BoundStatement
        on_result : callable, optional
            Called on the loop thread after each statement with the result and
            whether it was the last statement.
        timeout : float, optional
            Per-statement timeout in seconds.

        Returns
        -------
        list of StatementResult

        Raises
        ------
        asyncpg.PostgresError
            With ``pgmagic_statement`` set to the failing :class:`BoundStatement`.
        """
        conn = await self.ensure_connected()
        results: list[StatementResult] = []
        for index, bound in enumerate(statements):
            try:
                try:
                    result = await self._execute(conn, bound, timeout)
                except (asyncpg.InternalClientError, asyncpg.InterfaceError) as error:
                    # The connection died while idle and asyncpg noticed only now,
                    # before sending anything (its protocol refuses to start, or
                    # reports the connection closed): reopen it and run the
                    # statement there.
                    broken = isinstance(error, asyncpg.InternalClientError) or conn.is_closed()
                    if index > 0 or not broken:
                        raise
                    conn.terminate()
                    conn = await self.ensure_connected()
                    result = await self._execute(conn, bound, timeout)
            except asyncpg.PostgresError as error:
                self._failed = conn.is_in_transaction()
                error.pgmagic_statement = bound
                raise
            except (asyncio.CancelledError, TimeoutError):
                self._failed = conn.is_in_transaction()
                await asyncio.shield(self._settle(conn))
                raise
            self._failed = False
            results.append(result)
            if on_result is not None:
                on_result(result, index == len(statements) - 1)
        return results

    async def _execute(
        self, conn: asyncpg.Connection, bound: BoundStatement, timeout: float | None
    ) -> StatementResult:
        return await execute(
            conn, bound, timeout=timeout, cache=self._cache, categories=self._categories
        )

    async def _settle(self, conn: asyncpg.Connection) -> None:
        # After a cancel, asyncpg sends the cancel request in the background; the
        # next query waits until the server has acknowledged it, so the backend
        # is idle (or idle in a failed transaction, where this query fails
        # harmlessly) when the cell ends.
        with contextlib.suppress(
            TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError
        ):
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=10)
        self._failed = conn.is_in_transaction()

    async def status(self) -> dict[str, Any]:
        """Facts for ``%pg status``.

        Returns
        -------
        dict
            server version, database, user, backend pid, transaction state,
            pool size and idle count.
        """
        conn = await self.ensure_connected()
        version = conn.get_server_version()
        info: dict[str, Any] = {
            "target": self._runtime.describe_target(),
            "server": f"PostgreSQL {version.major}.{version.minor}",
            "database": self._identity[0],
            "user": self._identity[1],
            "backend pid": conn.get_server_pid(),
            "transaction": self.state.value,
        }
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
        self._cache.clear()
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                conn.terminate()
