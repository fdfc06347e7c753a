"""How a :class:`~pgmagic.results.plan.Plan` reads: a text tree, an HTML table, a summary.

The HTML works without scripts and without its stylesheet (an untrusted
notebook, nbconvert): what matters is inline (indentation, alignment,
highlights in translucent colours that read on light and dark themes); the
stylesheet only adds JupyterLab's fonts and colours where they are allowed.
"""

from __future__ import annotations

import html as html_module
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgmagic.results.plan import Node, Plan

__all__ = ["html", "markers", "ms", "summary", "text", "view"]

# Factors below this read as noise and are not shown.
_SHOWN_FACTOR = 2.0


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: float) -> str:
    """Rows as EXPLAIN ANALYZE gives them: whole, or with two decimals (an average over loops)."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def ms(value: float) -> str:
    """Milliseconds as a plan shows them: ``0.042 ms``, ``12.30 ms``, ``1.25 s``.

    Parameters
    ----------
    value : float

    Returns
    -------
    str
    """
    if value >= 1000:
        return f"{value / 1000:,.2f} s"
    return f"{value:,.3f} ms" if value < 1 else f"{value:,.2f} ms"


def _factor(value: float) -> str:
    return f"×{value:,.0f}" if value >= 10 else f"×{value:.1f}"


def _metrics(plan: Plan, node: Node) -> list[str]:
    parts: list[str] = []
    estimated, actual = node.estimated_rows, node.actual_rows
    if node.loops == 0:
        parts.append("never executed")
    elif actual is not None:
        rows = f"rows {_count(actual)}"
        if estimated is not None:
            rows += f" of est. {_count(estimated)}"
        off = node.misestimate
        if off is not None and off[0] >= _SHOWN_FACTOR:
            rows += f" {_factor(off[0])} {off[1]}"
        parts.append(rows)
    elif estimated is not None:
        parts.append(f"est. {_count(estimated)} row{'' if estimated == 1 else 's'}")
    if node.loops and node.loops > 1:
        parts.append(f"loops {node.loops:,}")
    if node.inclusive is not None and node.exclusive is not None and node.loops:
        share = plan.share(node)
        percent = f", {share:.0%}" if share is not None else ""
        parts.append(f"{ms(node.inclusive)} (self {ms(node.exclusive)}{percent})")
    if node.shared_hit or node.shared_read:
        read = f" read {node.shared_read:,}" if node.shared_read else ""
        parts.append(f"buffers hit {node.shared_hit:,}{read}")
    return parts


def markers(plan: Plan, node: Node) -> list[str]:
    """Why a node is highlighted: ``◀ slow: 62% of the time``, ``◀ rows under-estimated ×120``.

    Parameters
    ----------
    plan : Plan
    node : Node

    Returns
    -------
    list of str
    """
    marks = []
    if node.hot:
        share = plan.share(node) or 0.0
        marks.append(f"◀ slow: {share:.0%} of the time")
    if node.misestimated and node.misestimate is not None:
        factor, way = node.misestimate
        marks.append(f"◀ rows {way}-estimated {_factor(factor)}")
    return marks


def summary(plan: Plan) -> list[str]:
    """The lines under the tree: planning and execution time, triggers, JIT, settings, notes.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    list of str
    """
    lines = []
    times = []
    if plan.planning_time is not None:
        times.append(f"Planning: {ms(plan.planning_time)}")
    if plan.execution_time is not None:
        times.append(f"Execution: {ms(plan.execution_time)}")
    if times:
        lines.append(" · ".join(times))
    for trigger in plan.json[0].get("Triggers") or ():
        name = trigger.get("Trigger Name") or trigger.get("Constraint Name") or "?"
        on = f" on {trigger['Relation']}" if trigger.get("Relation") else ""
        time = _number(trigger.get("Time"))
        calls = trigger.get("Calls", "?")
        lines.append(
            f"Trigger {name}{on}: "
            + (f"{ms(time)}, " if time is not None else "")
            + f"calls {calls}"
        )
    jit = plan.json[0].get("JIT")
    if isinstance(jit, Mapping):
        timing = jit.get("Timing") or {}
        total = _number(timing.get("Total")) if isinstance(timing, Mapping) else None
        parts = [f"JIT: {jit.get('Functions', '?')} functions"]
        if total is not None:
            steps = ", ".join(
                f"{k.lower()} {ms(v)}"
                for k, v in timing.items()
                if k != "Total" and _number(v) is not None
            )
            parts.append(f"{ms(total)}" + (f" ({steps})" if steps else ""))
        lines.append(", ".join(parts))
    if plan.settings:
        shown = ", ".join(f"{k} = {v!r}" for k, v in plan.settings.items())
        lines.append(f"Settings: {shown}")
    lines.extend(plan.notes)
    return lines


def text(plan: Plan) -> str:
    """The plan as an indented text tree, the slowest and worst-estimated nodes marked.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    str
    """
    lines: list[str] = []
    for node, branch, guide in _tree(plan.root):
        label = f"{node.subplan}: " if node.subplan else ""
        found = _metrics(plan, node)
        metrics = "  (" + " · ".join(found) + ")" if found else ""
        marks = "".join(f"  {m}" for m in markers(plan, node))
        lines.append(f"{branch}{label}{node.title}{metrics}{marks}")
        lines.extend(f"{guide}{d}" for d in node.details)
    lines.extend(plan.summary())
    return "\n".join(lines)


def _tree(root: Node) -> Iterator[tuple[Node, str, str]]:
    """Each node top down, with what goes before its line and before its detail lines."""

    def walk(node: Node, lead: str, branch: str) -> Iterator[tuple[Node, str, str]]:
        inner = lead + ("" if not branch else "│  " if branch == "├─ " else "   ")
        yield node, lead + branch, inner + ("│  " if node.children else "   ") + "  "
        for i, child in enumerate(node.children):
            yield from walk(child, inner, "└─ " if i == len(node.children) - 1 else "├─ ")

    yield from walk(root, "", "")


# Everything is inline: a sanitizer (an untrusted notebook, GitHub) drops a
# stylesheet, and JupyterLab's own aligns table cells to the right unless
# told.  Translucent colours read on light and dark backgrounds alike; where
# a theme colour is wanted it comes second, after a plain one, so that a
# sanitizer that drops var() keeps the first.
_HOT_BG = "rgba(255,120,0,.22)"
_BAD_BG = "rgba(220,40,40,.18)"
_GREY = "rgba(128,128,128,.35)"
_RULE = f"border-bottom:1px solid {_GREY};border-bottom-color:var(--jp-border-color2,{_GREY})"
_CELL = f"padding:1px 8px;{_RULE};vertical-align:top;white-space:nowrap"
_NUM = _CELL + ";text-align:right"
_SUMMARY = "opacity:.8;font-size:11px;margin-top:4px"
_DETAIL = "opacity:.7;white-space:pre-wrap"


def html(plan: Plan) -> str:
    """The plan as an HTML table: the tree, then the numbers per node, the summary under it.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    str
    """
    escape = html_module.escape
    heads = _heads(plan)
    header = "".join(
        f'<th style="{_CELL};text-align:{"left" if i == 0 else "right"}">{escape(h)}</th>'
        for i, h in enumerate(heads)
    )
    rows = []
    for node, branch, guide in _tree(plan.root):
        label = f"{escape(node.subplan)}: " if node.subplan else ""
        details = "".join(
            f'<div><span style="white-space:pre">{escape(guide)}</span>'
            f'<span class="detail" style="{_DETAIL}">{escape(d)}</span></div>'
            for d in node.details
        )
        marks = " ".join(escape(m) for m in markers(plan, node))
        tree = (
            f'<td class="tree" style="{_CELL};text-align:left;font-family:monospace">'
            f'<span style="white-space:pre">{escape(branch)}</span>'
            f"{label}<b>{escape(node.title)}</b>"
            # A line of their own: beside the title they widened the whole
            # column, pushing the numbers out of a narrow output area.
            + (
                f'<div><span style="white-space:pre">{escape(guide)}</span>'
                f"<small><em>{marks}</em></small></div>"
                if marks
                else ""
            )
            + f"{details}</td>"
        )
        cells = _cells(plan, node)
        numbers = "".join(
            f'<td style="{_NUM}{style}">{escape(value)}</td>' for style, value in cells
        )
        classes = " ".join(
            c
            for c, on in (
                ("pgmagic-plan-hot", node.hot),
                ("pgmagic-plan-misestimate", node.misestimated),
            )
            if on
        )
        rows.append(
            f'<tr class="{classes}">{tree}{numbers}</tr>'
            if classes
            else f"<tr>{tree}{numbers}</tr>"
        )
    summary = "".join(f"<div>{escape(line)}</div>" for line in plan.summary())
    return (
        '<div class="pgmagic-plan"><table style="border-collapse:collapse;font-size:12px">'
        f"<thead><tr>{header}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        f'<div class="summary" style="{_SUMMARY}">{summary}</div></div>'
    )


def _heads(plan: Plan) -> list[str]:
    if plan.analyzed:
        return ["node", "self", "%", "total", "rows", "est.", "misestimate", "loops", "hit", "read"]
    return ["node", "est. rows", "cost"]


def _cells(plan: Plan, node: Node) -> list[tuple[str, str]]:
    """The numbers of a node's row: each an inline style and its text."""
    if plan.analyzed:
        return _analyzed_cells(plan, node)
    cost = f"{node.data.get('Startup Cost', '?')}..{node.data.get('Total Cost', '?')}"
    est = node.estimated_rows
    return [("", _count(est) if est is not None else ""), ("", cost)]


