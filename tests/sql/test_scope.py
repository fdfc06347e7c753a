"""The cursor's context in unfinished SQL: clause, word, tables in scope, WITH queries."""

from __future__ import annotations

import pytest

from pgmagic.sql.scope import Clause, Relation, context_at


def at(text: str) -> tuple[str, int]:
    return text.replace("|", ""), text.index("|")


@pytest.mark.parametrize(
    ("text", "clause", "prefix", "qualifier"),
    [
        ("SELECT * FROM cu|", Clause.RELATION, "cu", None),
        ("SELECT * FROM |", Clause.RELATION, "", None),
        ("SELECT * FROM a, b|", Clause.RELATION, "b", None),
        ("SELECT * FROM a JOIN |", Clause.RELATION, "", None),
        ("SELECT * FROM a LEFT JOIN b ON |", Clause.JOIN_CONDITION, "", None),
        ("SELECT * FROM a JOIN b ON a.x = |", Clause.COLUMN, "", None),
        ("SELECT * FROM orders |", Clause.KEYWORD, "", None),
        ("SELECT o.na| FROM orders o", Clause.QUALIFIED, "na", "o"),
        ('SELECT "My T".| FROM "My T"', Clause.QUALIFIED, "", "My T"),
        ("SELECT | FROM t", Clause.COLUMN, "", None),
        ("SELECT a, b|", Clause.COLUMN, "b", None),
        ("SELECT * FROM t WHERE x > 1 AND |", Clause.COLUMN, "", None),
        ("SELECT * FROM t GROUP BY |", Clause.COLUMN, "", None),
        ("SELECT count(|", Clause.COLUMN, "", None),
        ("UPDATE |", Clause.RELATION, "", None),
        ("UPDATE t SET |", Clause.COLUMN, "", None),
        ("INSERT INTO |", Clause.RELATION, "", None),
        ("SELECT * FROM t WHERE id = $na|", Clause.VARIABLE, "na", None),
        ("SELECT * FROM t WHERE id = $|", Clause.VARIABLE, "", None),
        ("SEL|", Clause.KEYWORD, "SEL", None),
        ("SELECT 1; SELECT * FROM |", Clause.RELATION, "", None),
        ("SELECT * FROM public.|", Clause.QUALIFIED, "", "public"),
        ("SELECT * FROM x$|", Clause.RELATION, "x$", None),
    ],
)
def test_the_clause_at_the_cursor(
    text: str, clause: Clause, prefix: str, qualifier: str | None
) -> None:
    context = context_at(*at(text))
    assert context is not None
    assert (context.clause, context.prefix, context.qualifier) == (clause, prefix, qualifier)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 'abc|'",
        "SELECT 1 -- note |",
        "SELECT /* open |",
        'SELECT "unclosed|',
        "SELECT $$ x|",
    ],
)
def test_nothing_inside_strings_and_comments(text: str) -> None:
    assert context_at(*at(text)) is None


@pytest.mark.parametrize(
    ("text", "relations"),
    [
        ("SELECT o.| FROM orders o", [Relation(None, "orders", "o")]),
        (
            "SELECT | FROM sales.orders AS o JOIN customers c ON o.c = c.id, ONLY items",
            [
                Relation("sales", "orders", "o"),
                Relation(None, "customers", "c"),
            ],
        ),
        (
            'SELECT | FROM "Mixed Case" m, plain',
            [Relation(None, "Mixed Case", "m"), Relation(None, "plain", None)],
        ),
        (
            "SELECT | FROM a WHERE x IN (SELECT y FROM b)",
            [Relation(None, "a", None), Relation(None, "b", None)],
        ),
        (
            "UPDATE t SET x = | FROM u WHERE t.id = u.id",
            [Relation(None, "t", None), Relation(None, "u", None)],
        ),
        ("SELECT 1; SELECT | FROM second", [Relation(None, "second", None)]),
        ("SELECT | FROM t1; SELECT 1 FROM other", [Relation(None, "t1", None)]),
    ],
)
def test_tables_in_scope_wherever_the_cursor_is(text: str, relations: list[Relation]) -> None:
    context = context_at(*at(text))
    assert context is not None
    assert context.relations[: len(relations)] == relations


def test_with_queries_and_their_columns() -> None:
    context = context_at(
        *at(
            "WITH a AS (SELECT id, count(*), x + 1 AS y, t.name FROM t GROUP BY 1),"
            " b (p, q) AS MATERIALIZED (SELECT 1, 2) SELECT a.| FROM a JOIN b ON true"
        )
    )
    assert context is not None
    assert context.ctes == {"a": ["id", "count", "y", "name"], "b": ["p", "q"]}
    assert context.clause is Clause.QUALIFIED and context.qualifier == "a"
