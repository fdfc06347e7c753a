"""``--explain`` and ``--explain-analyze``: a statement behind ``EXPLAIN``, its writes undone.

The statement is bound as a plain run binds it (values travel as
parameters: the plan is the one for these values) and sent behind
``EXPLAIN (VERBOSE, SETTINGS, FORMAT JSON)`` (``SETTINGS`` from PostgreSQL
12), with ``ANALYZE, BUFFERS`` (and ``WAL`` from 13) for ``--explain-analyze``.

``EXPLAIN ANALYZE`` runs the statement.  It always runs inside a transaction
of its own that is rolled back afterwards (a savepoint rolled back to, inside
a transaction the user opened), also when it fails or is cancelled: a
measurement never changes data, whatever the statement calls.  When the
statement did write (a data-modifying node or a CTE with one, ``FOR
UPDATE``, or a transaction id assigned while it ran, as a function that
writes assigns one), the plan says it was rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import asyncpg

from pgmagic.errors import blame
from pgmagic.results.plan import Plan
from pgmagic.results.statement import Fetch, StatementResult, run_statement
from pgmagic.runtime.session import Session, TransactionState
from pgmagic.sql.lexer import first_word
from pgmagic.sql.params import BoundStatement

__all__ = ["ROLLED_BACK", "ROLLED_BACK_TO_SAVEPOINT", "hint", "prefix", "run", "run_on"]

#: The note under a plan whose statement wrote, in a transaction of its own.
ROLLED_BACK = "rolled back: EXPLAIN ANALYZE of a statement that writes"
#: The same inside the user's transaction.
ROLLED_BACK_TO_SAVEPOINT = (
    "rolled back to a savepoint: EXPLAIN ANALYZE of a statement that writes "
    "(your transaction goes on)"
)
_NOT_EXPLAINABLE = (
    "HINT:  EXPLAIN takes SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES, EXECUTE, DECLARE, "
    "CREATE TABLE AS and CREATE MATERIALIZED VIEW; run other statements without --explain"
)
_SYNTAX_ERROR = "42601"
# Statements EXPLAIN always takes: a syntax error in one is the statement's own.
_PLAIN = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "WITH", "TABLE"})
# Plan nodes that write or lock rows, wherever they are in the tree (a CTE too).
_WRITING_NODES = frozenset({"ModifyTable", "LockRows"})


def prefix(*, analyze: bool, version: int) -> str:
    """What goes before the statement.

    Parameters
    ----------
    analyze : bool
        Run it (``ANALYZE, BUFFERS``), or only plan it.
    version : int
        The server's major version: ``SETTINGS`` came in 12, ``WAL`` in 13.

    Returns
    -------
    str

    Examples
    --------
    >>> prefix(analyze=True, version=16)
    'EXPLAIN (ANALYZE, BUFFERS, WAL, VERBOSE, SETTINGS, FORMAT JSON) '
    """
    words = ["ANALYZE", "BUFFERS"] if analyze else []
    if analyze and version >= 13:
        words.append("WAL")
    words.append("VERBOSE")
    if version >= 12:
        words.append("SETTINGS")
    words.append("FORMAT JSON")
    return f"EXPLAIN ({', '.join(words)}) "


def hint(error: BaseException) -> str | None:
    """A line for an error that says the statement cannot be explained, else None.

    Parameters
    ----------
    error : BaseException

    Returns
    -------
    str or None
    """
    return _NOT_EXPLAINABLE if getattr(error, "pgmagic_not_explainable", False) else None


async def _explain(
    conn: asyncpg.Connection, bound: BoundStatement, fetch: Fetch, analyze: bool
) -> StatementResult:
    before = prefix(analyze=analyze, version=conn.get_server_version().major)
    # The query history records what ran: the statement behind its EXPLAIN.
    source = dataclasses.replace(bound.source, text=before + bound.source.text)
    wrapped = dataclasses.replace(bound, sql=before + bound.sql, source=source)
    try:
        return await run_statement(conn, wrapped, fetch)
    except asyncpg.PostgresError as error:
        # The caret points into what the user wrote, not into our prefix.
        position = int(getattr(error, "position", None) or 0) - len(before)
        # "EXPLAIN VACUUM" fails at its first word; "EXPLAIN CREATE TABLE t (a int)"
        # further on, where CREATE TABLE AS would go on differently.
        if getattr(error, "sqlstate", None) == _SYNTAX_ERROR and (
            position == 1 or first_word(bound.source.text) not in _PLAIN
        ):
            error.pgmagic_not_explainable = True
        if position <= 0 and getattr(error, "position", None):
            error.position = None  # inside our prefix: nothing the user wrote to point at
        blame(error, bound, position if position > 0 else None)
        raise


def _plan(result: StatementResult) -> Plan:
    return Plan(result.records[0][0])


async def _transaction_id(conn: asyncpg.Connection) -> str | None:
    # Any write assigns the transaction an id; a read-only statement never does.
    if conn.get_server_version().major >= 13:
        query = "SELECT pg_current_xact_id_if_assigned()::text"
    else:
        query = "SELECT txid_current_if_assigned()::text"
    assigned: str | None = await conn.fetchval(query)
    return assigned


async def _analyzed(
    conn: asyncpg.Connection, bound: BoundStatement, fetch: Fetch, nested: bool
) -> Plan:
    """EXPLAIN ANALYZE inside a transaction or savepoint the caller rolls back."""
    before = await _transaction_id(conn) if nested else None
    result = await _explain(conn, bound, fetch, analyze=True)
    after = await _transaction_id(conn)
    plan = _plan(result)
    wrote = any(n.node_type in _WRITING_NODES for n in plan.nodes) or (
        before is None and after is not None
    )
    if wrote:
        plan.notes.append(ROLLED_BACK_TO_SAVEPOINT if nested else ROLLED_BACK)
    return plan


async def run(session: Session, bound: BoundStatement, fetch: Fetch, *, analyze: bool) -> Plan:
    """Explain one bound statement on the session.

    Parameters
    ----------
    session : Session
    bound : BoundStatement
        The statement as a plain run would send it.
    fetch : Fetch
        The timeout (the rows are the plan, never a DataFrame).
    analyze : bool
        Run the statement (rolled back afterwards) and measure it.

    Returns
    -------
    Plan

    Raises
    ------
    asyncpg.PostgresError
        The server refused the statement (blamed on ``bound``, the caret in
        the user's text); after ``analyze`` the session is as it was.
    """
    fetch = dataclasses.replace(fetch, frame=False, max_rows=0, cached=False)
    if not analyze:

        async def step(conn: asyncpg.Connection, statement: BoundStatement) -> StatementResult:
            return await _explain(conn, statement, fetch, analyze=False)

        (result,) = await session.run([bound], step)
        return _plan(result)
    nested = session.state is not TransactionState.IDLE
    async with session.atomic(undo=True) as conn:
        return await _analyzed(conn, bound, fetch, nested)


async def run_on(
    conn: asyncpg.Connection, bound: BoundStatement, fetch: Fetch, *, analyze: bool
) -> Plan:
    """Explain one bound statement on a connection of its own (a pool's).

    Parameters
    ----------
    conn : asyncpg.Connection
        Not in a transaction.
    bound : BoundStatement
    fetch : Fetch
    analyze : bool

    Returns
    -------
    Plan
    """
    fetch = dataclasses.replace(fetch, frame=False, max_rows=0, cached=False)
    if not analyze:
        return _plan(await _explain(conn, bound, fetch, analyze=False))
    await conn.execute("BEGIN")
    try:
        return await _analyzed(conn, bound, fetch, nested=False)
    finally:
        if not conn.is_closed():
            # Shielded: a cancelled measurement must still undo what it did.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.shield(conn.execute("ROLLBACK"))
