"""Split a cell into statements and turn ``$name`` into server-side parameters.

Both jobs use PostgreSQL's lexical rules (:mod:`pgmagic.sql.lexer`), so that
``$name`` inside string constants, ``E''`` strings, quoted identifiers, comments
and dollar quotes (``$$ ... $$``, ``$tag$ ... $tag$``) is left alone, and so
that a ``;`` only ends a statement where the server would end it.

The lexer reports ``$name`` as a lone ``$`` token immediately followed by a
word; ``$1`` is a parameter token.  Token offsets are character indexes.
Values are never pasted into SQL text: the rewritten statement carries
``$1, $2, ...`` and the values travel separately.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pgmagic.errors import ParameterError
from pgmagic.sql.lexer import Kind, Token, scan

__all__ = ["BoundStatement", "Statement", "bind", "split"]

# Keywords that open a block closed by END inside SQL-standard function bodies
# (``BEGIN ATOMIC ... END``): psql tracks the same words to avoid splitting there.
_BLOCK_OPENERS = {"BEGIN", "CASE"}


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a cell, with where it starts in the cell text.

    Attributes
    ----------
    text : str
        The statement, without the terminating semicolon.
    offset : int
        Index of the statement's first character in the cell text.
    """

    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class BoundStatement:
    """A statement rewritten for the server, with its argument values.

    Attributes
    ----------
    sql : str
        The text sent to the server, with ``$name`` replaced by ``$n``.
    args : tuple
        Values for ``$1, $2, ...`` in order.
    source : Statement
        The statement as the user wrote it.
    names : tuple of str
        The variable bound to each ``$n`` (``""`` for positional ones).
    """

    sql: str
    args: tuple[Any, ...]
    source: Statement
    names: tuple[str, ...] = ()
    # (position in ``sql``, shift to add to get the position in ``source.text``)
    _shifts: tuple[tuple[int, int], ...] = ()

    def source_position(self, position: int) -> int:
        """Map a 0-based character index in :attr:`sql` back to the cell text.

        Parameters
        ----------
        position : int
            Index into the rewritten SQL, as a server error reports it (minus one).

        Returns
        -------
        int
            Index into the whole cell text.
        """
        starts = [start for start, _ in self._shifts]
        i = bisect.bisect_right(starts, position) - 1
        shift = self._shifts[i][1] if i >= 0 else 0
        return self.source.offset + position + shift


@functools.lru_cache(maxsize=256)
def _tokens(sql: str) -> tuple[Token, ...]:
    # None is an unterminated quote or comment (or another lexical error): let
    # the server report it with its own message and position rather than
    # guessing here.  Cached: a cell run again (a lookup in a loop) is
    # scanned once for splitting and once per statement for binding, which
    # cost more than the round trip; tokens are immutable, so sharing is safe.
    return tuple(scan(sql) or ())


def _word(token: Token) -> str:
    # Keywords compare by their upper-cased text; anything else matches none.
    return token.text if token.kind is Kind.WORD else ""


def split(cell: str) -> list[Statement]:
    """Split a cell into statements the way the server's lexer sees them.

    Parameters
    ----------
    cell : str
        The text of a ``%%pg`` cell.

    Returns
    -------
    list of Statement
        Non-empty statements in order; comments-only pieces are dropped.

    Examples
    --------
    >>> [s.text for s in split("SELECT 1; SELECT ';'")]
    ['SELECT 1', "SELECT ';'"]
    """
    return list(_split(cell))


@functools.lru_cache(maxsize=256)
def _split(cell: str) -> tuple[Statement, ...]:
    tokens = _tokens(cell)
    if not tokens:
        return (Statement(cell.strip(), _lstrip_offset(cell, 0)),) if cell.strip() else ()
    statements: list[Statement] = []
    start = 0
    depth = 0
    # psql does not split inside parentheses (CREATE RULE ... DO (a; b)).
    parens = 0
    first_words: list[str] = []
    in_body = False
    has_code = False
    for token in tokens:
        kind = token.kind
        if kind is Kind.COMMENT:
            continue
        if kind is Kind.PUNCT:
            text = token.text
            if text == "(":
                parens += 1
            elif text == ")":
                parens -= 1
            elif text == ";" and depth == 0 and parens <= 0:
                end = token.start
                if has_code:
                    statements.append(_statement(cell, start, end))
                start = end + 1
                first_words = []
                in_body = False
                has_code = False
                parens = 0
                continue
        has_code = True
        if len(first_words) < 4:
            first_words.append(_word(token))
            in_body = _in_routine_body(first_words)
        if in_body and kind is Kind.WORD:
            if token.text in _BLOCK_OPENERS:
                depth += 1
            elif token.text == "END" and depth > 0:
                depth -= 1
    if has_code:
        statements.append(_statement(cell, start, len(cell)))
    return tuple(statements)


def _owns_parameters(sql: str) -> bool:
    """Whether ``$1`` in the statement is its own parameter, not a value to bind.

    A function or procedure body (``RETURN $1 + 1``, ``BEGIN ATOMIC``) and
    ``PREPARE ... AS`` refer to their own arguments.
    """
    return _owns(_tokens(sql))


def _owns(tokens: Sequence[Token]) -> bool:
    code = (t for t in tokens if t.kind is not Kind.COMMENT)
    words = [_word(t) for t in itertools.islice(code, 4)]
    return bool(words) and (words[0] == "PREPARE" or _in_routine_body(words))


def _in_routine_body(first_words: list[str]) -> bool:
    # CREATE [OR REPLACE] FUNCTION|PROCEDURE: only there can BEGIN ATOMIC hold semicolons.
    words = [w for w in first_words if w not in ("OR", "REPLACE")]
    return len(words) >= 2 and words[0] == "CREATE" and words[1] in ("FUNCTION", "PROCEDURE")


