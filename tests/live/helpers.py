"""What the notification tests share: waiting for a condition, the listener, a NOTIFY from outside."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pgmagic.live import listener as listening
from pgmagic.live.listener import Listener
from pgmagic.runtime.connections import default_runtime
from tests.conftest import run_sql


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``predicate`` until it is true; its value, or an assertion error."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def listener() -> Listener:
    """The default runtime's listener."""
    runtime = default_runtime(create=False)
    assert runtime is not None
    return listening.listener_for(runtime)


def notify(dsn: str, channel: str, payload: str) -> None:
    """NOTIFY from a connection of its own, outside pgmagic."""
    run_sql(dsn, "SELECT pg_notify($1, $2)", channel, payload)
