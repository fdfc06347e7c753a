"""Opening connections: settings, codecs, and errors that never hold a password."""

from __future__ import annotations

import datetime
import json
import socket
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

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


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # The digits as given (1.10 stays 1.10), as a JSON number.
        return orjson.Fragment(str(value)) if value.is_finite() else str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()  # subclasses (pandas' Timestamp) orjson leaves to us
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_bytes(value: Any) -> bytes:
    """A Python value as JSON, the one encoder of bound and loaded json/jsonb values.

    Datetimes are ISO 8601 (a naive one stays naive, as the server reads a
    naive literal), ``Decimal`` and integers of any size keep their digits,
    numpy scalars and arrays are numbers and lists, tuples and sets lists.

    Parameters
    ----------
    value : object

    Returns
    -------
    bytes

    Raises
    ------
    TypeError
        A value JSON has no form for.
    """
    try:
        return orjson.dumps(value, default=_json_default, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError as error:
        if "Integer exceeds 64-bit range" not in str(error):
            raise TypeError(str(error)) from None
        return orjson.dumps(_big_ints(value), default=_json_default, option=_JSON_OPTIONS)


def _big_ints(value: Any) -> Any:
    """``value`` with integers beyond 64 bits as raw JSON numbers (orjson refuses them)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return orjson.Fragment(str(value)) if not -(2**63) <= value < 2**64 else value
    if isinstance(value, dict):
        return {k: _big_ints(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints(v) for v in value]
    return value


def _encode_json(value: Any) -> str:
    # A str is taken as JSON text already, as asyncpg does without a codec.
    return value if isinstance(value, str) else json_bytes(value).decode()


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


def enable_keepalive(conn: asyncpg.Connection, idle: int, interval: int, count: int) -> bool:
    """Turn on TCP keepalives on a connection's socket, so a dead peer is noticed.

    Parameters
    ----------
    conn : asyncpg.Connection
    idle, interval, count : int
        Seconds idle before the first probe, seconds between probes, probes
        unanswered before the connection counts as dead.  They also bound
        how long data sent to a dead peer may stay unacknowledged.

    Returns
    -------
    bool
        False for unix sockets, which cannot lose their peer silently.
    """
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


@dataclass
class Connected:
    """A resolved target: where to connect, and the embedded server if it is one."""

    target: dsn_module.Target
    # Never in a repr: it may hold a password.
    dsn: str | None = field(repr=False)
    embedded_server: embedded.EmbeddedServer | None = None
    announced: bool = False
    # Whether the server takes client_connection_check_interval at startup
    # (None: not known yet; a server before 14 and poolers refuse it).
    check_interval: bool | None = None
    # Whether a pooler stands between us and the server (None: not known yet;
    # see is_pooler). Behind one, no statement outlives its transaction.
    pooler: bool | None = None


# How often a backend running a query checks that its client is still there
# (PostgreSQL >= 14): a killed kernel's query ends within this, not when it is done.
CHECK_INTERVAL = "2s"
_CHECK = "client_connection_check_interval"
# TCP keepalives of every connection (idle, interval, count): a peer gone
# silent (a dropped network, a hung proxy) is noticed within about a minute.
KEEPALIVE = (30, 10, 3)


def server_settings(connected: Connected) -> dict[str, str]:
    """The server settings every pgmagic connection starts with.

    Parameters
    ----------
    connected : Connected
        The target, with what earlier connections learned about it.

    Returns
    -------
    dict
        ``application_name`` and ``client_connection_check_interval``, each
        unless the DSN sets it itself (or the server refused the latter).
    """
    dsn = connected.dsn or ""
    settings: dict[str, str] = {}
    # Name our backends in pg_stat_activity, unless the DSN names them itself.
    if "application_name" not in dsn:
        settings["application_name"] = "pgmagic"
    if connected.check_interval is not False and _CHECK not in dsn:
        settings[_CHECK] = CHECK_INTERVAL
    return settings


def statement_cache_size(connected: Connected) -> dict[str, int]:
    """The ``statement_cache_size`` asyncpg gets for a new connection to ``connected``.

    Behind a transaction pooler a named prepared statement lives on one server
    connection while the next transaction may get another ("prepared statement
    __asyncpg_stmt_1__ does not exist"). Without the cache, asyncpg uses the
    unnamed statement and parses it again in the same message as each Bind.
    Until :func:`is_pooler` has answered, connections start without it too.

    Parameters
    ----------
    connected : Connected

    Returns
    -------
    dict
        Keyword arguments for ``asyncpg.connect`` and ``asyncpg.create_pool``.
    """
    return {} if connected.pooler is False else {"statement_cache_size": 0}


def caches_statements(conn: Any) -> bool:
    """Whether a connection keeps named prepared statements (see :func:`statement_cache_size`).

    Parameters
    ----------
    conn : asyncpg.Connection

    Returns
    -------
    bool
        False behind a pooler: pgmagic must not keep statements either, or a
        reused one would decode rows with the column types of its first run.
    """
    return conn not in _UNCACHED


# Connections opened without asyncpg's statement cache; weak, as they come and go.
_UNCACHED: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()


def opened_without_cache(conn: asyncpg.Connection) -> None:
    """Record that ``conn`` was opened by :func:`statement_cache_size` without the cache.

    Parameters
    ----------
    conn : asyncpg.Connection
    """
    _UNCACHED.add(conn)


async def is_pooler(conn: asyncpg.Connection, timeout: float) -> bool:
    """Whether a pooler (pgbouncer, Odyssey, pgcat, Supavisor) answers on ``conn``.

    A pooler hands out its own cancel key, so the backend pid of the startup
    message is not the one serving the query; on a direct connection they are
    the same.

    Parameters
    ----------
    conn : asyncpg.Connection
        Opened without the statement cache (the query must not leave a named
        statement behind on some server connection).
    timeout : float

    Returns
    -------
    bool
    """
    pid = await conn.fetchval("SELECT pg_backend_pid()", timeout=timeout)
    return bool(pid != conn.get_server_pid())


def server_version(conn: asyncpg.Connection) -> str:
    """The server's version as it reports it: ``15.18``, ``18beta1``.

    asyncpg's ``get_server_version()`` puts a 10+ release's minor number in
    ``micro`` (15.18 is ``major=15, minor=0``), which reads as 15.0.

    Parameters
    ----------
    conn : asyncpg.Connection

    Returns
    -------
    str
    """
    reported = str(conn.get_settings().server_version or "")
    return reported.split()[0] if reported.strip() else "unknown"


def refused_check_interval(error: BaseException) -> bool:
    """Whether a server (before 14) or a pooler refused the check interval setting.

    Parameters
    ----------
    error : BaseException
        What connecting raised.

    Returns
    -------
    bool
    """
    return _CHECK in str(error)


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
