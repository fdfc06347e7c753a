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


def test_unload_then_reload_in_a_kernel(kernel: Kernel, sql: Any) -> None:
    pid = scalar(kernel.run("%pg --scalar SELECT pg_backend_pid()"))
    assert kernel.run("%unload_ext pgmagic").status == "ok"
    assert wait_for_state(sql, pid, None) is None
    assert kernel.run("%load_ext pgmagic").status == "ok"
    assert scalar(kernel.run("%pg --scalar SELECT 41 + 1")) == 42
