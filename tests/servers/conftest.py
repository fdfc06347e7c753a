"""The child runs' timings, shown at the end of the session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

_LINES = pytest.StashKey[list[str]]()


@pytest.fixture
def report_line(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report_line(text)`` adds a line to the "other servers" section of the summary."""
    return request.config.stash.setdefault(_LINES, []).append


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_LINES, [])
    if lines:
        terminalreporter.section("other servers")
        for line in lines:
            terminalreporter.write_line(line)
