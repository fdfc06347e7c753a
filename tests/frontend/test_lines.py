"""One set of word rules for every %pg line: shell-like quoting, # comments, channel names."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pgmagic
from pgmagic.errors import OptionError, ParameterError
from pgmagic.frontend.lines import split
from pgmagic.frontend.options import channel_name
from pgmagic.live.listener import listener_for
from pgmagic.runtime.connections import default_runtime
from tests.shell import fails, run


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("a b  c", [("a", False), ("b", False), ("c", False)]),
        ("'a b' c", [("a b", True), ("c", False)]),
        ('"a b" c', [("a b", True), ("c", False)]),
        ('--to="my file.csv"', [("--to=my file.csv", True)]),
        (r'"say \"hi\"" x', [('say "hi"', True), ("x", False)]),
        (r"a\ b", [("a b", True)]),
        ("'it''s'", [("its", True)]),
        ("\"(1, 'a')\"", [("(1, 'a')", True)]),
        ("a # comment 'unclosed", [("a", False)]),
        ("# all comment", []),
        ("a#b c", [("a#b", False), ("c", False)]),
        ("'#x' y", [("#x", True), ("y", False)]),
        ("x=1 y='two words'", [("x=1", False), ("y=two words", True)]),
        ("", []),
        ("   ", []),
    ],
)
def test_words(line: str, words: list[tuple[str, bool]]) -> None:
    assert [(w.text, w.quoted) for w in split(line)] == words


@pytest.mark.parametrize("line", ["'open", '"open', 'a "b', "a 'b\" c"])
def test_an_unclosed_quote_is_one_line(line: str) -> None:
    with pytest.raises(OptionError, match=r"no closing . for the quote at character"):
        split(line)


@pytest.mark.parametrize(
    ("text", "quoted", "name"),
    [
        ("orders", False, "orders"),
        ("Orders", False, "orders"),
        ("_x$1", False, "_x$1"),
        ("zäune", False, "zäune"),
        ("Mixed Case", True, "Mixed Case"),
        ("orders,", True, "orders,"),
    ],
)
def test_channel_names_follow_identifier_rules(text: str, quoted: bool, name: str) -> None:
    assert channel_name(text, quoted=quoted) == name


@pytest.mark.parametrize("text", ["orders,", "orders;", "1st", "a-b", "a.b", "$x", ""])
def test_what_is_not_an_identifier_is_refused(text: str) -> None:
    with pytest.raises(OptionError, match="not a channel name"):
        channel_name(text, quoted=False)


def _listening() -> frozenset[str]:
    runtime = default_runtime(create=False)
    assert runtime is not None
    return listener_for(runtime).status.channels


# Every %pg subcommand and the options line take a trailing comment.
COMMENTED = [
    "%pg status  # server, database, user",
    "%pg disconnect # reconnects on the next statement",
    "%pg help # the same as %pg?",
    "%pg stop # ends every refresh",
    "%pg connect --embedded   # back to the embedded server",
    "%pg notify orders hello  # a payload of one word",
    "%pg unlisten --all # nothing was listening",
]


@pytest.mark.parametrize("line", COMMENTED)
def test_a_trailing_comment_is_ignored(ip: Any, line: str) -> None:
    run(ip, line)


def test_listen_with_a_comment_listens_on_the_named_channels_only(ip: Any, sql: Any) -> None:
    run(ip, "%pg listen orders inventory  # live feed: newest first, count, rate")
    assert _listening() == {"orders", "inventory"}
    run(ip, "%pg unlisten Orders  # folded to lower case, as LISTEN Orders would be")
    assert _listening() == {"inventory"}
    run(ip, '%pg listen "Order Events"')
    assert _listening() == {"inventory", "Order Events"}
    run(ip, "%pg unlisten --all")


@pytest.mark.parametrize(
    "line",
    [
        "%pg listen orders, inventory;",
        "%pg listen orders;",
        "%pg listen a.b",
        "%pg unlisten orders,",
        "%pg notify orders, hi",
    ],
)
def test_malformed_channel_names_are_one_line(ip: Any, line: str) -> None:
    error, _ = fails(ip, line)
    assert isinstance(error, OptionError)
    assert "not a channel name" in str(error) and "\n" not in str(error)
    assert _listening() == frozenset()


def test_notify_payload_keeps_what_was_written(ip: Any) -> None:
    got: list[str] = []

    async def collect() -> None:
        async with pgmagic.notifications("orders") as feed:
            for line in ("%pg notify orders '{\"id\": 42}'", '%pg notify orders {"id": 7}  # x'):
                run(ip, line)
            async for item in feed:
                got.append(item.payload)
                if len(got) == 2:
                    return

    import asyncio

    asyncio.run(asyncio.wait_for(collect(), 20))
    assert got == ['{"id": 42}', '{"id": 7}']


def test_option_values_with_spaces(ip: Any, tmp_path: Path) -> None:
    ip.user_ns["rows"] = [(1,), (2,)]
    assert run(ip, "%pg --scalar -p \"(1, 'a')\" SELECT $2::text || $1::int") == "a1"
    assert run(ip, "%pg --one --params='(5, 6)' SELECT $1::int AS a, $2::int AS b") == (5, 6)
    run(ip, "%pg -q CREATE TEMP TABLE spaced (n int)")
    run(ip, '%pg -q --many "[(3,), (4,)]" INSERT INTO spaced VALUES ($1)')
    assert run(ip, "%pg --scalar SELECT sum(n) FROM spaced") == 7
    target = tmp_path / "my file.csv"
    ip.user_ns["target"] = str(target)
    run(ip, f'%pg -q --to "{target}" SELECT 1 AS one')
    assert pd.read_csv(target)["one"].tolist() == [1]
    again = tmp_path / "another file.csv"
    run(ip, f"%%pg -q --to='{again}'  # the options line takes a comment\nSELECT 2 AS two")
    assert pd.read_csv(again)["two"].tolist() == [2]
    run(ip, "%pg -q DROP TABLE spaced")


def test_sql_after_the_options_is_left_as_written(ip: Any) -> None:
    # In SQL, # is an operator (XOR) and '' doubles a quote: no shell rules there.
    assert run(ip, "%pg --scalar SELECT 5 # 3") == 6
    assert run(ip, "%pg --scalar SELECT 'O''Brien'") == "O'Brien"
    assert run(ip, "%pg -q --scalar SELECT 'it''s #1'") == "it's #1"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%pg stop now", "%pg stop takes no arguments, got 'now'"),
        ("%pg status extra # c", "%pg status takes no arguments, got 'extra'"),
        ("%pg help me", "%pg help takes no arguments"),
        ("%pg --quiet=yes SELECT 1", "option --quiet takes no value"),
        ("%pg -o", "option -o needs a value"),
        ("%pg -o -- a comment", "option -o needs a value"),
        ("%pg --out=-- SELECT 1", "option --out needs a value, not --"),
        ('%pg -p "--" SELECT 1', "option -p needs a value, not --"),
        ("%pg connect --embedded postgresql://x/y", "--embedded takes no DSN"),
        ("%pg connect --bogus x", "unknown option --bogus for %pg connect"),
        ("%pg connect postgresql://h/db extra", "unexpected text after the DSN (1 more word)"),
        ("%pg connect # nothing", "usage: %pg connect"),
        ("%pg listen --dsn", "usage: %pg listen"),
        ("%pg load df INTO", "usage: %pg load"),
        ("%pg load df INTO a;b", "not a table name"),
        ("%pg -p '(1, 2 SELECT 1", "no closing ' for the quote at character 4"),
    ],
)
def test_usage_mistakes_are_one_line(ip: Any, line: str, message: str) -> None:
    error, _ = fails(ip, line)
    assert message in str(error), error
    assert "\n" not in str(error)
    assert run(ip, "%pg --scalar SELECT 1") == 1


def test_load_names_what_went_wrong_with_its_source(ip: Any, tmp_path: Path) -> None:
    ip.user_ns["df"] = pd.DataFrame({"day": [1, 2]})
    ip.user_ns["cutoff"] = "x"
    cases = [
        ("%pg load nothere INTO t", ParameterError, "no such file or variable: nothere"),
        (f"%pg load {tmp_path}/missing.csv INTO t", OptionError, "no such file"),
        ("%pg load missing.csv INTO t", OptionError, "no such file: missing.csv"),
        ("%pg load df[df.day > cutoff] INTO t", ParameterError, "TypeError"),
        ("%pg load 42 INTO t", OptionError, "42 is a int"),
    ]
    for line, kind, message in cases:
        error, _ = fails(ip, line)
        assert isinstance(error, kind), (line, error)
        assert message in str(error), (line, error)
        assert "\n" not in str(error)
    frame_file = tmp_path / "a b.csv"
    frame_file.write_text("n\n1\n2\n")
    run(ip, f"%pg load '{frame_file}' INTO lines_spaced --create -q # a quoted file name")
    run(ip, "%pg load df[df.day > 1] INTO lines_expr --create -q")
    assert run(ip, "%pg --scalar SELECT count(*) FROM lines_spaced") == 2
    assert run(ip, "%pg --scalar SELECT count(*) FROM lines_expr") == 1
    run(ip, "%pg -q DROP TABLE lines_spaced, lines_expr")


def test_refresh_on_takes_a_comment_and_identifier_rules(ip: Any, sql: Any) -> None:
    run(ip, "%%pg --refresh-on Orders   # re-run when orders is notified\nSELECT 1 AS n")
    time.sleep(0.2)
    assert "orders" in _listening()
    run(ip, "%pg stop")
    error, _ = fails(ip, "%%pg --refresh-on orders,\nSELECT 1")
    assert "not a channel name" in str(error)


@pytest.mark.parametrize(
    "cell",
    [
        "%%pg\nLISTEN orders",
        "%pg listen_x",  # not a subcommand: SQL, which the server rejects
        "%%pg\nSELECT 1;\n/* then */ listen orders",
        "%%pg\nUNLISTEN *",
    ],
)
def test_listen_in_sql_points_to_the_listener(ip: Any, cell: str) -> None:
    error, _ = fails(ip, cell)
    if "listen_x" in cell:
        assert "syntax error" in "".join(error._render_traceback_())  # type: ignore[attr-defined]
        return
    assert isinstance(error, OptionError)
    assert "%pg listen CHANNEL" in str(error) and "\n" not in str(error)
    assert _listening() == frozenset()


def test_an_upper_case_listen_line_is_the_subcommand(ip: Any) -> None:
    run(ip, "%pg LISTEN orders")
    assert _listening() == {"orders"}
    run(ip, "%pg UNLISTEN --all")
    assert _listening() == frozenset()
