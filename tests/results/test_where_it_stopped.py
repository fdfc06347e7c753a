"""An error in a cell of several statements says which failed, what ran, and what did not."""

from __future__ import annotations

from typing import Any

import pytest

from tests.shell import fails, run

BAD = "INSERT INTO stops VALUES ('x')"
CASES = [
    (
        f"INSERT INTO stops VALUES (1);\n{BAD};\nINSERT INTO stops VALUES (3)",
        "statement 2 of 3 failed; statement 1 ran and is committed; statement 3 did not run",
        [1],
    ),
    (
        f"{BAD};\nINSERT INTO stops VALUES (2)",
        "statement 1 of 2 failed; statement 2 did not run",
        [],
    ),
    (
        f"INSERT INTO stops VALUES (1);\nINSERT INTO stops VALUES (2);\n{BAD}",
        "statement 3 of 3 failed; statements 1-2 ran and are committed",
        [1, 2],
    ),
    (
        f"BEGIN;\nINSERT INTO stops VALUES (1);\n{BAD};\nINSERT INTO stops VALUES (3);\nCOMMIT",
        "statement 3 of 5 failed; statements 1-2 ran; the transaction is now aborted: "
        "ROLLBACK to end it; statements 4-5 did not run",
        [],
    ),
]


@pytest.mark.parametrize(("cell", "line", "rows"), CASES)
def test_the_last_line_says_where_the_cell_stopped(
    ip: Any, sql: Any, cell: str, line: str, rows: list[int]
) -> None:
    sql("DROP TABLE IF EXISTS stops")
    sql("CREATE TABLE stops (n int)")
    error, _ = fails(ip, f"%%pg\n{cell}")
    shown = error._render_traceback_()  # type: ignore[attr-defined]
    assert shown[0].startswith("ERROR:  invalid input syntax for type integer")
    assert shown[-1] == line
    run(ip, "%pg -q ROLLBACK")
    assert [r[0] for r in sql("SELECT n FROM stops ORDER BY n")] == rows


def test_a_single_statement_gets_no_such_line(ip: Any) -> None:
    error, _ = fails(ip, "%pg SELECT 1/0")
    assert error._render_traceback_() == ["ERROR:  division by zero"]  # type: ignore[attr-defined]
