"""``%load_ext pgmagic`` and ``%unload_ext pgmagic``: magics, result formatters, the panel.

Loading registers the magics on the shell, teaches its formatters to draw
the DataFrames a cell returned with their footer (every other DataFrame
displays as pandas draws it) and, in a kernel, registers the panel's comm
target (front ends open the comm).  Unloading closes every connection and
undoes all of it, so a reload starts clean.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import functools
import html as html_module
import ipaddress
import uuid
from typing import Any

import asyncpg
import pandas as pd
from asyncpg.pgproto import pgproto

from pgmagic.frontend import complete, feed, tables
from pgmagic.frontend.magics import PgMagics
from pgmagic.results import text, zones
from pgmagic.runtime.connections import default_connections
from pgmagic.runtime.loop import Runtime

__all__ = ["register", "unregister"]

# Per shell: the magics, the DataFrame printers found before ours (HTML, text, and
# mime bundle), the panel's target, the running cell's number for the query history.
_loaded: dict[int, tuple[PgMagics, Any, Any, feed.PanelServer | None, _RunningCell, Any]] = {}


def register(shell: Any) -> None:
    """Register the magics and the result formatters on a shell.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell
    """
    connections = default_connections()
    assert connections is not None
    magics = PgMagics(shell, connections)
    shell.register_magics(magics)
    formatters = shell.display_formatter.formatters
    html_formatter = formatters["text/html"]
    text_formatter = formatters["text/plain"]
    bundle_formatter = shell.display_formatter.mimebundle_formatter
    previous_html = html_formatter.type_printers.get(pd.DataFrame)
    previous_text = text_formatter.type_printers.get(pd.DataFrame)
    previous_bundle = bundle_formatter.type_printers.get(pd.DataFrame)

    # Both forms of a result from one printer: they share the conversion of
    # its values, which for a small result costs more than the query.
    def as_bundle(frame: pd.DataFrame) -> Any:
        info = tables.info_for(frame)
        if info is None:
            return None if previous_bundle is None else previous_bundle(frame)
        if tables.is_shown_above(frame):
            above = tables.shown_above(frame, info)
            return {"text/plain": above, "text/html": f"<pre>{html_module.escape(above)}</pre>"}
        return tables.both(*tables.drawn(frame, info))

    def as_html(frame: pd.DataFrame) -> str | None:
        info = tables.info_for(frame)
        if info is not None:
            if tables.is_shown_above(frame):
                return f"<pre>{html_module.escape(tables.shown_above(frame, info))}</pre>"
            return tables.html(*tables.drawn(frame, info))
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
            shown = (
                tables.shown_above(frame, info)
                if above
                else tables.text(*tables.drawn(frame, info))
            )
            printer.text(shown)
        elif previous_text is not None:
            previous_text(frame, printer, cycle)
        else:
            printer.text(repr(frame))

    bundle_formatter.for_type(pd.DataFrame, as_bundle)
    # IPython renders a form again when a printer of its own is registered for
    # the type; ours are needed only to keep a printer found before ours from
    # drawing our results.
    if previous_html is not None:
        html_formatter.for_type(pd.DataFrame, as_html)
    if previous_text is not None:
        text_formatter.for_type(pd.DataFrame, as_text)
    _register_tables(html_formatter, text_formatter)

    # A row (%pg --one) reads as a one-row table, not <Record a=1 b=2>, with
    # timestamptz in the session's zone, as result tables show it.
    def record_html(record: Any) -> str:
        zone = zones.python_zone(magics.runtime.time_zone)
        return tables.html(tables.record_frame(record, zone), _RECORD_INFO)

    def record_text(record: Any, printer: Any, cycle: bool) -> None:
        zone = zones.python_zone(magics.runtime.time_zone)
        printer.text(tables.text(tables.record_frame(record, zone), _RECORD_INFO))

    html_formatter.for_type(asyncpg.Record, record_html)
    text_formatter.for_type(asyncpg.Record, record_text)
    _register_scalars(text_formatter)
    # The panel shows the default connection's notifications and schema.
    panel = feed.serve_panel(
        shell,
        connections.default,
        shell.user_ns,
        history=magics.notify_history,
        completer=functools.partial(complete.complete_code, runtime=connections.default),
    )
    running = _RunningCell(shell)

    def count_cells(runtime: Runtime) -> None:
        runtime.history.cell_number = running.number

    connections.on_open(count_cells)
    _loaded[id(shell)] = (magics, previous_html, previous_text, panel, running, previous_bundle)
    complete.register(shell)
    shell.events.register("pre_run_cell", running.starts)
    shell.events.register("post_run_cell", running.ends)
    shell.events.register("post_run_cell", _end_of_cell)


class _RunningCell:
    """The number of the cell that runs, for the query history (None between cells)."""

    def __init__(self, shell: Any) -> None:
        self._shell = shell
        self._number: int | None = None

    def starts(self, info: Any) -> None:
        # The number In [N] shows (IPython 9 counts the cell before it runs, 8
        # after); a cell kept out of IPython's history (store_history=False) has none.
        self._number = self._shell.displayhook.prompt_count if info.store_history else None

    def ends(self, result: Any) -> None:
        # Work a cell left behind (an asyncio task) is no longer that cell's.
        self._number = None

    def number(self) -> int | None:
        return self._number


_RECORD_INFO = tables.ResultInfo(None, None)

# --arrow and --polars values: (module, class name), registered by name so
# that polars, optional, is not imported to find its class.
_TABLE_TYPES = (("pyarrow.lib", "Table"), ("polars.dataframe.frame", "DataFrame"))


def _register_tables(html_formatter: Any, text_formatter: Any) -> None:
    """Draw a cell's Arrow table or polars frame as its pandas DataFrame would be drawn."""

    def as_html(value: Any) -> str | None:
        info = tables.info_for(value)
        if info is None:
            own = getattr(value, "_repr_html_", None)  # polars has one, pyarrow none
            return None if own is None else str(own())
        if tables.is_shown_above(value):
            return f"<pre>{html_module.escape(tables.shown_above(value, info))}</pre>"
        return tables.html(*tables.drawn(value, info))

    def as_text(value: Any, printer: Any, cycle: bool) -> None:
        info = tables.info_for(value)
        if info is None:
            printer.text(repr(value))
        elif tables.is_shown_above(value):
            printer.text(tables.shown_above(value, info))
        else:
            printer.text(tables.text(*tables.drawn(value, info)))

    for module, name in _TABLE_TYPES:
        html_formatter.for_type_by_name(module, name, as_html)
        text_formatter.for_type_by_name(module, name, as_text)


