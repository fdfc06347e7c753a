"""A pytest plugin for the child runs: leave out the tests known to fail on that server.

Loaded with ``-p tests.servers.expected``; reads a JSON object ``{test id: reason}``
from ``PGMAGIC_TEST_EXPECTED_FAILURES``.  An id matches a test exactly, or all
its parametrizations when given without brackets.  An id that matches nothing
is an error, so the list cannot silently outlive a renamed test.

With ``PGMAGIC_TEST_RUN_EXPECTED=1`` they run instead, marked as expected
failures: the XPASS lines name the entries a fix has made obsolete (some of
them wait for a notification until the per-test timeout, so this is slow).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

ENV = "PGMAGIC_TEST_EXPECTED_FAILURES"
RUN_ENV = "PGMAGIC_TEST_RUN_EXPECTED"


def _matches(nodeid: str, wanted: str) -> bool:
    return nodeid == wanted or nodeid.startswith(f"{wanted}[")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    expected: dict[str, str] = json.loads(os.environ.get(ENV) or "{}")
    if not expected:
        return
    reasons = {
        item.nodeid: reason
        for item in items
        for wanted, reason in expected.items()
        if _matches(item.nodeid, wanted)
    }
    stale = sorted(w for w in expected if not any(_matches(i.nodeid, w) for i in items))
    if stale:
        raise pytest.UsageError(f"{ENV} names tests that do not exist: {stale}")
    left_out = [item for item in items if item.nodeid in reasons]
    if os.environ.get(RUN_ENV):
        for item in left_out:
            item.add_marker(pytest.mark.xfail(reason=reasons[item.nodeid], strict=False))
    elif left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item.nodeid not in reasons]
