"""Counting rows and bytes as they arrive, for whoever shows progress."""

from __future__ import annotations

import threading
import time


class Progress:
    """Rows and bytes so far, shared between the loop thread and the waiting thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows = 0
        self.bytes = 0
        self.started = time.perf_counter()
        #: The server process doing the work, once a connection is taken
        #: (a background job's handle shows it).
        self.pid: int | None = None

    def add(self, rows: int, size: int) -> None:
        """Count rows and bytes written (any thread)."""
        with self._lock:
            self.rows += rows
            self.bytes += size

    def reset(self) -> None:
        """Count from zero again (work that starts over)."""
        with self._lock:
            self.rows = 0
            self.bytes = 0

    def snapshot(self) -> tuple[int, int, float]:
        """(rows, bytes, seconds since start)."""
        with self._lock:
            return self.rows, self.bytes, time.perf_counter() - self.started
