r"""A cell cut into SQL and backslash command lines: where a command line is one, and where not."""

from __future__ import annotations

import pytest

from pgmagic.sql.script import has_commands, only, split

CASES = [
    ("SELECT 1", [(False, "SELECT 1")]),
    ("\\dt", [(True, "\\dt")]),
    ("SELECT 1;\n\\dt\nSELECT 2", [(False, "SELECT 1;\n"), (True, "\\dt"), (False, "\nSELECT 2")]),
    # A command line ends the statement before it, as the cell's end would.
    ("SELECT 1\n\\dn", [(False, "SELECT 1\n"), (True, "\\dn")]),
    ("  \\d orders  \n\t\\dn", [(True, "\\d orders"), (True, "\\dn")]),
    ("SELECT '\n\\dt\n'", [(False, "SELECT '\n\\dt\n'")]),
    ("SELECT E'a\\\n\\dt'", [(False, "SELECT E'a\\\n\\dt'")]),
    ('SELECT 1 AS "\n\\dt\n"', [(False, 'SELECT 1 AS "\n\\dt\n"')]),
    ("/* a\n\\dt\n*/ SELECT 1", [(False, "/* a\n\\dt\n*/ SELECT 1")]),
    ("SELECT $$\n\\dt\n$$", [(False, "SELECT $$\n\\dt\n$$")]),
    ("-- \\dt\nSELECT 1", [(False, "-- \\dt\nSELECT 1")]),
    ("SELECT 1 \\dt", [(False, "SELECT 1 \\dt")]),
    ("\\d \"it's\"\nSELECT 'x'", [(True, '\\d "it\'s"'), (False, "\nSELECT 'x'")]),
]


@pytest.mark.parametrize(("cell", "pieces"), CASES)
def test_split(cell: str, pieces: list[tuple[bool, str]]) -> None:
    found = split(cell)
    assert [(p.command, p.text) for p in found] == pieces
    assert has_commands(cell) == any(command for command, _ in pieces)


def test_only_keeps_positions_and_lines() -> None:
    cell = "SELECT 1;\n\\dt\nSELECT nope"
    last = split(cell)[-1]
    kept = only(cell, last)
    assert len(kept) == len(cell) and kept.count("\n") == cell.count("\n")
    assert kept.index("SELECT nope") == cell.index("SELECT nope")
    assert kept.strip() == "SELECT nope"
