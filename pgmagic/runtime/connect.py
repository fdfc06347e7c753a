"""Opening connections: settings, codecs, and errors that never hold a password."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from pgmagic.errors import ConnectError
from pgmagic.runtime import dsn as dsn_module
from pgmagic.runtime import embedded


@dataclass
class Settings:
    """Connection settings, mirrored from the ``PgMagics`` configuration traits.

    Attributes
    ----------
    pool_min_size, pool_max_size : int
        Pool bounds; the pool serves the Python API and concurrent work.
    max_inactive_connection_lifetime : float
        Seconds an idle pool connection lives before it is closed.
    command_timeout : float or None
        Default statement timeout in seconds (client side, cancels on the server).
    init : callable or None
        ``async def init(conn)`` run on every new connection, after pgmagic's own
        codecs (use it for ``set_type_codec``).
    connect_timeout : float
        Seconds to wait for a connection.
    """

    pool_min_size: int = 0
    pool_max_size: int = 4
    max_inactive_connection_lifetime: float = 300.0
    command_timeout: float | None = None
    init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
    connect_timeout: float = 10.0


def _encode_json(value: Any) -> str:
    # A str is taken as JSON text already, as asyncpg does without a codec.
    return value if isinstance(value, str) else json.dumps(value)


async def install_codecs(conn: asyncpg.Connection) -> None:
    """Decode ``json`` and ``jsonb`` into Python values, as pgmagic shows them.

    Parameters
    ----------
    conn : asyncpg.Connection
    """
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=_encode_json, decoder=json.loads, format="text"
        )


@dataclass
class Connected:
    """A resolved target: where to connect, and the embedded server if it is one."""

    target: dsn_module.Target
    dsn: str | None
    embedded_server: embedded.EmbeddedServer | None = None
    announced: bool = False


def server_settings(dsn: str | None) -> dict[str, str]:
    """The server settings every pgmagic connection starts with.

    Parameters
    ----------
    dsn : str or None

    Returns
    -------
    dict
    """
    # Name our backends in pg_stat_activity, unless the DSN names them itself.
    if dsn and "application_name" in dsn:
        return {}
    return {"application_name": "pgmagic"}


def connect_error(connected: Connected, error: BaseException) -> ConnectError:
    """One line saying why a connection failed, without any part of the password.

    Parameters
    ----------
    connected : Connected
    error : BaseException

    Returns
    -------
    ConnectError
    """
    where = connected.target.describe()
    reason = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        reason = "no answer within PgMagics.connect_timeout; is the server up and reachable?"
    if connected.dsn:
        # asyncpg's messages can echo parts of the DSN; never let a password through.
        reason = reason.replace(connected.dsn, dsn_module.redact(connected.dsn))
        secret = dsn_module.password_of(connected.dsn)
        if secret:
            reason = reason.replace(secret, "***")
    return ConnectError(f"cannot connect to {where} (from {connected.target.source}): {reason}")
