"""Ctrl-C and shutdown in real kernels: nothing is left running on the server."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.kernels import Kernel


def backend(sql: Any, pid: int) -> tuple[str, str] | None:
    rows = sql("SELECT state, query FROM pg_stat_activity WHERE pid = $1", pid)
    return (rows[0][0], rows[0][1]) if rows else None


def wait_for_state(sql: Any, pid: int, state: str | None, timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        current = backend(sql, pid)
        if (current[0] if current else None) == state or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


def scalar(reply: Any) -> int:
    match = re.search(r"(\d+)", reply.results[0]["text/plain"])
    assert match, reply.text
    return int(match.group(1))


@pytest.fixture(scope="module")
def kernel() -> Any:
    with Kernel() as k:
        reply = k.run("%load_ext pgmagic")
        assert reply.status == "ok", reply.text
        yield k


def test_ctrl_c_cancels_on_the_server(kernel: Kernel, sql: Any) -> None:
    pid = scalar(kernel.run("%pg --scalar SELECT pg_backend_pid()"))
    msg = kernel.send("%pg SELECT pg_sleep(30)")
    assert wait_for_state(sql, pid, "active") is not None
    started = time.perf_counter()
    kernel.interrupt()
    reply = kernel.collect(msg, timeout=20)
    assert time.perf_counter() - started < 5
    assert reply.error is not None
    assert reply.error["traceback"] == ["query cancelled"]
    state = backend(sql, pid)
    assert state is not None and state[0] == "idle", state
    after = kernel.run("%pg --scalar SELECT pg_backend_pid()")
    assert after.status == "ok" and scalar(after) == pid


def test_ctrl_c_cancels_an_awaited_api_call(kernel: Kernel, sql: Any) -> None:
    msg = kernel.send(
        "import pgmagic\nawait pgmagic.fetch('SELECT pg_sleep(30), 1 AS awaited_sleep')"
    )
    deadline = time.monotonic() + 10
    while not active_queries(sql, "awaited_sleep") and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.perf_counter()
    kernel.interrupt()
    reply = kernel.collect(msg, timeout=20)
    # ipykernel alone would wait for the full 30 s, then show a CancelledError.
    assert time.perf_counter() - started < 5
    assert reply.error is not None and reply.error["traceback"] == ["query cancelled"]
    assert active_queries(sql, "awaited_sleep") == []
    after = kernel.run("await pgmagic.fetchval('SELECT 40 + 2')")
    assert after.status == "ok" and scalar(after) == 42
    # Ctrl-C still interrupts plain Python afterwards: the kernel's handler is back.
    msg = kernel.send("import time; time.sleep(30)")
    time.sleep(1)
    kernel.interrupt()
    reply = kernel.collect(msg, timeout=10)
    assert reply.error is not None and reply.error["ename"] == "KeyboardInterrupt"


def test_ctrl_c_in_a_transaction_leaves_it_failed(kernel: Kernel, sql: Any) -> None:
    pid = scalar(kernel.run("%pg --scalar SELECT pg_backend_pid()"))
    assert kernel.run("%pg BEGIN").status == "ok"
    msg = kernel.send("%pg SELECT pg_sleep(30)")
    assert wait_for_state(sql, pid, "active") is not None
    kernel.interrupt()
    reply = kernel.collect(msg, timeout=20)
    assert reply.error is not None and reply.error["traceback"] == ["query cancelled"]
    state = backend(sql, pid)
    assert state is not None and state[0] == "idle in transaction (aborted)", state
    failed = kernel.run("%pg SELECT 1")
    assert failed.status == "error"
    assert "ROLLBACK" in failed.text
    status = kernel.run("%pg status")
    assert "failed" in status.stdout
    assert kernel.run("%pg ROLLBACK").status == "ok"
    assert wait_for_state(sql, pid, "idle") == ("idle", "ROLLBACK")


def test_ctrl_c_while_waiting_for_python_is_untouched(kernel: Kernel) -> None:
    msg = kernel.send("import time; time.sleep(30)")
    time.sleep(1)
    kernel.interrupt()
    reply = kernel.collect(msg, timeout=20)
    assert reply.error is not None and reply.error["ename"] == "KeyboardInterrupt"


def test_shutdown_closes_every_backend(sql: Any) -> None:
    with Kernel() as k:
        assert k.run("%load_ext pgmagic").status == "ok"
        session = scalar(k.run("%pg --scalar SELECT pg_backend_pid()"))
        pooled = scalar(k.run("import pgmagic\nawait pgmagic.fetchval('SELECT pg_backend_pid()')"))
        k.run("%pg BEGIN")
        assert backend(sql, session) is not None and backend(sql, pooled) is not None
    assert wait_for_state(sql, session, None) is None
    assert wait_for_state(sql, pooled, None) is None


def test_a_killed_kernels_query_ends_on_the_server_within_seconds(sql: Any) -> None:
    with Kernel() as k:
        assert k.run("%load_ext pgmagic").status == "ok"
        session = scalar(k.run("%pg --scalar SELECT pg_backend_pid()"))
        pooled = scalar(k.run("import pgmagic\nawait pgmagic.fetchval('SELECT pg_backend_pid()')"))
        k.send("%pg SELECT pg_sleep(120)")
        assert wait_for_state(sql, session, "active") is not None
        killed = time.monotonic()
        k.kill()
        # client_connection_check_interval (2 s): the backend notices the
        # socket closed by the dead process while its query still runs.
        assert wait_for_state(sql, session, None, timeout=10) is None
        assert time.monotonic() - killed < 6
        assert wait_for_state(sql, pooled, None, timeout=10) is None


def test_unload_then_reload_in_a_kernel(kernel: Kernel, sql: Any) -> None:
    pid = scalar(kernel.run("%pg --scalar SELECT pg_backend_pid()"))
    assert kernel.run("%unload_ext pgmagic").status == "ok"
    assert wait_for_state(sql, pid, None) is None
    assert kernel.run("%load_ext pgmagic").status == "ok"
    assert scalar(kernel.run("%pg --scalar SELECT 41 + 1")) == 42


def active_queries(sql: Any, fragment: str) -> list[Any]:
    return sql(
        "SELECT pid, state FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()",
        f"%{fragment}%",
    )


def test_ctrl_c_during_export_leaves_no_file_and_no_backend(
    kernel: Kernel, sql: Any, tmp_path: Any
) -> None:
    target = tmp_path / "slow.parquet"
    msg = kernel.send(
        f"%pg --to {target} --chunksize 10 SELECT g, pg_sleep(0.01) AS slow_export FROM generate_series(1, 100000) g"
    )
    deadline = time.monotonic() + 10
    while not active_queries(sql, "slow_export") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    kernel.interrupt()
    reply = kernel.collect(msg, timeout=20)
    assert reply.error is not None
    assert reply.error["traceback"] == ["export cancelled; no file was written"]
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 5
    while any(r[1] != "idle" for r in active_queries(sql, "slow_export")):
        assert time.monotonic() < deadline, active_queries(sql, "slow_export")
        time.sleep(0.05)


def test_ctrl_c_during_load_leaves_the_table_as_it_was(kernel: Kernel, sql: Any) -> None:
    setup = kernel.run(
        "import pandas as pd\n"
        "big = pd.DataFrame({'k': range(8_000_000), 'v': ['x' * 20] * 8_000_000})\n"
        "%pg -q DROP TABLE IF EXISTS interrupted_load; CREATE TABLE interrupted_load (k bigint, v text); INSERT INTO interrupted_load VALUES (-1, 'before')"
    )
    assert setup.status == "ok", setup.text
    msg = kernel.send("%pg load big INTO interrupted_load --append")
    deadline = time.monotonic() + 20
    while not active_queries(sql, "COPY%interrupted_load"):
        assert time.monotonic() < deadline, "the COPY never started"
        time.sleep(0.02)
    time.sleep(0.2)
    kernel.interrupt()
    reply = kernel.collect(msg, timeout=30)
    assert reply.error is not None, reply.text
    assert reply.error["traceback"] == ["load cancelled; the table is as it was"]
    assert sql("SELECT count(*) FROM interrupted_load")[0][0] == 1
    assert not sql(
        "SELECT 1 FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND application_name = 'pgmagic'"
    )
    again = kernel.run("%pg --scalar SELECT count(*) FROM interrupted_load")
    assert again.status == "ok" and scalar(again) == 1


def test_ctrl_c_while_streaming(kernel: Kernel, sql: Any) -> None:
    opened = kernel.run(
        "chunks = %pg --stream --chunksize 50 SELECT g, pg_sleep(0.02) AS slow_stream FROM generate_series(1, 10000) g"
    )
    assert opened.status == "ok", opened.text
    msg = kernel.send("for frame in chunks: pass")
    time.sleep(1.5)
    kernel.interrupt()
    reply = kernel.collect(msg, timeout=20)
    assert reply.error is not None and reply.error["traceback"] == ["query cancelled"]
    assert not sql(
        "SELECT 1 FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND application_name = 'pgmagic'"
    )
    assert "closed" in kernel.run("chunks").text


@pytest.mark.parametrize("inside_a_transaction", [False, True])
def test_ctrl_c_during_explain_analyze_cancels_and_undoes_it(
    kernel: Kernel, sql: Any, inside_a_transaction: bool
) -> None:
    assert kernel.run("%pg -q CREATE TABLE IF NOT EXISTS k_explained (x int)").status == "ok"
    assert kernel.run("%pg -q TRUNCATE k_explained").status == "ok"
    pid = scalar(kernel.run("%pg --scalar SELECT pg_backend_pid()"))
    if inside_a_transaction:
        assert kernel.run("%pg -q BEGIN; INSERT INTO k_explained VALUES (1)").status == "ok"
    msg = kernel.send("%%pg --explain-analyze\nINSERT INTO k_explained SELECT 2 FROM pg_sleep(30)")
    assert wait_for_state(sql, pid, "active") is not None
    started = time.perf_counter()
    kernel.interrupt()
    reply = kernel.collect(msg, timeout=20)
    assert time.perf_counter() - started < 5
    assert reply.error is not None and reply.error["traceback"] == ["query cancelled"]
    # The measurement is undone; the user's own transaction goes on, usable.
    expected = "idle in transaction" if inside_a_transaction else "idle"
    state = wait_for_state(sql, pid, expected)
    assert state is not None and state[0] == expected, state
    rows = kernel.run("%pg --scalar SELECT count(*) FROM k_explained")
    assert rows.status == "ok" and scalar(rows) == (1 if inside_a_transaction else 0)
    if inside_a_transaction:
        assert kernel.run("%pg -q ROLLBACK").status == "ok"
    assert kernel.run("%pg -q DROP TABLE k_explained").status == "ok"


def test_a_plan_output_is_valid_in_a_saved_notebook(kernel: Kernel) -> None:
    import nbformat

    from pgmagic.results.plan import MIME_TYPE

    reply = kernel.run("%%pg --explain-analyze\nSELECT count(*) FROM pg_class")
    assert reply.status == "ok", reply.text
    (data,) = reply.results
    assert set(data) == {"text/plain", "text/html", MIME_TYPE}
    assert data[MIME_TYPE]["plan"]["Plan"]["Node Type"] == "Aggregate"
    assert data[MIME_TYPE]["view"]["nodes"][0]["title"] == "Aggregate"
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%%pg --explain-analyze\nSELECT count(*) FROM pg_class")
    cell.outputs = [nbformat.v4.new_output("execute_result", data=data, execution_count=1)]
    notebook.cells = [cell]
    nbformat.validate(notebook)
