"""A snapshot of the catalog for completion: relations, search_path, functions; columns on demand.

One round trip per query, on a pool connection with the session's
``search_path`` (never the session connection, which a cell may be using).
The relations and functions are read at once (about 0.1 s for 20,000 tables);
the columns and foreign keys of a relation only when a completion needs them,
then kept.  The front drops the snapshot after DDL (:func:`changes_catalog`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pgmagic.runtime.loop import Runtime
from pgmagic.sql.lexer import first_word

__all__ = [
    "Column",
    "ForeignKey",
    "RelationInfo",
    "Snapshot",
    "changes_catalog",
    "columns_of",
    "current",
    "forget",
    "load",
    "load_columns",
]

# How long a snapshot serves without a reload (DDL elsewhere, other sessions).
FRESH_SECONDS = 30.0
# Completion waits on this from the kernel's thread: never long.
_TIMEOUT = 2.0
_snapshots: dict[int, Snapshot] = {}
# Runtimes whose snapshot is being read again in the background.
_reloading: set[int] = set()

_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind::text, c.oid::int8
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname !~ '^pg_toast' AND (n.nspname !~ '^pg_temp_' OR n.oid = pg_my_temp_schema())
ORDER BY n.nspname, c.relname
"""
# Pseudo-types (any, record, trigger ...) name no column or value.
_TYPES = """
SELECT n.nspname, pg_catalog.format_type(t.oid, NULL)
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype <> 'p'
  AND (t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c
                          WHERE c.oid = t.typrelid))
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type el
                  WHERE el.oid = t.typelem AND el.typarray = t.oid)
  AND n.nspname !~ '^pg_toast' AND n.nspname <> 'information_schema'
  AND (n.nspname !~ '^pg_temp_' OR n.oid = pg_my_temp_schema())
"""
_FUNCTIONS = """
SELECT DISTINCT n.nspname, p.proname, p.proretset
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE p.prokind IN ('f', 'a', 'w') AND p.proname !~ '^_'
  AND p.prorettype NOT IN ('pg_catalog.trigger'::regtype,
                           'pg_catalog.event_trigger'::regtype,
                           'pg_catalog.internal'::regtype, 'pg_catalog.cstring'::regtype,
                           'pg_catalog.language_handler'::regtype,
                           'pg_catalog.fdw_handler'::regtype)
  AND NOT p.proargtypes::oid[] && ARRAY['pg_catalog.internal'::regtype,
                                        'pg_catalog.cstring'::regtype]::oid[]
"""
_SCHEMAS = """
SELECT nspname FROM pg_catalog.pg_namespace
WHERE nspname !~ '^pg_(toast|temp_)' ORDER BY nspname
"""
_COLUMNS = """
SELECT a.attrelid::int8, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
_FOREIGN_KEYS = """
SELECT c.conrelid::int8, c.confrelid::int8,
       ARRAY(SELECT attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_catalog.pg_attribute ON attrelid = c.conrelid AND attnum = k.n ORDER BY i),
       ARRAY(SELECT attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_catalog.pg_attribute ON attrelid = c.confrelid AND attnum = k.n ORDER BY i)
