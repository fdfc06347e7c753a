"""Progress bars for long work, with ``tqdm.auto``.

``tqdm.auto`` renders a widget in Jupyter and text in a terminal.  Bars appear
only when the work lasts longer than half a second, refresh at most five times
a second, never appear under ``--quiet``, and leave nothing when done (a saved
notebook shows the summary line, not a dead widget).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython import display as _display

from pgmagic.results.progress import Progress

__all__ = ["Bar", "Progress"]

show: Callable[..., Any] = _display.display


class Bar:
    """A rows-and-megabytes progress bar fed from :class:`Progress` snapshots.

    Nothing is shown until rows have arrived and the work has lasted half a
    second: quick cells, and statements that return no rows, stay clean.

    Parameters
    ----------
    description : str
        Shown left of the bar, e.g. ``"→ events.parquet"``.
    quiet : bool
        Show nothing.
    """

    delay = 0.5

    def __init__(self, description: str, *, quiet: bool = False) -> None:
        self._description = description
        self._quiet = quiet
        self._bar: Any = None
        self._handle: Any = None

    def update(self, progress: Progress) -> None:
        """Move the bar to the rows counted so far.

        Parameters
        ----------
        progress : Progress
        """
        if self._quiet:
            return
        rows, size, seconds = progress.snapshot()
        if self._bar is None:
            if rows == 0 or seconds < self.delay:
                return
            from tqdm.auto import tqdm
            from tqdm.notebook import tqdm as notebook_tqdm

            options: dict[str, Any] = {
                "desc": self._description,
                "unit": " rows",
                "unit_scale": True,
                "mininterval": 0.2,
                "leave": False,
            }
            if issubclass(tqdm, notebook_tqdm):
                # Shown under a display id of ours, so that close() can empty
                # the output: a saved notebook keeps no dead widget behind.
                self._bar = tqdm(**options, display=False)
                self._handle = show(self._bar.container, display_id=True)
            else:
                self._bar = tqdm(**options)
        self._bar.set_postfix_str(f"{size / 1e6:,.1f} MB" if size else "", refresh=False)
        self._bar.update(rows - self._bar.n)

    def close(self) -> None:
        """Remove the bar, leaving nothing in the cell's output."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._handle is not None:
            self._handle.update({}, raw=True)
            self._handle = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
