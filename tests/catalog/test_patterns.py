"""psql's patterns as regular expressions: the translation table, and what is refused."""

from __future__ import annotations

import pytest

from pgmagic.catalog.patterns import Pattern, Query, translate
from pgmagic.errors import MetaCommandError

# pattern -> (name regex, schema regex, qualified)
CASES = [
    ("orders", "^(orders)$", None, False),
    ("Orders", "^(orders)$", None, False),
    ("ord*", "^(ord.*)$", None, False),
    ("ord?rs", "^(ord.rs)$", None, False),
    ("public.ord*", "^(ord.*)$", "^(public)$", True),
    ("PUBLIC.Orders", "^(orders)$", "^(public)$", True),
    ("*.orders", "^(orders)$", None, True),
    ("public.*", None, "^(public)$", True),
    ("*", None, None, False),
    ("public.", "^()$", "^(public)$", True),
    ('"Mixed Case"', "^(Mixed Case)$", None, False),
    ('"My Schema"."T"', "^(T)$", "^(My Schema)$", True),
    ('"a.b"', "^(a\\.b)$", None, False),
    ('"a*b?"', "^(a\\*b\\?)$", None, False),
    ('"say ""hi"""', '^(say "hi")$', None, False),
    ('x"Y"z', "^(xYz)$", None, False),
    ("a$b", "^(a\\$b)$", None, False),
    ('"a$b"', "^(a\\$b)$", None, False),
    ("int[]", "^(int\\[])$", None, False),
    ("ord|cust", "^(ord|cust)$", None, False),
    ("t[0-9]", "^(t[0-9])$", None, False),
    ("Ünïcode", "^(Ünïcode)$", None, False),
]


@pytest.mark.parametrize(("pattern", "name", "schema", "qualified"), CASES)
def test_translation(pattern: str, name: str | None, schema: str | None, qualified: bool) -> None:
    found = translate(pattern)
    assert (found.name, found.schema, found.qualified) == (name, schema, qualified)


@pytest.mark.parametrize(
    ("pattern", "parts", "database", "name", "schema"),
    [
        ("db.public.orders", 3, "db", "^(orders)$", "^(public)$"),
        ('"DB".s.t', 3, "DB", "^(t)$", "^(s)$"),
        ("db.public", 2, "db", "^(public)$", None),
    ],
)
def test_a_database_part_is_a_name(
    pattern: str, parts: int, database: str, name: str, schema: str | None
) -> None:
    found = translate(pattern, parts=parts, database=database)
    assert (found.database, found.name, found.schema) == (database, name, schema)


@pytest.mark.parametrize(
    ("pattern", "parts", "message"),
    [
        ("a.b.c.d", 3, "improper qualified name (too many dotted names): a.b.c.d"),
        ("a.b.c", 2, "improper qualified name (too many dotted names): a.b.c"),
        ("a.b", 1, "improper qualified name (too many dotted names): a.b"),
        ("other.public.t", 3, "cross-database references are not implemented: other.public.t"),
        ('"Shop".public.t', 3, 'cross-database references are not implemented: "Shop".public.t'),
    ],
)
def test_bad_patterns_say_what_psql_says(pattern: str, parts: int, message: str) -> None:
    with pytest.raises(MetaCommandError) as caught:
        translate(pattern, parts=parts, database="shop")
    assert str(caught.value) == message


def test_an_unquoted_database_name_folds_to_lower_case() -> None:
    assert translate("SHOP.public.t", database="shop").database == "shop"


def test_a_quoted_dot_is_no_separator() -> None:
    assert translate('"a.b.c.d"').name == "^(a\\.b\\.c\\.d)$"


def test_values_are_bound_never_pasted() -> None:
    query = Query()
    query.pattern(Pattern("x'; DROP", "^(x'; drop)$"), "c.relname", "n.nspname", "visible(c)")
    assert query.args == ["^(x'; drop)$"]
    assert "DROP" not in query.where() and "drop" not in query.where()
    assert query.where().startswith("WHERE c.relname OPERATOR(pg_catalog.~) $1")
    assert "visible(c)" in query.where()


def test_a_schema_part_replaces_the_visibility_rule() -> None:
    query = Query()
    query.pattern(translate("*.orders"), "c.relname", "n.nspname", "visible(c)")
    assert "visible" not in query.where() and query.args == ["^(orders)$"]
