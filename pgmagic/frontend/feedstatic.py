"""The feed widget as static HTML and text, for viewers that cannot run it.

A saved notebook outlives its kernel: nbconvert's HTML, GitHub, text viewers
and an untrusted notebook in JupyterLab draw the ``text/html`` or
``text/plain`` of an output instead of the widget.  The feed puts both beside
its widget view in one display bundle: the channels, the listener's state,
the count received and the newest rows, each payload exactly as sent
(HTML-escaped, never parsed).  Both are built from the widget's own ``state``
and ``items`` traits, so they say what the widget says.
"""

from __future__ import annotations

import html as html_module
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pgmagic.errors import display_width

__all__ = ["ROWS", "html", "text"]

#: Rows a static rendering shows, newest first.
ROWS = 20

_STYLE = (
    "<style>"
    ".pgmagic-feed-static table{border-collapse:collapse;font-size:12px}"
    ".pgmagic-feed-static th,.pgmagic-feed-static td{padding:2px 8px;text-align:left;"
    "vertical-align:top;border-bottom:1px solid var(--jp-border-color2,#ddd)}"
    # <pre> keeps a payload's spaces and line breaks even where a sanitizer
    # drops this stylesheet (GitHub, an untrusted notebook).
    ".pgmagic-feed-static td pre{margin:0;padding:0;background:none;white-space:pre-wrap}"
    ".pgmagic-feed-static .note{opacity:.7;font-size:11px;margin-top:4px}"
    "</style>"
)


def _clock(epoch: Any) -> str:
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        return "?"
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def _newest(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [i for i in reversed(items[-ROWS:]) if isinstance(i, Mapping)]


def _headline(state: Mapping[str, Any]) -> str:
    channels = ", ".join(str(c) for c in state.get("channels", ())) or "no channel"
    count = state.get("count", 0)
    parts = [
        f"LISTEN {channels}",
        str(state.get("listener", "stopped")),
        f"{count:,} received" if isinstance(count, int) else "? received",
    ]
    dropped = state.get("dropped", 0)
    if isinstance(dropped, int) and dropped > 0:
        parts.append(f"{dropped:,} dropped from view")
    return " · ".join(parts)


def _note(state: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> str:
    rows = _newest(items)
    if not rows:
        return "No notifications yet."
    shown = sum(1 for i in rows if i.get("kind") != "gap")
    count = state.get("count", 0)
    part = f"{shown:,} of {count:,} shown, " if isinstance(count, int) and count > shown else ""
    return f"{part}newest first · a saved view: the live feed needs the kernel"


def _row(item: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """Time, channel, pid and payload of an item (a gap's message as payload)."""
    if item.get("kind") == "gap":
        return _clock(item.get("time")), "(gap)", "", str(item.get("message", ""))
    return (
        _clock(item.get("time")),
        str(item.get("channel", "")),
        str(item.get("pid", "")),
        str(item.get("payload", "")),
    )


def html(state: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> str:
    """The feed as an HTML table of its newest :data:`ROWS` items.

    Parameters
    ----------
    state : mapping
        The widget's ``state`` trait.
    items : sequence of mapping
        The widget's ``items`` trait, oldest first.

    Returns
    -------
    str

    Examples
    --------
    >>> html({"channels": ["orders"], "listener": "listening", "count": 0}, [])[:30]
    '<div class="pgmagic-feed-stati'
    """
    escape = html_module.escape
    rows = [_row(i) for i in _newest(items)]
    table = ""
    if rows:
        body = "".join(
            f"<tr><td>{escape(when)}</td><td>{escape(channel)}</td><td>{escape(pid)}</td>"
            f"<td><pre>{escape(payload)}</pre></td></tr>"
            for when, channel, pid, payload in rows
        )
        table = (
            "<table><thead><tr><th>time</th><th>channel</th><th>pid</th><th>payload</th>"
            f"</tr></thead><tbody>{body}</tbody></table>"
        )
    return (
        f'<div class="pgmagic-feed-static">{_STYLE}<div><strong>{escape(_headline(state))}'
        f'</strong></div>{table}<div class="note">{escape(_note(state, items))}</div></div>'
    )


def text(state: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> str:
    """The feed as aligned text lines, newest first, payloads as sent.

    A payload's own line breaks are kept, its later lines indented under
    the payload column.

    Parameters
    ----------
    state : mapping
        The widget's ``state`` trait.
    items : sequence of mapping
        The widget's ``items`` trait, oldest first.

    Returns
    -------
    str

    Examples
    --------
    >>> print(text({"channels": ["orders"], "listener": "stopped", "count": 0}, []))
    LISTEN orders · stopped · 0 received
    No notifications yet.
    """
    lines = [_headline(state)]
    rows = [_row(i) for i in _newest(items)]
    if rows:
        header = ("time", "channel", "pid", "payload")
        widths = [max(display_width(r[k]) for r in [header, *rows]) for k in range(3)]

        def line(cells: tuple[str, str, str, str]) -> str:
            padded = zip(cells[:3], widths, strict=True)
            front = "  ".join(c + " " * (w - display_width(c)) for c, w in padded)
            indent = " " * (display_width(front) + 2)
            return f"{front}  " + cells[3].replace("\n", "\n" + indent)

        lines += [line(header), *(line(r) for r in rows)]
    lines.append(_note(state, items))
    return "\n".join(lines)
