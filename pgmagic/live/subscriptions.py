"""The Python side of notifications: ``async for`` over channels, and the log as a DataFrame."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import pandas as pd

from pgmagic.errors import ConnectError, OptionError
from pgmagic.live.listener import Listener, listener_for
from pgmagic.live.log import Gap, Item, check_channels
from pgmagic.runtime.connections import default_runtime
from pgmagic.runtime.loop import Runtime


class _Queue:
    """A subscriber that hands items to an async iterator on another loop."""

    def __init__(
        self, channels: frozenset[str], loop: asyncio.AbstractEventLoop, maxlen: int
    ) -> None:
        self._channels = channels
        self._loop = loop
        self._maxlen = maxlen
        self._lock = threading.Lock()
        self._items: collections.deque[Item] = collections.deque()
        # What fell out of the buffer since the consumer last looked: how
        # many, the first and the last.
        self._dropped = 0
        self._dropped_span: tuple[Item, Item] | None = None
        self._ended = False
        self._waiting = False
        self._ready = asyncio.Event()

    @property
    def channels(self) -> frozenset[str]:
        return self._channels

    def push(self, item: Item) -> None:
        with self._lock:
            if len(self._items) >= self._maxlen:
                oldest = self._items.popleft()
                first = self._dropped_span[0] if self._dropped_span else oldest
                self._dropped_span = (first, oldest)
                self._dropped += 1
            self._items.append(item)
            self._signal()

    def end(self) -> None:
        with self._lock:
            self._ended = True
            self._signal()

    def _signal(self) -> None:
        # Only a waiting consumer needs a cross-thread wake-up: at thousands
        # of notifications a second, one per batch is plenty.
        if self._waiting:
            self._waiting = False
            with contextlib.suppress(RuntimeError):  # the consumer's loop is gone
                self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self) -> Item | None:
        while True:
            with self._lock:
                if self._dropped_span is not None:
                    (first, last), count = self._dropped_span, self._dropped
                    self._dropped_span, self._dropped = None, 0
                    return Gap(
                        last.seq,
                        time.time(),
                        first.time,
                        last.time,
                        f"{count} items dropped: this consumer fell behind (buffer={self._maxlen})",
                    )
                if self._items:
                    return self._items.popleft()
                if self._ended:
                    return None
                self._ready.clear()
                self._waiting = True
            await self._ready.wait()


def _runtime() -> Runtime:
    runtime = default_runtime()
    assert runtime is not None
    return runtime


def _unsubscribe(runtime: Runtime, listener: Listener, queue: _Queue) -> None:
    # Also runs from a finalizer, on whatever thread collects the iterator.
    with contextlib.suppress(ConnectError, RuntimeError):
        runtime.submit(listener.unsubscribe(queue))


class Notifications:
    """Notifications on some channels as they arrive; see :func:`notifications`.

    Parameters
    ----------
    channels : sequence of str
    buffer : int
    """

    def __init__(self, channels: Sequence[str], buffer: int) -> None:
        self.channels = frozenset(check_channels(channels))
        if not self.channels:
            raise OptionError("name at least one channel")
        if buffer < 1:
            raise OptionError(f"buffer must be at least 1, got {buffer}")
        self._buffer = buffer
        self._queue: _Queue | None = None
        self._release: weakref.finalize[..., Any] | None = None

    async def _start(self) -> _Queue:
        if self._queue is None:
            runtime = _runtime()
            listener = listener_for(runtime)
            queue = _Queue(self.channels, asyncio.get_running_loop(), self._buffer)
            await asyncio.wrap_future(runtime.submit(listener.subscribe(queue)))
            self._queue = queue
            # An iterator left by ``break`` is never closed: unsubscribe when
            # it is collected.
            self._release = weakref.finalize(self, _unsubscribe, runtime, listener, queue)
        return self._queue

    async def __aenter__(self) -> Notifications:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Notifications:
        return self

    async def __anext__(self) -> Item:
        item = await (await self._start()).get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop receiving (UNLISTEN channels nobody else needs)."""
        detached = self._release.detach() if self._release is not None else None
        if detached is not None:
            _, _, (runtime, listener, queue), _ = detached
            with contextlib.suppress(ConnectError):
                await asyncio.wrap_future(runtime.submit(listener.unsubscribe(queue)))


def notifications(*channels: str, buffer: int = 10_000) -> Notifications:
    """Notifications on channels as they arrive, for ``async for`` (and ``async with``).

    Runs on pgmagic's runtime, so notifications keep arriving while other
    cells run.  The LISTEN starts with the first ``await``: enter ``async
    with`` to be sure it is active before you send.  Iteration ends when the
    listener closes (``%pg disconnect``, unloading pgmagic).  Besides
    :class:`Notification` items it yields a :class:`Gap` (``item.kind ==
    "gap"``) whenever notifications may have been missed: after a reconnect,
    or when the consumer fell more than ``buffer`` items behind.
    Interrupting an ``await`` in a notebook lands only when the next item
    arrives (ipykernel #881).

    Parameters
    ----------
    *channels : str
        Channel names, exactly as sent (case-sensitive).
    buffer : int
        Items held for a slow consumer before the oldest are dropped.

    Returns
    -------
    Notifications
        An async iterator and async context manager.

    Raises
    ------
    OptionError
        No channel, a bad channel name, or a buffer under 1.

    Examples
    --------
    >>> async for n in pgmagic.notifications("orders"):  # doctest: +SKIP
    ...     print(n.channel, n.payload)
    >>> async with pgmagic.notifications("orders") as orders:  # doctest: +SKIP
    ...     await pgmagic.execute("INSERT INTO orders DEFAULT VALUES")
    ...     first = await anext(orders)
    """
    return Notifications(channels, buffer)


def notification_log() -> pd.DataFrame:
    """Everything the kernel received (up to ``PgMagics.notify_history``) as a DataFrame.

    Returns
    -------
    pandas.DataFrame
        Columns ``seq``, ``time`` (tz-aware UTC), ``kind`` (``"notification"``
        or ``"gap"``), ``channel``, ``pid``, ``payload``; a gap row carries
        its message in ``payload`` and no channel or pid.
        ``frame.attrs["dropped"]`` counts the items the bounded history dropped.

    Examples
    --------
    >>> pgmagic.notification_log().tail()  # doctest: +SKIP
    """
    return listener_for(_runtime()).log.to_frame()
