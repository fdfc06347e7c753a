"""What the cursor is in, for completion: the clause, the word being typed, the tables in scope.

Works on unfinished SQL, statement by statement (the one holding the cursor),
with the tokens of :mod:`~pgmagic.sql.lexer`.  The clause is read from the
nearest keyword before the cursor at the cursor's bracket depth; the tables
in scope are every ``FROM``, ``JOIN``, ``UPDATE`` and ``INTO`` reference of the
statement, wherever the cursor is (``SELECT o.| FROM orders o`` knows ``o``),
and ``WITH`` queries with their output columns.

Imports nothing of pgmagic but the lexer; no I/O.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from pgmagic.sql.lexer import Kind, Token, scan

__all__ = ["Clause", "CursorContext", "Relation", "context_at"]


class Clause(enum.Enum):
    """What may come at the cursor."""

    RELATION = "relation"
    """A table, view or set-returning function (after FROM, JOIN, UPDATE, INTO)."""
    COLUMN = "column"
    """A column or an expression (after SELECT, WHERE, BY, SET ...)."""
    JOIN_CONDITION = "join"
    """After ``JOIN ... ON``: a condition, then columns."""
    QUALIFIED = "qualified"
    """After ``name.``: the columns of a table or alias, or the tables of a schema."""
    VARIABLE = "variable"
    """After ``$``: a Python variable of the notebook."""
    TYPE = "type"
    """After ``::`` or ``CAST(... AS``: a data type."""
    KEYWORD = "keyword"
    """Anything else: keywords first."""


@dataclass(frozen=True)
class Relation:
    """A table reference of the statement: ``schema.name AS alias``."""

    schema: str | None
    name: str
    alias: str | None


@dataclass
class CursorContext:
    """Where the cursor is.

    Attributes
    ----------
    clause : Clause
    prefix : str
        The word typed so far (what completions replace).
    qualifier : str or None
        ``o`` in ``o.na|``.
    relations : list of Relation
        The statement's table references, in order.
    ctes : dict of str to list of str
        ``WITH`` query names and their output columns (empty if unknown).
    """

    clause: Clause
    prefix: str
    qualifier: str | None = None
    relations: list[Relation] = field(default_factory=list)
    ctes: dict[str, list[str]] = field(default_factory=dict)


_WORD = r'(?:[A-Za-z_\u0080-\U0010ffff][\w$\u0080-\U0010ffff]*|"(?:[^"]|"")*")'
# A word may hold "$" but not start with it ($name is a parameter).
_TAIL_RE = re.compile(
    rf"(?:(?P<qual>{_WORD})\.)?(?P<word>(?:[\w\u0080-\U0010ffff][\w$\u0080-\U0010ffff]*)?)$"
)

_RELATION_WORDS = frozenset({"FROM", "JOIN", "UPDATE", "INTO", "TABLE"})
_COLUMN_WORDS = frozenset(
    {
        "SELECT", "WHERE", "BY", "HAVING", "SET", "RETURNING", "AND", "OR", "NOT", "WHEN",
        "THEN", "ELSE", "DISTINCT", "CASE", "IN", "BETWEEN", "IS", "LIKE", "ILIKE", "VALUES",
    }
)  # fmt: skip
# Words that end a table reference: never taken for an alias.
_NOT_ALIAS = frozenset(
    {
        "WHERE", "JOIN", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "NATURAL", "ON", "USING",
        "GROUP", "ORDER", "HAVING", "LIMIT", "OFFSET", "UNION", "EXCEPT", "INTERSECT", "WINDOW",
        "SET", "RETURNING", "VALUES", "SELECT", "DEFAULT", "FOR", "LATERAL", "TABLESAMPLE",
        "FETCH", "DO", "OVERRIDING", "AS",
    }
)  # fmt: skip


def _name(token: Token, text: str) -> str:
    """An identifier as the server folds it: unquoted to lower case, quoted as written."""
    raw = text[token.start : token.end]
    if token.kind is Kind.QUOTED:
        return raw[1:-1].replace('""', '"') if raw.startswith('"') else raw
    return raw.lower()


def _unquote(word: str) -> str:
    return word[1:-1].replace('""', '"') if word.startswith('"') else word.lower()


def _statement_bounds(tokens: list[Token], pos: int, length: int) -> tuple[int, int]:
    start, end = 0, length
    for token in tokens:
        if token.kind is Kind.PUNCT and token.text == ";":
            if token.end <= pos:
                start = token.end
            elif token.start >= pos:
                end = token.start
                break
    return start, end


def context_at(sql: str, pos: int) -> CursorContext | None:
    """The completion context at ``pos`` in ``sql`` (a cell's SQL, or one line's).

    Parameters
    ----------
    sql : str
    pos : int
        Cursor offset into ``sql``.

    Returns
    -------
    CursorContext or None
        None inside a string, a quoted identifier or a comment.

    Examples
    --------
    >>> context_at("SELECT o. FROM orders o", 9).qualifier
    'o'
    """
    before = scan(sql[:pos])
    if before is None:
        return None  # an open quote or comment at the cursor
    if before and before[-1].end == pos and before[-1].kind in (Kind.COMMENT, Kind.STRING):
        return None  # right after a string or a comment: nothing to complete
    whole = scan(sql) or before
    start, end = _statement_bounds(whole, pos, len(sql))
    statement = [
        t for t in whole if start <= t.start and t.end <= end and t.kind is not Kind.COMMENT
    ]
    tail = _TAIL_RE.search(sql[start:pos])
    assert tail is not None  # the pattern matches the empty tail too
    prefix, qualifier = tail.group("word"), tail.group("qual")
    typed_from = pos - len(tail.group(0))
    previous = [t for t in statement if t.end <= typed_from]
    context = CursorContext(Clause.KEYWORD, prefix)
    context.relations, context.ctes = _scope(statement, sql)
    if qualifier is not None:
        context.clause, context.qualifier = Clause.QUALIFIED, _unquote(qualifier)
    elif previous and previous[-1].kind is Kind.OTHER and previous[-1].text == "$":
        context.clause = Clause.VARIABLE
    elif _type_expected(previous):
        context.clause = Clause.TYPE
    else:
        context.clause = _clause(previous)
    return context


def _type_expected(previous: list[Token]) -> bool:
    """Right after ``::``, or after ``AS`` inside ``CAST(``."""
    if not previous:
        return False
    last = previous[-1]
    if last.kind is Kind.OPERATOR and last.text == "::":
        return True
    if last.kind is not Kind.WORD or last.text != "AS":
        return False
    depth = 0
    for i in range(len(previous) - 2, -1, -1):
        token = previous[i]
        if token.kind is Kind.PUNCT and token.text == ")":
            depth += 1
        elif token.kind is Kind.PUNCT and token.text == "(":
            if depth == 0:
                before = previous[i - 1] if i else None
                return before is not None and before.kind is Kind.WORD and before.text == "CAST"
            depth -= 1
    return False


def _clause(previous: list[Token]) -> Clause:
    """The clause from the nearest keyword before the word, at the cursor's depth."""
    depth = 0
    after_name = False
    for i in range(len(previous) - 1, -1, -1):
        token = previous[i]
        if token.kind is Kind.PUNCT and token.text == ")":
            depth += 1
            continue
        if token.kind is Kind.PUNCT and token.text == "(":
            if depth == 0:
                return Clause.COLUMN  # a function's arguments, a sub-expression
            depth -= 1
            continue
        if depth:
            continue
        if token.kind is Kind.WORD and token.text in _RELATION_WORDS:
            return Clause.KEYWORD if after_name else Clause.RELATION
        if token.kind is Kind.WORD and token.text == "ON":
            return Clause.JOIN_CONDITION if i == len(previous) - 1 else Clause.COLUMN
        if token.kind is Kind.WORD and token.text in _COLUMN_WORDS:
            return Clause.COLUMN
        if token.kind is Kind.OPERATOR:
            return Clause.COLUMN
        if i == len(previous) - 1 and token.kind in (Kind.WORD, Kind.QUOTED):
            after_name = True  # "FROM orders |": an alias or the next clause
        if token.kind is Kind.PUNCT and token.text == ",":
            after_name = False
    return Clause.KEYWORD


def _scope(tokens: list[Token], sql: str) -> tuple[list[Relation], dict[str, list[str]]]:
    relations: list[Relation] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.kind is Kind.WORD and token.text in ("FROM", "JOIN", "UPDATE", "INTO"):
            i = _references(tokens, i + 1, sql, relations, listed=token.text == "FROM")
            continue
        i += 1
    return relations, _ctes(tokens, sql)


def _is_name(token: Token) -> bool:
    return token.kind is Kind.QUOTED or (token.kind is Kind.WORD and token.text not in _NOT_ALIAS)


def _references(tokens: list[Token], i: int, sql: str, out: list[Relation], *, listed: bool) -> int:
    """Read ``[schema.]name [[AS] alias]`` (a comma list after FROM) from token i on."""
    while i < len(tokens):
        if tokens[i].kind is Kind.WORD and tokens[i].text in ("ONLY", "LATERAL"):
            i += 1
        if i >= len(tokens) or not _is_name(tokens[i]):
            return i
        parts = [_name(tokens[i], sql)]
        i += 1
        while (
            i + 1 < len(tokens)
            and tokens[i].kind is Kind.PUNCT
            and tokens[i].text == "."
            and _is_name(tokens[i + 1])
        ):
            parts.append(_name(tokens[i + 1], sql))
            i += 2
        alias = None
        if i < len(tokens) and tokens[i].kind is Kind.WORD and tokens[i].text == "AS":
            i += 1
        if i < len(tokens) and _is_name(tokens[i]):
            alias = _name(tokens[i], sql)
            i += 1
        schema = parts[-2] if len(parts) >= 2 else None
        out.append(Relation(schema, parts[-1], alias))
        comma = i < len(tokens) and tokens[i].kind is Kind.PUNCT and tokens[i].text == ","
        if not (listed and comma):
            return i
        i += 1
    return i


def _ctes(tokens: list[Token], sql: str) -> dict[str, list[str]]:
    """``WITH name [(columns)] AS (query)``: each name and its output columns."""
    ctes: dict[str, list[str]] = {}
    i = 0
    while i < len(tokens) and not (tokens[i].kind is Kind.WORD and tokens[i].text == "WITH"):
        i += 1
    i += 1
    if i < len(tokens) and tokens[i].kind is Kind.WORD and tokens[i].text == "RECURSIVE":
        i += 1
    while i < len(tokens) and _is_name(tokens[i]):
        name = _name(tokens[i], sql)
        i += 1
        columns: list[str] = []
        if i < len(tokens) and tokens[i].text == "(":
            close = _closing(tokens, i)
            columns = [_name(t, sql) for t in tokens[i + 1 : close] if _is_name(t)]
            i = close + 1
        while i < len(tokens) and tokens[i].text != "(":
            i += 1  # AS [NOT] MATERIALIZED
        if i >= len(tokens):
            ctes[name] = columns
            break
        close = _closing(tokens, i)
        ctes[name] = columns or _output_names(tokens[i + 1 : close], sql)
        i = close + 1
        if i < len(tokens) and tokens[i].kind is Kind.PUNCT and tokens[i].text == ",":
            i += 1
            continue
        break
    return ctes


def _closing(tokens: list[Token], i: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].kind is Kind.PUNCT and tokens[j].text == "(":
            depth += 1
        elif tokens[j].kind is Kind.PUNCT and tokens[j].text == ")":
            depth -= 1
            if depth == 0:
                return j
    return len(tokens)


def _output_names(body: list[Token], sql: str) -> list[str]:
    """The output column names of a SELECT: ``AS x``, a trailing name, or a bare column."""
    if not body or body[0].text != "SELECT":
        return []
    items: list[list[Token]] = [[]]
    depth = 0
    for token in body[1:]:
        if token.kind is Kind.PUNCT and token.text == "(":
            depth += 1
        elif token.kind is Kind.PUNCT and token.text == ")":
            depth -= 1
        elif depth == 0 and token.kind is Kind.WORD and token.text == "FROM":
            break
        elif depth == 0 and token.kind is Kind.PUNCT and token.text == ",":
            items.append([])
            continue
        items[-1].append(token)
    names = []
    for item in items:
        last = len(item) - 1
        if last >= 0 and item[last].kind is Kind.PUNCT and item[last].text == ")":
            # count(*) is named count, as the server names it
            depth = 0
            while last >= 0:
                depth += {"(": -1, ")": 1}.get(item[last].text, 0)
                last -= 1
                if depth == 0:
                    break
        if last >= 0 and item[last].kind in (Kind.WORD, Kind.QUOTED):
            names.append(_name(item[last], sql))
    return names
