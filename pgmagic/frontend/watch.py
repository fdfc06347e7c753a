"""The output of a ``--refresh-on`` / ``--watch`` cell: the latest result, then when it ran."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython import display as _display

from pgmagic.frontend import tables
from pgmagic.frontend.options import Options
from pgmagic.frontend.output import print_message
from pgmagic.live import refresh
from pgmagic.live.refresh import Run

if TYPE_CHECKING:
    from pgmagic.frontend.magics import PgMagics

__all__ = ["render", "start"]

new_display_handle: Callable[[], Any] = _display.DisplayHandle


def start(magics: PgMagics, opts: Options, sql: str, positional: tuple[Any, ...]) -> None:
    """Show a query's result now and update the output on each re-run.

    Parameters
    ----------
    magics : PgMagics
    opts : Options
        With ``refresh_on`` channels and/or a ``watch`` period.
    sql : str
    positional : tuple
        Values for ``$1, $2, ...``.
    """
    handle = new_display_handle()
    limit = magics.displaylimit

    def show(run: Run, first: bool, stopped_at: float | None) -> None:
        bundle = render(
            run,
            limit=limit,
            channels=frozenset(opts.refresh_on),
            every=opts.watch,
            stopped_at=stopped_at,
        )
        (handle.display if first else handle.update)(bundle, raw=True)

    refresh.start(
        magics.runtime,
        sql,
        magics.namespace,
        positional,
        channels=list(opts.refresh_on),
        every=opts.watch,
        show=show,
        numeric_as_float=magics.numeric_as_float,
        on_message=print_message,
    )


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def render(
    run: Run,
    *,
    limit: int | None,
    channels: frozenset[str] = frozenset(),
    every: float | None = None,
    stopped_at: float | None = None,
) -> dict[str, str]:
    """The mimebundle of a refreshed output: the result, then when it ran.

    Parameters
    ----------
    run : Run
    limit : int
        Rows rendered.
    channels : frozenset of str
        Channels that trigger runs (for the footer).
    every : float, optional
        Timer period (for the footer).
    stopped_at : float, optional
        When refreshing stopped.

    Returns
    -------
    dict
        ``text/plain`` and ``text/html``.
    """
    triggers = [f"NOTIFY {', '.join(sorted(channels))}"] if channels else []
    if every is not None:
        triggers.append(f"every {every:g} s")
    parts = [f"last run {_clock(run.ran_at)} ({run.reason}, run {run.number})"]
    if stopped_at is not None:
        parts.append(f"refresh stopped {_clock(stopped_at)}")
    else:
        parts.append(f"refreshes on {' and '.join(triggers)}")
    footer = " · ".join(parts)
    if run.error is not None:
        body_text = "\n".join(run.error)
        body_html = f'<pre class="pgmagic-refresh-error">{html.escape(body_text)}</pre>'
    elif run.frame is not None and run.shown is not None:
        types = tuple((c.name, c.type_name) for c in run.shown.columns or ())
        info = tables.ResultInfo(run.elapsed, limit, types)
        body_text = tables.text(run.frame, info)
        body_html = tables.html(run.frame, info)
    else:
        body_text = run.status
        body_html = f"<pre>{html.escape(run.status)}</pre>"
    return {
        "text/plain": f"{body_text}\n{footer}",
        "text/html": (
            f'{body_html}<div class="pgmagic-refresh" style="opacity:.7;font-size:11px">'
            f"{html.escape(footer)}</div>"
        ),
    }
