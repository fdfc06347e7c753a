r"""Listing commands: ``\d``, ``\dt`` and kin, ``\dn``, ``\df``, ``\dT``, ``\dx``, ``\du``, ``\l``.

``\dt``, ``\dv``, ``\dm``, ``\di``, ``\ds``, ``\dE`` (and their combinations,
``\dtv``) list relations, as ``\d`` does without a pattern; ``\conninfo``
is a listing too, of what the server knows of the connection.

Each builds one query of ``pg_catalog`` with the columns, titles and
filters of psql 18 (the words of its "Did not find" messages too), and
returns a :class:`Listing` of plain rows.  Where a catalog column exists
only in newer servers (``pg_database.datlocale``, ``daticurules``), the
query asks for what the server has.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from pgmagic.catalog.meta import MetaCommand, parts
from pgmagic.catalog.patterns import Query, resolve

__all__ = ["LISTINGS", "Listing", "extension_objects", "list_relations"]

_ACL = (
    "CASE WHEN pg_catalog.array_length({0}, 1) = 0 THEN '(none)' "
    "ELSE pg_catalog.array_to_string({0}, E'\\n') END"
)
_NOT_SYSTEM = (
    "n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast' AND n.nspname <> 'information_schema'"
)


@dataclass(frozen=True, slots=True)
class Listing:
    r"""A listing as psql shows it: a title over a table.

    Attributes
    ----------
    title : str
        ``List of tables``.
    columns : tuple of str
    rows : list of tuple of str
        One tuple of text per row, empty where psql shows nothing.
    missing : str or None
        What psql says instead of an empty table (``Did not find any
        tables.``); None: an empty table is shown.
    name : str
        What the listing is of, when it is one of several (``\dx+``: the
        extension).
    """

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    missing: str | None = None
    name: str = ""


async def _fetch(conn: asyncpg.Connection, sql: str, query: Query) -> list[tuple[str, ...]]:
    # Text as psql prints it: nothing where a value is missing (a listing of
    # NULLs reads badly, and \d's columns are text the same way).
    rows = await conn.fetch(sql, *query.args)
    return [tuple("" if v is None else str(v) for v in r.values()) for r in rows]


async def _listed(
    conn: asyncpg.Connection,
    title: str,
    columns: list[tuple[str, str]],
    source: str,
    query: Query,
    order: str,
) -> Listing:
    """Run ``SELECT <columns> FROM <source> <conditions> ORDER BY <order>`` as a listing."""
    sql = (
        "SELECT "
        + ", ".join(f'{expr} AS "{name}"' for expr, name in columns)
        + f"\nFROM {source}\n"
        + query.where()
        + f"\nORDER BY {order}"
    )
    return Listing(title, tuple(n for _, n in columns), await _fetch(conn, sql, query))


# Letter -> (relkinds, singular, plural) for \dt \di \dv \dm \ds \dE.
_RELATIONS = {
    "t": ("rp", "table", "tables"),
    "i": ("iI", "index", "indexes"),
    "v": ("v", "view", "views"),
    "m": ("m", "materialized view", "materialized views"),
    "s": ("S", "sequence", "sequences"),
    "E": ("f", "foreign table", "foreign tables"),
}
_RELKIND_NAMES = (
    "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' "
    "WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' "
    "WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' "
    "WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END"
)


async def list_relations(conn: asyncpg.Connection, command: MetaCommand) -> Listing:
    r"""``\dt``, ``\di``, ``\dv``, ``\dm``, ``\ds``, ``\dE``, their combinations, and ``\d``.

    Parameters
    ----------
    conn : asyncpg.Connection
    command : MetaCommand
        ``letters`` empty for ``\d`` (tables, views, materialized views,
        sequences and foreign tables).

    Returns
    -------
    Listing
    """
    letters = command.letters or "tvmsE"
    kinds = "".join(_RELATIONS[c][0] for c in letters)
    if "t" in letters and (command.system or command.pattern is not None):
        kinds += "t"  # TOAST tables, as psql lists them with S or a pattern
    columns = [
        ("n.nspname", "Schema"),
        ("c.relname", "Name"),
        (_RELKIND_NAMES, "Type"),
        ("pg_catalog.pg_get_userbyid(c.relowner)", "Owner"),
    ]
    if "i" in letters:
        columns.append(("c2.relname", "Table"))
    if command.verbose:
        columns.append(
            (
                "CASE c.relpersistence WHEN 'p' THEN 'permanent' WHEN 't' THEN 'temporary' "
                "WHEN 'u' THEN 'unlogged' END",
                "Persistence",
            )
        )
        if any(c in letters for c in "tmi"):
            columns.append(("am.amname", "Access method"))
        columns += [
            ("pg_catalog.pg_size_pretty(pg_catalog.pg_table_size(c.oid))", "Size"),
            ("pg_catalog.obj_description(c.oid, 'pg_class')", "Description"),
        ]
    query = Query()
    query.conditions.append(f"c.relkind::text = ANY({query.bind(list(kinds))}::text[])")
    if not command.system and command.pattern is None:
        query.conditions.append(_NOT_SYSTEM)
    pattern = (
        None
        if command.pattern is None
        else await resolve(conn, command.pattern, parts=parts(command.kind))
    )
    if pattern is None:
        query.conditions.append("pg_catalog.pg_table_is_visible(c.oid)")
    query.pattern(pattern, "c.relname", "n.nspname", "pg_catalog.pg_table_is_visible(c.oid)")
    sql = (
        "SELECT "
        + ", ".join(f'{expr} AS "{name}"' for expr, name in columns)
        + "\nFROM pg_catalog.pg_class c"
        "\n  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        "\n  LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam"
        "\n  LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid"
        "\n  LEFT JOIN pg_catalog.pg_class c2 ON i.indrelid = c2.oid\n"
        + query.where()
        + "\nORDER BY 1, 2"
    )
    rows = await _fetch(conn, sql, query)
    plural = _RELATIONS[letters][2] if len(command.letters) == 1 else "relations"
    missing = None
    if not rows:
        missing = (
            f"Did not find any {plural}."
            if command.pattern is None
            else f'Did not find any {plural} named "{command.pattern}".'
        )
    return Listing(f"List of {plural}", tuple(n for _, n in columns), rows, missing)


async def _schemas(conn: asyncpg.Connection, command: MetaCommand) -> Listing:
    columns = [("n.nspname", "Name"), ("pg_catalog.pg_get_userbyid(n.nspowner)", "Owner")]
    if command.verbose:
        columns += [
            (_ACL.format("n.nspacl"), "Access privileges"),
            ("pg_catalog.obj_description(n.oid, 'pg_namespace')", "Description"),
        ]
    query = Query()
    if not command.system and command.pattern is None:
        query.conditions.append("n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'")
    if command.pattern is not None:
        query.pattern(await resolve(conn, command.pattern, parts=parts(command.kind)), "n.nspname")
    return await _listed(conn, "List of schemas", columns, "pg_catalog.pg_namespace n", query, "1")


_ROUTINE_KINDS = {
    "a": "p.prokind = 'a'",
    "n": "p.prokind = 'f' AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype",
    "p": "p.prokind = 'p'",
    "t": "p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype",
    "w": "p.prokind = 'w'",
}


async def _functions(conn: asyncpg.Connection, command: MetaCommand) -> Listing:
    columns = [
        ("n.nspname", "Schema"),
        ("p.proname", "Name"),
        ("pg_catalog.pg_get_function_result(p.oid)", "Result data type"),
        ("pg_catalog.pg_get_function_arguments(p.oid)", "Argument data types"),
        (
            "CASE p.prokind WHEN 'a' THEN 'agg' WHEN 'w' THEN 'window' WHEN 'p' THEN 'proc' "
            "ELSE 'func' END",
            "Type",
        ),
    ]
    if command.verbose:
        columns += [
            (
                "CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' "
                "WHEN 'v' THEN 'volatile' END",
                "Volatility",
            ),
            (
                "CASE p.proparallel WHEN 'r' THEN 'restricted' WHEN 's' THEN 'safe' "
                "WHEN 'u' THEN 'unsafe' END",
                "Parallel",
            ),
            ("pg_catalog.pg_get_userbyid(p.proowner)", "Owner"),
            ("CASE WHEN p.prosecdef THEN 'definer' ELSE 'invoker' END", "Security"),
            ("CASE WHEN p.proleakproof THEN 'yes' ELSE 'no' END", "Leakproof?"),
            (_ACL.format("p.proacl"), "Access privileges"),
            ("l.lanname", "Language"),
            ("CASE WHEN l.lanname IN ('internal', 'c') THEN p.prosrc END", "Internal name"),
            ("pg_catalog.obj_description(p.oid, 'pg_proc')", "Description"),
        ]
    query = Query()
    if command.letters:
        query.conditions.append(
            "(" + " OR ".join(f"({_ROUTINE_KINDS[c]})" for c in command.letters) + ")"
        )
    if not command.system and command.pattern is None:
        query.conditions.append("n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema'")
    if command.pattern is None:
        query.conditions.append("pg_catalog.pg_function_is_visible(p.oid)")
    else:
        query.pattern(
            await resolve(conn, command.pattern, parts=parts(command.kind)),
            "p.proname",
            "n.nspname",
            "pg_catalog.pg_function_is_visible(p.oid)",
        )
    source = (
        "pg_catalog.pg_proc p"
        "\n  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
        "\n  LEFT JOIN pg_catalog.pg_language l ON l.oid = p.prolang"
    )
    return await _listed(conn, "List of functions", columns, source, query, "1, 2, 4")


# Type names the grammar accepts that are neither pg_type's nor format_type's:
# a pattern that is exactly one of them (in any case) looks for the canonical
# name, as psql 16+ does.
_TYPE_ALIASES = {
    "decimal": "numeric",
    "float": "double precision",
    "int": "integer",
    "bool[]": "boolean[]",
    "decimal[]": "numeric[]",
    "float[]": "double precision[]",
    "float4[]": "real[]",
    "float8[]": "double precision[]",
    "int[]": "integer[]",
    "int2[]": "smallint[]",
    "int4[]": "integer[]",
    "int8[]": "bigint[]",
    "time[]": "time without time zone[]",
    "timetz[]": "time with time zone[]",
    "timestamp[]": "timestamp without time zone[]",
    "timestamptz[]": "timestamp with time zone[]",
    "varbit[]": "bit varying[]",
    "varchar[]": "character varying[]",
}


async def _types(conn: asyncpg.Connection, command: MetaCommand) -> Listing:
    columns = [("n.nspname", "Schema"), ("pg_catalog.format_type(t.oid, NULL)", "Name")]
    if command.verbose:
        columns += [
            ("t.typname", "Internal name"),
            (
                "CASE WHEN t.typrelid != 0 THEN 'tuple' WHEN t.typlen < 0 THEN 'var'"
                " ELSE t.typlen::pg_catalog.text END",
                "Size",
            ),
            (
                "pg_catalog.array_to_string(ARRAY(SELECT e.enumlabel FROM pg_catalog.pg_enum e"
                " WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder), E'\\n')",
                "Elements",
            ),
            ("pg_catalog.pg_get_userbyid(t.typowner)", "Owner"),
            (_ACL.format("t.typacl"), "Access privileges"),
        ]
    columns.append(("pg_catalog.obj_description(t.oid, 'pg_type')", "Description"))
    query = Query()
    # A table's row type is not listed, nor arrays unless the pattern asks
    # for one (int4[]): each type shows once, under the name a user writes.
    query.conditions.append(
        "(t.typrelid = 0 OR (SELECT c.relkind = 'c' FROM pg_catalog.pg_class c"
        " WHERE c.oid = t.typrelid))"
    )
    if "[]" not in (command.pattern or ""):
        query.conditions.append(
            "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type el"
            " WHERE el.oid = t.typelem AND el.typarray = t.oid)"
        )
    if not command.system and command.pattern is None:
        query.conditions.append("n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema'")
    pattern = None
    if command.pattern is not None:
        typed = _TYPE_ALIASES.get(command.pattern.lower(), command.pattern)
        pattern = await resolve(conn, typed, parts=parts(command.kind))
    if pattern is not None and pattern.name is not None:
        name = query.bind(pattern.name)
        query.conditions.append(
            f"(t.typname OPERATOR(pg_catalog.~) {name} COLLATE pg_catalog.default"
            f" OR pg_catalog.format_type(t.oid, NULL) OPERATOR(pg_catalog.~) {name}"
            " COLLATE pg_catalog.default)"
        )
    if pattern is not None and pattern.qualified:
        query.match("n.nspname", pattern.schema)
    else:
        query.conditions.append("pg_catalog.pg_type_is_visible(t.oid)")
    source = "pg_catalog.pg_type t\n  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
    return await _listed(conn, "List of data types", columns, source, query, "1, 2")


async def _extensions(conn: asyncpg.Connection, command: MetaCommand) -> Listing:
    query = Query()
    if command.pattern is not None:
        query.pattern(await resolve(conn, command.pattern, parts=parts(command.kind)), "e.extname")
    sql = (
        'SELECT e.extname AS "Name", e.extversion AS "Version",'
        ' ae.default_version AS "Default version", n.nspname AS "Schema",'
        " pg_catalog.obj_description(e.oid, 'pg_extension') AS \"Description\""
        "\nFROM pg_catalog.pg_extension e"
        "\n  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
        "\n  LEFT JOIN pg_catalog.pg_available_extensions() ae(name, default_version, comment)"
        " ON ae.name = e.extname\n" + query.where() + "\nORDER BY 1"
    )
    return Listing(
        "List of installed extensions",
        ("Name", "Version", "Default version", "Schema", "Description"),
        await _fetch(conn, sql, query),
    )


async def extension_objects(conn: asyncpg.Connection, command: MetaCommand) -> list[Listing] | str:
    r"""``\dx+``: the objects of each extension, one listing per extension.

    Parameters
    ----------
    conn : asyncpg.Connection
    command : MetaCommand

    Returns
    -------
    list of Listing, or str
        psql's words when no extension matches.
    """
    query = Query()
    if command.pattern is not None:
        found = await resolve(conn, command.pattern, parts=parts(command.kind))
        query.pattern(found, "e.extname")
    extensions = await conn.fetch(
        "SELECT e.extname, e.oid FROM pg_catalog.pg_extension e\n" + query.where() + "\nORDER BY 1",
        *query.args,
    )
    if not extensions:
        if command.pattern is None:
            return "Did not find any extensions."
        return f'Did not find any extension named "{command.pattern}".'
    listings = []
    for extension in extensions:
        objects = await conn.fetch(
            "SELECT pg_catalog.pg_describe_object(d.classid, d.objid, 0)"
            " FROM pg_catalog.pg_depend d"
            " WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass"
            " AND d.refobjid = $1 AND d.deptype = 'e' ORDER BY 1",
            extension["oid"],
        )
        listings.append(
            Listing(
                f'Objects in extension "{extension["extname"]}"',
                ("Object description",),
                [(row[0],) for row in objects],
                name=extension["extname"],
            )
        )
    return listings


# pg_roles flag -> the word psql shows for it, in psql's order.
_ROLE_FLAGS = (
    ("r.rolsuper", "Superuser"),
    ("NOT r.rolinherit", "No inheritance"),
    ("r.rolcreaterole", "Create role"),
    ("r.rolcreatedb", "Create DB"),
    ("NOT r.rolcanlogin", "Cannot login"),
    ("r.rolreplication", "Replication"),
    ("r.rolbypassrls", "Bypass RLS"),
)


async def _roles(conn: asyncpg.Connection, command: MetaCommand) -> Listing:
    flags = ", ".join(f"CASE WHEN {test} THEN '{word}' END" for test, word in _ROLE_FLAGS)
    attributes = (
        f"pg_catalog.array_to_string(ARRAY[{flags},"
        " CASE WHEN r.rolconnlimit = 1 THEN '1 connection'"
        " WHEN r.rolconnlimit >= 0 THEN r.rolconnlimit || ' connections' END,"
        " CASE WHEN r.rolvaliduntil IS NOT NULL"
        " THEN 'Password valid until ' || r.rolvaliduntil END], ', ')"
    )
    columns = [("r.rolname", "Role name"), (attributes, "Attributes")]
    if command.verbose:
        columns.append(("pg_catalog.shobj_description(r.oid, 'pg_authid')", "Description"))
    query = Query()
    if not command.system and command.pattern is None:
        query.conditions.append("r.rolname !~ '^pg_'")
    if command.pattern is not None:
        query.pattern(await resolve(conn, command.pattern, parts=parts(command.kind)), "r.rolname")
    return await _listed(conn, "List of roles", columns, "pg_catalog.pg_roles r", query, "1")


async def _databases(conn: asyncpg.Connection, command: MetaCommand) -> Listing:
    version = conn.get_server_version().major
    # The locale of a non-libc provider: datlocale since 17, daticulocale in 15 and 16.
    locale = "d.datlocale" if version >= 17 else "d.daticulocale"
    columns = [
        ("d.datname", "Name"),
        ("pg_catalog.pg_get_userbyid(d.datdba)", "Owner"),
        ("pg_catalog.pg_encoding_to_char(d.encoding)", "Encoding"),
        (
            "CASE d.datlocprovider WHEN 'b' THEN 'builtin' WHEN 'c' THEN 'libc' "
            "WHEN 'i' THEN 'icu' END",
            "Locale Provider",
        ),
        ("d.datcollate", "Collate"),
        ("d.datctype", "Ctype"),
        (locale, "Locale"),
        ("d.daticurules" if version >= 16 else "NULL::text", "ICU Rules"),
        (_ACL.format("d.datacl"), "Access privileges"),
    ]
    if command.verbose:
        columns += [
            (
                "CASE WHEN pg_catalog.has_database_privilege(d.datname, 'CONNECT') "
                "THEN pg_catalog.pg_size_pretty(pg_catalog.pg_database_size(d.datname)) "
                "ELSE 'No Access' END",
                "Size",
            ),
            ("t.spcname", "Tablespace"),
            ("pg_catalog.shobj_description(d.oid, 'pg_database')", "Description"),
        ]
    query = Query()
    if command.pattern is not None:
        query.pattern(await resolve(conn, command.pattern, parts=parts(command.kind)), "d.datname")
    source = (
        "pg_catalog.pg_database d\n  JOIN pg_catalog.pg_tablespace t ON d.dattablespace = t.oid"
    )
    return await _listed(conn, "List of databases", columns, source, query, "1")


async def _connection(conn: asyncpg.Connection, command: MetaCommand) -> Listing:
    # What the server knows of this connection: the client's side (the DSN)
    # is %pg status's business.
    sql = """
