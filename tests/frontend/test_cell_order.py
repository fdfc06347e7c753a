"""A cell of several statements shows every result in order, as psql does."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.shell import fails, run


def _shown(out: str) -> list[str]:
    """The output reduced to what a reader scans: tags, table headers, Out lines."""
    lines = [re.sub(r"^Out\[\d+\]:\s*", "", line).strip() for line in out.splitlines()]
    kept = []
    for i, line in enumerate(lines):
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"-+(\+-+)*", following):
            kept.append(f"table {line}")
        elif re.fullmatch(r"[A-Z]+( [A-Z]+)*( \d+)*", line) or line.startswith("↑"):
            kept.append(line.split(":")[0])
        elif line.startswith("ERROR:"):
            kept.append("ERROR")
    return kept


CASES = [
    ("SELECT 1 AS a;\nSELECT 2 AS b", ["table a", "table b"]),
    ("BEGIN;\nSELECT 1 AS a;\nCOMMIT", ["BEGIN", "table a", "COMMIT", "↑ the table above"]),
    (
        "CREATE TEMP TABLE ord (n int);\nINSERT INTO ord VALUES (1), (2);\n"
        "SELECT n FROM ord;\nUPDATE ord SET n = n + 1;\nSELECT n AS m FROM ord",
        ["CREATE TABLE", "INSERT 0 2", "table n", "UPDATE 2", "table m"],
    ),
    ("SELECT 1 AS a;\nSELECT 1/0;\nSELECT 3 AS c", ["table a", "ERROR"]),
]


@pytest.mark.parametrize(("cell", "expected"), CASES)
def test_results_appear_in_the_order_they_ran(
    ip: Any, capsys: Any, cell: str, expected: list[str]
) -> None:
    capsys.readouterr()
    ip.run_cell(f"%%pg\n{cell}")
    assert _shown(capsys.readouterr().out) == expected
    run(ip, "%pg -q ROLLBACK")


def test_the_value_is_the_last_result_and_shows_whole_later(ip: Any, capsys: Any) -> None:
    value = run(ip, "%%pg\nSELECT 1 AS a;\nSELECT 2 AS b;\nCOMMIT")
    assert value.columns.tolist() == ["b"] and value["b"].tolist() == [2]
    capsys.readouterr()
    ip.run_cell("_", store_history=True)
    later = capsys.readouterr().out
    assert "↑" not in later and "1 row × 1 column" in later


def test_quiet_shows_no_earlier_tables(ip: Any, capsys: Any) -> None:
    capsys.readouterr()
    value = run(ip, "%%pg -q\nSELECT 1 AS a;\nSELECT 2 AS b")
    assert "a" not in _shown(capsys.readouterr().out)
    assert value["b"].tolist() == [2]


def test_an_error_after_a_table_keeps_the_table(ip: Any, capsys: Any) -> None:
    error, printed = fails(ip, "%%pg\nSELECT 41 + 1 AS answer;\nSELECT 1/0", capsys)
    assert "answer" in printed and "42" in printed
    assert "statement 2 of 2 failed" in "\n".join(error._render_traceback_())  # type: ignore[attr-defined]
