r"""psql's backslash commands in ``%pg`` lines and ``%%pg`` cells, in a real IPython shell."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pgmagic.errors import MetaCommandError, OptionError
from pgmagic.frontend import psql
from pgmagic.frontend.psql import ANSWERS, Layout
from tests.catalog.conftest import Shop, shop  # noqa: F401
from tests.shell import fails, run


@pytest.fixture
def at_shop(ip: Any, shop: Shop) -> Shop:  # noqa: F811
    """The shell's session with the shop's schema first in its search path."""
    run(ip, f"%pg -q SET search_path = {shop.a}")
    return shop


def test_a_listing_is_a_titled_dataframe(ip: Any, at_shop: Shop, capsys: Any) -> None:
    capsys.readouterr()
    value = run(ip, rf"%pg \dt {at_shop.a}.*")
    assert isinstance(value, pd.DataFrame)
    assert list(value.columns) == ["Schema", "Name", "Type", "Owner"]
    assert value["Name"].tolist()[:3] == ["Mixed Case", "customers", "event_notes"]
    out = capsys.readouterr().out
    assert out.startswith("List of tables\n")
    assert "12 rows × 4 columns" in out


def test_describe_shows_psql_layout_and_gives_the_columns(
    ip: Any, at_shop: Shop, capsys: Any
) -> None:
    capsys.readouterr()
    value = run(ip, r"%pg \d orders")
    out = capsys.readouterr().out
    assert f'Table "{at_shop.a}.orders"' in out
    assert "Foreign-key constraints:" in out and "Referenced by:" in out
    assert list(value.columns) == ["Column", "Type", "Collation", "Nullable", "Default"]
    assert value["Column"].tolist()[:2] == ["id", "customer_id"]
    # The Out line points at the layout instead of drawing the columns again.
    assert "↑ the table above: 6 rows × 5 columns" in out


def test_a_pattern_naming_several_relations_gives_a_frame_each(ip: Any, at_shop: Shop) -> None:
    # Only the test's schemas: a shared server may hold other orders tables.
    value = run(ip, rf"%pg \d {at_shop.a}*.orders")
    assert list(value) == [f"{at_shop.a}.orders", f"{at_shop.b}.orders"]
    assert value[f"{at_shop.b}.orders"]["Column"].tolist() == ["id"]


def test_layout_html_has_the_title_the_table_and_the_footers(ip: Any, at_shop: Shop) -> None:
    run(ip, r"%pg \d orders")
    from pgmagic.catalog import run as catalog
    from pgmagic.catalog.meta import parse
    from pgmagic.runtime.connections import default_runtime

    runtime = default_runtime()
    assert runtime is not None
    command = parse(r"\d orders")
    assert command is not None
    [description] = catalog.run(runtime, command)  # type: ignore[misc]
    html = Layout(description)._repr_html_()
    assert f"<b>Table &quot;{at_shop.a}.orders&quot;</b>" in html
    assert '<th style="text-align:left">Nullable</th>' in html
    assert "Check constraints:" in html and "rows ×" not in html


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (r"\d nothing", 'Did not find any relation named "nothing".'),
        (r"\dt nothing", 'Did not find any tables named "nothing".'),
    ],
)
def test_no_match_is_one_line_and_no_value(
    ip: Any, at_shop: Shop, capsys: Any, line: str, words: str
) -> None:
    capsys.readouterr()
    assert run(ip, f"%pg {line}") is None
    assert capsys.readouterr().out == words + "\n"


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_other_psql_commands_answer_in_one_line(ip: Any, capsys: Any, name: str) -> None:
    error, out = fails(ip, f"%pg \\{name} x", capsys)
    assert isinstance(error, MetaCommandError)
    assert out.strip() == f"MetaCommandError: \\{name}: {ANSWERS[name]}"


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (r"\foo", r"MetaCommandError: invalid command \foo"),
        (r"\timingx", r"MetaCommandError: invalid command \timingx"),
        (r"\dD", r"MetaCommandError: \dD: not a describe command pgmagic has; it has"),
        (r"\sf", r"MetaCommandError: \sf: function name is required"),
        (r"\dt a.b.c.d", "improper qualified name (too many dotted names): a.b.c.d"),
        (r"\d a b", r'MetaCommandError: \d: extra argument "b"'),
    ],
)
def test_unknown_commands_and_bad_arguments(ip: Any, capsys: Any, line: str, shown: str) -> None:
    error, out = fails(ip, f"%pg {line}", capsys)
    assert isinstance(error, MetaCommandError)
    assert shown in out and len(out.strip().splitlines()) == 1 and "Traceback" not in out


@pytest.mark.parametrize(("name", "advice"), [("c", "%pg connect"), ("copy", "%pg load")])
def test_answers_point_at_what_pgmagic_offers(name: str, advice: str) -> None:
    with pytest.raises(MetaCommandError, match=advice):
        psql.command(f"\\{name} somewhere")


def test_a_cell_runs_sql_and_commands_in_order(ip: Any, at_shop: Shop, capsys: Any) -> None:
    capsys.readouterr()
    value = run(
        ip,
        "%%pg\nSELECT 1 AS one\n\\dn " + at_shop.a + "\nSELECT 2 AS two;\n"
        '\\d "Mixed Case"\nSELECT 3 AS three',
    )
    out = capsys.readouterr().out
    marks = [" one", "List of schemas", " two", f'Table "{at_shop.a}.Mixed Case"', " three"]
    positions = [out.index(mark) for mark in marks]
    assert positions == sorted(positions), out
    assert value["three"].tolist() == [3]


def test_a_cell_ending_with_a_command_gives_its_value(ip: Any, at_shop: Shop) -> None:
    value = run(ip, f"%%pg -o listed\nSELECT 1 AS one;\n\\dv {at_shop.a}.*")
    assert value["Name"].tolist() == ["big_orders", "checked_orders", "one_row"]
    assert ip.user_ns["listed"] is value


def test_a_bad_command_stops_the_cell_before_anything_runs(
    ip: Any, at_shop: Shop, capsys: Any
) -> None:
    run(ip, "%pg -q CREATE TEMP TABLE ran (n int)")
    error, _ = fails(ip, "%%pg\nINSERT INTO ran VALUES (1);\n\\foo\nSELECT 1", capsys)
    assert isinstance(error, MetaCommandError)
    assert run(ip, "%pg --scalar SELECT count(*) FROM ran") == 0


def test_errors_after_a_command_point_at_the_cells_own_line(
    ip: Any, at_shop: Shop, capsys: Any
) -> None:
    _error, out = fails(ip, "%%pg\n\\dn nothing_here\n\nSELECT nope", capsys)
    assert "LINE 3: SELECT nope" in out


def test_a_backslash_inside_sql_is_sql(ip: Any, at_shop: Shop) -> None:
    value = run(ip, "%%pg\nSELECT '\n\\dt\n' AS text")
    assert value["text"].tolist() == ["\n\\dt\n"]


def test_options_that_do_not_fit_a_cell_of_commands_are_refused(
    ip: Any, at_shop: Shop, capsys: Any
) -> None:
    error, out = fails(ip, "%%pg --one\nSELECT 1;\n\\dt", capsys)
    assert isinstance(error, OptionError) and "-o NAME" in out


def test_a_command_after_options_is_refused_with_the_way(ip: Any, capsys: Any) -> None:
    _error, out = fails(ip, r"%pg -q \dt", capsys)
    assert "a %pg line of its own" in out


def test_server_errors_read_like_psql(ip: Any, at_shop: Shop, capsys: Any) -> None:
    _error, out = fails(ip, r"%pg \dt (", capsys)
    assert out.startswith("ERROR:  invalid regular expression") and "Traceback" not in out


def test_a_failed_transaction_fails_the_command_and_says_rollback(
    ip: Any, at_shop: Shop, capsys: Any
) -> None:
    run(ip, "%pg BEGIN")
    fails(ip, "%pg SELECT 1/0", capsys)
    _error, out = fails(ip, r"%pg \dt", capsys)
    assert "current transaction is aborted" in out and "ROLLBACK" in out
    run(ip, "%pg ROLLBACK")
    assert isinstance(run(ip, r"%pg \dt"), pd.DataFrame)


def test_extension_objects_give_a_frame_per_extension(ip: Any, capsys: Any) -> None:
    capsys.readouterr()
    value = run(ip, r"%pg \dx+ plpgsql")
    assert 'Objects in extension "plpgsql"' in capsys.readouterr().out
    assert "language plpgsql" in value["Object description"].tolist()


def test_plain_words_for_the_describe_commands(ip: Any, capsys: Any) -> None:
    ip.run_cell("%pg -q CREATE TABLE words_probe (id int PRIMARY KEY, note text)")
    try:
        listing = run(ip, "%pg tables words_pro*")
        assert listing["Name"].tolist() == ["words_probe"]
        columns = run(ip, "%pg describe words_probe")
        assert columns["Column"].tolist() == ["id", "note"]
        error, _ = fails(ip, "%pg describe")
        assert str(error).startswith("usage: %pg describe NAME")
        capsys.readouterr()
        run(ip, "%pg refresh")
        assert capsys.readouterr().out.startswith("catalog read: ")
        error, _ = fails(ip, "%pg refresh now")
        assert "takes no arguments" in str(error)
    finally:
        ip.run_cell("%pg -q DROP TABLE words_probe")


def test_definitions_show_as_psql_prints_them_and_give_the_sql(ip: Any, at_shop: Shop) -> None:
    value = run(ip, f"%pg \\sf+ {at_shop.a}.lines_of")
    assert isinstance(value, psql.Source)
    assert str(value).startswith(f"CREATE OR REPLACE FUNCTION {at_shop.a}.lines_of(n integer")
    assert repr(value).splitlines()[3] == "1       AS $function$"
    html = value._repr_html_()
    assert html.startswith("<pre>") and "&#x27;, &#x27;::text" in html
    # A view between statements shows where it stands; the cell's value is the last piece's.
    shown = run(ip, f"%%pg\n\\sv {at_shop.a}.big_orders\nSELECT 1 AS one")
    assert shown["one"].tolist() == [1]
