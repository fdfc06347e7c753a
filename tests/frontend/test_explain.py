"""%%pg --explain in a real shell: one-line mistakes, psql's errors, plans shown whole."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

from pgmagic.frontend.magics import PgMagics
from pgmagic.results.plan import MIME_TYPE, Plan
from tests.shell import fails, run


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%pg --explain --stream SELECT 1", "--explain gives a plan; it does not combine with --stream"),
        ("%pg --explain-analyze --to x.csv SELECT 1", "does not combine with --to"),
        ("%pg --explain --many rows INSERT INTO t VALUES ($a)", "does not combine with --many"),
        ("%pg --explain --watch 5 SELECT 1", "does not combine with --watch"),
        ("%pg --explain --refresh-on ch SELECT 1", "does not combine with --refresh-on"),
        ("%pg --explain --chunksize 5 SELECT 1", "does not combine with --chunksize"),
        ("%pg --explain --one SELECT 1", "--one and --explain cannot be combined"),
        ("%pg --scalar --explain-analyze SELECT 1", "--scalar and --explain-analyze cannot be"),
        ("%pg --explain --explain-analyze SELECT 1", "--explain and --explain-analyze cannot be"),
        ("%pg --explain", "--explain needs a statement to explain"),
        ("%%pg --explain-analyze\n-- only a comment", "--explain-analyze needs a statement"),
        ("%%pg --explain\n\\d pg_class\nSELECT 1", r"a cell with \d lines takes only"),
        ("%pg --explain SELECT $nowhere_defined", "variable not defined in the notebook"),
    ],
)  # fmt: skip
def test_bad_uses_are_one_line(ip: Any, capsys: Any, cell: str, message: str) -> None:
    _error, out = fails(ip, cell, capsys)
    assert message in out and len(out.strip().splitlines()) == 1, out
    assert run(ip, "%pg --scalar SELECT 1") == 1


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("VACUUM", 'ERROR:  syntax error at or near "VACUUM"\nLINE 1: VACUUM\n        ^'),
        ("CREATE TABLE never_made (a int)", 'ERROR:  syntax error at or near "int"'),
        ("COMMIT", 'ERROR:  syntax error at or near "COMMIT"'),
    ],
)
def test_what_cannot_be_explained_fails_as_psql_says(
    ip: Any, capsys: Any, sql: Any, statement: str, error: str
) -> None:
    for option in ("--explain", "--explain-analyze"):
        _error, out = fails(ip, f"%%pg {option}\n{statement}", capsys)
        assert out.startswith(error), out
        assert "HINT:  EXPLAIN takes SELECT, INSERT" in out and "Traceback" not in out
    assert run(ip, "%pg --scalar SELECT 1") == 1
    assert sql("SELECT count(*) FROM pg_class WHERE relname = 'never_made'")[0][0] == 0


def test_a_statements_own_mistake_gets_no_hint(ip: Any, capsys: Any) -> None:
    _error, out = fails(ip, "%%pg --explain\nSELECT 1;\nSELECT nope FROM pg_class", capsys)
    # The caret points into the cell, past the EXPLAIN that was put before the statement.
    assert 'ERROR:  column "nope" does not exist\nLINE 2: SELECT nope FROM pg_class\n' in out
    assert "\n" + " " * 15 + "^\n" in out
    assert "EXPLAIN takes" not in out
    assert "statement 2 of 2 failed; statement 1 ran and is committed" in out


def test_the_plan_is_the_cells_value_and_displays_everywhere(ip: Any, capsys: Any) -> None:
    capsys.readouterr()
    plan = run(ip, "%%pg --explain-analyze -o analyzed\nSELECT count(*) FROM pg_class")
    assert isinstance(plan, Plan) and ip.user_ns["analyzed"] is plan and ip.user_ns["_"] is plan
    assert "Aggregate  (rows 1 of est. 1 · " in capsys.readouterr().out
    formatted, _ = ip.display_formatter.format(plan)
    assert formatted["text/plain"] == plan.text
    assert formatted["text/html"].startswith('<div class="pgmagic-plan">')
    assert formatted[MIME_TYPE]["plan"]["Plan"]["Node Type"] == "Aggregate"
    assert isinstance(plan.json, list) and plan.json[0]["Plan"]["Node Type"] == "Aggregate"


def test_help_lists_the_options() -> None:
    doc = PgMagics.pg.__doc__ or ""
    assert "--explain-analyze" in doc
    assert re.search(r"--explain\s+Give the plan", doc), doc


LONG_PLAN = " UNION ALL ".join(
    f"SELECT {i} AS n FROM pg_class WHERE relname = 'x{i}'" for i in range(40)
)


def test_a_typed_explain_is_shown_whole(ip: Any) -> None:
    run(ip, "%config PgMagics.displaylimit = 5")
    frame = run(ip, f"%pg EXPLAIN (VERBOSE) {LONG_PLAN}")
    assert isinstance(frame, pd.DataFrame) and len(frame) > 80
    formatted, _ = ip.display_formatter.format(frame)
    html, text = formatted["text/html"], formatted["text/plain"]
    for line in frame["QUERY PLAN"]:
        assert line in text  # every line, never cut or elided
    assert "first 5 shown" not in html + text
    # Preformatted: the indentation survives without the stylesheet.
    plan = re.search(r"<pre>(.*?)</pre>", html, re.DOTALL)
    assert plan is not None and "  -&gt;  Index Only Scan" in plan.group(1)
    assert len(plan.group(1).splitlines()) == len(frame) + 1
    assert text.splitlines()[0].strip() == "QUERY PLAN"


def test_a_typed_json_explain_is_shown_indented(ip: Any) -> None:
    frame = run(ip, "%pg EXPLAIN (FORMAT JSON) SELECT 1")
    assert isinstance(frame, pd.DataFrame) and isinstance(frame.iloc[0, 0], list)
    formatted, _ = ip.display_formatter.format(frame)
    assert "      &quot;Node Type&quot;: &quot;Result&quot;" in formatted["text/html"]
    assert '      "Node Type": "Result"' in formatted["text/plain"]
    # The same value read as a tree.
    assert Plan(frame.iloc[0, 0]).root.node_type == "Result"


def test_a_query_naming_a_column_query_plan_is_a_table(ip: Any) -> None:
    frame = run(ip, """%pg SELECT g AS "QUERY PLAN" FROM generate_series(1, 30) g""")
    formatted, _ = ip.display_formatter.format(frame)
    assert "<pre>" not in formatted["text/html"] and "first 20 shown" in formatted["text/html"]