# Types whose Python repr is a constructor call: a --scalar value of these
# shows as psql prints it.  str, int, float and bool read well as they are.
_SCALAR_TYPES: tuple[type, ...] = (
    decimal.Decimal,
    dt.datetime,
    dt.date,
    dt.time,
    dt.timedelta,
    uuid.UUID,
    # asyncpg's own UUID defines __repr__, which IPython takes before a
    # printer registered for its base class.
    pgproto.UUID,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
    asyncpg.Range,
    asyncpg.BitString,
)


def _register_scalars(text_formatter: Any) -> None:
    for kind in _SCALAR_TYPES:
        previous = text_formatter.type_printers.get(kind)

        def scalar_text(value: Any, printer: Any, cycle: bool, previous: Any = previous) -> None:
            if tables.is_scalar(value):
                printer.text(text.as_text(value))
            elif previous is not None:
                previous(value, printer, cycle)
            else:
                printer.text(repr(value))

        text_formatter.for_type(kind, scalar_text)
        _previous_scalars[kind] = previous


_previous_scalars: dict[type, Any] = {}


def _named(kind: Any, module: str, name: str) -> bool:
    # A deferred printer moves to type_printers once an object of the type is shown.
    return getattr(kind, "__module__", None) == module and getattr(kind, "__name__", None) == name


def _end_of_cell(result: Any) -> None:
    tables.end_of_cell()
    feed.end_of_cell()
    if complete.forget_after(getattr(result.info, "raw_cell", None) or ""):
        for _, _, _, panel, _, _ in _loaded.values():
            if panel is not None:
                panel.catalog_changed()


def unregister(shell: Any) -> None:
    """Close every connection and restore the formatters.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell
    """
    entry = _loaded.pop(id(shell), None)
    if entry is None:
        return
    magics, previous_html, previous_text, panel, running, previous_bundle = entry
    bundle_formatter = shell.display_formatter.mimebundle_formatter
    bundle_formatter.type_printers.pop(pd.DataFrame, None)
    if previous_bundle is not None:
        bundle_formatter.for_type(pd.DataFrame, previous_bundle)
    formatters = shell.display_formatter.formatters
    for mime, previous in (("text/html", previous_html), ("text/plain", previous_text)):
        formatter = formatters[mime]
        formatter.type_printers.pop(pd.DataFrame, None)
        formatter.type_printers.pop(asyncpg.Record, None)
        for module, name in _TABLE_TYPES:
            formatter.deferred_printers.pop((module, name), None)
            for kind in [k for k in formatter.type_printers if _named(k, module, name)]:
                del formatter.type_printers[kind]
        if previous is not None:
            formatter.for_type(pd.DataFrame, previous)
    for kind, printer in _previous_scalars.items():
        formatters["text/plain"].type_printers.pop(kind, None)
        if printer is not None:
            formatters["text/plain"].for_type(kind, printer)
    complete.unregister(shell)
    with contextlib.suppress(ValueError):
        shell.events.unregister("post_run_cell", _end_of_cell)
    for event, hook in (("pre_run_cell", running.starts), ("post_run_cell", running.ends)):
        with contextlib.suppress(ValueError):
            shell.events.unregister(event, hook)
    if panel is not None:
        panel.close()
    magics.connections.close()
    # register_magics also made it a configurable of the shell; an unloaded
    # instance must not keep answering %config.
    if magics in shell.configurables:
        shell.configurables.remove(magics)
    shell.magics_manager.magics["line"].pop("pg", None)
    shell.magics_manager.magics["cell"].pop("pg", None)
