r"""Running a describe command on the session connection.

The session runs it as it runs a statement (:meth:`Session.run`): after the
cell's statements, in the user's transaction if one is open, and a failed
transaction fails it as it fails psql's queries.
"""

from __future__ import annotations

import asyncpg

from pgmagic.catalog.describe import Description, describe
from pgmagic.catalog.listings import LISTINGS, Listing, extension_objects, list_relations
from pgmagic.catalog.meta import MetaCommand
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


async def _on_session(runtime: Runtime, command: MetaCommand) -> Outcome:
    session = await runtime.session()
    [outcome] = await session.run([command], fetch)
    return outcome


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
    return runtime.run(_on_session(runtime, command))
