r"""The lines psql prints under a table's columns in ``\d``: indexes, constraints, triggers ...

:func:`table_footers` reads them in psql's order for tables, partitioned
tables, views, materialized views and foreign tables.  Each section is one
query on ``pg_catalog`` keyed by the relation's oid, bound as a parameter.
"""

from __future__ import annotations

from typing import Any

import asyncpg

__all__ = ["inheritance", "partition_of", "table_footers"]

_INDEXES = """
SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid,
       pg_catalog.pg_get_indexdef(i.indexrelid, 0, true) AS indexdef,
       pg_catalog.pg_get_constraintdef(con.oid, true) AS condef, con.contype::text,
       con.condeferrable, con.condeferred, i.indisreplident, ts.spcname
FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class c2 ON c2.oid = i.indexrelid
  LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = c2.reltablespace
  LEFT JOIN pg_catalog.pg_constraint con
    ON con.conrelid = i.indrelid AND con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
WHERE i.indrelid = $1
ORDER BY i.indisprimary DESC, c2.relname
"""
_CHECKS = """
SELECT r.conname, pg_catalog.pg_get_constraintdef(r.oid, true) AS condef
FROM pg_catalog.pg_constraint r
WHERE r.conrelid = $1 AND r.contype = 'c'
ORDER BY 1
"""
# The relation and, for a partition, the tables above it (pg_partition_ancestors
# gives nothing for a table outside any partitioning).
_LINEAGE = """
SELECT a.relid FROM pg_catalog.pg_partition_ancestors($1::pg_catalog.oid::pg_catalog.regclass) a
UNION SELECT $1::pg_catalog.oid
"""
# Constraints inherited from a partitioned parent are shown as the parent's.
_FOREIGN_KEYS = f"""
SELECT r.conrelid = $1 AS sametable, r.conname,
       pg_catalog.pg_get_constraintdef(r.oid, true) AS condef,
       r.conrelid::pg_catalog.regclass::pg_catalog.text AS ontable
FROM pg_catalog.pg_constraint r
WHERE r.conrelid IN ({_LINEAGE}) AND r.contype = 'f' AND r.conparentid = 0
ORDER BY sametable DESC, r.conname
"""
_REFERENCED_BY = f"""
SELECT r.conname, r.conrelid::pg_catalog.regclass::pg_catalog.text AS ontable,
       pg_catalog.pg_get_constraintdef(r.oid, true) AS condef
FROM pg_catalog.pg_constraint r
WHERE r.confrelid IN ({_LINEAGE}) AND r.contype = 'f' AND r.conparentid = 0
ORDER BY r.conname
"""
_POLICIES = """
SELECT pol.polname, pol.polpermissive,
       CASE WHEN pol.polroles = '{0}' THEN NULL ELSE pg_catalog.array_to_string(array(
           SELECT rolname FROM pg_catalog.pg_roles WHERE oid = ANY (pol.polroles) ORDER BY 1), ',')
       END AS roles,
       pg_catalog.pg_get_expr(pol.polqual, pol.polrelid) AS qual,
       pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid) AS withcheck,
       CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                       WHEN 'd' THEN 'DELETE' END AS cmd
FROM pg_catalog.pg_policy pol
WHERE pol.polrelid = $1
ORDER BY 1
"""
_STATISTICS = """
SELECT s.stxnamespace::pg_catalog.regnamespace::pg_catalog.text AS nsp, s.stxname,
       pg_catalog.pg_get_statisticsobjdef_columns(s.oid) AS columns,
       'd' = ANY (s.stxkind) AS ndistinct, 'f' = ANY (s.stxkind) AS dependencies,
       'm' = ANY (s.stxkind) AS mcv,
       s.stxrelid::pg_catalog.regclass::pg_catalog.text AS ontable,
       CASE WHEN s.stxstattarget >= 0 THEN s.stxstattarget END AS target
FROM pg_catalog.pg_statistic_ext s
WHERE s.stxrelid = $1
ORDER BY nsp, s.stxname
"""
_RULES = """
SELECT r.rulename, pg_catalog.pg_get_ruledef(r.oid, true) AS ruledef, r.ev_enabled::text
FROM pg_catalog.pg_rewrite r
WHERE r.ev_class = $1 AND r.rulename <> '_RETURN'
ORDER BY 1
"""
_PUBLICATIONS_15 = """
SELECT p.pubname, NULL AS qual, NULL AS columns
FROM pg_catalog.pg_publication p
  JOIN pg_catalog.pg_publication_namespace pn ON p.oid = pn.pnpubid
  JOIN pg_catalog.pg_class pc ON pc.relnamespace = pn.pnnspid
WHERE pc.oid = $1 AND pg_catalog.pg_relation_is_publishable($1::pg_catalog.oid)
UNION
SELECT p.pubname, pg_catalog.pg_get_expr(pr.prqual, pr.prrelid),
       CASE WHEN pr.prattrs IS NOT NULL THEN (
           SELECT pg_catalog.string_agg(a.attname, ', ' ORDER BY s.i)
           FROM pg_catalog.generate_series(
                    0, pg_catalog.array_upper(pr.prattrs::pg_catalog.int2[], 1)) s(i),
                pg_catalog.pg_attribute a
           WHERE a.attrelid = pr.prrelid AND a.attnum = pr.prattrs[s.i]) END
FROM pg_catalog.pg_publication p
  JOIN pg_catalog.pg_publication_rel pr ON p.oid = pr.prpubid
WHERE pr.prrelid = $1
UNION
SELECT p.pubname, NULL, NULL
FROM pg_catalog.pg_publication p
WHERE p.puballtables AND pg_catalog.pg_relation_is_publishable($1::pg_catalog.oid)
ORDER BY 1
"""
# Before 15 publications name tables only, with no row filter or column list.
_PUBLICATIONS_OLD = """
SELECT p.pubname, NULL AS qual, NULL AS columns
FROM pg_catalog.pg_publication p
  JOIN pg_catalog.pg_publication_rel pr ON p.oid = pr.prpubid
WHERE pr.prrelid = $1
UNION
SELECT p.pubname, NULL, NULL
FROM pg_catalog.pg_publication p
WHERE p.puballtables AND pg_catalog.pg_relation_is_publishable($1::pg_catalog.oid)
ORDER BY 1
"""
_NOT_NULLS = """
SELECT c.conname, a.attname, c.connoinherit, c.conislocal, c.coninhcount <> 0 AS inherited,
       c.convalidated
FROM pg_catalog.pg_constraint c
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.contype = 'n' AND c.conrelid = $1
ORDER BY a.attnum
"""
_TRIGGERS = """
SELECT t.tgname, pg_catalog.pg_get_triggerdef(t.oid, true) AS tgdef, t.tgenabled::text,
       t.tgisinternal,
       CASE WHEN t.tgparentid <> 0 THEN (
           SELECT u.tgrelid::pg_catalog.regclass::pg_catalog.text
           FROM pg_catalog.pg_trigger u,
                pg_catalog.pg_partition_ancestors(t.tgrelid) WITH ORDINALITY AS a(relid, depth)
           WHERE u.tgname = t.tgname AND u.tgrelid = a.relid AND u.tgparentid = 0
           ORDER BY a.depth LIMIT 1) END AS parent
FROM pg_catalog.pg_trigger t
WHERE t.tgrelid = $1 AND (NOT t.tgisinternal OR (t.tgisinternal AND t.tgenabled = 'D'))
ORDER BY 1
"""
_SERVER = """
SELECT s.srvname, pg_catalog.array_to_string(ARRAY(
           SELECT pg_catalog.quote_ident(option_name) || ' '
                  || pg_catalog.quote_literal(option_value)
           FROM pg_catalog.pg_options_to_table(f.ftoptions)), ', ') AS options
FROM pg_catalog.pg_foreign_table f
  JOIN pg_catalog.pg_foreign_server s ON s.oid = f.ftserver
WHERE f.ftrelid = $1
"""
_OWNER = """
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.reltoastrelid = $1
"""
_PARENTS = """
SELECT c.oid::pg_catalog.regclass::pg_catalog.text AS name
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhparent AND i.inhrelid = $1
ORDER BY i.inhseqno
"""
_CHILDREN = """
SELECT c.oid::pg_catalog.regclass::pg_catalog.text AS name, c.relkind::text,
       i.inhdetachpending,
       pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhrelid AND i.inhparent = $1
ORDER BY pg_catalog.pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT',
         c.oid::pg_catalog.regclass::pg_catalog.text
"""
# psql's sections of rules: title, pg_rewrite.ev_enabled.
_RULE_SECTIONS = (
    ("Rules:", "O"),
    ("Disabled rules:", "D"),
    ("Rules firing always:", "A"),
    ("Rules firing on replica only:", "R"),
)
# psql's sections of triggers: title, pg_trigger.tgenabled, internal or not (None: either).
_TRIGGER_SECTIONS: tuple[tuple[str, str, bool | None], ...] = (
    ("Triggers:", "O", None),
    ("Disabled user triggers:", "D", False),
    ("Disabled internal triggers:", "D", True),
    ("Triggers firing always:", "A", None),
    ("Triggers firing on replica only:", "R", None),
)


