"""Background jobs: a query or an export that runs on the pool while the kernel goes on.

A :class:`Job` runs its work in a thread of its own, which waits on the
runtime as a magic's thread would; :meth:`Job.cancel` interrupts that wait
the way Ctrl-C interrupts a cell, so the statement is cancelled on the
server.  Ctrl-C in the kernel's thread never reaches a job (signals go to
the main thread only), and closing the runtime (kernel shutdown, ``%pg
close``) cancels its running jobs and waits for them to wind down.

Jobs are numbered per kernel process, in the order they start; the front
end names them (``-o big``) and shows them (:mod:`pgmagic.frontend.jobs`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
import threading
import time
import weakref
from collections.abc import Callable, Generator
from typing import Any

import pandas as pd

from pgmagic.errors import OptionError, QueryCancelled
from pgmagic.results.progress import Progress
from pgmagic.runtime.loop import Runtime
from pgmagic.runtime.waiting import Worker, in_background

__all__ = ["Job", "JobState", "find", "frame", "listed"]

_logger = logging.getLogger(__name__)

#: Seconds between live updates of a running job's handle.
UPDATE_EVERY = 0.5
# How long closing a runtime waits for its cancelled jobs to wind down.
_CLOSE_GRACE = 10.0


class JobState(enum.Enum):
    """Where a job stands."""

    #: Started, waiting for a pool connection.
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        """Whether the job has finished, one way or another."""
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


#: What a job runs: given a callable to report its progress with, it returns the result.
Work = Callable[[Callable[[Progress], None]], Any]


class Job:
    """One background query or export.

    Parameters
    ----------
    runtime : Runtime
        The connection it runs on (its pool).
    name : str
        What the handle, the notification and :func:`find` call it.
    sql : str
        The statement(s), as the user wrote them.
    work : callable
        Runs in the job's thread; see :data:`Work`.
    on_change : callable, optional
        Called with the job about every :data:`UPDATE_EVERY` seconds while
        it runs and once when it ends (from the job's thread).
    describe : callable, optional
        A one-line account of the result for :meth:`summary` (rows, a file).
    count : callable, optional
        The rows of the result, for :attr:`rows` once the job is done.

    Attributes
    ----------
    number : int
        Unique in the kernel process.
    started_at, ended_at : float or None
        Epoch seconds.
    """

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        sql: str,
        work: Work,
        *,
        on_change: Callable[[Job], None] | None = None,
        describe: Callable[[Any], str] | None = None,
        count: Callable[[Any], int] | None = None,
    ) -> None:
        self.number = _next_number()
        self.name = name
        self.sql = sql
        self.connection = runtime.connection_name()
        self.runtime = runtime
        self.progress = Progress()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._work = work
        self._on_change = on_change
        self._describe = describe
        self._count = count
        self._future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._worker = Worker()
        self._cancel_asked = False
        self._last_update = 0.0
        self._thread = threading.Thread(
            target=self._main, name=f"pgmagic job {self.number}", daemon=True
        )

    def start(self) -> Job:
        """Start the work in the job's thread.

        Returns
        -------
        Job
            Itself.
        """
        self.started_at = time.time()
        _register(self)
        self._thread.start()
        return self

    @property
    def state(self) -> JobState:
        """Queued, running, done, failed or cancelled."""
        if self._future.done():
            error = self._future.exception()
            if error is None:
                return JobState.DONE
            return JobState.CANCELLED if isinstance(error, QueryCancelled) else JobState.FAILED
        if self.started_at is None or self.progress.pid is None:
            return JobState.QUEUED
        return JobState.RUNNING

    @property
    def rows(self) -> int:
        """Rows received (or written) so far; once done, the result's."""
        if self._count is not None and self.state is JobState.DONE:
            return self._count(self._future.result())
        return self.progress.snapshot()[0]

    @property
    def pid(self) -> int | None:
        """The server process running it, once it has a connection."""
        return self.progress.pid

    @property
    def elapsed(self) -> float:
        """Seconds since it started (until it ended)."""
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.time()) - self.started_at

    @property
    def error(self) -> BaseException | None:
        """Why it failed or was cancelled (None while it runs, or when it succeeded)."""
        if not self._future.done():
            return None
        return self._future.exception()

    def error_lines(self) -> list[str]:
        """Why it failed, as a cell shows it (psql's rendering for server errors).

        Returns
        -------
        list of str
            Empty unless the job failed.
        """
        error = self.error
        if error is None or isinstance(error, QueryCancelled):
            return []
        rendered = getattr(error, "_render_traceback_", None)
        if rendered is not None:
            return list(rendered())
        return [f"{type(error).__name__}: {error}"]

    def done(self) -> bool:
        """Whether the job has ended."""
        return self._future.done()

    def cancel(self) -> bool:
        """Cancel the job on the server; do not wait.

        Returns
        -------
        bool
            False when it had already ended.
        """
        if self._future.done():
            return False
        self._cancel_asked = True
        self._worker.cancel_soon()
        return True

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the result (a DataFrame, an export's summary, ...).

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait; None waits until the job ends.

        Returns
        -------
        object

        Raises
        ------
        QueryCancelled
            The job was cancelled.
        TimeoutError
            Still running after ``timeout`` seconds.
        PgMagicError
            The job failed; the message is psql's.
        """
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"{self.name} is still {self.state.value}") from None

    def __await__(self) -> Generator[Any, None, Any]:
        """``await job`` gives the result without blocking the kernel's loop."""
        return asyncio.wrap_future(self._future).__await__()

    def summary(self) -> str:
        """One line: how it ended (or how far it is), for handles and notifications.

        Returns
        -------
        str
        """
        state = self.state
        took = _seconds(self.elapsed)
        if state is JobState.DONE:
            described = self._describe(self._future.result()) if self._describe else "done"
            return f"{self.name}: {described} in {took}"
        if state is JobState.FAILED:
            first = (self.error_lines() or [""])[0]
            return f"{self.name} failed after {took}: {first}"
        if state is JobState.CANCELLED:
            return f"{self.name} cancelled after {took}"
        rows = self.rows
        if state is JobState.QUEUED:
            return f"{self.name}: waiting for a connection ({took})"
        return f"{self.name}: running, {rows:,} row{'' if rows == 1 else 's'} so far ({took})"

    def __repr__(self) -> str:
        return f"<pgmagic.Job {self.number} {self.name!r} {self.state.value} on {self.connection}>"

    def _main(self) -> None:
        with in_background():
            try:
                value = self._worker.call(self._work, self._tick)
            except (QueryCancelled, KeyboardInterrupt):
                self._end(error=QueryCancelled(f"{self.name} cancelled"))
            except BaseException as error:  # the job's failure is its result, shown by its handle
                self._end(error=error)
            else:
                if self._cancel_asked:
                    # The interrupt came after the work's last wait: the result
                    # stands, as a cell's does when Ctrl-C comes too late.
                    self._cancel_asked = False
                self._end(value=value)

    def _end(self, *, value: Any = None, error: BaseException | None = None) -> None:
        self.ended_at = time.time()
        if error is None:
            self._future.set_result(value)
        else:
            self._future.set_exception(error)
        self._changed()

    def _tick(self, progress: Progress) -> None:
        self.progress = progress
        now = time.monotonic()
        if now - self._last_update >= UPDATE_EVERY:
            self._last_update = now
            self._changed()

    def _changed(self) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(self)
        except Exception:
            # The front end is gone or its display broke: the job goes on.
            _logger.exception("pgmagic: could not show %s", self.name)


def _seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


_lock = threading.Lock()
_numbers = 0
_jobs: list[Job] = []
# Per runtime: whether its closer (cancel the running jobs) is registered.
_closing: weakref.WeakSet[Runtime] = weakref.WeakSet()


def _next_number() -> int:
    global _numbers
    with _lock:
        _numbers += 1
        return _numbers


def _register(job: Job) -> None:
    with _lock:
        _jobs.append(job)
        if job.runtime not in _closing:
            _closing.add(job.runtime)
            runtime = job.runtime
            runtime.add_closer(lambda: _cancel_jobs_of(runtime))


async def _cancel_jobs_of(runtime: Runtime) -> None:
    """Cancel a closing runtime's jobs on the server and let them wind down."""
    with _lock:
        _closing.discard(runtime)
        running = [j for j in _jobs if j.runtime is runtime and not j.done()]
    for job in running:
        job.cancel()
    deadline = time.monotonic() + _CLOSE_GRACE
    # The jobs' threads cancel through this loop: sleep, never block it.
    while any(not j.done() for j in running) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def listed() -> list[Job]:
    """Every job of this kernel, oldest first.

    Returns
    -------
    list of Job
    """
    with _lock:
        return list(_jobs)


def find(ref: int | str) -> Job:
    """A job by its number or name (the newest of that name).

    Parameters
    ----------
    ref : int or str
        ``3``, ``"3"`` or ``"big"``.

    Returns
    -------
    Job

    Raises
    ------
    OptionError
        No such job.
    """
    jobs = listed()
    if isinstance(ref, str) and ref.isdigit():
        ref = int(ref)
    found = [j for j in jobs if (j.number == ref if isinstance(ref, int) else j.name == ref)]
    if not found:
        known = ", ".join(f"{j.number} ({j.name})" for j in jobs[-5:]) or "none yet"
        raise OptionError(f"no background job {ref!r}; jobs: {known}")
    return found[-1]


def frame() -> pd.DataFrame:
    """Every background job of the kernel, one row each (``pgmagic.jobs()``, ``%pg jobs``).

    Returns
    -------
    pandas.DataFrame
        Columns: job, name, state, connection, rows, seconds, pid, started, sql.
    """
    rows = [
        {
            "job": j.number,
            "name": j.name,
            "state": j.state.value,
            "connection": j.connection,
            "rows": j.rows,
            "seconds": round(j.elapsed, 3),
            "pid": j.pid,
            "started": pd.Timestamp(j.started_at or time.time(), unit="s", tz="UTC"),
            "sql": j.sql.strip(),
        }
        for j in listed()
    ]
    columns = ["job", "name", "state", "connection", "rows", "seconds", "pid", "started", "sql"]
    table = pd.DataFrame(rows, columns=columns)
    return table.astype({"job": "Int64", "rows": "Int64", "pid": "Int64", "seconds": "float64"})
