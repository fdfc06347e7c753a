r"""Every pgmagic error, and the one place that turns an error into what the user sees.

The tree::

    PgMagicError                 our own errors: one line, no traceback
    ├── ParameterError           a $name is missing, or parameters are mixed
    ├── ConnectError             the database could not be reached
    ├── TransactionLost          the session died inside a transaction; nothing
    │                            of it was committed, and the cell did not run
    ├── OptionError              a magic option, subcommand or setting is wrong
    │   ├── TooManyRows          a result is larger than PgMagics.max_rows
    │   ├── MetaCommandError     a psql backslash command pgmagic does not run,
    │   │                        or one with a bad argument (``\foo``, ``a.b.c.d``)
    │   └── StreamExpired        a --stream's connection closed before its end
    ├── RelationNotFound         the side panel asked for the columns of a
    │                            relation that is not there (dropped since)
    └── ColumnTypeError          (also a ValueError) a value does not fit its
                                 column's Arrow type, or what Python holds
    QueryCancelled               Ctrl-C reached a running query (a KeyboardInterrupt)

    asyncpg.PostgresError        errors from the server keep their asyncpg class
                                 (``asyncpg.UniqueViolationError`` stays catchable);
    asyncpg.InterfaceError,      :func:`render` gives them psql's rendering, or
    TimeoutError, ...            one line naming the cause (DATABASE_ERRORS)

    Internal signals, never shown: the caller takes another path.
    UnsupportedColumnError       a column cannot go through binary COPY
    ColumnMismatchError          a COPY stream did not match its columns

IPython prints whatever ``_render_traceback_()`` returns instead of a traceback,
so every error a user can cause carries one: ours by class, the server's and
asyncpg's from :func:`render`, which is the only function that renders errors.
Where an error happened is recorded on it with :func:`blame`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    from pgmagic.sql.params import BoundStatement

__all__ = [
    "DATABASE_ERRORS",
    "ColumnMismatchError",
    "ColumnTypeError",
    "ConnectError",
    "MetaCommandError",
    "OptionError",
    "ParameterError",
    "PgMagicError",
    "QueryCancelled",
    "RelationNotFound",
    "StreamExpired",
    "TooManyRows",
    "TransactionLost",
    "UnsupportedColumnError",
    "blame",
    "decorate",
    "display_width",
    "format_postgres_error",
    "lines",
    "render",
]


class PgMagicError(Exception):
    """Base class for pgmagic's own errors; shown as one line."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ParameterError(PgMagicError):
    """A ``$name`` cannot be bound (missing variable, mixed styles, no value)."""


class ConnectError(PgMagicError):
    """The database could not be reached; the message never holds a password."""


class TransactionLost(PgMagicError):
    """The session's connection was lost inside a transaction.

    The server rolled the transaction back.  The next cell fails with this
    error instead of running its statements in autocommit on a new
    connection (``INSERT ...; COMMIT`` would commit half of what the user
    meant as one transaction); the cell after that runs.
    """

    def __init__(self) -> None:
        super().__init__(
            "the session's connection was lost inside a transaction: the server rolled it "
            "back, nothing of it was committed, and this cell did not run; run the "
            "transaction again from its BEGIN"
        )


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


class MetaCommandError(OptionError):
    r"""A psql backslash command that pgmagic does not run, or a bad argument of one.

    The message is psql's words where psql has some (``invalid command \foo``,
    ``improper qualified name (too many dotted names): a.b.c.d``), else what
    to use instead (``\c``: ``%pg connect``).
    """


class TooManyRows(OptionError):
    """A result is larger than ``PgMagics.max_rows`` allows."""


class StreamExpired(OptionError):
    """The stream's connection closed before it was read to the end."""


class RelationNotFound(PgMagicError):
    """The side panel asked for the columns of a relation that is not there (dropped since)."""


class UnsupportedColumnError(Exception):
    """A result column cannot go through binary COPY; use the record path.

    Raised before anything is sent to the server.

    Parameters
    ----------
    column : str
        The column's name ("" when the whole path is unavailable).
    type_name : str
        The column's type as asyncpg names it.
    """

    def __init__(self, column: str, type_name: str) -> None:
        self.column = column
        self.type_name = type_name
        super().__init__(f"column {column!r} of type {type_name} is not supported by the COPY path")


class ColumnTypeError(PgMagicError, ValueError):
    """A value does not fit the Arrow type its column was given, or Python's types.

    An export fixes its schema from the first batch (the scale and width of
    decimals, the dimensions of arrays); a later value that needs more is
    refused rather than silently rounded.  A date before year 1 or after 9999
    (or an interval beyond about 292 years) has no Python or pandas value: the
    result names the column instead of showing a wrong one.

    Parameters
    ----------
    column : str
        The column's name (or names), or empty when it is not known.
    detail : str
        What did not fit.
    """

    def __init__(self, column: str, detail: str) -> None:
        self.column = column
        super().__init__(f"column {column!r}: {detail}" if column else detail)


class ColumnMismatchError(Exception):
    """The COPY stream did not match the columns it was decoded for.

    The statement was prepared before its tables changed (a stale cached
    statement).  The query ran to its end and its rows were dropped; the
    session and its transaction are as they were.  Prepare again and retry,
    or take the record path.
    """


_FIELDS = (
    ("detail", "DETAIL"),
    ("hint", "HINT"),
    ("internal_query", "QUERY"),
    ("context", "CONTEXT"),
)
# psql shows at most this many characters of a long line around the error.
_WINDOW = 60


