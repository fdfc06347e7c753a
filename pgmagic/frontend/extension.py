"""``%load_ext pgmagic`` and ``%unload_ext pgmagic``: magics, result formatters, the panel.

Loading registers the magics on the shell and teaches its formatters to draw
the DataFrames a cell returned with their footer (every other DataFrame
displays as pandas draws it).  Unloading closes every connection and undoes
all of it, so a reload starts clean.
"""

from __future__ import annotations

import contextlib
import html as html_module
from typing import Any

import asyncpg
import pandas as pd

from pgmagic.frontend import complete, feed, tables
from pgmagic.frontend.magics import PgMagics
from pgmagic.results import zones
from pgmagic.runtime.loop import default_runtime

__all__ = ["register", "unregister"]

# Per shell: the magics, and the DataFrame printers found before ours.
_loaded: dict[int, tuple[PgMagics, Any, Any]] = {}


def register(shell: Any) -> None:
    """Register the magics and the result formatters on a shell.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell
    """
    runtime = default_runtime()
    assert runtime is not None
    magics = PgMagics(shell, runtime)
    shell.register_magics(magics)
    formatters = shell.display_formatter.formatters
    html_formatter = formatters["text/html"]
    text_formatter = formatters["text/plain"]
    previous_html = html_formatter.type_printers.get(pd.DataFrame)
    previous_text = text_formatter.type_printers.get(pd.DataFrame)

    def as_html(frame: pd.DataFrame) -> str | None:
        info = tables.info_for(frame)
        if info is not None:
            if tables.is_shown_above(frame):
                return f"<pre>{html_module.escape(tables.shown_above(frame, info))}</pre>"
            return tables.html(frame, info)
        if previous_html is not None:
            chained: str | None = previous_html(frame)
            return chained
        untyped: Any = frame  # pandas-stubs reads _repr_html_ as a column name
        html: str | None = untyped._repr_html_()
        return html

    def as_text(frame: pd.DataFrame, printer: Any, cycle: bool) -> None:
        info = tables.info_for(frame)
        if info is not None:
            above = tables.is_shown_above(frame)
            shown = tables.shown_above(frame, info) if above else tables.text(frame, info)
            printer.text(shown)
        elif previous_text is not None:
            previous_text(frame, printer, cycle)
        else:
            printer.text(repr(frame))

    html_formatter.for_type(pd.DataFrame, as_html)
    text_formatter.for_type(pd.DataFrame, as_text)

    # A row (%pg --one) reads as a one-row table, not <Record a=1 b=2>, with
    # timestamptz in the session's zone, as result tables show it.
    def record_html(record: Any) -> str:
        zone = zones.python_zone(runtime.time_zone)
        return tables.html(tables.record_frame(record, zone), _RECORD_INFO)

    def record_text(record: Any, printer: Any, cycle: bool) -> None:
        zone = zones.python_zone(runtime.time_zone)
        printer.text(tables.text(tables.record_frame(record, zone), _RECORD_INFO))

    html_formatter.for_type(asyncpg.Record, record_html)
    text_formatter.for_type(asyncpg.Record, record_text)
    _loaded[id(shell)] = (magics, previous_html, previous_text)
    complete.register(shell)
    shell.events.register("post_run_cell", _end_of_cell)
    feed.open_panel(runtime, shell.user_ns, history=magics.notify_history)


_RECORD_INFO = tables.ResultInfo(None, None)


def _end_of_cell(result: Any) -> None:
    tables.end_of_cell()
    feed.end_of_cell()


def unregister(shell: Any) -> None:
    """Close the runtime and restore the formatters.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell
    """
    entry = _loaded.pop(id(shell), None)
    if entry is None:
        return
    magics, previous_html, previous_text = entry
    formatters = shell.display_formatter.formatters
    for mime, previous in (("text/html", previous_html), ("text/plain", previous_text)):
        formatter = formatters[mime]
        formatter.type_printers.pop(pd.DataFrame, None)
        formatter.type_printers.pop(asyncpg.Record, None)
        if previous is not None:
            formatter.for_type(pd.DataFrame, previous)
    complete.unregister(shell)
    with contextlib.suppress(ValueError):
        shell.events.unregister("post_run_cell", _end_of_cell)
    feed.close_panel(magics.runtime)
    magics.runtime.close()
    # register_magics also made it a configurable of the shell; an unloaded
    # instance must not keep answering %config.
    if magics in shell.configurables:
        shell.configurables.remove(magics)
    shell.magics_manager.magics["line"].pop("pg", None)
    shell.magics_manager.magics["cell"].pop("pg", None)