def _index_line(row: Any) -> str:
    line = f'    "{row["relname"]}"'
    if row["contype"] == "x":
        line += f" {row['condef']}"
    else:
        if row["indisprimary"]:
            line += " PRIMARY KEY,"
        elif row["indisunique"]:
            line += " UNIQUE CONSTRAINT," if row["contype"] == "u" else " UNIQUE,"
        # psql echoes what follows USING in the index's definition.
        definition = row["indexdef"]
        using = definition.find(" USING ")
        line += " " + (definition[using + 7 :] if using >= 0 else definition)
        line += " DEFERRABLE" if row["condeferrable"] else ""
        line += " INITIALLY DEFERRED" if row["condeferred"] else ""
    line += " CLUSTER" if row["indisclustered"] else ""
    line += "" if row["indisvalid"] else " INVALID"
    line += " REPLICA IDENTITY" if row["indisreplident"] else ""
    return line + (f', tablespace "{row["spcname"]}"' if row["spcname"] else "")


def _policy_lines(facts: Any, rows: list[Any]) -> list[str]:
    enabled, forced = facts["relrowsecurity"], facts["relforcerowsecurity"]
    if enabled and forced:
        head = "Policies (forced row security enabled):"
    elif enabled:
        head = "Policies:" if rows else "Policies (row security enabled):"
    elif rows:
        head = "Policies (row security disabled):"
    else:
        return []
    if not rows:
        return [head + " (none)"]
    lines = [head]
    for row in rows:
        text = f'    POLICY "{row["polname"]}"'
        text += "" if row["polpermissive"] else " AS RESTRICTIVE"
        text += f" FOR {row['cmd']}" if row["cmd"] else ""
        text += f"\n      TO {row['roles']}" if row["roles"] is not None else ""
        text += f"\n      USING ({row['qual']})" if row["qual"] is not None else ""
        text += f"\n      WITH CHECK ({row['withcheck']})" if row["withcheck"] is not None else ""
        lines += text.split("\n")
    return lines


