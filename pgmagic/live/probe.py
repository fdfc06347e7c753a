"""The listener's delivery check: whether notifications reach a connection at all.

A transaction pooler (pgbouncer) lends the LISTENing backend to other clients,
so notifications never arrive.  The connection LISTENs on a private channel and
notifies it itself (one round trip).  A sender pid other than the connection's
own means a pooler rewrote the backend key; a same-backend notification then
proves nothing, so a second connection sends one.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import asyncpg

from pgmagic.errors import ConnectError


async def delivers(
    conn: asyncpg.Connection,
    open_other: Callable[[], Awaitable[asyncpg.Connection]],
    timeout: float,
    where: str,
) -> bool:
    """Whether a notification sent to a private channel reaches ``conn``.

    Parameters
    ----------
    conn : asyncpg.Connection
        The listener's connection.
    open_other : callable
        Opens a second connection to the same place, for the pooler case.
    timeout : float
        Seconds to wait for each notification.
    where : str
        The connection's target, password-free, for the error.

    Returns
    -------
    bool

    Raises
    ------
    ConnectError
        ``conn`` closed while waiting.
    """
    pid = conn.get_server_pid()
    channel = f"pgmagic_probe_{pid & 0xFFFFFFFF}_{secrets.token_hex(4)}"
    arrived: asyncio.Queue[int] = asyncio.Queue()

    def on_probe(conn: object, sender: int, channel: str, payload: str) -> None:
        arrived.put_nowait(sender)

    # Simple query, no parameters: a transaction pooler may lose prepared statements.
    notify = f"SELECT pg_notify('{channel}', '')"
    await conn.add_listener(channel, on_probe)
    try:
        await conn.execute(notify)
        try:
            sender = await asyncio.wait_for(arrived.get(), timeout)
            if sender == pid:
                return True
            other = await open_other()
            try:
                await other.execute(notify)
            finally:
                other.terminate()  # no graceful close: it must not wait on a dead peer
            await asyncio.wait_for(arrived.get(), timeout)
        except TimeoutError:
            if conn.is_closed():
                raise ConnectError(f"lost the listener connection to {where}") from None
            return False
        return True
    finally:
        if not conn.is_closed():
            await conn.remove_listener(channel, on_probe)
