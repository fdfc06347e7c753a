r"""``\d NAME`` and the listings against real servers, byte for byte against psql's own output.

Each layout is compared with what psql of the server's major version prints
for the same command (Debian's psql 15 for PostgreSQL 15, the embedded
server package's psql 18 for the embedded server); without such a psql the
comparison is skipped.  psql prints an empty line after each table: the
layouts end before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from pgmagic.catalog.describe import Description
from pgmagic.catalog.listings import Listing
from pgmagic.catalog.meta import parse
from pgmagic.catalog.run import Outcome, fetch
from pgmagic.catalog.source import Definition
from pgmagic.errors import MetaCommandError
from pgmagic.frontend.tables import aligned
from tests.catalog.conftest import Shop, psql
from tests.conftest import run_sql


def outcome(shop: Shop, command: str) -> Outcome:
    """What a command gives on a connection whose search path starts at the shop."""

    async def go() -> Outcome:
        conn = await asyncpg.connect(shop.dsn)
        try:
            await conn.execute(f"SET search_path = {shop.a}")
            found = parse(command.format(a=shop.a, b=shop.b))
            assert found is not None
            return await fetch(conn, found)
        finally:
            await conn.close()

    return asyncio.run(go())


def as_text(found: Outcome) -> str:
    """psql's output for the outcome, the empty line after each table included."""
    if isinstance(found, str):
        return found
    if isinstance(found, Definition):
        return found.text
    if isinstance(found, Listing):
        cells = [tuple("" if v is None else str(v) for v in row) for row in found.rows]
        count = f"({len(cells)} row{'' if len(cells) == 1 else 's'})"
        return aligned(found.title, found.columns, cells, [count]) + "\n\n"
    return "".join(
        as_text(d)
        if isinstance(d, Listing)
        else aligned(d.title, d.columns, d.rows, d.footers, d.right) + "\n\n"
        for d in found
    )


DESCRIBED = [
    r"\d orders",
    r"\d+ orders",
    r"\d customers",
    r"\d+ customers",
    r"\d invoices",
    r"\d vip",
    r"\d+ vip",
    r"\d parts",
    r"\d+ parts",
    r"\d+ parts_a",
    r"\d events",
    r"\d+ events",
    r"\d events_a",
    r"\d+ events_other",
    r"\d events_kind",
    r"\d+ events_kind",
    r"\d+ events_pkey",
    r"\d events_a_kind_idx",
    r"\d+ events_a_kind_idx",
    r"\d event_notes",
    r"\d slots",
    r"\d+ slots",
    r"\d slots_ticket",
    r"\d+ slots_ticket_key",
    r"\d slots_during_excl",
    r"\d slots_id_seq",
    r"\d one_row",
    r"\d+ one_row",
    r"\d pair",
    r"\d+ pair",
    r"\d big_orders",
    r"\d+ big_orders",
    r"\d order_totals",
    r"\d+ order_totals",
    r"\d orders_placed_idx",
    r"\d+ orders_pkey",
    r"\d customers_email_key",
    r"\d invoice_seq",
    r"\d orders_id_seq",
    r"\d customers_id_seq",
    r'\d "Mixed Case"',
    r"\d+ {b}.orders",
    r'\d {b}."表"',
    r'\d+ {b}."表"',
    r"\d *.orders",
    r"\d ord*",
    r"\d {a}.invoice?",
    r"\dx+ plpgsql",
    # Definitions: numbered from the body (AS, BEGIN, RETURN) or from the top.
    r"\sf add_one",
    r"\sf+ add_one",
    r"\sf+ add_two",
    r"\sf+ lines_of",
    r"\sf lines_of(int, text)",
    r"\sf {a}.touch",
    r"\sv big_orders",
    r"\sv+ checked_orders",
    r"\sv {b}.order_view",
    # System catalogs: their replica identity, TOAST tables, views of the server's.
    r"\d+ pg_class",
    r"\d pg_class_oid_index",
    r"\d pg_toast.pg_toast_2619",
    r"\d+ pg_toast.pg_toast_2619",
    r"\d pg_stat_activity",
    r"\d information_schema.tables",
    r"\d pg_catalog.pg_am*",
]


