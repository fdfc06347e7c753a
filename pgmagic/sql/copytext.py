"""``COPY (query) TO STDOUT`` for queries with bound parameters.

``COPY`` takes no bind parameters, and pasting values into SQL text is what
pgmagic never does.  Instead each value is bound, as a parameter of its own
type, into a transaction-local setting::

    SELECT set_config('pgmagic.p1', CAST($1 AS pg_catalog.int4)::text, true)

and the query sent to ``COPY`` reads it back with the same type::

    COPY (SELECT * FROM t WHERE id = current_setting('pgmagic.p1')::pg_catalog.int4) TO STDOUT

The value crosses as its type's own text form, which PostgreSQL reads back
exactly, and no value ever appears in SQL text.  ``NULL`` becomes a typed
``NULL`` constant.

Only plain queries are copied (``SELECT``, ``VALUES``, ``TABLE``, ``WITH``
without data-modifying parts): :func:`copyable` says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgmagic.sql.lexer import is_plain_query
from pgmagic.sql.params import BoundStatement, placeholders

__all__ = ["CopyQuery", "copy_query", "copy_statement", "copyable"]


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
        without row locks and without data-modifying CTEs.  When unsure
        (:func:`pgmagic.sql.lexer.is_plain_query` lists the cases) it says
        False, and the statement takes the slower, always-correct path.

    Examples
    --------
    >>> copyable("SELECT 1"), copyable("INSERT INTO t VALUES (1) RETURNING *")
    (True, False)
    """
    return is_plain_query(sql)


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
        as ``$k``, local to the transaction the COPY runs in.
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
                cast = f"CAST(${len(values)} AS {type_sql})::text"
                setters.append(f"set_config('pgmagic.p{number}', {cast}, true)")
        pieces.append(replacement)
        length += len(replacement)
        shifts.append((length, end - length))
        cursor = end
    pieces.append(bound.sql[cursor:])
    return CopyQuery(copy_statement("".join(pieces)), tuple(setters), tuple(values), tuple(shifts))


def copy_statement(sql: str) -> str:
    """Return ``sql`` ready to be wrapped in ``COPY (...) TO STDOUT``.

    Trailing semicolons and whitespace go; a newline is added so a
    trailing ``--`` comment cannot swallow the closing parenthesis.

    Parameters
    ----------
    sql : str
        One statement that returns rows.

    Returns
    -------
    str
        The statement, to pass to ``copy_from_query``.
    """
    return sql.rstrip(" \t\r\n\f\v;") + "\n"