def _statistics_line(row: Any) -> str:
    kinds = [k for k in ("ndistinct", "dependencies", "mcv") if row[k]]
    line = f'    "{row["nsp"]}.{row["stxname"]}"'
    if kinds and len(kinds) < 3:
        line += " (" + ", ".join(kinds) + ")"
    line += f" ON {row['columns']} FROM {row['ontable']}"
    if row["target"] is not None:
        line += f"; STATISTICS {row['target']}"
    return line


def _not_null_line(row: Any) -> str:
    line = f'    "{row["conname"]}" NOT NULL "{row["attname"]}"'
    if row["connoinherit"]:
        line += " NO INHERIT"
    elif row["conislocal"] and row["inherited"]:
        line += " (local, inherited)"
    elif row["inherited"]:
        line += " (inherited)"
    return line + ("" if row["convalidated"] else " NOT VALID")


def _rule_lines(rows: list[Any], enabled: str, indent: str = "    ") -> list[str]:
    # psql shows the definition without its "CREATE RULE ", and without its ';'.
    lines: list[str] = []
    for row in rows:
        if row["ev_enabled"] == enabled:
            definition = row["ruledef"].rstrip(";")
            lines += (indent + definition.removeprefix("CREATE RULE ")).split("\n")
    return lines


def _listed(label: str, items: list[str]) -> list[str]:
    """``Inherits: a,`` then the others under the first, as psql lines them up."""
    indent = " " * (len(label) + 2)
    return [
        (f"{label}: " if i == 0 else indent) + item + ("," if i < len(items) - 1 else "")
        for i, item in enumerate(items)
    ]