# What hovering a node shows in JupyterLab: the server's own words for it.
_HOVER_LEFT_OUT = frozenset({"Plans", "Node Type", "Parent Relationship", "Subplan Name"})


def view(plan: Plan) -> dict[str, Any]:
    """The plan as data for pgmagic's JupyterLab renderer: the HTML table's rows and cells.

    The renderer draws what the HTML shows and adds folding and hover
    details; nothing is computed twice.

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    dict
        ``columns`` (the header), ``nodes`` top down (each with its
        ``depth``, ``title``, ``subplan``, ``details``, ``markers``,
        ``hot``, ``misestimated``, ``cells`` and ``hover``: the server's
        fields for it), and ``summary`` (the lines under the tree).
    """

    def walk(node: Node, depth: int) -> Iterator[tuple[Node, int]]:
        yield node, depth
        for child in node.children:
            yield from walk(child, depth + 1)

    nodes = [
        {
            "depth": depth,
            "title": node.title,
            "subplan": node.subplan,
            "details": list(node.details),
            "markers": markers(plan, node),
            "hot": node.hot,
            "misestimated": node.misestimated,
            "cells": [text for _, text in _cells(plan, node)],
            "hover": {
                key: value if isinstance(value, str | int | float | bool) else str(value)
                for key, value in node.data.items()
                if key not in _HOVER_LEFT_OUT and value is not None
            },
        }
        for node, depth in walk(plan.root, 0)
    ]
    return {"columns": _heads(plan), "nodes": nodes, "summary": plan.summary()}


