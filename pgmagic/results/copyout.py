"""Running ``COPY (query) TO STDOUT`` with a statement's values bound.

The SQL text comes from :mod:`pgmagic.sql.copytext`; this module makes the
settings the text reads its values from, and maps server error positions back
to the user's statement.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from pgmagic.errors import blame
from pgmagic.sql.copytext import CopyQuery, copy_query
from pgmagic.sql.params import BoundStatement


@contextlib.asynccontextmanager
async def bound_values(
    conn: asyncpg.Connection, bound: BoundStatement, query: CopyQuery
) -> AsyncIterator[None]:
    """Make a :class:`CopyQuery`'s settings for the COPY run inside the block.

    All settings are made by one statement.  Inside a transaction they are
    local to it; outside one they are session settings, which the next COPY
    overwrites (a transaction of our own would cost two more round trips per
    query).  Server errors come out pointing at the user's statement, so the
    caret lands where it would for the statement itself.

    Parameters
    ----------
    conn : asyncpg.Connection
    bound : BoundStatement
    query : CopyQuery

    Yields
    ------
    None
    """
    try:
        if query.setters:
            scope = "true" if conn.is_in_transaction() else "false"
            calls = ", ".join(setter % scope for setter in query.setters)
            await conn.fetchval(f"SELECT {calls}", *query.values)
        yield
    except asyncpg.PostgresError as error:
        position = getattr(error, "position", None)
        mapped = query.statement_position(int(position) - 1) + 1 if position else None
        blame(error, bound, mapped)
        raise


async def copy_out(
    conn: asyncpg.Connection,
    bound: BoundStatement,
    output: Callable[[bytes], Awaitable[None]],
    *,
    timeout: float | None = None,
    **options: Any,
) -> str:
    """Run ``COPY (query) TO STDOUT`` with the statement's values bound.

    Parameters
    ----------
    conn : asyncpg.Connection
    bound : BoundStatement
        A statement for which :func:`copyable` is true.
    output : async callable
        Receives the raw COPY data as it arrives.
    timeout : float, optional
        Seconds before the COPY is cancelled.
    **options
        ``copy_from_query`` options, e.g. ``format="csv", header=True``.

    Returns
    -------
    str
        The command tag, e.g. ``COPY 1000``.
    """
    types = (await conn.prepare(bound.sql)).get_parameters() if bound.args else ()
    query = copy_query(bound, types)
    async with bound_values(conn, bound, query):
        return str(await conn.copy_from_query(query.sql, output=output, timeout=timeout, **options))
