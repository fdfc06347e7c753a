"""COPY with bound values: the values never outlive the transaction that reads them."""

from __future__ import annotations

from typing import Any

from tests.shell import run

LEAKED = "%pg --scalar SELECT coalesce(current_setting('pgmagic.p1', true), '')"


def test_bound_values_of_a_copy_stay_in_its_transaction(ip: Any) -> None:
    # Behind a transaction pooler, a setting left on the server connection
    # would be read by whichever client gets that connection next.
    ip.user_ns["low"] = 4990
    frame = run(ip, "%pg SELECT g FROM generate_series(1, 5000) AS g WHERE g > $low")
    assert frame["g"].tolist() == list(range(4991, 5001))
    assert run(ip, LEAKED) == ""


def test_inside_a_user_transaction_they_are_local_to_it(ip: Any) -> None:
    ip.user_ns["low"] = 4998
    run(ip, "%pg BEGIN")
    try:
        frame = run(ip, "%pg SELECT g FROM generate_series(1, 5000) AS g WHERE g > $low")
        assert frame["g"].tolist() == [4999, 5000]
    finally:
        run(ip, "%pg ROLLBACK")
    assert run(ip, LEAKED) == ""


def test_an_error_in_the_copy_ends_its_transaction(ip: Any, capsys: Any) -> None:
    ip.user_ns["zero"] = 0
    result = ip.run_cell("%pg SELECT 1 / $zero AS x FROM generate_series(1, 5000)")
    assert result.error_in_exec is not None
    assert run(ip, "%pg --scalar SELECT 1") == 1
    assert run(ip, "%pg --scalar SELECT pg_current_xact_id_if_assigned() IS NULL") is True