@pytest.mark.parametrize("command", DESCRIBED)
def test_describe_matches_psql(any_shop: Shop, command: str) -> None:
    text = command.format(a=any_shop.a, b=any_shop.b)
    assert as_text(outcome(any_shop, command)) == psql(any_shop, text)


# psql 18's listings (titles, columns); the rows are the shop's own.
LISTED = [
    r"\dt",
    r"\dt+ {a}.*",
    r"\dt *.orders",
    r"\dv",
    r"\dm",
    r"\di",
    r"\ds",
    r"\dtv ord*",
    r"\d",
    r"\dn {a}*",
    r"\df",
    r"\df add_one",
    r"\df+ {a}.add_one",
    r"\dft",
    r"\dfS+ int4pl",
    r"\di+ {a}.*",
    r"\dv+",
    r"\dm+",
    r"\ds+",
    r"\dtS pg_class",
    r"\dn+ {a}*",
    r"\dnS pg_catalog",
    r"\dx",
    r"\du",
    r"\du+ postgres",
    r"\dg",
    r"\dT",
    r"\dT+",
    r"\dT {a}.*",
    r"\dTS int",
    r"\dT int4[]",
    r"\dT+ mood",
    r"\dTS+ pg_catalog.int*",
]


@pytest.mark.parametrize("command", LISTED)
def test_listings_match_psql_18(shop: Shop, command: str) -> None:
    if shop.version < 18:
        pytest.skip("the listings follow psql 18's words")
    text = command.format(a=shop.a, b=shop.b)
    expected = psql(shop, text)
    if command.startswith((r"\du", r"\dg")):
        # psql prints no row count under the roles; the rows are what is compared.
        count = len(expected.rstrip("\n").split("\n")) - 3  # title, header, rule
        expected = expected[:-1] + f"({count} row{'' if count == 1 else 's'})\n\n"
    assert as_text(outcome(shop, command)) == expected


NOT_FOUND = [
    (r"\d nothing", 'Did not find any relation named "nothing".'),
    (r"\d {a}.", 'Did not find any relation named "{a}.".'),
    (r"\dt nothing", 'Did not find any tables named "nothing".'),
    (r"\dv nothing*", 'Did not find any views named "nothing*".'),
    (r"\dm nothing", 'Did not find any materialized views named "nothing".'),
    (r"\di nothing", 'Did not find any indexes named "nothing".'),
    (r"\ds nothing", 'Did not find any sequences named "nothing".'),
    (r"\dtv nothing", 'Did not find any relations named "nothing".'),
    (r"\d ORDERS_X", 'Did not find any relation named "ORDERS_X".'),
    (r'\d "ORDERS"', 'Did not find any relation named ""ORDERS"".'),
    (r"\dx+ nope", 'Did not find any extension named "nope".'),
]


@pytest.mark.parametrize(("command", "words"), NOT_FOUND)
def test_no_match_says_what_psql_says(shop: Shop, command: str, words: str) -> None:
    found = outcome(shop, command)
    message = found.missing if isinstance(found, Listing) else found
    assert message == words.format(a=shop.a)


def test_quoted_names_keep_their_case_unquoted_ones_fold(shop: Shop) -> None:
    described = outcome(shop, r'\d "Mixed Case"')
    assert isinstance(described, list)
    assert [d.name for d in described] == [f"{shop.a}.Mixed Case"]
    assert outcome(shop, r"\d Mixed*") == 'Did not find any relation named "Mixed*".'


def test_the_schema_part_reaches_schemas_off_the_search_path(shop: Shop) -> None:
    # The test's own schemas (a is a prefix of b): a shared server may hold
    # other schemas with an orders table (the browser suite's ui_shop).
    described = outcome(shop, rf"\d {shop.a}*.orders")
    assert isinstance(described, list)
    assert [d.name for d in described] == [f"{shop.a}.orders", f"{shop.b}.orders"]
    # Unqualified, only what the search path shows.
    visible = outcome(shop, r"\d orders")
    assert isinstance(visible, list) and [d.name for d in visible] == [f"{shop.a}.orders"]


