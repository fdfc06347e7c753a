r"""``\d NAME``: the layouts psql prints for one relation (table, view, index, sequence ...).

One query finds the relations the pattern names (visible ones only when it
names no schema), then each is read from ``pg_catalog``: its columns, and
the footers psql prints under them, in psql's order (Indexes, Check
constraints, Foreign-key constraints, Referenced by, Policies, Statistics
objects, Rules, Publications, Not-null constraints, Triggers, Inherits,
Access method ...; see :mod:`~pgmagic.catalog.footers`).  Definitions come
from the server's own ``pg_get_*def`` functions, so they read as that
server writes them.  Where catalogs differ by version the queries follow
the server's version, which it reports when the connection opens: named
NOT NULL constraints from 18, ``indnullsnotdistinct`` and publications of
schemas from 15; ``attstattarget`` (NULL for "default" from 17 on, -1
before) is read so that both mean the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from pgmagic.catalog.footers import inheritance, partition_of, table_footers
from pgmagic.catalog.meta import MetaCommand, parts
from pgmagic.catalog.patterns import Query, resolve

__all__ = ["Description", "describe"]

_TITLES = {
    "r": "Table",
    "p": "Partitioned table",
    "v": "View",
    "m": "Materialized view",
    "i": "Index",
    "I": "Partitioned index",
    "S": "Sequence",
    "t": "TOAST table",
    "c": "Composite type",
    "f": "Foreign table",
}
_STORAGE = {"p": "plain", "m": "main", "x": "extended", "e": "external"}
_COMPRESSION = {"p": "pglz", "l": "lz4"}


@dataclass(slots=True)
class Description:
    r"""One relation as ``\d`` shows it: a title, a table of text, footers.

    Attributes
    ----------
    name : str
        ``schema.name``.
    title : str
        ``Table "public.orders"``.
    columns : tuple of str
        The table's headers (``Column``, ``Type``, ...).
    rows : list of tuple of str
        Text cells; empty where psql shows nothing.
    footers : list of str
        The lines under the table, as psql prints them.
    right : tuple of bool
        Which columns psql aligns to the right (a sequence's numbers).
    """

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    footers: list[str] = field(default_factory=list)
    right: tuple[bool, ...] = ()


async def describe(conn: asyncpg.Connection, command: MetaCommand) -> list[Description] | str:
    r"""Describe every relation ``command.pattern`` names.

    Parameters
    ----------
    conn : asyncpg.Connection
    command : MetaCommand
        A ``\d`` with a pattern; ``+`` adds columns and footers.

    Returns
    -------
    list of Description, or str
        The descriptions in (schema, name) order, or psql's words when
        nothing matched: ``Did not find any relation named "x".``
    """
    assert command.pattern is not None
    # With a pattern psql shows system relations too: S changes nothing here.
    query = Query()
    visible = "pg_catalog.pg_table_is_visible(c.oid)"
    query.pattern(
        await resolve(conn, command.pattern, parts=parts(command.kind)),
        "c.relname",
        "n.nspname",
        visible,
    )
    found = await conn.fetch(
        "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c"
        " LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
        + query.where()
        + "\nORDER BY 2, 3",
        *query.args,
    )
    if not found:
        return f'Did not find any relation named "{command.pattern}".'
    return [await _one(conn, row["oid"], command.verbose) for row in found]


_RELATION_SQL = """
SELECT c.relkind::text, c.relpersistence::text, c.relhasindex, c.relhastriggers, c.relhasrules,
       c.relispartition,
       c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text,
       n.nspname, c.relname, am.amname,
       pg_catalog.array_to_string(c.reloptions || array(
           SELECT 'toast.' || x FROM pg_catalog.unnest(tc.reloptions) x), ', ') AS options,
       ts.spcname,
       CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END
           AS oftype,
       CASE WHEN c.relispartition
            THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid, true) END AS bound,
       CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partkey
FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_class tc ON c.reltoastrelid = tc.oid
  LEFT JOIN pg_catalog.pg_am am ON c.relam = am.oid
  LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = c.reltablespace
WHERE c.oid = $1
"""


async def _one(conn: asyncpg.Connection, oid: int, verbose: bool) -> Description:
    facts = await conn.fetchrow(_RELATION_SQL, oid)
    kind = facts["relkind"]
    title = _TITLES.get(kind, "Relation")
    if facts["relpersistence"] == "u":
        title = "Unlogged " + title[0].lower() + title[1:]
    name = f"{facts['nspname']}.{facts['relname']}"
    title = f'{title} "{name}"'
    if kind == "S":
        return await _sequence(conn, oid, name, title)
    description = await _columns(conn, oid, kind, name, title, verbose)
    if kind in "iI":
        description.footers = await partition_of(conn, oid, facts, verbose)
        description.footers += await _index_footers(conn, oid, facts)
        if kind == "I":
            description.footers += await inheritance(conn, oid, facts, verbose)
            if verbose:
                description.footers.append(f"Access method: {facts['amname']}")
    else:
        description.footers = await table_footers(conn, oid, facts, verbose)
    return description


_COLUMNS_SQL = """
SELECT a.attname,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       (SELECT co.collname FROM pg_catalog.pg_collation co, pg_catalog.pg_type t
        WHERE co.oid = a.attcollation AND t.oid = a.atttypid
          AND a.attcollation <> t.typcollation) AS collation,
       a.attnotnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) AS expression,
       a.attidentity::text, a.attgenerated::text, a.attstorage::text,
       a.attcompression::text,
       CASE WHEN a.attstattarget >= 0 THEN a.attstattarget::text END AS stattarget,
       pg_catalog.col_description(a.attrelid, a.attnum) AS comment,
       CASE WHEN i.indexrelid IS NOT NULL
            THEN pg_catalog.pg_get_indexdef(a.attrelid, a.attnum, true) END AS indexdef,
       a.attnum <= i.indnkeyatts AS iskey,
       CASE WHEN a.attfdwoptions IS NOT NULL THEN '(' || pg_catalog.array_to_string(ARRAY(
           SELECT pg_catalog.quote_ident(option_name) || ' '
                  || pg_catalog.quote_literal(option_value)
           FROM pg_catalog.pg_options_to_table(a.attfdwoptions)), ', ') || ')' END AS fdwoptions
FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = a.attrelid
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def _default(row: Any) -> str:
    identity = {"a": "generated always as identity", "d": "generated by default as identity"}
    if row["attidentity"] in identity:
        return identity[row["attidentity"]]
    if row["attgenerated"] == "s":
        return f"generated always as ({row['expression']}) stored"
    if row["attgenerated"] == "v":
        return f"generated always as ({row['expression']})"
    return row["expression"] or ""


async def _columns(
    conn: asyncpg.Connection, oid: int, kind: str, name: str, title: str, verbose: bool
) -> Description:
    rows = await conn.fetch(_COLUMNS_SQL, oid)
    index = kind in "iI"
    headers = ["Column", "Type"]
    # A TOAST table's columns are fixed: psql shows their names and types only.
    details = kind != "t"
    if index:
        headers += ["Key?", "Definition"]
    elif details:
        headers += ["Collation", "Nullable", "Default"]
    if kind == "f":
        headers.append("FDW options")
    # psql's verbose columns, by relation kind.
    storage = verbose
    compression = verbose and kind in "rpm"
    stats = verbose and kind in "rpmfiI"
    comments = verbose and kind in "rpvmcf"
    if storage:
        headers.append("Storage")
    if compression:
        headers.append("Compression")
    if stats:
        headers.append("Stats target")
    if comments:
        headers.append("Description")
    table: list[tuple[str, ...]] = []
    for row in rows:
        cells = [row["attname"], row["type"]]
        if index:
            cells += ["yes" if row["iskey"] else "no", row["indexdef"] or ""]
        elif details:
            nullable = "not null" if row["attnotnull"] else ""
            cells += [row["collation"] or "", nullable, _default(row)]
        if kind == "f":
            cells.append(row["fdwoptions"] or "")
        if storage:
            cells.append(_STORAGE.get(row["attstorage"], ""))
        if compression:
            cells.append(_COMPRESSION.get(row["attcompression"], ""))
        if stats:
            cells.append(row["stattarget"] or "")
        if comments:
            cells.append(row["comment"] or "")
        table.append(tuple(cells))
    return Description(name, title, tuple(headers), table)


