"""--explain-analyze measures a statement and undoes it: rows are counted afterwards, on the server."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from pgmagic.results.explain import ROLLED_BACK, ROLLED_BACK_TO_SAVEPOINT
from pgmagic.results.plan import Plan
from tests.shell import fails, run

SETUP = """%%pg -q
DROP TABLE IF EXISTS ex_items, ex_log;
CREATE TABLE ex_items (id int PRIMARY KEY, qty int);
INSERT INTO ex_items SELECT g, g FROM generate_series(1, 100) g;
CREATE TABLE ex_log (note text);
CREATE OR REPLACE FUNCTION ex_note(t text) RETURNS int LANGUAGE sql
  AS $$ INSERT INTO ex_log VALUES (t) RETURNING 1 $$;
"""
COUNT = (
    "SELECT (SELECT count(*) FROM ex_items), (SELECT sum(qty) FROM ex_items), "
    "(SELECT count(*) FROM ex_log)"
)


@pytest.fixture
def items(ip: Any, sql: Any) -> Any:
    run(ip, SETUP)
    yield ip
    run(ip, "%pg -q DROP TABLE IF EXISTS ex_items, ex_log; DROP FUNCTION IF EXISTS ex_note")


def transaction(ip: Any, capsys: Any) -> str:
    """The session's transaction state, as ``%pg status`` reads it from the server's last word.

    Not from pg_stat_activity: behind a transaction pooler the backend changes.
    """
    capsys.readouterr()
    run(ip, "%pg status")
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("transaction"))
    return line.split(None, 1)[1]


def counts(sql: Any) -> tuple[int, int, int]:
    """Rows as another connection sees them: what is committed."""
    row = sql(COUNT)[0]
    return row[0], row[1], row[2]


@pytest.mark.parametrize(
    ("statement", "writes"),
    [
        ("INSERT INTO ex_items VALUES (1000, 1)", True),
        ("UPDATE ex_items SET qty = qty + 1 WHERE id <= $n", True),
        ("DELETE FROM ex_items WHERE id <= $n", True),
        (
            "MERGE INTO ex_items t USING (SELECT 1 AS id) s ON t.id = s.id "
            "WHEN MATCHED THEN UPDATE SET qty = 0",
            True,
        ),
        ("WITH d AS (DELETE FROM ex_items RETURNING *) SELECT count(*) FROM d", True),
        ("SELECT * FROM ex_items WHERE id <= $n FOR UPDATE", True),
        ("SELECT ex_note('written by a function')", True),
        ("CREATE TABLE ex_made AS SELECT * FROM ex_items", True),
        ("SELECT count(*) FROM ex_items WHERE id <= $n", False),
    ],
)
def test_writes_are_rolled_back_and_said_so(
    items: Any, sql: Any, capsys: Any, statement: str, writes: bool
) -> None:
    items.user_ns["n"] = 10
    before = counts(sql)
    plan = run(items, f"%%pg --explain-analyze\n{statement}")
    assert isinstance(plan, Plan) and plan.analyzed
    assert counts(sql) == before
    assert (ROLLED_BACK in plan.notes) is writes, plan.text
    assert (ROLLED_BACK in plan.text) is writes
    # The session is left idle: nothing of ours stays open.
    assert transaction(items, capsys) == "idle"
    assert sql("SELECT count(*) FROM pg_class WHERE relname = 'ex_made'")[0][0] == 0


def test_inside_the_users_transaction_a_savepoint_is_rolled_back(
    items: Any, sql: Any, capsys: Any
) -> None:
    before = counts(sql)
    run(items, "%pg BEGIN")
    run(items, "%pg INSERT INTO ex_items VALUES (500, 5)")
    plan = run(items, "%%pg --explain-analyze\nDELETE FROM ex_items")
    assert ROLLED_BACK_TO_SAVEPOINT in plan.notes
    # The user's own insert is still there, the explained delete is not.
    assert run(items, "%pg --scalar SELECT count(*) FROM ex_items") == before[0] + 1
    assert transaction(items, capsys) == "in transaction"
    # A failing or timed-out explain leaves the user's transaction usable, as it was.
    fails(items, "%%pg --explain-analyze\nSELECT 1 / (id - id) FROM ex_items")
    run(items, "%config PgMagics.command_timeout = 0.3")
    fails(
        items, "%%pg --explain-analyze\nUPDATE ex_items SET qty = 0 WHERE pg_sleep(1) IS NOT NULL"
    )
    run(items, "%config PgMagics.command_timeout = None")
    assert run(items, "%pg --scalar SELECT count(*) FROM ex_items") == before[0] + 1
    assert run(items, "%pg --scalar SELECT sum(qty) FROM ex_items") == before[1] + 5
    run(items, "%pg COMMIT")
    assert counts(sql) == (before[0] + 1, before[1] + 5, before[2])


def test_a_failed_explain_outside_a_transaction_leaves_nothing_open(
    items: Any, sql: Any, capsys: Any
) -> None:
    before = counts(sql)
    error, _ = fails(items, "%%pg --explain-analyze\nINSERT INTO ex_items VALUES (1, 1)")
    assert isinstance(error, asyncpg.UniqueViolationError)
    assert counts(sql) == before
    assert transaction(items, capsys) == "idle"


def test_earlier_statements_run_and_the_last_is_explained(
    items: Any, sql: Any, capsys: Any
) -> None:
    capsys.readouterr()
    plan = run(
        items,
        "%%pg --explain\nSET enable_seqscan = off;\nCREATE TEMP TABLE ex_tmp AS SELECT 1 AS x;\n"
        "SELECT * FROM ex_items WHERE id = 3",
    )
    out = capsys.readouterr().out
    assert "SET\nSELECT 1\n" in out
    assert plan.root.index == "ex_items_pkey" and not plan.analyzed
    assert plan.settings.get("enable_seqscan") == "off"
    assert run(items, "%pg --scalar SELECT count(*) FROM ex_tmp") == 1
    run(items, "%pg RESET enable_seqscan")


def test_values_are_bound_on_the_server_as_in_a_plain_run(items: Any) -> None:
    items.user_ns.update(low=95, label="x'); DROP TABLE ex_items; --")
    plan = run(items, "%pg --explain -o p SELECT * FROM ex_items WHERE id > $low AND $label <> ''")
    assert items.user_ns["p"] is plan
    # A plan for these values (a custom plan): the value is in it, the text never was.
    assert "(ex_items.id > 95)" in plan.text
    assert run(items, "%pg --scalar SELECT count(*) FROM ex_items") == 100


def test_a_failed_explain_after_begin_says_the_transaction_is_open(
    items: Any, sql: Any, capsys: Any
) -> None:
    before = counts(sql)
    _error, out = fails(
        items,
        "%%pg --explain-analyze\nBEGIN;\nINSERT INTO ex_items VALUES (700, 7);\n"
        "INSERT INTO ex_items VALUES (700, 7)",
        capsys,
    )
    assert "statement 3 of 3 failed; statements 1-2 ran; the transaction is still open" in out
    assert transaction(items, capsys) == "in transaction"
    run(items, "%pg COMMIT")
    assert counts(sql) == (before[0] + 1, before[1] + 7, before[2])


def test_triggers_are_listed_under_the_plan(items: Any, sql: Any) -> None:
    run(
        items,
        "%%pg -q\nCREATE FUNCTION ex_audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN INSERT INTO ex_log VALUES ('audit'); RETURN NEW; END$$;\n"
        "CREATE TRIGGER ex_audited AFTER INSERT ON ex_items FOR EACH ROW EXECUTE FUNCTION ex_audit()",
    )
    before = counts(sql)
    plan = run(items, "%%pg --explain-analyze\nINSERT INTO ex_items VALUES (900, 9), (901, 9)")
    assert any(
        line.startswith("Trigger ex_audited on ex_items: ") and line.endswith("calls 2")
        for line in plan.summary()
    ), plan.text
    assert counts(sql) == before  # the trigger's own insert is rolled back with the statement
    run(items, "%pg -q DROP TRIGGER ex_audited ON ex_items; DROP FUNCTION ex_audit")
