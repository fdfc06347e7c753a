"""The session connection: a lost transaction is never continued in autocommit."""

from __future__ import annotations

from typing import Any

from pgmagic.errors import TransactionLost
from tests.shell import fails, run


def terminate_session(ip: Any, sql: Any) -> None:
    pid = run(ip, "%pg --scalar SELECT pg_backend_pid()")
    assert sql("SELECT pg_terminate_backend($1)", pid)[0][0] is True


def test_a_transaction_lost_with_its_connection_is_not_half_committed(
    ip: Any, sql: Any, capsys: Any
) -> None:
    sql("DROP TABLE IF EXISTS lost_tx")
    sql("CREATE TABLE lost_tx (n int)")
    run(ip, "%%pg\nBEGIN;\nINSERT INTO lost_tx VALUES (1)")
    terminate_session(ip, sql)
    error, _ = fails(ip, "%%pg\nINSERT INTO lost_tx VALUES (2);\nCOMMIT", capsys)
    assert isinstance(error, TransactionLost)
    assert error._render_traceback_() == [f"TransactionLost: {error}"]
    assert "nothing of it was committed" in str(error)
    assert sql("SELECT count(*) FROM lost_tx")[0][0] == 0
    # Acknowledged: the next cell runs, in a new session outside any transaction.
    assert run(ip, "%pg --scalar SELECT count(*) FROM lost_tx") == 0
    run(ip, "%pg INSERT INTO lost_tx VALUES (3)")
    assert sql("SELECT n FROM lost_tx")[0][0] == 3


def test_a_load_after_a_lost_transaction_is_refused_too(ip: Any, sql: Any, capsys: Any) -> None:
    import pandas as pd

    run(ip, "%pg BEGIN")
    terminate_session(ip, sql)
    ip.user_ns["frame"] = pd.DataFrame({"n": [1]})
    error, _ = fails(ip, "%pg load frame INTO lost_load --replace", capsys)
    assert isinstance(error, TransactionLost)
    run(ip, "%pg load frame INTO lost_load --replace -q")
    assert sql("SELECT n FROM lost_load")[0][0] == 1
    sql("DROP TABLE lost_load")


def test_a_connection_lost_outside_a_transaction_reconnects_with_a_note(
    ip: Any, sql: Any, capsys: Any
) -> None:
    run(ip, "%pg SELECT 1")
    terminate_session(ip, sql)
    capsys.readouterr()
    assert run(ip, "%pg --scalar SELECT 41 + 1") == 42
    assert "connection was lost and has been reopened" in capsys.readouterr().out