_SPACE = re.compile(r"\s*")  # what str.strip() strips


def _lstrip_offset(text: str, start: int) -> int:
    # No slice of the rest of the cell: that made splitting quadratic.
    match = _SPACE.match(text, start)
    return match.end() if match else start


def _statement(cell: str, start: int, end: int) -> Statement:
    offset = _lstrip_offset(cell, start)
    return Statement(cell[offset:end].rstrip(), offset)


def placeholders(sql: str) -> list[tuple[int, int, str]]:
    """Find ``$name`` and ``$n`` placeholders outside quotes and comments.

    Parameters
    ----------
    sql : str
        One statement.

    Returns
    -------
    list of (start, end, name)
        Character spans; ``name`` is the variable name, or the digits of a
        positional ``$n``.
    """
    return _placeholders(sql, _tokens(sql))


def _placeholders(sql: str, tokens: Sequence[Token]) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    for i, token in enumerate(tokens):
        if token.kind is Kind.PARAM:
            start, end = token.start, token.end
            found.append((start, end, sql[start + 1 : end]))
        elif token.kind is Kind.OTHER and token.text == "$" and i + 1 < len(tokens):
            nxt = tokens[i + 1]
            if nxt.start != token.end:
                continue
            start, end = token.start, nxt.end
            word = sql[start + 1 : end]
            if word.isidentifier():
                found.append((start, end, word))
    return found


def bind(
    statement: Statement,
    namespace: Mapping[str, Any],
    positional: Sequence[Any] = (),
    *,
    from_keywords: bool = False,
) -> BoundStatement:
    """Rewrite ``$name`` to ``$n`` and collect the values, before any I/O.

    Parameters
    ----------
    statement : Statement
        The statement to bind.
    namespace : mapping
        Where ``$name`` looks up ``name`` (the notebook's user namespace).
    positional : sequence
        Values for plain ``$1, $2, ...``.
    from_keywords : bool
        ``namespace`` holds keyword arguments of the Python API, not the
        notebook's variables (for the error message).

    Returns
    -------
    BoundStatement

    Raises
    ------
    ParameterError
        A variable is missing, or named and positional parameters are mixed, or
        a ``$n`` has no value.

    Examples
    --------
    >>> bind(Statement("SELECT $x + 1", 0), {"x": 41}).sql
    'SELECT $1 + 1'
    """
    sql = statement.text
    tokens = _tokens(sql)  # one scan answers both questions
    if _owns(tokens):
        return BoundStatement(sql, (), statement)
    spans = _placeholders(sql, tokens)
    named = [s for s in spans if not s[2].isdigit()]
    numbered = [s for s in spans if s[2].isdigit()]
    if named and numbered:
        raise ParameterError("mix of $name and $1-style parameters in one statement; use one kind")
    if numbered:
        highest = max(int(s[2]) for s in numbered)
        if highest > len(positional):
            raise ParameterError(
                f"${highest} has no value: pass values with -p/--params ({len(positional)} given)"
            )
        values = tuple(adapt(v) for v in positional[:highest])
        return BoundStatement(sql, values, statement, ("",) * highest)
    if not named:
        return BoundStatement(sql, (), statement)

    order: dict[str, int] = {}
    missing = [name for _, _, name in named if name not in namespace]
    if missing:
        unique = list(dict.fromkeys(missing))
        listed = ", ".join(f"${n}" for n in unique)
        if from_keywords:
            example = ", ".join(f"{n}=..." for n in unique)
            raise ParameterError(f"no value for {listed}: pass {example}")
        noun = "variable" if len(unique) == 1 else "variables"
        raise ParameterError(f"{noun} not defined in the notebook: {listed}")
    pieces: list[str] = []
    shifts: list[tuple[int, int]] = []
    cursor = 0
    out_len = 0
    for start, end, name in named:
        index = order.setdefault(name, len(order) + 1)
        pieces.append(sql[cursor:start])
        out_len += start - cursor
        marker = f"${index}"
        pieces.append(marker)
        out_len += len(marker)
        cursor = end
        shifts.append((out_len, end - out_len))
    pieces.append(sql[cursor:])
    args = tuple(adapt(namespace[name]) for name in order)
    return BoundStatement("".join(pieces), args, statement, tuple(order), tuple(shifts))


def adapt(value: Any) -> Any:
    """Turn numpy and pandas values into the Python values asyncpg encodes.

    Parameters
    ----------
    value : object

    Returns
    -------
    object
        numpy scalars as Python scalars, arrays and Series as lists, pandas'
        missing markers (``NA``, ``NaT``) as None; everything else unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> adapt(np.int64(3)), adapt(np.array([1, 2]))
    (3, [1, 2])
    """
    module = type(value).__module__
    if module == "numpy":
        if hasattr(value, "tolist"):
            return value.tolist()
        return value
    if module.startswith("pandas"):
        name = type(value).__name__
        if name in ("NAType", "NaTType"):
            return None
        if hasattr(value, "tolist"):
            # Series, Index and extension arrays: pandas marks missing values
            # with NA, NaN or NaT, all of which are NULL to the database.
            return nulls_from_pandas(value.tolist())
        if name == "Timestamp":
            return value.to_pydatetime()
        if name == "Timedelta":
            return value.to_pytimedelta()
    return value


def nulls_from_pandas(values: list[Any]) -> list[Any]:
    """Column values from a DataFrame, with pandas' missing markers (and NaN) as None.

    In a DataFrame NaN means "missing", so rows bound from one send NULL for it.

    Parameters
    ----------
    values : list

    Returns
    -------
    list
    """
    return [None if v is None or (isinstance(v, float) and v != v) else adapt(v) for v in values]
