"""Re-running a query when a channel is notified (``--refresh-on``) or on a timer (``--watch``).

A :class:`Refresh` runs its statements on a pool connection, never on the
``%%pg`` session: refreshes fire while the user's cells run, and the session
is theirs (an open transaction, a long query).  The price: a refresh does not
see the session's temporary tables or ``SET`` values, so a query naming a
temporary table fails, with a hint saying why.

Triggers are debounced (a burst of notifications causes one run) and at most
one run is in flight: a trigger during a run causes exactly one more run after
it.  Each run goes to ``show(run, first, stopped_at)``; the front renders it
and displays or updates the output in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import pandas as pd

from pgmagic import errors
from pgmagic.errors import ConnectError, OptionError, blame
from pgmagic.live.listener import listener_for
from pgmagic.live.log import Gap, Item, check_channels
from pgmagic.results.cell import Mode, bind_cell, value_of
from pgmagic.results.statement import Fetch, StatementResult, run_statement
from pgmagic.runtime.loop import Runtime
from pgmagic.runtime.messages import Message
from pgmagic.sql.params import BoundStatement

__all__ = ["Refresh", "Run", "Show", "start", "stop_all"]

_logger = logging.getLogger("pgmagic")

# show(run, first, stopped_at): display the first run, update the output with later ones.
Show = Callable[["Run", bool, float | None], None]

_DEBOUNCE = 0.1
_MIN_WATCH = 0.1
_POOL_HINT = (
    "HINT:  --refresh-on and --watch run the query on a pool connection, which does "
    "not see this session's temporary tables or SET values; use a regular table."
)
_QUERY_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    TimeoutError,
    OSError,
    ConnectError,
)


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of a refreshed query.

    Attributes
    ----------
    number : int
        1 for the first run.
    ran_at : float
        Epoch seconds when it started.
    reason : str
        What triggered it, e.g. ``NOTIFY orders`` or ``every 5 s``.
    elapsed : float
        Seconds it took.
    shown : StatementResult or None
        The last statement that returned rows.
    frame : pandas.DataFrame or None
    status : str
        The last command tag.
    error : list of str or None
        The psql-style rendering of the error, when it failed.
    """

    number: int
    ran_at: float
    reason: str
    elapsed: float
    shown: StatementResult | None = None
    frame: pd.DataFrame | None = None
    status: str = ""
    error: list[str] | None = None


def _hint(error: BaseException) -> str | None:
    return _POOL_HINT if isinstance(error, asyncpg.UndefinedTableError) else None


def _error_lines(error: BaseException, text: str) -> list[str]:
    shown = errors.lines(error, text)
    hint = _hint(error)
    return [*shown, hint] if hint else shown


