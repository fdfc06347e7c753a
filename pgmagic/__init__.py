"""pgmagic: PostgreSQL in Jupyter.

``%load_ext pgmagic``, then ``%%pg`` cells and ``%pg`` lines; or ``await
pgmagic.fetch(...)`` in a cell.  Importing this package stays cheap: the
IPython front and the asyncpg runtime load when the extension does.

The packages, each with its import rules in its docstring (kept true by
``tests/test_layout.py``): :mod:`pgmagic.runtime`, :mod:`pgmagic.sql`,
:mod:`pgmagic.results`, :mod:`pgmagic.bulk`, :mod:`pgmagic.live` and, the only
one that imports IPython, :mod:`pgmagic.frontend`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pgmagic._version import __version__

if TYPE_CHECKING:
    from pgmagic.api import (
        execute,
        explain,
        fetch,
        fetchrow,
        fetchval,
        history,
        job,
        jobs,
        load_table,
        stream,
        to_file,
    )
    from pgmagic.live.subscriptions import notification_log, notifications

__all__ = [
    "__version__",
    "execute",
    "explain",
    "fetch",
    "fetchrow",
    "fetchval",
    "history",
    "job",
    "jobs",
    "load_ipython_extension",
    "load_table",
    "notification_log",
    "notifications",
    "stream",
    "to_file",
    "unload_ipython_extension",
]

_API = frozenset(
    {
        "execute",
        "explain",
        "fetch",
        "fetchrow",
        "fetchval",
        "history",
        "job",
        "jobs",
        "load_table",
        "stream",
        "to_file",
    }
)
_NOTIFY = frozenset({"notification_log", "notifications"})


def __getattr__(name: str) -> Any:
    if name in _NOTIFY:
        from pgmagic.live import subscriptions

        return getattr(subscriptions, name)
    if name in _API:
        from pgmagic import api

        return getattr(api, name)
    raise AttributeError(f"module 'pgmagic' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and display hooks (``%load_ext pgmagic``).

    Parameters
    ----------
    ipython : IPython.core.interactiveshell.InteractiveShell
    """
    from pgmagic.frontend import extension

    extension.register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Close every connection and remove the magics (``%unload_ext pgmagic``).

    Parameters
    ----------
    ipython : IPython.core.interactiveshell.InteractiveShell
    """
    from pgmagic.frontend import extension

    extension.unregister(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "pgmagic-labextension"}]
