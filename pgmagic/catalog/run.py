r"""Running a describe command on the session connection.

The session runs it as it runs a statement (:meth:`Session.run`): after the
cell's statements, in the user's transaction if one is open, and a failed
transaction fails it as it fails psql's queries.  The query history records
the command as typed (``\d orders``), not the catalog queries behind it.
"""

from __future__ import annotations

import asyncpg

from pgmagic.catalog.describe import Description, describe
from pgmagic.catalog.listings import LISTINGS, Listing, extension_objects, list_relations
from pgmagic.catalog.meta import MetaCommand
from pgmagic.runtime.history import Recording
from pgmagic.runtime.loop import Runtime

__all__ = ["Outcome", "fetch", "run"]

Outcome = Listing | list[Listing] | list[Description] | str
"""A listing (several for ``\\dx+``), the descriptions of ``\\d NAME``, or what
psql says when nothing matched."""


async def fetch(conn: asyncpg.Connection, command: MetaCommand) -> Outcome:
    r"""Run one describe command on a connection.

    Parameters
    ----------
    conn : asyncpg.Connection
    command : MetaCommand

    Returns
    -------
    Listing, list of Listing, list of Description, or str
    """
    if command.kind == "d":
        if command.pattern is None:
            return await list_relations(conn, command)
        return await describe(conn, command)
    if command.kind == "dx" and command.verbose:
        return await extension_objects(conn, command)
    return await LISTINGS[command.kind](conn, command)


async def _on_session(runtime: Runtime, command: MetaCommand, recording: Recording) -> Outcome:
    session = await runtime.session()
    typed = command.text if command.pattern is None else f"{command.text} {command.pattern}"
    pid = session.conn.get_server_pid() if session.conn is not None else None
    with recording.start(typed, pid=pid) as pending:
        [outcome] = await session.run([command], fetch)
        pending.rows = _rows(outcome)
    return outcome


def _rows(outcome: Outcome) -> int | None:
    if isinstance(outcome, Listing):
        return len(outcome.rows)
    if isinstance(outcome, str):
        return 0  # psql's "Did not find any relation named ..."
    return len(outcome)  # one per listing or described relation


def run(runtime: Runtime, command: MetaCommand) -> Outcome:
    r"""Run a describe command on the session and wait; Ctrl-C cancels.

    Parameters
    ----------
    runtime : Runtime
    command : MetaCommand

    Returns
    -------
    Listing, list of Description, or str

    Examples
    --------
    >>> from pgmagic.catalog.meta import parse
    >>> listing = run(default_runtime(), parse(r"\dt public.*"))  # doctest: +SKIP
    """
    return runtime.run(_on_session(runtime, command, runtime.history.recording()))
