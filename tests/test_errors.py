"""psql-style error rendering."""

from __future__ import annotations

from types import SimpleNamespace

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
