"""Running ``COPY (query) TO STDOUT`` with a statement's values bound.

The SQL text comes from :mod:`pgmagic.sql.copytext`; this module makes the
settings the text reads its values from, and maps server error positions back
to the user's statement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from pgmagic.errors import blame
from pgmagic.results import zones
from pgmagic.sql.copytext import CopyQuery, copy_query
from pgmagic.sql.params import BoundStatement


@contextlib.asynccontextmanager
async def bound_values(
    conn: asyncpg.Connection, bound: BoundStatement, query: CopyQuery
) -> AsyncIterator[None]:
    """Make a :class:`CopyQuery`'s settings for the COPY run inside the block.

    All settings are made by one statement, local to the transaction the
    COPY runs in: the user's, or one of our own around the two.  A setting
    made in one transaction and read in another could read another client's
    value behind a transaction pooler (pgbouncer hands each transaction to
    whichever server connection is free), so the two never span
    transactions, whatever the two round trips of BEGIN and COMMIT cost.
    Server errors come out pointing at the user's statement, so the caret
    lands where it would for the statement itself.

    Parameters
    ----------
    conn : asyncpg.Connection
    bound : BoundStatement
    query : CopyQuery

    Yields
    ------
    None
    """
    transaction = None
    if query.setters and not conn.is_in_transaction():
        transaction = conn.transaction()
        await transaction.start()
    try:
        if query.setters:
            await conn.fetchval(f"SELECT {', '.join(query.setters)}", *query.values)
        yield
    except BaseException as error:
        if transaction is not None and not conn.is_closed():
            # Shielded: a cancelled COPY must still end its transaction.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.shield(transaction.rollback())
        if isinstance(error, asyncpg.PostgresError):
            position = getattr(error, "position", None)
            mapped = query.statement_position(int(position) - 1) + 1 if position else None
            blame(error, bound, mapped)
        raise
    if transaction is not None:
        await transaction.commit()


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
    bound = zones.localize(bound, types, conn)
    query = copy_query(bound, types)
    async with bound_values(conn, bound, query):
        return str(await conn.copy_from_query(query.sql, output=output, timeout=timeout, **options))
