"""Errors, and how they are shown.

The tree::

    PgMagicError                 our own errors: one line, no traceback
    ├── ParameterError           a $name is missing, or parameters are mixed
    ├── ConnectError             the database could not be reached
    ├── OptionError              a magic option or subcommand is wrong
    └── QueryCancelled           Ctrl-C reached a running query (also a KeyboardInterrupt)

    asyncpg.PostgresError        errors from the server keep their asyncpg class
                                 (``asyncpg.UniqueViolationError`` stays catchable);
                                 :func:`decorate` gives them a psql-style rendering.

IPython prints whatever ``_render_traceback_()`` returns instead of a traceback,
so every error a user can cause carries one.  SQL errors never show Python frames.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

__all__ = [
    "ConnectError",
    "OptionError",
    "ParameterError",
    "PgMagicError",
    "QueryCancelled",
    "decorate",
    "format_postgres_error",
]


class PgMagicError(Exception):
    """Base class for pgmagic's own errors; shown as one line."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ParameterError(PgMagicError):
    """A ``$name`` cannot be bound (missing variable, mixed styles, no value)."""


class ConnectError(PgMagicError):
    """The database could not be reached; the message never holds a password."""


class OptionError(PgMagicError):
    """A magic option, subcommand or configuration value is wrong."""


class QueryCancelled(KeyboardInterrupt):
    """Raised when Ctrl-C cancelled a running query on the server.

    It is a ``KeyboardInterrupt`` so that code around a magic call stops as it
    would for any other interrupt; the cell shows one line.
    """

    def __init__(self, message: str = "query cancelled") -> None:
        super().__init__(message)

    def _render_traceback_(self) -> list[str]:
        return [str(self.args[0])]


_FIELDS = (
    ("detail", "DETAIL"),
    ("hint", "HINT"),
    ("internal_query", "QUERY"),
    ("context", "CONTEXT"),
)
# psql shows at most this many characters of a long line around the error.
_WINDOW = 60


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _caret_lines(text: str, index: int, first_line: int = 1) -> list[str]:
    """``LINE n: ...`` and a caret under character ``index`` of ``text``."""
    index = max(0, min(index, len(text)))
    line_start = text.rfind("\n", 0, index) + 1
    line_end = text.find("\n", index)
    if line_end < 0:
        line_end = len(text)
    line = text[line_start:line_end].replace("\t", " ")
    column = index - line_start
    prefix = ""
    if len(line) > _WINDOW:
        # Keep the caret visible on very long lines, marking what was cut as psql does.
        start = max(0, min(column - _WINDOW // 2, len(line) - _WINDOW))
        end = start + _WINDOW
        shown = line[start:end]
        if start > 0:
            shown = "..." + shown
            column = column - start + 3
        else:
            column = column - start
        if end < len(line):
            shown += "..."
        line = shown
    number = first_line + text.count("\n", 0, line_start)
    prefix = f"LINE {number}: "
    return [prefix + line, " " * (_width(prefix) + _width(line[:column])) + "^"]


def format_postgres_error(
    error: Any,
    query: str | None = None,
    position: int | None = None,
) -> list[str]:
    """Render a server error the way psql does.

    Parameters
    ----------
    error : asyncpg.PostgresError
        The error (any object with asyncpg's message attributes).
    query : str, optional
        The text the caret refers to (the whole cell, for ``%%pg``).
    position : int, optional
        0-based character index of the error in ``query``.

    Returns
    -------
    list of str
        Lines: ``ERROR:  message``, ``LINE n:`` and the caret, then DETAIL,
        HINT, QUERY and CONTEXT when present.

    Examples
    --------
    >>> class E: severity = "ERROR"; message = "boom"
    >>> format_postgres_error(E())
    ['ERROR:  boom']
    """
    severity = getattr(error, "severity", None) or "ERROR"
    message = getattr(error, "message", None) or str(error)
    lines = [f"{severity}:  {message}"]
    internal_query = getattr(error, "internal_query", None)
    internal_position = getattr(error, "internal_position", None)
    if query is not None and position is not None:
        lines.extend(_caret_lines(query, position))
    elif internal_query and internal_position:
        # The error is inside a query a function ran (PL/pgSQL): psql puts the
        # caret under that query, then names it on a QUERY line.
        lines.extend(_caret_lines(internal_query, int(internal_position) - 1))
    for attribute, label in _FIELDS:
        value = getattr(error, attribute, None)
        if value:
            first, *rest = str(value).splitlines() or [""]
            lines.append(f"{label}:  {first}")
            lines.extend(rest)
    return lines


def decorate(error: BaseException, lines: list[str]) -> BaseException:
    """Give an exception a fixed psql-style rendering in IPython.

    The exception keeps its class, so ``except asyncpg.UniqueViolationError``
    still works; only the way IPython prints it changes.

    Parameters
    ----------
    error : BaseException
        The exception to decorate (typically an ``asyncpg.PostgresError``).
    lines : list of str
        What IPython should print instead of a traceback.

    Returns
    -------
    BaseException
        ``error`` itself, for ``raise decorate(e, ...) from None``.
    """
    render: Callable[[], list[str]] = lambda: list(lines)  # noqa: E731
    error._render_traceback_ = render  # type: ignore[attr-defined]
    error.__traceback__ = None
    return error
