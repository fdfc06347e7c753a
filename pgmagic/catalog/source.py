r"""``\sf`` and ``\sv``: a function's or a view's definition, as psql prints it.

The name is read by the server (``regprocedure`` when it has an argument
list, else ``regproc``; ``regclass`` for views), so a missing or ambiguous
name gets the server's own error, as in psql.  With ``+`` the lines are
numbered as psql numbers them: a function's from the start of its body
(``AS``, ``BEGIN`` or ``RETURN``), a view's from its first line.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from pgmagic.catalog.meta import MetaCommand
from pgmagic.errors import MetaCommandError

__all__ = ["Definition", "definition"]

# Where a function's body starts in pg_get_functiondef's text.
_BODY_STARTS = ("AS ", "BEGIN ", "RETURN ")

_VIEW = """
SELECT n.nspname, c.relname, c.relkind::text, pg_catalog.quote_ident(n.nspname),
       pg_catalog.quote_ident(c.relname), pg_catalog.pg_get_viewdef(c.oid, true),
       pg_catalog.array_to_string(ARRAY(
           SELECT pg_catalog.quote_ident(o.option_name) || '='
                  || pg_catalog.quote_literal(o.option_value)
           FROM pg_catalog.pg_options_to_table(c.reloptions) o
           WHERE o.option_name <> 'check_option'), ', '),
       (SELECT pg_catalog.upper(o.option_value)
        FROM pg_catalog.pg_options_to_table(c.reloptions) o
        WHERE o.option_name = 'check_option')
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1::text::pg_catalog.regclass
"""


@dataclass(frozen=True, slots=True)
class Definition:
    r"""A definition as ``\sf`` or ``\sv`` prints it.

    Attributes
    ----------
    sql : str
        The ``CREATE OR REPLACE ...`` statement, ending in a newline.
    numbered : bool
        ``+``: print the lines numbered.
    is_function : bool
        A function's (numbered from its body) rather than a view's.
    """

    sql: str
    numbered: bool = False
    is_function: bool = True

    @property
    def text(self) -> str:
        """What psql prints: the statement, its lines numbered with ``+``."""
        if not self.numbered:
            return self.sql
        lines, number = [], 0
        in_header = self.is_function
        for line in self.sql.rstrip("\n").split("\n"):
            if in_header and line.startswith(_BODY_STARTS):
                in_header = False
            if in_header:
                lines.append(f"        {line}")
            else:
                number += 1
                lines.append(f"{number:<7} {line}")
        return "\n".join(lines) + "\n"


async def definition(conn: asyncpg.Connection, command: MetaCommand) -> Definition:
    r"""Run ``\sf`` or ``\sv``.

    Parameters
    ----------
    conn : asyncpg.Connection
    command : MetaCommand
        Of kind ``sf`` or ``sv``; its pattern is the name as typed.

    Returns
    -------
    Definition

    Raises
    ------
    asyncpg.PostgresError
        No such function or relation, or a name that names several functions.
    MetaCommandError
        ``\sv`` of a relation that is not a view.
    """
    name = command.pattern or ""
    if command.kind == "sf":
        cast = "regprocedure" if "(" in name else "regproc"
        # Cast from text in the query, not when binding: psql's error, without
        # a CONTEXT line naming a portal parameter.
        oid = await conn.fetchval(f"SELECT $1::text::pg_catalog.{cast}::pg_catalog.oid", name)
        sql = await conn.fetchval("SELECT pg_catalog.pg_get_functiondef($1)", oid)
        return Definition(sql, command.verbose)
    row = await conn.fetchrow(_VIEW, name)
    schema, relation, kind, quoted_schema, quoted_relation, body, options, check = row
    if kind != "v":
        raise MetaCommandError(f'"{schema}.{relation}" is not a view')
    sql = f"CREATE OR REPLACE VIEW {quoted_schema}.{quoted_relation}"
    if options:
        sql += f"\n WITH ({options})"
    sql += " AS\n" + body.rstrip().removesuffix(";")
    if check:
        sql += f"\n WITH {check} CHECK OPTION"
    return Definition(sql + "\n", command.verbose, is_function=False)
