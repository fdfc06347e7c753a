"""A bound cell run on a pool connection, for a background job (``%%pg --bg``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg

from pgmagic.errors import DATABASE_ERRORS, blame, render
from pgmagic.results.cell import (
    CellOutcome,
    DtypeBackend,
    FrameKind,
    Mode,
    builds_arrow,
    value_of,
    where_it_stopped,
)
from pgmagic.results.progress import Progress
from pgmagic.results.statement import Fetch, StatementResult, run_statement
from pgmagic.runtime.history import Recording
from pgmagic.runtime.loop import Runtime
from pgmagic.sql.params import BoundStatement

__all__ = ["run_in_background"]


async def _run_on_pool(
    runtime: Runtime, statements: list[BoundStatement], fetch: Fetch, progress: Progress
) -> list[StatementResult]:
    results = []
    async with runtime.acquire(notices=False) as conn:
        progress.pid = conn.get_server_pid()
        # What the session set that the statements' meaning depends on.
        await runtime.carry_time_zone(conn)
        for name, value in await runtime.carried_settings():
            if name == "search_path":
                await conn.fetchval("SELECT set_config('search_path', $1, false)", value)
        for bound in statements:
            try:
                results.append(await run_statement(conn, bound, fetch, progress))
            except asyncpg.PostgresError as error:
                blame(error, bound)
                raise
    return results


def run_in_background(
    runtime: Runtime,
    text: str,
    statements: list[BoundStatement],
    *,
    numeric_as_float: bool = False,
    frame: FrameKind = FrameKind.PANDAS,
    dtype_backend: DtypeBackend = DtypeBackend.NUMPY_NULLABLE,
    on_progress: Callable[[Progress], None] | None = None,
    recording: Recording | None = None,
) -> CellOutcome:
    """Run a bound cell on a pool connection and wait (a background job's thread).

    The statements run one after another on one pool connection, outside
    the session: a temp table or a ``SET`` of the session is not there
    (``search_path`` and the time zone are carried over).

    Parameters
    ----------
    runtime : Runtime
    text : str
        The cell's SQL, for the error's rendering.
    statements : list of BoundStatement
        Bound beforehand, in the kernel's thread (:func:`bind_cell`).
    numeric_as_float : bool
    frame : FrameKind
    dtype_backend : DtypeBackend
    on_progress : callable, optional
        Called about every 50 ms with the :class:`Progress` (rows so far,
        the server process).
    recording : Recording, optional
        Where the history records the statements (taken in the kernel's
        thread, for the cell number).

    Returns
    -------
    CellOutcome
        Its value is the last query's rows (None without one).
    """
    started = time.perf_counter()
    progress = Progress()
    fetch = Fetch(
        timeout=runtime.settings.command_timeout,
        frame=runtime.settings.init is None,
        arrow=builds_arrow(frame, dtype_backend),
        numeric_as_float=numeric_as_float,
        recording=recording if recording is not None else runtime.history.recording(),
    )

    def tick() -> None:
        if on_progress is not None:
            on_progress(progress)

    tick()  # the caller sees the server's pid as soon as there is one, not a tick later
    try:
        results = runtime.run(_run_on_pool(runtime, statements, fetch, progress), on_tick=tick)
    except DATABASE_ERRORS as error:
        raise render(error, text, hint=where_it_stopped(error, statements)) from None
    shown = next((r for r in reversed(results) if r.returns_rows), None)
    value = value_of(
        shown,
        Mode.FRAME,
        numeric_as_float=numeric_as_float,
        frame=frame,
        dtype_backend=dtype_backend,
    )
    if value is not None and shown is not None:
        shown.records = []
    return CellOutcome(results, shown, value, time.perf_counter() - started)
