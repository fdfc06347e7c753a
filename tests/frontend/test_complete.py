"""Tab after %pg offers pgmagic's subcommands and options, not Python builtins."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from IPython.core.completer import provisionalcompleter


def completions(ip: Any, line: str) -> list[str]:
    with warnings.catch_warnings(), provisionalcompleter():
        warnings.simplefilter("ignore")
        return [c.text for c in ip.Completer.completions(line, len(line))]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%pg --sc", ["--scalar"]),
        ("%pg --st", ["--stream"]),
        ("%pg con", ["connect", "connections"]),
        ("%pg us", ["use"]),
        ("%pg st", ["status", "stop"]),
        ("%pg -q --to x.csv --ch", ["--chunksize"]),
        ("%%pg --refr", ["--refresh-on"]),
        ("%pg connect --p", ["--pooler"]),
        ("%pg connect --e", ["--embedded"]),
        ("%pg unlisten --a", ["--all"]),
        ("%pg load df INTO t --re", ["--replace"]),
        ("%pg listen --d", ["--dsn"]),
        ("%pg hi", ["history"]),
        ("%pg history --c", ["--clear"]),
        # psql's describe commands, not IPython's LaTeX names (\\delta).
        ("%pg \\dt", ["\\dt"]),
        ("%pg \\co", ["\\conninfo"]),
        ("%%pg\n\\l", ["\\l"]),
        ("%%pg\nSELECT 1;\n  \\dn", ["\\dn"]),
    ],
)
def test_options_and_subcommands_complete(ip: Any, line: str, expected: list[str]) -> None:
    assert completions(ip, line) == expected


def test_where_we_offer_nothing_file_names_still_complete(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "orders_2024.csv").write_text("n\n1\n")
    monkeypatch.chdir(tmp_path)
    assert completions(ip, "%pg load orders_2") == ["orders_2024.csv"]


def test_unload_removes_the_completer(ip: Any) -> None:
    ip.run_line_magic("unload_ext", "pgmagic")
    try:
        assert "--scalar" not in completions(ip, "%pg --sc")
    finally:
        ip.run_line_magic("load_ext", "pgmagic")


def at_cursor(ip: Any, text: str) -> list[str]:
    position = text.index("|")
    with warnings.catch_warnings(), provisionalcompleter():
        warnings.simplefilter("ignore")
        return [c.text for c in ip.Completer.completions(text.replace("|", ""), position)]


@pytest.fixture
def shop(ip: Any) -> Any:
    ip.run_cell(
        "%%pg -q\nCREATE SCHEMA cshop;\n"
        'CREATE TABLE cshop.customers (id int PRIMARY KEY, name text, "Signup Date" date);\n'
        "CREATE TABLE cshop.orders (id int PRIMARY KEY,"
        " customer_id int REFERENCES cshop.customers (id), total numeric);\n"
        "CREATE VIEW cshop.big_orders AS SELECT * FROM cshop.orders WHERE total > 100;\n"
        "CREATE TYPE cshop.mood AS ENUM ('sad', 'ok');\n"
        "SET search_path = cshop, public"
    )
    ip.user_ns.update(min_total=5, cutoff_day="2024-01-01")
    yield ip
    ip.run_cell("%%pg -q\nRESET search_path;\nDROP SCHEMA cshop CASCADE")


@pytest.mark.parametrize(
    ("text", "wanted", "unwanted"),
    [
        ("%%pg\nSELECT * FROM cu|", ["customers"], ["orders"]),
        ("%%pg\nSELECT * FROM b|", ["big_orders"], []),
        ("%%pg\nSELECT * FROM cshop.|", ["customers", "orders", "big_orders"], ["pg_class"]),
        ("%%pg\nSELECT c.| FROM customers c", ["id", "name", '"Signup Date"'], ["total"]),
        ("%%pg\nSELECT o.to| FROM orders o JOIN customers c ON true", ["total"], ["name"]),
        ("%%pg\nSELECT na| FROM customers", ["name"], []),
        (
            "%%pg\nSELECT * FROM orders o JOIN customers c ON |",
            ["o.customer_id = c.id", "id", "total"],
            [],
        ),
        ("%%pg\nSELECT * FROM orders WHERE total > $min|", ["min_total"], ["cutoff_day"]),
        ("%%pg\nWITH w AS (SELECT id, total AS t FROM orders) SELECT w.| FROM w", ["id", "t"], []),
        ("%%pg\nSELECT 1;\nSELECT to| FROM orders", ["total"], []),
        ("%pg SELECT * FROM ord|", ["orders"], []),
        ("%pg -o x SELECT na| FROM customers", ["name"], []),
        ("%%pg -o x\nSEL|", ["SELECT"], []),
        ("%%pg\nSELECT 'ord|'", [], ["orders"]),
        ("%pg con|", ["connect"], []),
        ("%%pg\nSELECT total::numer| FROM orders", ["numeric"], ["orders"]),
        ("%%pg\nSELECT CAST(total AS time|) FROM orders", ["timestamp with time zone"], []),
        ("%%pg\nSELECT CAST(lower(name) AS mo|) FROM customers", ["mood", "money"], ["name"]),
        ("%%pg\nSELECT name AS na| FROM customers", [], ["numeric"]),
    ],
)
def test_sql_completes_from_the_catalog(
    shop: Any, text: str, wanted: list[str], unwanted: list[str]
) -> None:
    found = at_cursor(shop, text)
    assert all(w in found for w in wanted), found
    assert not any(u in found for u in unwanted), found


def test_the_database_s_own_types_come_first(shop: Any) -> None:
    from pgmagic.frontend.complete import complete_code

    # The engine's order, which the JupyterLab provider keeps (IPython sorts its own list).
    text = "%%pg\nSELECT 'ok'::mo"
    found = complete_code(text, len(text), {})
    assert found is not None
    assert [s.text for s in found[1]] == ["mood", "money"]
    assert "record" not in at_cursor(shop, "%%pg\nSELECT 'ok'::rec|")  # a pseudo-type


def test_ddl_in_a_cell_refreshes_what_completion_knows(shop: Any) -> None:
    assert "fresh_table" not in at_cursor(shop, "%%pg\nSELECT * FROM fre|")
    shop.run_cell("%pg -q CREATE TABLE cshop.fresh_table (a int)")
    assert at_cursor(shop, "%%pg\nSELECT * FROM fre|") == ["fresh_table"]
    shop.run_cell("%pg -q DROP TABLE cshop.fresh_table")
    assert at_cursor(shop, "%%pg\nSELECT * FROM fre|") == []


def test_an_old_snapshot_answers_while_a_new_one_is_read(
    shop: Any, sql: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgmagic.catalog import snapshot

    assert "later_table" not in at_cursor(shop, "%%pg\nSELECT * FROM lat|")
    # Another session's DDL: no cell of this kernel drops the snapshot.
    sql("CREATE TABLE cshop.later_table (a int)")
    monkeypatch.setattr(snapshot, "FRESH_SECONDS", 0.0)
    assert "later_table" not in at_cursor(shop, "%%pg\nSELECT * FROM lat|")
    deadline = time.monotonic() + 10
    while "later_table" not in at_cursor(shop, "%%pg\nSELECT * FROM lat|"):
        assert time.monotonic() < deadline, "the background read never landed"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("%pg \\d cust|", ["customers"]),
        ("%%pg\nSELECT 1;\n\\d big|", ["big_orders"]),
        ("%%pg\n\\dt|", ["\\dt"]),
        ("%%pg\n\\d|", ["\\d", "\\df", "\\dt"]),
    ],
)
def test_describe_commands_complete_relation_names(shop: Any, text: str, wanted: list[str]) -> None:
    found = at_cursor(shop, text)
    assert all(w in found for w in wanted), found


@pytest.fixture
def two(ip: Any, second: tuple[str, str]) -> Any:
    """A connection ``two`` on a second database holding ``only_in_two``; the default current."""
    ip.user_ns["two_dsn"] = second[1]
    ip.run_cell("%pg connect two $two_dsn")
    ip.run_cell("%pg -q CREATE TABLE IF NOT EXISTS only_in_two (a int)")
    ip.run_cell("%pg use default")
    return ip


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("%%pg @two\nSELECT * FROM only_|", ["only_in_two"]),
        ("%%pg --conn two -q\nSELECT * FROM only_|", ["only_in_two"]),
        ("%pg @two SELECT * FROM only_|", ["only_in_two"]),
        ("%pg @two -o x SELECT * FROM only_|", ["only_in_two"]),
        ("%pg --conn=two SELECT * FROM only_|", ["only_in_two"]),
        ("%%pg\nSELECT * FROM only_|", []),
        ("%pg SELECT * FROM only_|", []),
        ("%pg @t|", ["@two"]),
        ("%pg use t|", ["two"]),
        ("%pg close t|", ["two"]),
    ],
)
def test_a_named_connection_completes_from_its_own_catalog(
    two: Any, text: str, wanted: list[str]
) -> None:
    assert at_cursor(two, text) == wanted


def test_ddl_on_a_named_connection_refreshes_it(two: Any) -> None:
    two.run_cell("%pg @two --scalar SELECT count(*) FROM only_in_two")  # the snapshot is read
    assert at_cursor(two, "%pg @two SELECT * FROM fresh_|") == []
    two.run_cell("%pg @two -q CREATE TABLE fresh_in_two (a int)")
    assert at_cursor(two, "%pg @two SELECT * FROM fresh_|") == ["fresh_in_two"]
