"""psql's name patterns as anchored regular expressions, and the query text that binds them.

The rules are psql's: an unquoted ``.`` separates database, schema and name;
unquoted ``*`` is any text and ``?`` any one character; unquoted ASCII
letters fold to lower case; inside ``"..."`` everything is literal (``""`` is
one quote) and keeps its case.  ``$`` is always literal, and so is ``[]``
(an array type's name); other regular expression characters written
outside quotes keep their meaning, as in psql.  Each part becomes
``^(...)$``; an empty part, or ``*``, puts no condition on its column.

A pattern without a schema matches only what the search path makes
visible, again as psql does, and with one a database part must name the
current database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from pgmagic.errors import MetaCommandError

__all__ = ["Pattern", "Query", "resolve", "translate"]

_ESCAPED_IN_QUOTES = set("|*+?()[]{}.^$\\")
_ANY = "^(.*)$"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A psql pattern split into parts, each an anchored regular expression.

    Attributes
    ----------
    text : str
        The pattern as written.
    name : str or None
        The regular expression for the object's own name (None: any name).
    schema : str or None
        The regular expression for the schema (None: no condition).
    qualified : bool
        Whether a schema part was written (``*.orders`` is qualified: every
        schema, visible or not).
    database : str or None
        The database part, as its text, when one was written.
    """

    text: str
    name: str | None
    schema: str | None = None
    qualified: bool = False
    database: str | None = None


def _parts(pattern: str) -> list[tuple[str, str]]:
    """Each dot-separated part of ``pattern``: its regular expression body, and its text."""
    parts: list[tuple[str, str]] = []
    current: list[str] = []
    literal: list[str] = []
    quoted = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == '"':
            if quoted and pattern[i + 1 : i + 2] == '"':
                current.append('"')
                literal.append('"')
                i += 1
            else:
                quoted = not quoted
            i += 1
            continue
        literal.append(char.lower() if not quoted and char.isascii() else char)
        if quoted:
            current.append("\\" + char if char in _ESCAPED_IN_QUOTES else char)
        elif char == ".":
            literal.pop()
            parts.append(("".join(current), "".join(literal)))
            current, literal = [], []
        elif char == "*":
            current.append(".*")
        elif char == "?":
            current.append(".")
        elif char == "$":
            current.append("\\$")
        elif char == "[" and pattern[i + 1 : i + 2] == "]":
            current.append("\\[")
        elif char.isascii() and char.isupper():
            current.append(char.lower())
        else:
            current.append(char)
        i += 1
    parts.append(("".join(current), "".join(literal)))
    return parts


def _anchored(body: str) -> str | None:
    # Only "*" is optimised away: an empty part ("public.") matches no name, as in psql.
    anchored = f"^({body})$"
    return None if anchored == _ANY else anchored


def translate(pattern: str, *, parts: int = 3, database: str | None = None) -> Pattern:
    """Translate a psql pattern into regular expressions.

    Parameters
    ----------
    pattern : str
        As typed after the command: ``public.ord*``, ``"Mixed Case"``.
    parts : int
        At most how many dotted names, as psql counts them: 3 for what lives
        in a schema (``db.schema.name``), 2 for a schema (``db.schema``), 1
        for a database, role or extension.
    database : str, optional
        The current database, which a database part must name.

    Returns
    -------
    Pattern

    Raises
    ------
    MetaCommandError
        Too many dotted names, or a database part naming another database.

    Examples
    --------
    >>> found = translate("public.Ord*")
    >>> found.name, found.schema
    ('^(ord.*)$', '^(public)$')
    """
    found = _parts(pattern)
    if len(found) > parts:
        raise MetaCommandError(f"improper qualified name (too many dotted names): {pattern}")
    db: str | None = None
    if parts > 1 and len(found) == parts:
        # A name, not a pattern: psql compares it with the current database's.
        db = found.pop(0)[1]
        if database is not None and db != database:
            raise MetaCommandError(f"cross-database references are not implemented: {pattern}")
    if len(found) == 2:
        return Pattern(pattern, _anchored(found[1][0]), _anchored(found[0][0]), True, db)
    return Pattern(pattern, _anchored(found[0][0]), None, False, db)


async def resolve(conn: asyncpg.Connection, pattern: str, *, parts: int = 3) -> Pattern:
    """:func:`translate`, with a database part checked against the connection's database.

    Parameters
    ----------
    conn : asyncpg.Connection
    pattern : str
    parts : int

    Returns
    -------
    Pattern

    Raises
    ------
    MetaCommandError
    """
    found = translate(pattern, parts=parts)
    if found.database is not None:
        # Asked only when a database is named: most patterns cost no round trip.
        current = await conn.fetchval("SELECT pg_catalog.current_database()")
        translate(pattern, parts=parts, database=current)
    return found


@dataclass(slots=True)
class Query:
    """Conditions of a catalog query, with the values they bind.

    Values become ``$1, $2, ...`` in the order they are bound; nothing
    the user typed is pasted into the SQL.

    Attributes
    ----------
    conditions : list of str
        SQL conditions, joined with AND by :meth:`where`.
    args : list
        The bound values, in order.
    """

    conditions: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def bind(self, value: Any) -> str:
        """Bind a value and return its placeholder.

        Parameters
        ----------
        value : object

        Returns
        -------
        str
            ``$n``.
        """
        self.args.append(value)
        return f"${len(self.args)}"

    def match(self, column: str, regex: str | None) -> None:
        """Require ``column`` to match ``regex`` (nothing when it is None)."""
        if regex is not None:
            placeholder = self.bind(regex)
            self.conditions.append(
                f"{column} OPERATOR(pg_catalog.~) {placeholder} COLLATE pg_catalog.default"
            )

    def pattern(
        self,
        pattern: Pattern | None,
        name: str,
        schema: str | None = None,
        visible: str | None = None,
    ) -> None:
        """Require a match of ``pattern`` as psql does.

        Parameters
        ----------
        pattern : Pattern or None
            None: no condition.
        name : str
            The column holding the object's name.
        schema : str, optional
            The column holding its schema's name.
        visible : str, optional
            A condition for "visible in the search path", applied when the
            pattern names no schema.
        """
        if pattern is None:
            return
        self.match(name, pattern.name)
        if pattern.qualified and schema is not None:
            self.match(schema, pattern.schema)
        elif visible is not None:
            self.conditions.append(visible)

    def where(self) -> str:
        """``WHERE a AND b`` (empty without conditions)."""
        if not self.conditions:
            return ""
        return "WHERE " + "\n  AND ".join(self.conditions)