def display_width(text: str) -> int:
    """Terminal columns of ``text``: CJK and emoji take two, combining marks none.

    Parameters
    ----------
    text : str

    Returns
    -------
    int
    """
    if text.isascii():  # one column per character; most cells, at C speed
        return len(text)
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


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
    return [prefix + line, " " * (display_width(prefix) + display_width(line[:column])) + "^"]


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


# asyncpg's message when a dict or list meets a parameter the server typed as text.
_UNTYPED_RE = re.compile(r"query argument (\$\w+): .*\(expected str, got (dict|list|tuple)\)")
_UNKNOWN_TYPE_RE = re.compile(r"could not determine data type of parameter (\$\w+)")
# Everything running statements can raise that render turns into a
# psql-style message; callers catch exactly these and nothing else.
DATABASE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    TimeoutError,
)
_ARGUMENT_RE = re.compile(r"(query argument |parameter )\$(\d+)")


def lines(error: BaseException, text: str | None = None) -> list[str]:
    """What the user sees of an error, line by line (see :func:`render`).

    Parameters
    ----------
    error : BaseException
    text : str, optional
        The cell text the statement came from, for the caret.

    Returns
    -------
    list of str
    """
    if isinstance(error, PgMagicError | QueryCancelled):
        return list(error._render_traceback_())
    bound: BoundStatement | None = getattr(error, "pgmagic_statement", None)
    if not hasattr(bound, "source_position"):
        bound = None  # a psql command's catalog query: nothing the user wrote to point into
    if isinstance(error, TimeoutError):
        return [
            "TimeoutError: statement cancelled on the server after the command timeout "
            "(%config PgMagics.command_timeout)"
        ]
    names = bound.names if bound is not None else ()

    def name_of(match: re.Match[str]) -> str:
        i = int(match.group(2)) - 1
        return f"{match.group(1)}${names[i]}" if i < len(names) and names[i] else match.group(0)

    if isinstance(error, asyncpg.PostgresError) and not isinstance(
        error, asyncpg.PostgresConnectionError
    ):
        if names:
            error.message = _ARGUMENT_RE.sub(name_of, getattr(error, "message", None) or str(error))
        position = getattr(error, "position", None)
        query, index = None, None
        if position and bound is not None:
            query = text if text is not None else bound.source.text
            index = bound.source_position(int(position) - 1)
            if text is None:
                index -= bound.source.offset
        shown = format_postgres_error(error, query, index)
        if isinstance(error, asyncpg.InFailedSQLTransactionError) and not getattr(
            error, "hint", None
        ):
            shown.append(
                "HINT:  An earlier statement failed (or was cancelled) inside this "
                "transaction: run ROLLBACK, or ROLLBACK TO SAVEPOINT, to continue."
            )
        untyped = _UNKNOWN_TYPE_RE.search(shown[0])
        if untyped and not getattr(error, "hint", None):
            shown.append(
                f"HINT:  Nothing in the statement says what {untyped.group(1)} is: add a cast, "
                f"e.g. {untyped.group(1)}::text or {untyped.group(1)}::int"
            )
        typed = _UNTYPED_RE.search(shown[0])
        if typed:
            cast = "::jsonb" if typed.group(2) == "dict" else "::text[] (or ::int[], ...)"
            shown.append(
                f"HINT:  PostgreSQL read {typed.group(1)} as text here; say what it is "
                f"with a cast, e.g. {typed.group(1)}{cast}"
            )
        return shown
    message = _ARGUMENT_RE.sub(name_of, str(error))
    if _lost_connection(error):
        message += " (the connection was lost; the next cell reconnects)"
    return [f"{type(error).__name__}: {message}"]


def _lost_connection(error: BaseException) -> bool:
    # asyncpg raises InterfaceError for misuse too (a wrong argument count):
    # only these say the connection itself is gone.
    if isinstance(
        error,
        asyncpg.PostgresConnectionError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.InternalClientError,
    ):
        return True
    return isinstance(error, asyncpg.InterfaceError) and "connection is closed" in str(error)


def render(
    error: BaseException, text: str | None = None, *, hint: str | None = None
) -> BaseException:
    """Give an error what the user sees: psql's rendering, or one line.

    This is the one place errors are rendered: server errors as psql prints
    them (caret under the cell text, DETAIL, HINT, CONTEXT), client errors
    and timeouts as one line naming the cause; ours render themselves.

    Parameters
    ----------
    error : BaseException
        A server error (with the statement :func:`blame` recorded), an
        asyncpg client error, a timeout, or one of ours.
    text : str, optional
        The cell text the statement came from, for the caret.
    hint : str, optional
        One more line, for what only the caller knows (a ``HINT:`` line).

    Returns
    -------
    BaseException
        The same error, decorated; raise it ``from None``.

    Examples
    --------
    >>> render(OptionError("bad"))._render_traceback_()
    ['OptionError: bad']
    """
    if isinstance(error, PgMagicError | QueryCancelled) and hint is None:
        return error
    shown = lines(error, text)
    return decorate(error, [*shown, hint] if hint else shown)


def blame(error: BaseException, statement: Any, position: int | None = None) -> None:
    """Record on an error which statement raised it, for :func:`render`'s caret.

    The first record wins: an error passing through several layers keeps the
    statement nearest to where it happened.

    Parameters
    ----------
    error : BaseException
    statement : BoundStatement
        The statement as bound.
    position : int, optional
        The 1-based position in the statement's SQL, replacing the server's
        (for SQL that was rewritten before it was sent, such as COPY's).
    """
    if getattr(error, "pgmagic_statement", None) is not None:
        return
    if position is not None:
        error.position = str(position)  # type: ignore[attr-defined]
    error.pgmagic_statement = statement  # type: ignore[attr-defined]