FROM pg_catalog.pg_constraint c
WHERE c.contype = 'f' AND (c.conrelid = ANY($1::oid[]) OR c.confrelid = ANY($1::oid[]))
"""

T = TypeVar("T")

# Statements after which the snapshot is out of date.
_DDL = frozenset({"CREATE", "ALTER", "DROP", "COMMENT", "TRUNCATE", "IMPORT", "SET", "RESET"})


@dataclass(frozen=True)
class RelationInfo:
    """A table, view, materialized view or foreign table."""

    schema: str
    name: str
    kind: str
    oid: int


@dataclass(frozen=True)
class Column:
    """A column and its type as ``format_type`` writes it."""

    name: str
    type: str


@dataclass(frozen=True)
class ForeignKey:
    """``source(columns) REFERENCES target(referenced)``."""

    source: int
    target: int
    columns: tuple[str, ...]
    referenced: tuple[str, ...]


@dataclass
class Snapshot:
    """What completion knows of one database.

    Attributes
    ----------
    relations : list of RelationInfo
    schemas : list of str
    search_path : list of str
        ``current_schemas(true)`` with the session's ``search_path``.
    functions : list of (schema, name, returns a set)
    types : list of (schema, name)
        Data types as ``format_type`` writes them (``integer``, ``character
        varying``; schema-qualified when off the search path), arrays and
        tables' row types left out.
    columns : dict of int to list of Column
        Per relation OID, filled by :func:`load_columns`.
    foreign_keys : dict of int to list of ForeignKey
        Per relation OID (both ends), filled by :func:`load_columns`.
    loaded : float
        ``time.monotonic()`` of the load.
    """

    relations: list[RelationInfo]
    schemas: list[str]
    search_path: list[str]
    functions: list[tuple[str, str, bool]]
    types: list[tuple[str, str]] = field(default_factory=list)
    columns: dict[int, list[Column]] = field(default_factory=dict)
    foreign_keys: dict[int, list[ForeignKey]] = field(default_factory=dict)
    loaded: float = field(default_factory=time.monotonic)
    # Relations by name, built on the first resolve (a catalog may hold 20,000).
    _by_name: dict[str, list[RelationInfo]] | None = field(default=None, repr=False)

    def resolve(self, schema: str | None, name: str) -> RelationInfo | None:
        """The relation a name means: schema-qualified, or the first on the search_path.

        Parameters
        ----------
        schema : str or None
        name : str

        Returns
        -------
        RelationInfo or None
        """
        if self._by_name is None:
            self._by_name = {}
            for relation in self.relations:
                self._by_name.setdefault(relation.name, []).append(relation)
        found = self._by_name.get(name, [])
        if schema is not None:
            return next((r for r in found if r.schema == schema), None)
        for path in self.search_path:
            hit = next((r for r in found if r.schema == path), None)
            if hit is not None:
                return hit
        return None


async def load(runtime: Runtime) -> Snapshot:
    """Read a snapshot on a pool connection, with the session's search_path.

    Parameters
    ----------
    runtime : Runtime

    Returns
    -------
    Snapshot
    """
    async with runtime.acquire() as conn, conn.transaction(readonly=True):
        await runtime.apply_carried_settings(conn)
        path = await conn.fetchval("SELECT current_schemas(true)")
        relations = await conn.fetch(_RELATIONS)
        schemas = await conn.fetch(_SCHEMAS)
        functions = await conn.fetch(_FUNCTIONS)
        types = await conn.fetch(_TYPES)
    return Snapshot(
        relations=[RelationInfo(*r) for r in relations],
        schemas=[r[0] for r in schemas],
        search_path=list(path),
        functions=[(r[0], r[1], r[2]) for r in functions],
        types=[(r[0], r[1]) for r in types],
    )


async def load_columns(runtime: Runtime, snapshot: Snapshot, oids: Iterable[int]) -> None:
    """Add the columns and foreign keys of relations the snapshot lacks.

    Parameters
    ----------
    runtime : Runtime
    snapshot : Snapshot
    oids : iterable of int
    """
    missing = sorted({oid for oid in oids if oid not in snapshot.columns})
    if not missing:
        return
    async with runtime.acquire() as conn:
        columns = await conn.fetch(_COLUMNS, missing)
        keys = await conn.fetch(_FOREIGN_KEYS, missing)
    for oid in missing:
        snapshot.columns[oid] = []
        snapshot.foreign_keys.setdefault(oid, [])
    for relid, name, type_name in columns:
        snapshot.columns[relid].append(Column(name, type_name))
    for source, target, cols, refs in keys:
        key = ForeignKey(source, target, tuple(cols), tuple(refs))
        for end in {source, target} & set(missing):
            snapshot.foreign_keys[end].append(key)


def current(runtime: Runtime, *, fresh: bool = False) -> Snapshot:
    """The runtime's snapshot; read at once when there is none (or ``fresh``).

    One older than :data:`FRESH_SECONDS` still answers, while a new one is
    read in the background for the next request: a Tab never waits for a
    reload (0.5 s at 20,000 tables) just because time passed.  DDL from a
    cell drops the snapshot instead (:func:`forget`), so that the next
    request reads the change.

    Parameters
    ----------
    runtime : Runtime
    fresh : bool
        Read it again now (``%pg refresh``).

    Returns
    -------
    Snapshot

    Raises
    ------
    TimeoutError
        The catalog did not answer within 2 s.
    """
    kept = _snapshots.get(id(runtime))
    if fresh or kept is None:
        kept = _bounded(runtime, load(runtime))
        _snapshots[id(runtime)] = kept
    elif time.monotonic() - kept.loaded > FRESH_SECONDS and id(runtime) not in _reloading:
        _reloading.add(id(runtime))
        runtime.submit(load(runtime)).add_done_callback(
            functools.partial(_reloaded, id(runtime), kept)
        )
    return kept


def _reloaded(key: int, old: Snapshot, future: concurrent.futures.Future[Snapshot]) -> None:
    _reloading.discard(key)
    # Dropped or replaced meanwhile (DDL, %pg refresh): the new read may predate that.
    if not future.cancelled() and future.exception() is None and _snapshots.get(key) is old:
        _snapshots[key] = future.result()


def columns_of(runtime: Runtime, snapshot: Snapshot, oids: Iterable[int]) -> None:
    """:func:`load_columns`, waited for (at most 2 s) from the calling thread.

    Parameters
    ----------
    runtime : Runtime
    snapshot : Snapshot
    oids : iterable of int
    """
    _bounded(runtime, load_columns(runtime, snapshot, oids))


def _bounded(runtime: Runtime, coro: Coroutine[Any, Any, T]) -> T:
    """Wait at most 2 s for a catalog read.

    Not ``runtime.run``, which hands the runtime's queued messages to the
    waiting thread: the panel's completion runs on a subshell's thread while
    a cell waits on the runtime, and those messages are that cell's.
    """

    async def bounded() -> T:
        return await asyncio.wait_for(coro, _TIMEOUT)

    return runtime.submit(bounded()).result()


def forget() -> None:
    """Drop every snapshot (after DDL, ``SET``, ``%pg connect``)."""
    _snapshots.clear()


def changes_catalog(statements: Iterable[str]) -> bool:
    """Whether any of the statements may change what completion knows (DDL, SET).

    Parameters
    ----------
    statements : iterable of str

    Returns
    -------
    bool
    """
    return any(first_word(text) in _DDL for text in statements)
