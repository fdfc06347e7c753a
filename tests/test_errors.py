"""Errors: psql-style rendering, and every class rendered as errors.py documents."""

from __future__ import annotations

import ast
import inspect
import pathlib
import re
from types import SimpleNamespace

import asyncpg
import pytest

import pgmagic
from pgmagic import errors
from pgmagic.errors import decorate, format_postgres_error


def err(**fields: object) -> SimpleNamespace:
    base = {"severity": "ERROR", "message": "boom"}
    base.update(fields)
    return SimpleNamespace(**base)


def test_message_only() -> None:
    assert format_postgres_error(err()) == ["ERROR:  boom"]


def test_caret_under_position_on_the_right_line() -> None:
    query = "SELECT *\nFROM nothere\nWHERE x"
    lines = format_postgres_error(err(message='relation "nothere" does not exist'), query, 14)
    assert lines == [
        'ERROR:  relation "nothere" does not exist',
        "LINE 2: FROM nothere",
        "             ^",
    ]


def test_detail_hint_context_follow_in_psql_order() -> None:
    lines = format_postgres_error(
        err(detail="Key (id)=(1) already exists.", hint="Try again.", context="SQL function f"),
    )
    assert lines == [
        "ERROR:  boom",
        "DETAIL:  Key (id)=(1) already exists.",
        "HINT:  Try again.",
        "CONTEXT:  SQL function f",
    ]


def test_internal_query_gets_the_caret() -> None:
    lines = format_postgres_error(
        err(internal_query="SELECT nope", internal_position="8", context="PL/pgSQL function f()")
    )
    assert lines == [
        "ERROR:  boom",
        "LINE 1: SELECT nope",
        "               ^",
        "QUERY:  SELECT nope",
        "CONTEXT:  PL/pgSQL function f()",
    ]


def test_long_line_is_windowed_around_the_caret() -> None:
    query = (
        "SELECT "
        + ", ".join(f"c{i}" for i in range(60))
        + ", oops, "
        + ", ".join(f"d{i}" for i in range(40))
    )
    index = query.index("oops")
    line, caret = format_postgres_error(err(), query, index)[1:3]
    assert line.startswith("LINE 1: ...")
    assert line.endswith("...")
    assert line[caret.index("^") :].startswith("oops")


def test_wide_characters_keep_the_caret_aligned() -> None:
    query = "SELECT '日本', oops"
    _line, caret = format_postgres_error(err(), query, query.index("oops"))[1:3]
    # two columns per wide character: the caret sits under the "o" on screen
    assert caret.index("^") == len("LINE 1: SELECT '日本', ") + 2


def test_decorate_keeps_the_class() -> None:
    class UniqueViolation(Exception):
        pass

    error = decorate(UniqueViolation("x"), ["ERROR:  x"])
    assert isinstance(error, UniqueViolation)
    assert error._render_traceback_() == ["ERROR:  x"]  # type: ignore[attr-defined]


PACKAGE = pathlib.Path(pgmagic.__file__).parent
CLASSES = sorted(
    (c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__),
    key=lambda c: c.__name__,
)
# Arguments that make an instance of each class, as the code raises them.
ARGUMENTS: dict[str, tuple[object, ...]] = {
    "UnsupportedColumnError": ("payload", "tsvector"),
    "ColumnTypeError": ("amount", "needs scale 4"),
    "QueryCancelled": (),
    "TransactionLost": (),
}


def test_every_exception_class_lives_in_errors_py() -> None:
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                ast.unparse(base).endswith(("Error", "Exception", "Interrupt", "Expired", "Rows"))
                for base in node.bases
            ):
                elsewhere.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert not elsewhere


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_class_is_drawn_in_the_tree(cls: type) -> None:
    tree = (errors.__doc__ or "").split("The tree::")[1].split("IPython prints")[0]
    assert re.search(rf"(    |── ){cls.__name__} ", tree)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_class_renders_as_documented(cls: type[BaseException]) -> None:
    error = cls(*ARGUMENTS.get(cls.__name__, ("something went wrong",)))
    shown = errors.render(error)._render_traceback_()  # type: ignore[attr-defined]
    if cls is errors.QueryCancelled:
        assert shown == ["query cancelled"]
    else:
        # Ours, and the internal signals should one ever escape: one line, no traceback.
        assert shown == [f"{cls.__name__}: {error}"]
        assert "\n" not in shown[0]


def server_error(cls: type[asyncpg.PostgresError], **fields: object) -> asyncpg.PostgresError:
    error = cls("boom")
    for name, value in {"severity": "ERROR", "message": "boom", **fields}.items():
        setattr(error, name, value)
    return error


def test_server_errors_render_as_psql_and_keep_their_class() -> None:
    from pgmagic.sql.params import Statement, bind

    bound = bind(Statement("SELECT nothere FROM t WHERE id = $id", 0), {"id": 1})
    error = server_error(
        asyncpg.UndefinedColumnError,
        message='column "nothere" does not exist',
        position="8",
        hint="Perhaps you meant x.",
    )
    errors.blame(error, bound)
    rendered = errors.render(error, "SELECT nothere FROM t WHERE id = $id")
    assert isinstance(rendered, asyncpg.UndefinedColumnError)
    assert rendered._render_traceback_() == [  # type: ignore[attr-defined]
        'ERROR:  column "nothere" does not exist',
        "LINE 1: SELECT nothere FROM t WHERE id = $id",
        "               ^",
        "HINT:  Perhaps you meant x.",
    ]


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            TimeoutError(),
            "TimeoutError: statement cancelled on the server after the command timeout "
            "(%config PgMagics.command_timeout)",
        ),
        (
            asyncpg.InterfaceError("connection is closed"),
            "InterfaceError: connection is closed (the connection was lost; the next cell "
            "reconnects)",
        ),
    ],
    ids=["timeout", "lost connection"],
)
def test_client_errors_are_one_line(error: BaseException, line: str) -> None:
    assert errors.render(error)._render_traceback_() == [line]  # type: ignore[attr-defined]


def test_a_hint_from_the_caller_is_one_more_line() -> None:
    error = server_error(asyncpg.UndefinedTableError, message='relation "tmp" does not exist')
    shown = errors.render(error, hint="HINT:  use a regular table.")._render_traceback_()  # type: ignore[attr-defined]
    assert shown == ['ERROR:  relation "tmp" does not exist', "HINT:  use a regular table."]


def test_blame_keeps_the_first_statement_and_maps_positions() -> None:
    error = server_error(asyncpg.SyntaxOrAccessError, position="30")
    errors.blame(error, "inner", 5)
    errors.blame(error, "outer", 9)
    assert error.pgmagic_statement == "inner"  # type: ignore[attr-defined]
    assert error.position == "5"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (
            asyncpg.InterfaceError("the server expects 0 arguments for this query, 1 was passed"),
            False,
        ),
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            False,
        ),
        (asyncpg.InterfaceError("connection is closed"), True),
        (
            asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
            True,
        ),
        (asyncpg.InternalClientError("unexpected message"), True),
    ],
)
def test_only_a_lost_connection_says_it_was_lost(error: BaseException, lost: bool) -> None:
    (line,) = errors.render(error)._render_traceback_()  # type: ignore[attr-defined]
    assert ("(the connection was lost; the next cell reconnects)" in line) is lost, line
