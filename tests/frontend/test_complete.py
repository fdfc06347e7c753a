"""Tab after %pg offers pgmagic's subcommands and options, not Python builtins."""

from __future__ import annotations

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
        ("%pg con", ["connect"]),
        ("%pg st", ["status", "stop"]),
        ("%pg -q --to x.csv --ch", ["--chunksize"]),
        ("%%pg --refr", ["--refresh-on"]),
        ("%pg connect --p", ["--pooler"]),
        ("%pg connect --e", ["--embedded"]),
        ("%pg unlisten --a", ["--all"]),
        ("%pg load df INTO t --re", ["--replace"]),
        ("%pg listen --d", ["--dsn"]),
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