SELECT 'Database', pg_catalog.current_database()
UNION ALL SELECT 'Client User', current_user::text
UNION ALL SELECT CASE WHEN pg_catalog.inet_server_addr() IS NULL
                      THEN 'Socket Directory' ELSE 'Host' END,
                 coalesce(host(pg_catalog.inet_server_addr()),
                          pg_catalog.split_part(
                              pg_catalog.current_setting('unix_socket_directories'), ',', 1))
UNION ALL SELECT 'Server Port', pg_catalog.current_setting('port')
UNION ALL SELECT 'Server Version', pg_catalog.current_setting('server_version')
UNION ALL SELECT 'Backend PID', pg_catalog.pg_backend_pid()::text
UNION ALL SELECT 'SSL Connection', coalesce((SELECT s.ssl::text FROM pg_catalog.pg_stat_ssl s
                                              WHERE s.pid = pg_catalog.pg_backend_pid()), 'false')
UNION ALL SELECT 'Superuser', pg_catalog.current_setting('is_superuser')
UNION ALL SELECT 'Hot Standby', CASE WHEN pg_catalog.pg_is_in_recovery() THEN 'on' ELSE 'off' END
"""
    rows = await _fetch(conn, sql, Query())
    return Listing("Connection Information", ("Parameter", "Value"), rows)


LISTINGS = {
    "list": list_relations,
    "dn": _schemas,
    "df": _functions,
    "dT": _types,
    "dx": _extensions,
    "du": _roles,
    "l": _databases,
    "conninfo": _connection,
}