_INDEX_SQL = """
SELECT i.indisunique, i.indisprimary, i.indisclustered, i.indisvalid, i.indisreplident,
       (SELECT pg_catalog.pg_get_expr(i.indpred, i.indrelid, true)) AS predicate,
       a.amname, c2.relname AS tablename,
       con.condeferrable IS TRUE AS deferrable, con.condeferred IS TRUE AS deferred,
       {nulls} AS nullsnotdistinct
FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
  JOIN pg_catalog.pg_class c2 ON c2.oid = i.indrelid
  JOIN pg_catalog.pg_am a ON a.oid = c.relam
  LEFT JOIN pg_catalog.pg_constraint con
    ON con.conrelid = i.indrelid AND con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
WHERE i.indexrelid = $1
"""


async def _index_footers(conn: asyncpg.Connection, oid: int, facts: Any) -> list[str]:
    version = conn.get_server_version().major
    sql = _INDEX_SQL.format(nulls="i.indnullsnotdistinct" if version >= 15 else "false")
    row = await conn.fetchrow(sql, oid)
    text = ""
    if row["indisprimary"]:
        text = "primary key, "
    elif row["indisunique"]:
        text = "unique nulls not distinct, " if row["nullsnotdistinct"] else "unique, "
    # psql assumes the table lives in the index's schema.
    text += f'{row["amname"]}, for table "{facts["nspname"]}.{row["tablename"]}"'
    if row["predicate"]:
        text += f", predicate ({row['predicate']})"
    flags = (
        ("indisclustered", ", clustered"),
        ("deferrable", ", deferrable"),
        ("deferred", ", initially deferred"),
        ("indisreplident", ", replica identity"),
    )
    if not row["indisvalid"]:
        text += ", invalid"
    text += "".join(words for name, words in flags if row[name])
    if facts["spcname"]:
        return [text, f'Tablespace: "{facts["spcname"]}"']
    return [text]


async def _sequence(conn: asyncpg.Connection, oid: int, name: str, title: str) -> Description:
    row = await conn.fetchrow(
        "SELECT pg_catalog.format_type(s.seqtypid, NULL) AS type, s.seqstart, s.seqmin,"
        " s.seqmax, s.seqincrement, CASE WHEN s.seqcycle THEN 'yes' ELSE 'no' END AS cycles,"
        " s.seqcache FROM pg_catalog.pg_sequence s WHERE s.seqrelid = $1",
        oid,
    )
    owner = await conn.fetchrow(
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)"
        " || '.' || pg_catalog.quote_ident(a.attname) AS column, d.deptype::text"
        " FROM pg_catalog.pg_depend d"
        " JOIN pg_catalog.pg_class c ON c.oid = d.refobjid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid"
        " WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
        " AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
        " AND d.objid = $1 AND d.deptype IN ('a', 'i')",
        oid,
    )
    cells = tuple(
        str(row[k])
        for k in ("type", "seqstart", "seqmin", "seqmax", "seqincrement", "cycles", "seqcache")
    )
    footers = []
    if owner is not None:
        words = "Owned by" if owner["deptype"] == "a" else "Sequence for identity column"
        footers.append(f"{words}: {owner['column']}")
    return Description(
        name,
        title,
        ("Type", "Start", "Minimum", "Maximum", "Increment", "Cycles?", "Cache"),
        [cells],
        footers,
        (False, True, True, True, True, False, True),
    )
