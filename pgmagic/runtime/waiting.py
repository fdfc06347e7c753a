"""Waiting on the loop thread from the kernel's thread: Ctrl-C cancels on the server.

The kernel delivers ``KeyboardInterrupt`` to the main thread, which is blocked
in :meth:`Running.wait`; asyncio would not cancel the task by itself, so the
wait cancels it explicitly and waits, bounded, until the server has
acknowledged the cancel.  Then the cell shows one line, ``query cancelled``.

The Python API awaits from another event loop instead (:func:`awaited`).
There no ``KeyboardInterrupt`` arrives while the kernel's loop sleeps:
ipykernel only cancels an awaiting cell once what it awaits has finished
(ipykernel issue 881), so a ``pg_sleep(30)`` ran its 30 s.  While an API
call is in flight on the main thread, a SIGINT handler of ours cancels it
on the server at once, then hands the signal to the handler it replaced.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import functools
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
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

    def cancel_soon(self) -> None:
        """Ask the loop to cancel the coroutine; do not wait (any thread, signal handlers)."""
        self._runtime.loop.call_soon_threadsafe(self._cancel)

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
                self._drain(on_message)
                if on_tick is not None:
                    on_tick()
            return self.result.result()
        except KeyboardInterrupt:
            self.cancel()
            raise QueryCancelled() from None
        finally:
            self._drain(on_message)

    def _drain(self, on_message: Callable[[Message], None] | None) -> None:
        # The runtime's messages are the kernel thread's cell's; a background
        # job waiting in its own thread must neither take nor print them.
        if not getattr(_background, "on", False):
            self._runtime.drain(on_message)


_background = threading.local()


@contextlib.contextmanager
def in_background() -> Iterator[None]:
    """Waits in this thread leave the runtime's messages to the kernel's thread.

    For background jobs (:mod:`pgmagic.live.jobs`): their thread waits on the
    runtime while cells run and print in the kernel's thread.

    Yields
    ------
    None
    """
    _background.on = True
    try:
        yield
    finally:
        _background.on = False


async def awaited(runtime: Runtime, coro: Coroutine[Any, Any, T]) -> T:
    """Await a coroutine of the runtime loop from another event loop (the Python API).

    Ctrl-C (SIGINT on the main thread) cancels it on the server at once; so
    does cancelling the awaiting task.

    Parameters
    ----------
    runtime : Runtime
    coro : coroutine

    Returns
    -------
    The coroutine's result.

    Raises
    ------
    QueryCancelled
        The user interrupted; the operation was cancelled on the server.
    """
    running = runtime.start(coro)
    with _interrupts.watching(running):
        try:
            return await asyncio.wrap_future(running.result)
        except asyncio.CancelledError:
            if _interrupts.interrupted(running):
                raise QueryCancelled() from None
            # Cancelled from the awaiting side (a timeout, task.cancel()):
            # wrap_future cancels only the result, not the work behind it.
            running.cancel_soon()
            raise


async def in_worker(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking pgmagic work (an export, a load) in a worker thread and await it.

    Ctrl-C on the main thread raises ``KeyboardInterrupt`` in the worker, as
    it would in a magic's thread: the work cancels on the server and ends
    with its own ``QueryCancelled`` line.

    Parameters
    ----------
    func : callable
    *args, **kwargs
        Passed to ``func``.

    Returns
    -------
    What ``func`` returns.
    """
    worker = Worker()
    done = asyncio.get_running_loop().run_in_executor(
        None, functools.partial(worker.call, func, *args, **kwargs)
    )
    with _interrupts.watching(worker):
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # Cancelled from the awaiting side (a timeout; asyncio.run's own
            # Ctrl-C handler): the thread would go on alone.  Stop it, let it
            # wind down, and after Ctrl-C end with its own line.
            worker.cancel_soon()
            try:
                await asyncio.wait_for(asyncio.shield(done), _CANCEL_GRACE)
            except QueryCancelled as stopped:
                if _interrupts.interrupted(worker):
                    raise stopped from None
            except BaseException:
                pass  # whatever the thread ended with, the cancellation is what counts
            raise


class Worker:
    """One blocking call in a worker thread, interruptible like a magic's.

    :meth:`cancel_soon` raises ``KeyboardInterrupt`` in the thread while it
    runs :meth:`call`: a wait on the runtime there cancels on the server,
    as Ctrl-C does in the kernel's thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: int | None = None

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)`` in this thread, interruptible by :meth:`cancel_soon`.

        Parameters
        ----------
        func : callable
        *args, **kwargs
            Passed to ``func``.

        Returns
        -------
        What ``func`` returns.
        """
        with self._lock:
            self._thread = threading.get_ident()
        try:
            return func(*args, **kwargs)
        finally:
            # After this, no interrupt may land in the executor's own loop.
            with self._lock:
                self._thread = None

    def cancel_soon(self) -> None:
        """Interrupt the call if it is still running (any thread)."""
        with self._lock:
            if self._thread is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread), ctypes.py_object(KeyboardInterrupt)
                )


class _Interrupts:
    """The SIGINT handler installed while API calls are in flight on the main thread."""

    def __init__(self) -> None:
        self._running: set[Running[Any] | Worker] = set()
        self._interrupted: set[Running[Any] | Worker] = set()
        self._previous: Any = None

    @contextlib.contextmanager
    def watching(self, running: Running[Any] | Worker) -> Any:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only
            return
        if not self._running:
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        self._running.add(running)
        try:
            yield
        finally:
            self._running.discard(running)
            self._interrupted.discard(running)
            # Restore only our own handler: ipykernel puts its saved one back
            # when a cell ends, and a task outliving its cell must not undo that.
            if not self._running and signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, self._previous)

    def interrupted(self, running: Running[Any] | Worker) -> bool:
        return running in self._interrupted

    def _on_sigint(self, signum: int, frame: Any) -> None:
        for running in self._running:
            self._interrupted.add(running)
            running.cancel_soon()
        previous = self._previous
        # The default handler would raise KeyboardInterrupt out of the event
        # loop; the cancelled await raises QueryCancelled in its place.
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)


_interrupts = _Interrupts()


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
