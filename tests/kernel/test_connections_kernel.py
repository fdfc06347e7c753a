"""Named connections in real kernels: Ctrl-C on a named cell, and shutdown with several open."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.conftest import run_sql
from tests.kernels import Kernel


def _scalar(reply: Any) -> int:
    match = re.search(r"(\d+)", reply.results[0]["text/plain"])
    assert match, reply.text
    return int(match.group(1))


def _backend(dsn: str, pid: int) -> str | None:
    rows = run_sql(dsn, "SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
    return rows[0][0] if rows else None


def _wait(dsn: str, pid: int, state: str | None, timeout: float = 10) -> str | None:
    deadline = time.monotonic() + timeout
    while (current := _backend(dsn, pid)) != state and time.monotonic() < deadline:
        time.sleep(0.05)
    return current


def _connect_two(k: Kernel, second: tuple[str, str]) -> None:
    assert k.run("%load_ext pgmagic").status == "ok"
    assert k.run(f"two_dsn = {second[1]!r}").status == "ok"
    reply = k.run("%pg connect two $two_dsn")
    assert reply.status == "ok" and "two: connected to" in reply.stdout, reply.text


def test_ctrl_c_in_a_named_cell_cancels_on_its_server(dsn: str, second: tuple[str, str]) -> None:
    with Kernel() as k:
        _connect_two(k, second)
        assert k.run("%pg use default").status == "ok"
        pid = _scalar(k.run("%pg @two --scalar SELECT pg_backend_pid()"))
        msg = k.send("%%pg @two\nSELECT pg_sleep(30)")
        assert _wait(dsn, pid, "active") == "active"
        started = time.monotonic()
        k.interrupt()
        reply = k.collect(msg, timeout=20)
        assert time.monotonic() - started < 5
        assert reply.error is not None and reply.error["traceback"] == ["query cancelled"]
        assert _backend(dsn, pid) == "idle"
        assert _scalar(k.run("%pg @two --scalar SELECT pg_backend_pid()")) == pid


def test_shutdown_closes_every_connections_backends(dsn: str, second: tuple[str, str]) -> None:
    with Kernel() as k:
        _connect_two(k, second)
        pids = [
            _scalar(k.run("%pg --scalar SELECT pg_backend_pid()")),
            _scalar(k.run("%pg @default --scalar SELECT pg_backend_pid()")),
            _scalar(
                k.run(
                    "import pgmagic\nawait pgmagic.fetchval('SELECT pg_backend_pid()', conn='two')"
                )
            ),
        ]
        assert k.run("%pg BEGIN").status == "ok"  # two's session, in a transaction
        assert all(_backend(dsn, pid) is not None for pid in pids)
    for pid in pids:
        assert _wait(dsn, pid, None) is None