def _section(title: str, lines: list[str]) -> list[str]:
    return [title, *lines] if lines else []


async def table_footers(conn: asyncpg.Connection, oid: int, facts: Any, verbose: bool) -> list[str]:
    r"""The footers of ``\d`` (``\d+`` when ``verbose``) for a table-like relation.

    Parameters
    ----------
    conn : asyncpg.Connection
    oid : int
        The relation.
    facts : asyncpg.Record
        Its ``pg_class`` facts (relkind, relhasindex, relrowsecurity, ...).
    verbose : bool

    Returns
    -------
    list of str
        One line each, in psql's order.
    """
    version = conn.get_server_version().major
    kind = facts["relkind"]
    footers: list[str] = []

    async def rows(sql: str) -> list[Any]:
        return list(await conn.fetch(sql, oid))

    if kind in "vm" and verbose:
        definition = await conn.fetchval("SELECT pg_catalog.pg_get_viewdef($1::oid, true)", oid)
        footers += ["View definition:", *definition.split("\n")]
        if kind == "v" and facts["relhasrules"]:
            # psql indents a view's rules by one space, a table's by four.
            footers += _section("Rules:", _rule_lines(await rows(_RULES), "O", " "))
    footers += await partition_of(conn, oid, facts, verbose)
    if facts["partkey"] is not None:
        footers.append(f"Partition key: {facts['partkey']}")
    if kind == "t":
        owner = await conn.fetchrow(_OWNER, oid)
        if owner is not None:
            footers.append(f'Owning table: "{owner["nspname"]}.{owner["relname"]}"')
    if (kind in "rpmft" and facts["relhasindex"]) or kind == "p":
        footers += _section("Indexes:", [_index_line(r) for r in await rows(_INDEXES)])
    if kind in "rpf":
        checks = await rows(_CHECKS)
        footers += _section("Check constraints:", [f'    "{r[0]}" {r[1]}' for r in checks])
    if kind in "rp":
        keys = [
            f'    "{r["conname"]}" {r["condef"]}'
            if r["sametable"]
            else f'    TABLE "{r["ontable"]}" CONSTRAINT "{r["conname"]}" {r["condef"]}'
            for r in await rows(_FOREIGN_KEYS)
        ]
        footers += _section("Foreign-key constraints:", keys)
        referenced = [
            f'    TABLE "{r["ontable"]}" CONSTRAINT "{r["conname"]}" {r["condef"]}'
            for r in await rows(_REFERENCED_BY)
        ]
        footers += _section("Referenced by:", referenced)
        footers += _policy_lines(facts, await rows(_POLICIES))
    if kind in "rpmf":
        statistics = [_statistics_line(r) for r in await rows(_STATISTICS)]
        footers += _section("Statistics objects:", statistics)
    if kind in "rp" and facts["relhasrules"]:
        rules = await rows(_RULES)
        for title, enabled in _RULE_SECTIONS:
            footers += _section(title, _rule_lines(rules, enabled))
    if kind in "rp":
        publications = [
            f'    "{r["pubname"]}"'
            + (f" ({r['columns']})" if r["columns"] else "")
            + (f" WHERE {r['qual']}" if r["qual"] else "")
            for r in await rows(_PUBLICATIONS_15 if version >= 15 else _PUBLICATIONS_OLD)
        ]
        footers += _section("Publications:", publications)
        if verbose and version >= 18:
            not_nulls = [_not_null_line(r) for r in await rows(_NOT_NULLS)]
            footers += _section("Not-null constraints:", not_nulls)
    if facts["relhastriggers"]:
        triggers = await rows(_TRIGGERS)
        for title, enabled, internal in _TRIGGER_SECTIONS:
            lines = []
            for t in triggers:
                if t["tgenabled"] == enabled and internal in (None, t["tgisinternal"]):
                    definition = t["tgdef"]
                    start = definition.find(" TRIGGER ")
                    line = "    " + (definition[start + 9 :] if start >= 0 else definition)
                    lines.append(line + (f", ON TABLE {t['parent']}" if t["parent"] else ""))
            footers += _section(title, lines)
    if kind == "f":
        server = await conn.fetchrow(_SERVER, oid)
        footers.append(f"Server: {server['srvname']}")
        if server["options"]:
            footers.append(f"FDW options: ({server['options']})")
    if kind in "rpmf":
        footers += await inheritance(conn, oid, facts, verbose)
    if facts["oftype"]:
        footers.append(f"Typed table of type: {facts['oftype']}")
    # psql names a replica identity when it is not the schema's usual one
    # (NOTHING for the system catalogs, DEFAULT elsewhere); an index's is on its line.
    usual = "n" if facts["nspname"] == "pg_catalog" else "d"
    identity = facts["relreplident"]
    if verbose and kind in "rm" and identity not in (usual, "i"):
        words = {"d": "DEFAULT", "f": "FULL", "n": "NOTHING"}[identity]
        footers.append(f"Replica Identity: {words}")
    if facts["spcname"] and kind in "rmp":
        footers.append(f'Tablespace: "{facts["spcname"]}"')
    if verbose and facts["amname"] is not None and kind in "rmpt":
        footers.append(f"Access method: {facts['amname']}")
    if verbose and facts["options"]:
        footers.append(f"Options: {facts['options']}")
    return footers


