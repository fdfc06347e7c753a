"""``%%pg --bg``: the cell returns at once; a live handle shows the job until it ends.

The handle is one display output, updated in place (``update_display_data``)
about twice a second while the job runs and once when it ends:
``text/plain`` and ``text/html`` for every front end, and
``application/vnd.pgmagic.job+json``, which the JupyterLab extension draws
with a Cancel button (sent over pgmagic's comm, so it works while another
cell runs).  When the job ends, every open panel comm hears of it and
JupyterLab shows a notification.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython import display as _display

from pgmagic.bulk import export
from pgmagic.bulk.export import ExportResult
from pgmagic.errors import DATABASE_ERRORS, OptionError
from pgmagic.frontend import feed, tables
from pgmagic.frontend.options import Options
from pgmagic.live import jobs
from pgmagic.live.jobs import Job
from pgmagic.results import arrow
from pgmagic.results.background import run_in_background
from pgmagic.results.cell import CellOutcome, FrameKind, bind_cell, bind_one
from pgmagic.results.progress import Progress
from pgmagic.runtime.loop import Runtime

if TYPE_CHECKING:
    from pgmagic.frontend.magics import PgMagics

__all__ = ["JOB_MIME", "bundle", "ended_message", "start"]

#: The handle's own output type, drawn by the JupyterLab extension.
JOB_MIME = "application/vnd.pgmagic.job+json"

new_display_handle: Callable[[], Any] = _display.DisplayHandle


def start(magics: PgMagics, opts: Options, sql: str, positional: tuple[Any, ...]) -> None:
    """Start ``sql`` as a background job and show its handle.

    Everything that can be checked before any I/O is checked here, in the
    cell: variables, options, the export's file.

    Parameters
    ----------
    magics : PgMagics
    opts : Options
        With ``background`` set (and maybe ``out``, ``to``, a frame kind).
    sql : str
    positional : tuple
        Values for ``$1, $2, ...``.
    """
    runtime = magics.runtime
    namespace = magics.namespace
    numeric_as_float = magics.numeric_as_float
    recording = runtime.history.recording()
    work: jobs.Work
    describe: Callable[[Any], str]
    count: Callable[[Any], int]
    if opts.to is not None:
        bound = bind_one(sql, namespace, positional)
        target, chosen = export.check_target(opts.to, opts.format)
        chunksize = opts.chunksize

        def work(tick: Callable[[Progress], None]) -> ExportResult:
            return export.export(
                runtime,
                bound,
                target,
                fmt=chosen,
                chunksize=chunksize,
                numeric_as_float=numeric_as_float,
                on_tick=tick,
            )

        def describe(result: ExportResult) -> str:
            rows = f"{result.rows:,} row{'' if result.rows == 1 else 's'}"
            return f"{rows} → {result.path} ({export.size_text(result.size)})"

        def count(result: ExportResult) -> int:
            return result.rows

    else:
        statements = bind_cell(sql, namespace, positional)
        if not statements:
            raise OptionError("nothing to run in the background")
        kind = magics.frame_for(opts.frame)
        backend = magics.backend_for(opts.dtype_backend, kind)
        if kind is FrameKind.POLARS:
            arrow.require_polars()
        out = opts.out

        def work(tick: Callable[[Progress], None]) -> Any:
            outcome = run_in_background(
                runtime,
                sql,
                statements,
                numeric_as_float=numeric_as_float,
                frame=kind,
                dtype_backend=backend,
                on_progress=tick,
                recording=recording,
            )
            _keep(outcome, magics.displaylimit)
            if out is not None:
                namespace[out] = outcome.value
            return outcome.value if outcome.shown is not None else outcome.results[-1].status

        def count(value: Any) -> int:
            return 0 if value is None or isinstance(value, str) else len(value)

        def describe(value: Any) -> str:
            if isinstance(value, str):
                return value  # the last statement's command tag: no query
            rows = count(value)
            return f"{rows:,} row{'' if rows == 1 else 's'}"

    # Connect here, not in the job: a wrong target fails this cell at once,
    # and the notes of a first connection show under it.
    runtime.run(runtime.pool())
    note = _note(runtime, sql)
    if note is not None:
        print(note)
    name = opts.out or (Path(opts.to).name if opts.to else None)
    handle = new_display_handle()

    # A terminal draws the handle once and cannot update it: it gets a line at the end.
    terminal = type(magics.shell).__name__ == "TerminalInteractiveShell"

    def show(job: Job) -> None:
        if terminal:
            if job.state.ended:
                print(f"\n[{job.state.value}] {job.summary()}", flush=True)
            return
        handle.update(bundle(job), raw=True)
        if job.state.ended:
            feed.broadcast(ended_message(job))

    # Made here, started once its handle is shown: an update must not come first.
    job = Job(runtime, name or "", sql, work, on_change=show, describe=describe, count=count)
    if not name:
        job.name = f"job {job.number}"
    handle.display(bundle(job), raw=True)
    job.start()


def _keep(outcome: CellOutcome, limit: int | None) -> None:
    """Draw the job's frame with pgmagic's footer, as a cell's would be."""
    value, shown = outcome.value, outcome.shown
    if value is None or shown is None:
        return
    types = tuple((c.name, c.type_name) for c in shown.columns or ())
    info = tables.ResultInfo(
        outcome.elapsed, limit, types, columns=tuple(shown.columns or ()), zone=shown.zone
    )
    tables.remember(value, info)


