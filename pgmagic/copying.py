"""``COPY (query) TO STDOUT`` for queries with bound parameters.

``COPY`` takes no bind parameters, and pasting values into SQL text is what
pgmagic never does.  Instead each value is bound, as a parameter of its own
type, into a transaction-local setting::

    SELECT set_config('pgmagic.p1', CAST($1 AS pg_catalog.int4)::text, false)

and the query sent to ``COPY`` reads it back with the same type::

    COPY (SELECT * FROM t WHERE id = current_setting('pgmagic.p1')::pg_catalog.int4) TO STDOUT

The value crosses as its type's own text form, which PostgreSQL reads back
exactly, and no value ever appears in SQL text.  ``NULL`` becomes a typed
``NULL`` constant.

Only plain queries are copied (``SELECT``, ``VALUES``, ``TABLE``, ``WITH``
without data-modifying parts): :func:`copyable` says which.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from pglast import parse_sql
from pglast.parser import ParseError

from pgmagic.copyframe import copy_statement
from pgmagic.params import BoundStatement, placeholders

__all__ = ["CopyQuery", "bound_values", "copy_out", "copy_query", "copyable"]


def copyable(sql: str) -> bool:
    """Whether a statement can run inside ``COPY (...) TO STDOUT``.

    Parameters
    ----------
    sql : str
        One statement (``$n`` placeholders allowed).

    Returns
    -------
    bool
        True for a plain query: SELECT/VALUES/TABLE/WITH without ``INTO``,
        without row locks and without data-modifying CTEs.

    Examples
    --------
    >>> copyable("SELECT 1"), copyable("INSERT INTO t VALUES (1) RETURNING *")
    (True, False)
    """
    try:
        statements = parse_sql(sql)
    except ParseError:
        return False
    if len(statements) != 1:
        return False
    node = statements[0].stmt
    return type(node).__name__ == "SelectStmt" and _plain_select(node)


def _plain_select(node: Any) -> bool:
    if getattr(node, "intoClause", None) is not None or getattr(node, "lockingClause", None):
        return False
    with_clause = getattr(node, "withClause", None)
    if with_clause is not None:
        for cte in with_clause.ctes or ():
            query = cte.ctequery
            if type(query).__name__ != "SelectStmt" or not _plain_select(query):
                return False
    for branch in (getattr(node, "larg", None), getattr(node, "rarg", None)):
        if branch is not None and not _plain_select(branch):
            return False
    return True


def _type_sql(param: Any) -> str:
    def ident(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    name: str = param.name
    suffix = ""
    while name.endswith("[]"):
        name, suffix = name[:-2], suffix + "[]"
    return f"{ident(param.schema)}.{ident(name)}{suffix}"


# asyncpg sends ``COPY (<query>) TO STDOUT ...``: server positions count from here.
_PREFIX = len("COPY (")


@dataclass(frozen=True, slots=True)
class CopyQuery:
    """A bound statement rewritten for ``COPY``.

    Attributes
    ----------
    sql : str
        The query to put inside ``COPY (...)``, reading values from settings.
    setters : tuple of str
        ``set_config(...)`` calls, one per bound value, each taking the value
        as ``$k``; ``%s`` stands where ``is_local`` goes.
    values : tuple
        The values, in the order of ``setters``.
    """

    sql: str
    setters: tuple[str, ...] = ()
    values: tuple[Any, ...] = ()
    _shifts: tuple[tuple[int, int], ...] = ()

    def statement_position(self, copy_position: int) -> int:
        """Map a 0-based index in the COPY statement to one in the bound SQL.

        Parameters
        ----------
        copy_position : int

        Returns
        -------
        int
        """
        position = copy_position - _PREFIX
        shift = 0
        for start, delta in self._shifts:
            if position >= start:
                shift = delta
        return max(0, position + shift)


def copy_query(bound: BoundStatement, types: Sequence[Any]) -> CopyQuery:
    """Rewrite a bound statement's query for ``COPY`` and list the settings to make.

    Parameters
    ----------
    bound : BoundStatement
        The statement with ``$n`` placeholders and its values.
    types : sequence of asyncpg.types.Type
        The parameters' types, from a prepared statement.

    Returns
    -------
    CopyQuery
    """
    pieces: list[str] = []
    shifts: list[tuple[int, int]] = []
    cursor = 0
    length = 0
    setters: list[str] = []
    values: list[Any] = []
    made: set[int] = set()
    for start, end, name in placeholders(bound.sql):
        number = int(name)
        type_sql = _type_sql(types[number - 1])
        value = bound.args[number - 1]
        pieces.append(bound.sql[cursor:start])
        length += start - cursor
        if value is None:
            replacement = f"NULL::{type_sql}"
        else:
            replacement = f"current_setting('pgmagic.p{number}')::{type_sql}"
            if number not in made:
                made.add(number)
                values.append(value)
                setters.append(
                    f"set_config('pgmagic.p{number}', CAST(${len(values)} AS {type_sql})::text, %s)"
                )
        pieces.append(replacement)
        length += len(replacement)
        shifts.append((length, end - length))
        cursor = end
    pieces.append(bound.sql[cursor:])
    return CopyQuery(copy_statement("".join(pieces)), tuple(setters), tuple(values), tuple(shifts))


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
        if position:
            error.position = str(query.statement_position(int(position) - 1) + 1)
        error.pgmagic_statement = bound
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