class Refresh:
    """A query shown in one output, re-run on notifications and/or a timer.

    Parameters
    ----------
    runtime : Runtime
    statements : sequence of BoundStatement
        Bound once, when the cell ran.
    text : str
        The cell's SQL, for error carets.
    channels : sequence of str
        Re-run when any of them is notified.
    every : float or None
        Also re-run every this many seconds.
    show : callable
        ``show(run, first, stopped_at)``; called on the loop thread for updates.
    numeric_as_float : bool
    debounce : float
        Seconds a trigger waits for more before the run starts.
    """

    def __init__(
        self,
        runtime: Runtime,
        statements: Sequence[BoundStatement],
        text: str,
        *,
        channels: Sequence[str],
        every: float | None,
        show: Show,
        numeric_as_float: bool = False,
        debounce: float = _DEBOUNCE,
    ) -> None:
        self._runtime = runtime
        self._statements = list(statements)
        self._text = text
        self._channels = frozenset(channels)
        self._every = every
        self._show = show
        self._numeric_as_float = numeric_as_float
        self._debounce = debounce
        # Runs are recorded under the cell that started the refresh.
        self._recording = runtime.history.recording()
        self.key = (text, tuple(sorted(self._channels)), every)
        self._runs = 0
        self._last: Run | None = None
        self._armed = False
        self._stopped = False
        self._reason = ""
        self._pending = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._subscribed = False

    @property
    def channels(self) -> frozenset[str]:
        """Channels whose notifications trigger a run."""
        return self._channels

    def push(self, item: Item) -> None:
        """Trigger a run (loop thread).

        Parameters
        ----------
        item : Notification or Gap
        """
        if isinstance(item, Gap):
            # Notifications may have been missed: the data may have changed.
            self._trigger("reconnected")
        else:
            self._trigger(f"NOTIFY {item.channel}")

    def end(self) -> None:
        """The listener closed (disconnect, unload): stop refreshing."""
        self._subscribed = False
        self._stopping = asyncio.get_running_loop().create_task(self.stop())

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` ran."""
        return self._stopped

    async def begin(self) -> Run:
        """LISTEN, then run the query once; triggers wait until :meth:`arm`.

        Returns
        -------
        Run

        Raises
        ------
        asyncpg.PostgresError
            Decorated for display, with a hint for temporary tables.
        """
        if self._channels:
            await listener_for(self._runtime).subscribe(self)
            self._subscribed = True
        try:
            return await self._execute("first run")
        except _QUERY_ERRORS as error:
            await self.stop()
            raise errors.render(error, self._text, hint=_hint(error)) from None
        except BaseException:
            await self.stop()
            raise

    async def arm(self) -> None:
        """Let triggers start runs (the first result is on screen now)."""
        self._armed = True
        if self._every is not None:
            self._watch = asyncio.get_running_loop().create_task(self._tick(self._every))
        if self._pending:
            self._trigger(self._reason)

    async def _tick(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self._trigger(f"every {every:g} s")

    def _trigger(self, reason: str) -> None:
        if self._stopped:
            return
        self._reason = reason
        if not self._armed or self._task is not None:
            # Picked up by arm(), or when the run in flight ends.
            self._pending = True
        elif self._timer is None:
            self._pending = False
            self._timer = asyncio.get_running_loop().call_later(self._debounce, self._launch)

    def _launch(self) -> None:
        self._timer = None
        if not self._stopped:
            self._task = asyncio.get_running_loop().create_task(self._refresh(self._reason))

    async def _refresh(self, reason: str) -> None:
        try:
            try:
                run = await self._execute(reason)
            except _QUERY_ERRORS as error:
                run = Run(
                    self._runs, time.time(), reason, 0.0, error=_error_lines(error, self._text)
                )
            self._last = run
            self._display(run)
        finally:
            self._task = None
        if self._pending and not self._stopped:
            self._trigger(self._reason)

    def _display(self, run: Run, stopped_at: float | None = None) -> None:
        try:
            self._show(run, False, stopped_at)
        except Exception:
            # The frontend is gone or the display hook broke: keep refreshing.
            _logger.exception("pgmagic: could not update a refreshed output")

    async def _execute(self, reason: str) -> Run:
        self._runs += 1
        number, ran_at, started = self._runs, time.time(), time.perf_counter()
        pool = await self._runtime.pool()
        fetch = Fetch(timeout=self._runtime.settings.command_timeout, recording=self._recording)
        results: list[StatementResult] = []
        async with pool.acquire() as conn:
            await self._runtime.carry_time_zone(conn)
            for bound in self._statements:
                try:
                    results.append(await run_statement(conn, bound, fetch))
                except asyncpg.PostgresError as error:
                    blame(error, bound)
                    raise
        shown = next((r for r in reversed(results) if r.returns_rows), None)
        frame = value_of(shown, Mode.FRAME, numeric_as_float=self._numeric_as_float)
        return Run(
            number,
            ran_at,
            reason,
            time.perf_counter() - started,
            shown,
            frame,
            results[-1].status if results else "",
        )

    async def stop(self) -> None:
        """Stop refreshing; the output keeps the last result and says when it stopped."""
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        for task in (self._watch, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._subscribed:
            self._subscribed = False
            await listener_for(self._runtime).unsubscribe(self)
        if self._last is not None and self._armed:
            self._display(self._last, stopped_at=time.time())


# Per runtime; the runtime's closer removes the entry, which releases the
# refreshes (they hold the runtime, so a weak key alone would not).
_refreshes: weakref.WeakKeyDictionary[Runtime, list[Refresh]] = weakref.WeakKeyDictionary()


def _registered(runtime: Runtime) -> list[Refresh]:
    registered = _refreshes.get(runtime)
    if registered is None:
        registered = _refreshes[runtime] = []
        runtime.add_closer(lambda: _close(runtime))
    return registered


async def _close(runtime: Runtime) -> None:
    for refresh in _refreshes.pop(runtime, []):
        await refresh.stop()


def start(
    runtime: Runtime,
    sql: str,
    namespace: Mapping[str, Any],
    positional: Sequence[Any] = (),
    *,
    channels: Sequence[str],
    every: float | None,
    show: Show,
    numeric_as_float: bool = False,
    on_message: Callable[[Message], None] | None = None,
) -> Refresh:
    """Run a query now, show it, and re-run it on notifications or a timer.

    A refresh of the same SQL with the same triggers (a re-run cell) replaces
    the earlier one.  ``$name`` values are bound once, now.

    Parameters
    ----------
    runtime : Runtime
    sql : str
        The cell's SQL.
    namespace : mapping
        Where ``$name`` finds its values.
    positional : sequence
        Values for ``$1, $2, ...``.
    channels : sequence of str
        ``--refresh-on`` channels.
    every : float or None
        ``--watch`` seconds.
    show : callable
        ``show(run, first, stopped_at)``: display the first run, update with later ones.
    numeric_as_float : bool
    on_message : callable, optional
        Receives notes (the embedded server starting) during the first run.

    Returns
    -------
    Refresh

    Raises
    ------
    OptionError
        No trigger, a bad channel, or a period under 0.1 s.
    asyncpg.PostgresError
        The first run failed (nothing keeps running).

    Examples
    --------
    >>> start(runtime, "SELECT count(*) FROM orders", {}, channels=["orders"],
    ...       every=None, show=print)  # doctest: +SKIP
    """
    names = check_channels(channels)
    if not names and every is None:
        raise OptionError("name a channel (--refresh-on) or a period (--watch)")
    if every is not None and not every >= _MIN_WATCH:
        raise OptionError(f"--watch needs at least {_MIN_WATCH} seconds, got {every}")
    statements = bind_cell(sql, namespace, positional)
    if not statements:
        raise OptionError("no SQL to refresh")
    refresh = Refresh(
        runtime,
        statements,
        sql,
        channels=names,
        every=every,
        show=show,
        numeric_as_float=numeric_as_float,
    )
    registered = _registered(runtime)
    for earlier in [r for r in registered if r.key == refresh.key or r.stopped]:
        registered.remove(earlier)
        runtime.run(earlier.stop())
    first = runtime.run(refresh.begin(), on_message=on_message)
    show(first, True, None)
    runtime.run(refresh.arm())
    registered.append(refresh)
    return refresh


async def _stop_live(refreshes: list[Refresh]) -> int:
    live = [r for r in refreshes if not r.stopped]
    for refresh in live:
        await refresh.stop()
    return len(live)


def stop_all(runtime: Runtime) -> int:
    """Stop every refresh and watch of a runtime (``%pg stop``).

    Parameters
    ----------
    runtime : Runtime

    Returns
    -------
    int
        How many were running.
    """
    registered = _refreshes.get(runtime, [])
    stopped = runtime.run(_stop_live(registered))
    registered.clear()
    return stopped
