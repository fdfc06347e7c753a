"""The Python API: the magics' operations as awaitables for top-level ``await``.

Each call runs on the runtime's loop (never the kernel's) and returns an
awaitable bound to the caller's loop, so many calls can run at once on the pool::

    df = await pgmagic.fetch("SELECT * FROM users WHERE id = $id", id=7)
    a, b = await asyncio.gather(pgmagic.fetch(q1), pgmagic.fetch(q2))

``$name`` binds keyword arguments, ``$1, $2`` bind positional ones.  Pass
``session=True`` to run on the sticky session that ``%%pg`` cells use (temp
tables, open transactions) instead of the pool.

Interrupting an ``await`` in a notebook only lands when the awaited call ends
(ipykernel #881); use ``%%pg`` cells, which cancel on the server at once, for
queries you may need to stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
import pandas as pd

from pgmagic import query
from pgmagic.params import BoundStatement
from pgmagic.runtime import Runtime, default_runtime
from pgmagic.session import StatementResult
from pgmagic.session import execute as execute_statement

__all__ = ["execute", "fetch", "fetchrow", "fetchval"]

T = TypeVar("T")


def _runtime() -> Runtime:
    runtime = default_runtime()
    assert runtime is not None
    return runtime


async def _run_all(
    runtime: Runtime, statements: list[BoundStatement], session: bool
) -> list[StatementResult]:
    timeout = runtime.settings.command_timeout
    if session:
        return await (await runtime.session()).run(statements, timeout=timeout)
    pool = await runtime.pool()
    results = []
    async with pool.acquire() as conn:
        for bound in statements:
            try:
                results.append(await execute_statement(conn, bound, timeout=timeout))
            except asyncpg.PostgresError as error:
                error.pgmagic_statement = bound
                raise
    return results


async def _bridge(runtime: Runtime, coro: Coroutine[Any, Any, T], sql: str) -> T:
    try:
        return await asyncio.wrap_future(runtime.submit(coro))
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        TimeoutError,
    ) as error:
        raise query.render_error(error, sql) from None


async def _results(
    sql: str, args: Sequence[Any], params: Mapping[str, Any], session: bool
) -> StatementResult | None:
    runtime = _runtime()
    statements = query.bind_cell(sql, params, args)
    if not statements:
        return None
    results = await _bridge(runtime, _run_all(runtime, statements, session), sql)
    return next((r for r in reversed(results) if r.returns_rows), results[-1])


async def fetch(
    sql: str, *args: Any, session: bool = False, numeric_as_float: bool = False, **params: Any
) -> pd.DataFrame | None:
    """Run SQL and give the last query's rows as a DataFrame.

    Parameters
    ----------
    sql : str
        One or more statements; ``$name`` binds keyword arguments, ``$1``
        positional ones.
    *args
        Values for ``$1, $2, ...``.
    session : bool
        Run on the ``%%pg`` session instead of a pool connection.
    numeric_as_float : bool
        Give ``numeric`` columns as ``float64``.
    **params
        Values for ``$name``.

    Returns
    -------
    pandas.DataFrame or None
        None when no statement returns rows.

    Examples
    --------
    >>> df = await pgmagic.fetch("SELECT * FROM users WHERE score > $s", s=5)  # doctest: +SKIP
    """
    result = await _results(sql, args, params, session)
    frame: pd.DataFrame | None = query.value_of(
        result, query.Mode.FRAME, numeric_as_float=numeric_as_float
    )
    return frame


async def fetchrow(sql: str, *args: Any, session: bool = False, **params: Any) -> Any:
    """Run SQL and give its single row as a record (None when there is no row).

    Parameters
    ----------
    sql : str
        The statement.
    *args
        Values for ``$1, $2, ...``.
    session : bool
        Run on the ``%%pg`` session instead of a pool connection.
    **params
        Values for ``$name``.

    Returns
    -------
    asyncpg.Record or None

    Examples
    --------
    >>> row = await pgmagic.fetchrow("SELECT * FROM users WHERE id = $id", id=1)  # doctest: +SKIP
    """
    return query.value_of(await _results(sql, args, params, session), query.Mode.ONE)


async def fetchval(sql: str, *args: Any, session: bool = False, **params: Any) -> Any:
    """Run SQL and give its single value.

    Parameters
    ----------
    sql : str
        The statement.
    *args
        Values for ``$1, $2, ...``.
    session : bool
        Run on the ``%%pg`` session instead of a pool connection.
    **params
        Values for ``$name``.

    Returns
    -------
    object

    Examples
    --------
    >>> n = await pgmagic.fetchval("SELECT count(*) FROM users")  # doctest: +SKIP
    """
    return query.value_of(await _results(sql, args, params, session), query.Mode.SCALAR)


async def execute(sql: str, *args: Any, session: bool = False, **params: Any) -> str:
    """Run SQL and give the last statement's command tag.

    Parameters
    ----------
    sql : str
        One or more statements.
    *args
        Values for ``$1, $2, ...``.
    session : bool
        Run on the ``%%pg`` session instead of a pool connection.
    **params
        Values for ``$name``.

    Returns
    -------
    str
        For example ``"INSERT 0 1"``.

    Examples
    --------
    >>> await pgmagic.execute("DELETE FROM users WHERE id = $id", id=1)  # doctest: +SKIP
    'DELETE 1'
    """
    runtime = _runtime()
    statements = query.bind_cell(sql, params, args)
    if not statements:
        return ""
    results = await _bridge(runtime, _run_all(runtime, statements, session), sql)
    return results[-1].status
