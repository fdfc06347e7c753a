"""Progress bars for long work, with ``tqdm.auto``.

``tqdm.auto`` renders a widget in Jupyter and text in a terminal.  Bars appear
only when the work lasts longer than half a second, refresh at most five times
a second, and never appear under ``--quiet``.
"""

from __future__ import annotations

from typing import Any

from pgmagic.results.progress import Progress

__all__ = ["Bar", "Progress"]


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

            self._bar = tqdm(
                desc=self._description,
                unit=" rows",
                unit_scale=True,
                mininterval=0.2,
                leave=False,
            )
        self._bar.set_postfix_str(f"{size / 1e6:,.1f} MB" if size else "", refresh=False)
        self._bar.update(rows - self._bar.n)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
