"""Notebook-side helpers for the UI tests (``%run sender.py`` in the test notebook).

Notifications come from PostgreSQL connections of their own, on threads, so
they also arrive while a cell is busy; ``kill_listener`` breaks pgmagic's
listener connection the way a server restart would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time

import asyncpg

from pgmagic.live.listener import ListenerState, listener_for
from pgmagic.runtime import embedded
from pgmagic.runtime.connections import default_runtime

DSN = os.environ.get("PGMAGIC_DSN") or embedded.start().dsn


def _in_thread(coro_factory, delay=0.0, wait=False):
    # A cell runs inside the kernel's event loop, so asyncio.run needs a thread.
    def run():
        time.sleep(delay)
        asyncio.run(coro_factory())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if wait:
        thread.join()


async def _execute(sql, *args):
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


def notify_later(channel, payload, delay=0.0):
    """NOTIFY ``channel`` from another connection after ``delay`` seconds."""
    _in_thread(lambda: _execute("SELECT pg_notify($1, $2)", channel, payload), delay)


def kill_listener(timeout=5.0):
    """Terminate the listener's backend and wait until pgmagic has reconnected (a gap)."""
    listener = listener_for(default_runtime())
    pid = listener.backend_pid
    _in_thread(lambda: _execute("SELECT pg_terminate_backend($1)", pid), wait=True)
    deadline = time.monotonic() + timeout
    while listener.backend_pid in (None, pid) or listener.state is not ListenerState.LISTENING:
        if time.monotonic() > deadline:
            raise TimeoutError("pgmagic did not reconnect")
        time.sleep(0.02)


class Ticker:
    """One notification every ``interval`` seconds, alternating channels, until stop()."""

    def __init__(self, channels=("orders", "jobs"), interval=0.4):
        self._stop = threading.Event()
        self._channels = channels
        self._interval = interval
        _in_thread(self._run)

    async def _run(self):
        conn = await asyncpg.connect(DSN)
        try:
            for n in itertools.count(1):
                payload = (
                    json.dumps({"id": n, "status": "shipped", "items": [n, n + 1]})
                    if n % 3
                    else f"plain text payload #{n}"
                )
                channel = self._channels[n % len(self._channels)]
                await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
                if await asyncio.to_thread(self._stop.wait, self._interval):
                    return
        finally:
            await conn.close()

    def stop(self):
        self._stop.set()
