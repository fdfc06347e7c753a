"""Reading a backslash command: its kind, S and +, its pattern as psql reads arguments."""

from __future__ import annotations

import pytest

from pgmagic.catalog.meta import command_name, parse
from pgmagic.errors import MetaCommandError

CASES = [
    (r"\d", ("d", "", False, False, None)),
    (r"\d orders", ("d", "", False, False, "orders")),
    (r"\d+ orders", ("d", "", False, True, "orders")),
    (r"\dS+ pg_class", ("d", "", True, True, "pg_class")),
    (r'\d "Mixed Case"', ("d", "", False, False, '"Mixed Case"')),
    (r"\d 'two words'", ("d", "", False, False, "two words")),
    (r"\d 'it''s'", ("d", "", False, False, "it's")),
    (r'\d "My Schema"."T"', ("d", "", False, False, '"My Schema"."T"')),
    (r"\dt", ("list", "t", False, False, None)),
    (r"\dtS+ public.*", ("list", "t", True, True, "public.*")),
    (r"\dtv", ("list", "tv", False, False, None)),
    (r"\di+", ("list", "i", False, True, None)),
    (r"\dv", ("list", "v", False, False, None)),
    (r"\dm", ("list", "m", False, False, None)),
    (r"\ds", ("list", "s", False, False, None)),
    (r"\dE", ("list", "E", False, False, None)),
    (r"\dn+", ("dn", "", False, True, None)),
    (r"\df+ add_one", ("df", "", False, True, "add_one")),
    (r"\dfp", ("df", "p", False, False, None)),
    (r"\dfS", ("df", "", True, False, None)),
    (r"\dx", ("dx", "", False, False, None)),
    (r"\du", ("du", "", False, False, None)),
    (r"\dg+", ("du", "", False, True, None)),
    (r"\l", ("l", "", False, False, None)),
    (r"\list+", ("l", "", False, True, None)),
    (r"\conninfo", ("conninfo", "", False, False, None)),
    (r"\dTS+ int*", ("dT", "", True, True, "int*")),
    # \sf and \sv take the rest of the line: a signature has spaces.
    (r"\sf+ plp(int, text)", ("sf", "", False, True, "plp(int, text)")),
    (r"\sv  my.view  ", ("sv", "", False, False, "my.view")),
    ("   \\dt   ", ("list", "t", False, False, None)),
]


@pytest.mark.parametrize(("line", "expected"), CASES)
def test_describe_commands(line: str, expected: tuple[object, ...]) -> None:
    found = parse(line)
    assert found is not None
    assert (found.kind, found.letters, found.system, found.verbose, found.pattern) == expected


@pytest.mark.parametrize("line", [r"\x", r"\timing on", r"\c db", r"\dD", r"\dp", r"\foo", r"\?"])
def test_other_commands_are_not_read_here(line: str) -> None:
    assert parse(line) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (r"\d a b", '\\d: extra argument "b"'),
        (r"\conninfo x", '\\conninfo: extra argument "x"'),
        (r'\d "open', "unterminated quoted string"),
        (r"\dt a.b.c.d", "improper qualified name (too many dotted names): a.b.c.d"),
        (r"\dn a.b.c", "improper qualified name (too many dotted names): a.b.c"),
        (r"\l a.b", "improper qualified name (too many dotted names): a.b"),
    ],
)
def test_bad_arguments_are_refused_before_any_io(line: str, message: str) -> None:
    with pytest.raises(MetaCommandError, match=None) as caught:
        parse(line)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("line", "name"), [(r"\dt+ x", r"\dt+"), (r"\x", r"\x"), (r"\timing on", r"\timing")]
)
def test_command_name(line: str, name: str) -> None:
    assert command_name(line) == name