def columns_of(found: Outcome) -> list[tuple[str, ...]]:
    assert isinstance(found, list) and len(found) == 1
    description: Description = found[0]
    return description.rows


def test_table_layout_reads_every_footer(shop: Shop) -> None:
    [orders] = outcome(shop, r"\d orders")  # type: ignore[misc]
    assert orders.title == f'Table "{shop.a}.orders"'
    assert orders.columns == ("Column", "Type", "Collation", "Nullable", "Default")
    assert orders.rows[0] == ("id", "bigint", "", "not null", "generated always as identity")
    sections = [line for line in orders.footers if not line.startswith(" ")]
    assert sections == [
        "Indexes:",
        "Check constraints:",
        "Foreign-key constraints:",
        "Referenced by:",
        "Triggers:",
    ]
    assert '    "orders_pkey" PRIMARY KEY, btree (id) CLUSTER' in orders.footers


def test_verbose_adds_columns_and_footers(shop: Shop) -> None:
    [orders] = outcome(shop, r"\d+ orders")  # type: ignore[misc]
    assert orders.columns[5:] == ("Storage", "Compression", "Stats target", "Description")
    assert orders.rows[4][-1] == "free text"
    assert orders.footers[-1] == "Access method: heap"
    # Named NOT NULL constraints exist from PostgreSQL 18 on.
    assert ("Not-null constraints:" in orders.footers) == (shop.version >= 18)


def test_views_show_their_definition_with_plus(shop: Shop) -> None:
    [plain] = outcome(shop, r"\d big_orders")  # type: ignore[misc]
    [verbose] = outcome(shop, r"\d+ big_orders")  # type: ignore[misc]
    assert plain.footers == [] and plain.title == f'View "{shop.a}.big_orders"'
    assert verbose.footers[0] == "View definition:"
    assert "FROM orders" in "\n".join(verbose.footers)


def test_sequences_and_indexes_have_their_own_layout(shop: Shop) -> None:
    [sequence] = outcome(shop, r"\d invoice_seq")  # type: ignore[misc]
    assert sequence.columns[:3] == ("Type", "Start", "Minimum")
    assert sequence.rows == [("bigint", "100", "1", "9223372036854775807", "5", "no", "1")]
    [index] = outcome(shop, r"\d orders_placed_idx")  # type: ignore[misc]
    assert index.columns == ("Column", "Type", "Key?", "Definition")
    assert index.footers == [f'btree, for table "{shop.a}.orders", predicate (total > 0::numeric)']


def rows(found: Outcome) -> list[tuple[Any, ...]]:
    assert isinstance(found, Listing)
    return found.rows


def test_listings(shop: Shop) -> None:
    a = shop.a
    tables = [(r[0], r[1]) for r in rows(outcome(shop, r"\dt {a}.*"))]
    assert tables == [
        (a, "Mixed Case"),
        (a, "customers"),
        (a, "event_notes"),
        (a, "events"),
        (a, "events_a"),
        (a, "events_other"),
        (a, "invoices"),
        (a, "orders"),
        (a, "parts"),
        (a, "parts_a"),
        (a, "slots"),
        (a, "vip"),
    ]
    views = [r[1] for r in rows(outcome(shop, r"\dv {a}.*"))]
    assert views == ["big_orders", "checked_orders", "one_row"]
    assert [r[1] for r in rows(outcome(shop, r"\dm {a}.*"))] == ["order_totals"]
    sequences = [r[1] for r in rows(outcome(shop, r"\ds {a}.*"))]
    assert sequences == ["customers_id_seq", "invoice_seq", "orders_id_seq", "slots_id_seq"]
    indexes = {r[1]: r[4] for r in rows(outcome(shop, r"\di {a}.*"))}
    assert indexes["orders_placed_idx"] == "orders"
    assert [r[0] for r in rows(outcome(shop, r"\dn {a}*"))] == [shop.a, shop.b]
    functions = rows(outcome(shop, r"\df {a}.*"))
    assert [(r[1], r[2], r[3]) for r in functions] == [
        ("add_one", "integer", "x integer"),
        ("add_two", "integer", "x integer"),
        ("ignore_row", "trigger", ""),
        ("lines_of", "SETOF text", "n integer, sep text DEFAULT ', '::text"),
        ("touch", "trigger", ""),
    ]
    assert [r[1] for r in rows(outcome(shop, r"\dft {a}.*"))] == ["ignore_row", "touch"]
    assert "plpgsql" in [r[0] for r in rows(outcome(shop, r"\dx"))]
    assert rows(outcome(shop, r"\du nobody_here")) == []
    current = rows(outcome(shop, r"\conninfo"))[0]
    assert current[0] == "Database"


