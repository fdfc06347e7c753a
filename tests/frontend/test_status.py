"""%pg status is what a user runs when things are broken: it reports, it does not fail."""

from __future__ import annotations

import os
import socket
from typing import Any

from tests.runtime.test_session import terminate_session
from tests.shell import run


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_status_with_the_server_unreachable_reports_what_it_knows(ip: Any, capsys: Any) -> None:
    saved = os.environ.get("PGMAGIC_DSN")
    port = _closed_port()
    os.environ["PGMAGIC_DSN"] = f"postgresql://someone:hunter2@127.0.0.1:{port}/app"
    try:
        run(ip, "%pg disconnect")
        capsys.readouterr()
        run(ip, "%pg status  # the server is down")
        out = capsys.readouterr().out
    finally:
        if saved is None:
            os.environ.pop("PGMAGIC_DSN", None)
        else:
            os.environ["PGMAGIC_DSN"] = saved
        run(ip, "%pg disconnect")
    lines = dict(line.split(None, 1) for line in out.strip().splitlines())
    assert f"127.0.0.1:{port}/app" in lines["target"] and "hunter2" not in out
    assert lines["server"].startswith("unreachable: cannot connect")
    assert lines["pool"] == "not started" and lines["listener"] == "not listening"
    assert run(ip, "%pg --scalar SELECT 1") == 1


def test_status_after_a_lost_transaction_says_so(ip: Any, capsys: Any, sql: Any) -> None:
    run(ip, "%%pg\nBEGIN;\nSELECT 1")
    terminate_session(ip, sql)
    capsys.readouterr()
    run(ip, "%pg status")
    assert "lost with the old connection, nothing of it committed" in capsys.readouterr().out