def _note(runtime: Runtime, sql: str) -> str | None:
    """One line when the cell leans on what only the session has."""
    session = runtime.session_if_open()
    if session is None:
        return None
    try:
        found = runtime.run(session.private_state())
    except DATABASE_ERRORS:
        return None
    if found is None:
        return None
    temps, settings, in_transaction = found
    used = [t for t in temps if re.search(rf"(?<![\w$]){re.escape(t)}(?![\w$])", sql, re.I)]
    lacks = []
    if used:
        lacks.append(f"temp table{'s' if len(used) > 1 else ''} {', '.join(used)}")
    if settings:
        lacks.append(f"SET {', '.join(settings)}")
    if in_transaction:
        lacks.append("the open transaction's uncommitted changes")
    if not lacks:
        return None
    return (
        "note: a background query runs on a pool connection, not the session: "
        f"it does not see the session's {'; '.join(lacks)}"
    )


def bundle(job: Job) -> dict[str, Any]:
    """The handle's mimebundle: the state as text, as HTML, and as data for JupyterLab.

    Parameters
    ----------
    job : Job

    Returns
    -------
    dict
    """
    state = job.state
    summary = job.summary()
    detail = "\n".join(job.error_lines())
    data = {
        "id": job.number,
        "name": job.name,
        "state": state.value,
        "connection": job.connection,
        "rows": job.rows,
        "elapsed": round(job.elapsed, 3),
        "started": job.started_at,
        "pid": job.pid,
        "summary": summary,
        "error": detail,
        "sql": job.sql,
    }
    facts = [f"job {job.number}", job.connection]
    if job.pid is not None and not state.ended:
        facts.append(f"pid {job.pid}")
    text = f"[{state.value}] {summary} ({', '.join(facts)})"
    if not state.ended:
        text += f"\ncancel: pgmagic.job({job.number}).cancel() or %pg cancel {job.number}"
    body = f"<b>[{html.escape(state.value)}]</b> {html.escape(summary)} "
    body += f'<span style="opacity:.7">({html.escape(", ".join(facts))})</span>'
    if detail:
        text += "\n" + detail
        body += f'<pre class="pgmagic-job-error">{html.escape(detail)}</pre>'
    return {
        "text/plain": text,
        "text/html": f'<div class="pgmagic-job">{body}</div>',
        JOB_MIME: data,
    }


def ended_message(job: Job) -> dict[str, Any]:
    """What the panel comm tells front ends when a job ends (JupyterLab notifies).

    Parameters
    ----------
    job : Job

    Returns
    -------
    dict
    """
    return {
        "type": "job-ended",
        "job": job.number,
        "name": job.name,
        "state": job.state.value,
        "summary": job.summary(),
        "connection": job.connection,
    }