def test_system_objects_need_s_or_a_pattern(shop: Shop) -> None:
    assert "pg_class" not in [r[1] for r in rows(outcome(shop, r"\dt"))]
    assert "pg_class" in [r[1] for r in rows(outcome(shop, r"\dtS"))]
    assert [r[1] for r in rows(outcome(shop, r"\dt pg_class"))] == ["pg_class"]
    assert "pg_catalog" not in [r[0] for r in rows(outcome(shop, r"\dn"))]
    assert "pg_catalog" in [r[0] for r in rows(outcome(shop, r"\dnS"))]


def test_databases_listing_on_each_server(any_shop: Shop) -> None:
    # pg_database's locale columns differ between 15 and 18.
    listed = outcome(any_shop, r"\l+")
    assert isinstance(listed, Listing)
    assert listed.columns[6:8] == ("Locale", "ICU Rules")
    assert listed.columns[-3:] == ("Size", "Tablespace", "Description")
    assert "template1" in [r[0] for r in listed.rows]


def test_regular_expression_errors_come_from_the_server(shop: Shop) -> None:
    with pytest.raises(asyncpg.InvalidRegularExpressionError):
        outcome(shop, r"\dt (")


@pytest.fixture
def foreign_table(shop: Shop) -> Iterator[str]:
    """A foreign table of a wrapper with no handler (creating one needs a superuser)."""
    rows_ = run_sql(
        shop.dsn, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"
    )
    if not rows_[0][0]:
        pytest.skip("creating a foreign-data wrapper needs a superuser")
    tag = shop.a
    for statement in (
        f"CREATE FOREIGN DATA WRAPPER {tag}_fdw",
        f"CREATE SERVER {tag}_srv FOREIGN DATA WRAPPER {tag}_fdw",
        f"CREATE FOREIGN TABLE {tag}.remote (a int OPTIONS (column_name 'x'), b text)"
        f" SERVER {tag}_srv OPTIONS (schema_name 'r', table_name 't')",
    ):
        run_sql(shop.dsn, statement)
    yield "remote"
    run_sql(shop.dsn, f"DROP FOREIGN DATA WRAPPER {tag}_fdw CASCADE")


@pytest.mark.parametrize("command", [r"\d remote", r"\d+ remote", r"\dE"])
def test_foreign_tables_match_psql(shop: Shop, foreign_table: str, command: str) -> None:
    assert as_text(outcome(shop, command)) == psql(shop, command)


@pytest.mark.parametrize(
    ("command", "error", "message"),
    [
        (r"\sf nothing", asyncpg.UndefinedFunctionError, 'function "nothing" does not exist'),
        (r"\sf add_one extra", asyncpg.InvalidNameError, "invalid name syntax"),
        (r"\sv nothing", asyncpg.UndefinedTableError, 'relation "nothing" does not exist'),
        (r"\sv order_totals", MetaCommandError, '"{a}.order_totals" is not a view'),
        (r"\sv orders", MetaCommandError, '"{a}.orders" is not a view'),
    ],
)
def test_definitions_of_what_is_not_there_fail_as_in_psql(
    shop: Shop, command: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        outcome(shop, command)
    assert str(raised.value) == message.format(a=shop.a)


@pytest.mark.parametrize("command", [r"\sf", r"\sv+", r"\sf   "])
def test_definitions_need_a_name(command: str) -> None:
    with pytest.raises(MetaCommandError, match="name is required"):
        parse(command)
