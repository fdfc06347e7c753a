"""$name binding and statement splitting, through PostgreSQL's own lexer."""

from __future__ import annotations

import pytest

from pgmagic.errors import ParameterError
from pgmagic.sql.params import Statement, bind, placeholders, split


def texts(cell: str) -> list[str]:
    return [s.text for s in split(cell)]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;", ["SELECT 1"]),
        ("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
        ("  SELECT 1 ;\n\n  SELECT 2;  ", ["SELECT 1", "SELECT 2"]),
        ("SELECT ';'; SELECT 2", ["SELECT ';'", "SELECT 2"]),
        ("SELECT E'\\';'; SELECT 2", ["SELECT E'\\';'", "SELECT 2"]),
        ('SELECT 1 AS ";"; SELECT 2', ['SELECT 1 AS ";"', "SELECT 2"]),
        ("SELECT $$a;b$$; SELECT 2", ["SELECT $$a;b$$", "SELECT 2"]),
        ("SELECT $t$a;$$;b$t$; SELECT 2", ["SELECT $t$a;$$;b$t$", "SELECT 2"]),
        ("SELECT 1 -- no; split\n; SELECT 2", ["SELECT 1 -- no; split", "SELECT 2"]),
        ("SELECT /* ; */ 1; SELECT 2", ["SELECT /* ; */ 1", "SELECT 2"]),
        ("-- only a comment", []),
        ("", []),
        (";;", []),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT f()",
            [
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
                "SELECT f()",
            ],
        ),
        (
            "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC "
            "SELECT CASE WHEN true THEN 1 END; END; CALL p()",
            [
                "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC "
                "SELECT CASE WHEN true THEN 1 END; END",
                "CALL p()",
            ],
        ),
        ("BEGIN; SELECT 1; COMMIT", ["BEGIN", "SELECT 1", "COMMIT"]),
        ("SELECT 'é;'; SELECT 'ü'", ["SELECT 'é;'", "SELECT 'ü'"]),
        # An unterminated quote is sent whole, so the server reports it.
        ("SELECT 'oops; SELECT 2", ["SELECT 'oops; SELECT 2"]),
    ],
)
def test_split(cell: str, expected: list[str]) -> None:
    assert texts(cell) == expected


def test_split_offsets_point_into_the_cell() -> None:
    cell = "SELECT 1;\n  SELECT 'ü';\nSELECT 3"
    for statement in split(cell):
        assert cell[statement.offset : statement.offset + len(statement.text)] == statement.text


@pytest.mark.parametrize(
    ("sql", "names"),
    [
        ("SELECT $a", ["a"]),
        ("SELECT $a, $b_2, $a", ["a", "b_2", "a"]),
        ("SELECT '$a'", []),
        ("SELECT E'\\'$a'", []),
        ('SELECT "$a"', []),
        ("SELECT $$ $a $$", []),
        ("SELECT $q$ $a $q$", []),
        ("SELECT 1 -- $a", []),
        ("SELECT /* $a */ 1", []),
        ("SELECT $a::int", ["a"]),
        ("SELECT $user", ["user"]),
        ("SELECT $1, $2", ["1", "2"]),
        ("SELECT $ a", []),
        ("SELECT x$a FROM t", []),
        ("SELECT 'é', $ünïcode, $b", ["ünïcode", "b"]),
    ],
)
def test_placeholders(sql: str, names: list[str]) -> None:
    assert [name for _, _, name in placeholders(sql)] == names


def test_bind_rewrites_and_orders_by_first_use() -> None:
    bound = bind(Statement("SELECT $b, $a, $b::text", 0), {"a": 1, "b": "x"})
    assert bound.sql == "SELECT $1, $2, $1::text"
    assert bound.args == ("x", 1)
    assert bound.names == ("b", "a")


def test_bind_never_pastes_values() -> None:
    evil = "'; DROP TABLE users; --"
    bound = bind(Statement("SELECT * FROM t WHERE name = $name", 0), {"name": evil})
    assert evil not in bound.sql
    assert bound.args == (evil,)


def test_bind_leaves_quoted_text_alone() -> None:
    sql = "SELECT '$a', $$ $a $$, \"$a\", $a -- $a"
    bound = bind(Statement(sql, 0), {"a": 5})
    assert bound.sql == "SELECT '$a', $$ $a $$, \"$a\", $1 -- $a"


def test_missing_variable_is_one_line_error() -> None:
    with pytest.raises(ParameterError) as info:
        bind(Statement("SELECT $here, $gone, $also_gone, $gone", 0), {"here": 1})
    assert str(info.value) == "variables not defined in the notebook: $gone, $also_gone"
    assert info.value._render_traceback_() == [f"ParameterError: {info.value}"]


def test_positional_parameters() -> None:
    bound = bind(Statement("SELECT $1 + $2", 0), {}, (1, 2))
    assert bound.sql == "SELECT $1 + $2"
    assert bound.args == (1, 2)


def test_positional_parameter_without_value() -> None:
    with pytest.raises(ParameterError, match=r"\$2 has no value"):
        bind(Statement("SELECT $1 + $2", 0), {}, (1,))


def test_mixed_parameters_rejected() -> None:
    with pytest.raises(ParameterError, match="mix of"):
        bind(Statement("SELECT $1 + $a", 0), {"a": 1}, (1,))


def test_source_position_maps_back_through_rewrites() -> None:
    cell = "SELECT 1;\nSELECT $long_name, $b, oops FROM t"
    statement = split(cell)[1]
    bound = bind(statement, {"long_name": 1, "b": 2})
    sent_index = bound.sql.index("oops")
    assert cell[bound.source_position(sent_index) :].startswith("oops FROM t")
    # before any placeholder the mapping is just the statement offset
    assert bound.source_position(0) == statement.offset


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE FUNCTION add1(int) RETURNS int LANGUAGE sql RETURN $1 + 1",
        "CREATE OR REPLACE FUNCTION f(int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT $1 + 2; END",
        "CREATE PROCEDURE p(int) LANGUAGE sql BEGIN ATOMIC SELECT $1; END",
        "PREPARE q(int) AS SELECT $1 + 1",
        "prepare q(int) as select $1",
    ],
)
def test_statements_own_their_dollar_parameters(sql: str) -> None:
    bound = bind(Statement(sql, 0), {})
    assert bound.sql == sql and bound.args == ()


def test_no_split_inside_parentheses() -> None:
    cell = "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2); SELECT 3"
    assert texts(cell) == [
        "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)",
        "SELECT 3",
    ]


def test_api_messages_speak_of_keyword_arguments() -> None:
    with pytest.raises(ParameterError, match=r"no value for \$x: pass x=\.\.\."):
        bind(Statement("SELECT $x", 0), {}, from_keywords=True)
