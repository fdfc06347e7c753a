"""Waiting on the loop thread from the kernel's thread: Ctrl-C cancels on the server.

The kernel delivers ``KeyboardInterrupt`` to the main thread, which is blocked
in :meth:`Running.wait`; asyncio would not cancel the task by itself, so the
wait cancels it explicitly and waits, bounded, until the server has
acknowledged the cancel.  Then the cell shows one line, ``query cancelled``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pgmagic.errors import QueryCancelled
from pgmagic.runtime.messages import Message

if TYPE_CHECKING:
    from pgmagic.runtime.loop import Runtime

T = TypeVar("T")

# How long a cancelled operation may take to wind down (the server acknowledges
# the cancel request, the connection becomes idle) before the cell gives up waiting.
_CANCEL_GRACE = 10.0
_POLL = 0.05


class Running(Generic[T]):
    """A coroutine running on the runtime loop, as seen from the thread that waits.

    Parameters
    ----------
    runtime : Runtime
    coro : coroutine
    """

    def __init__(self, runtime: Runtime, coro: Coroutine[Any, Any, T]) -> None:
        self._runtime = runtime
        self.result: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._task: asyncio.Task[T] | None = None
        runtime.loop.call_soon_threadsafe(self._start, coro)

    def _start(self, coro: Coroutine[Any, Any, T]) -> None:
        self._task = self._runtime.loop.create_task(coro)
        self._task.add_done_callback(lambda t: _transfer(t, self.result))

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def done(self) -> bool:
        """Whether the coroutine has finished."""
        return self.result.done()

    def cancel(self) -> None:
        """Cancel the coroutine and wait (bounded) until it has wound down."""
        self._runtime.loop.call_soon_threadsafe(self._cancel)
        # A second Ctrl-C stops waiting for the wind-down.
        with contextlib.suppress(KeyboardInterrupt):
            concurrent.futures.wait([self.result], timeout=_CANCEL_GRACE)

    def wait(
        self,
        on_message: Callable[[Message], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> T:
        """Wait for the result; Ctrl-C cancels the coroutine (on the server too).

        Parameters
        ----------
        on_message : callable, optional
            Receives queued messages while waiting and at the end.
        on_tick : callable, optional
            Called about every 50 ms while waiting.

        Returns
        -------
        The coroutine's result.

        Raises
        ------
        QueryCancelled
            The user interrupted.
        """
        try:
            # Poll with wait(), not result(timeout): a TimeoutError the coroutine
            # raises (a statement timeout) must not read as "still running".
            if on_message is None:
                on_message = self._runtime.printer
            while not concurrent.futures.wait([self.result], timeout=_POLL).done:
                self._runtime.drain(on_message)
                if on_tick is not None:
                    on_tick()
            return self.result.result()
        except KeyboardInterrupt:
            self.cancel()
            raise QueryCancelled() from None
        finally:
            self._runtime.drain(on_message)


def _transfer(task: asyncio.Task[T], result: concurrent.futures.Future[T]) -> None:
    if result.done():
        return
    if task.cancelled():
        # cancel() alone does not wake concurrent.futures.wait(); this does.
        result.cancel()
        result.set_running_or_notify_cancel()
    elif (error := task.exception()) is not None:
        result.set_exception(error)
    else:
        result.set_result(task.result())