def _analyzed_cells(plan: Plan, node: Node) -> list[tuple[str, str]]:
    if node.loops == 0:
        est = node.estimated_rows
        blank, estimated = ("", ""), ("", _count(est) if est is not None else "")
        never = ("", "never executed")
        return [blank, blank, never, blank, estimated, blank, ("", "0"), blank, blank]
    share = plan.share(node)
    off = node.misestimate
    factor = ""
    if off is not None and off[0] >= _SHOWN_FACTOR:
        factor = f"{_factor(off[0])} {off[1]}"
    hot = f";background-color:{_HOT_BG};font-weight:bold" if node.hot else ""
    bad = f";background-color:{_BAD_BG};font-weight:bold" if node.misestimated else ""
    actual, est = node.actual_rows, node.estimated_rows
    return [
        (hot, ms(node.exclusive) if node.exclusive is not None else ""),
        (hot, f"{share:.0%}" if share is not None else ""),
        ("", ms(node.inclusive) if node.inclusive is not None else ""),
        ("", _count(actual) if actual is not None else ""),
        ("", _count(est) if est is not None else ""),
        (bad, factor),
        ("", f"{node.loops:,}" if node.loops is not None else ""),
        ("", f"{node.shared_hit:,}" if node.shared_hit else ""),
        ("", f"{node.shared_read:,}" if node.shared_read else ""),
    ]