async def partition_of(conn: asyncpg.Connection, oid: int, facts: Any, verbose: bool) -> list[str]:
    r"""``Partition of: parent bound`` for a partition (table or index); its constraint with ``+``.

    Parameters
    ----------
    conn : asyncpg.Connection
    oid : int
    facts : asyncpg.Record
        The relation's ``pg_class`` facts.
    verbose : bool

    Returns
    -------
    list of str
        Empty for a relation that is no partition.
    """
    if not facts["relispartition"]:
        return []
    parents = await conn.fetch(_PARENTS, oid)
    # An index partition has no bound: psql still prints the space before it.
    lines = [f"Partition of: {parents[0]['name']} {facts['bound'] or ''}"]
    if verbose:
        constraint = await conn.fetchval(
            "SELECT pg_catalog.pg_get_partition_constraintdef($1::oid)", oid
        )
        lines.append(
            f"Partition constraint: {constraint}" if constraint else "No partition constraint"
        )
    return lines


async def inheritance(conn: asyncpg.Connection, oid: int, facts: Any, verbose: bool) -> list[str]:
    r"""What a relation inherits, and its children or partitions (listed with ``\d+``).

    Parameters
    ----------
    conn : asyncpg.Connection
    oid : int
    facts : asyncpg.Record
        The relation's ``pg_class`` facts.
    verbose : bool

    Returns
    -------
    list of str
    """
    footers: list[str] = []
    if not facts["relispartition"]:
        parents = [r["name"] for r in await conn.fetch(_PARENTS, oid)]
        footers += _listed("Inherits", parents) if parents else []
    children = await conn.fetch(_CHILDREN, oid)
    partitioned = facts["relkind"] in "pI"
    if not verbose:
        if children:
            noun = "partitions" if partitioned else "child tables"
            footers.append(f"Number of {noun}: {len(children)} (Use \\d+ to list them.)")
        elif partitioned:
            footers.append("Number of partitions: 0")
        return footers
    items = []
    for child in children:
        item = child["name"]
        if facts["relkind"] == "p":
            item += f" {child['bound']}"
            item += ", PARTITIONED" if child["relkind"] == "p" else ""
            item += ", FOREIGN" if child["relkind"] == "f" else ""
            item += " (DETACH PENDING)" if child["inhdetachpending"] else ""
        items.append(item)
    if items:
        footers += _listed("Partitions" if partitioned else "Child tables", items)
    elif partitioned:
        footers.append("Number of partitions: 0")
    return footers
