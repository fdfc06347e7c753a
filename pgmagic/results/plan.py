"""An ``EXPLAIN (FORMAT JSON)`` plan as a tree: what each node costs, where it went wrong.

:class:`Plan` keeps the server's JSON as it came (``plan.json``) and reads
it into :class:`Node` objects: the node's kind as ``EXPLAIN`` words it
(``Hash Left Join``, ``Index Scan using orders_pkey on public.orders o``),
estimated against actual rows with the factor between them, and, after
``ANALYZE``, the time of each node with and without its children.

How the time of a node is counted:

- ``Actual Total Time`` is per loop: a node's inclusive time is that times
  ``Actual Loops``.
- Under a ``Gather`` or ``Gather Merge`` the processes run side by side, and
  the loops are summed over them: the inclusive time is divided by the
  number of processes (workers launched, plus the leader unless the plan
  says it did not take part), which gives the wall-clock time.
- A node's exclusive time is its inclusive time minus its children's.  A
  ``SubPlan`` runs inside the expression of the node it is attached to, so
  it is taken from that node; an ``InitPlan`` from the deepest node of the
  subtree whose expressions use its result (where it ran); a ``CTE``'s time
  from the ``CTE Scan`` nodes that read it (shared among them by their own
  time), not from the node it hangs under.  Where the server's numbers do
  not add up (a partly read CTE run by workers that went on after the
  leader stopped), an exclusive time is never below zero.

:mod:`~pgmagic.results.planview` draws it.  No I/O here, no IPython.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgmagic.results import planview

__all__ = ["MIME_TYPE", "Node", "Plan"]

#: The mime type that carries the server's JSON plan beside HTML and text,
#: for a front-end renderer to draw (front ends without one ignore it).
MIME_TYPE = "application/vnd.pgmagic.plan+json"

# A node is highlighted for its time when it is among the few slowest and
# takes at least this share of the whole; for its rows when the estimate is
# off by at least this factor.
_HOT_SHARE = 0.10
_HOT_COUNT = 3
_BAD_FACTOR = 10.0
# A node's estimate is off on its own when it is this much worse than its children's.
_SOURCE = 2.0

# Node fields that hold expressions: where an InitPlan's result is used.
_EXPRESSIONS = (
    "Output",
    "Filter",
    "Join Filter",
    "Index Cond",
    "Recheck Cond",
    "Hash Cond",
    "Merge Cond",
    "One-Time Filter",
    "TID Cond",
    "Order By",
    "Run Condition",
)
# What EXPLAIN's text format prints under a node, in its order.
_DETAILS = (
    "Index Cond",
    "Recheck Cond",
    "Hash Cond",
    "Merge Cond",
    "Join Filter",
    "Rows Removed by Join Filter",
    "One-Time Filter",
    "Filter",
    "Rows Removed by Filter",
    "Rows Removed by Index Recheck",
    "Sort Key",
    "Group Key",
    "Cache Key",
    "Heap Fetches",
)
_JOINS = {"Nested Loop", "Hash Join", "Merge Join"}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _quoted(name: Any) -> str:
    """A name as EXPLAIN's text format writes it: in double quotes unless plain lower case."""
    text = str(name)
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", text):
        return text
    return '"' + text.replace('"', '""') + '"'


def _joined(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@dataclass(eq=False)
class Node:
    """One node of a plan.

    Attributes
    ----------
    data : dict
        The node as the server wrote it, without its children (``Plans``).
    children : list of Node
    depth : int
        0 for the top node.
    relationship : str
        ``Outer``, ``Inner``, ``InitPlan``, ``SubPlan``, ``Member``, ... ('' at the top).
    subplan : str
        ``InitPlan 1``, ``SubPlan 2``, ``CTE name``, or ''.
    inclusive : float or None
        Milliseconds of wall-clock time in this node and its children (None
        without ``ANALYZE``).
    exclusive : float or None
        Milliseconds in this node alone.
    processes : int
        Processes that ran it side by side (1 outside a parallel part).
    limited : bool
        Under a ``Limit``: it may have stopped early, so fewer rows than
        estimated is no misestimate.
    hot : bool
        Among the nodes that take the most time on their own.
    misestimated : bool
        Among the worst row estimates where they start: off by ×10 or more,
        and at least twice as far off as any of its children (the nodes
        above a bad estimate inherit it).
    """

    data: dict[str, Any]
    children: list[Node] = field(default_factory=list)
    depth: int = 0
    relationship: str = ""
    subplan: str = ""
    inclusive: float | None = None
    exclusive: float | None = None
    processes: int = 1
    limited: bool = False
    hot: bool = False
    misestimated: bool = False

    @property
    def node_type(self) -> str:
        """``Seq Scan``, ``Hash Join``, ``Aggregate``, ... as in the JSON."""
        return str(self.data.get("Node Type", "?"))

    @property
    def relation(self) -> str:
        """The relation, schema-qualified when the plan says the schema, with its alias."""
        data = self.data
        name = data.get("Relation Name") or data.get("CTE Name") or data.get("Function Name")
        alias = data.get("Alias")
        if name is None:
            return _quoted(alias) if alias else ""  # a subquery's or VALUES' alias
        schema = data.get("Schema")
        qualified = f"{_quoted(schema)}.{_quoted(name)}" if schema else _quoted(name)
        return f"{qualified} {_quoted(alias)}" if alias and alias != name else qualified

    @property
    def index(self) -> str:
        """The index a scan uses ('' for none)."""
        name = self.data.get("Index Name")
        return _quoted(name) if name else ""

    @property
    def join_type(self) -> str:
        """``Inner``, ``Left``, ``Semi``, ``Anti``, ... for joins ('' otherwise)."""
        return str(self.data.get("Join Type") or "")

    @property
    def title(self) -> str:
        """The node in EXPLAIN's words, e.g. ``Index Scan using i on public.t a``."""
        data, kind = self.data, self.node_type
        if kind == "Aggregate":
            strategy = data.get("Strategy")
            kind = {"Hashed": "HashAggregate", "Sorted": "GroupAggregate"}.get(
                str(strategy), "MixedAggregate" if strategy == "Mixed" else kind
            )
        elif kind == "ModifyTable":
            kind = str(data.get("Operation", kind))
        elif kind == "SetOp" and data.get("Command"):
            kind = f"{'HashSetOp' if data.get('Strategy') == 'Hashed' else kind} {data['Command']}"
        if data.get("Partial Mode") in ("Partial", "Finalize"):
            kind = f"{data['Partial Mode']} {kind}"
        if data.get("Parallel Aware"):
            kind = f"Parallel {kind}"
        if self.join_type and self.join_type != "Inner" and kind in _JOINS | {"Parallel Hash Join"}:
            join = kind.removesuffix(" Join")
            kind = f"{join} {self.join_type} Join"
        if data.get("Scan Direction") == "Backward":
            kind += " Backward"
        if self.index:
            kind += f" using {self.index}"
        if self.relation and self.node_type != "Bitmap Index Scan":
            kind += f" on {self.relation}"
        elif self.node_type == "Bitmap Index Scan":
            kind = f"{kind.removesuffix(f' using {self.index}')} on {self.index}"
        return kind

    @property
    def estimated_rows(self) -> float | None:
        """Rows the planner expected per loop."""
        return _number(self.data.get("Plan Rows"))

    @property
    def actual_rows(self) -> float | None:
        """Rows per loop, on average (None without ``ANALYZE``)."""
        return _number(self.data.get("Actual Rows"))

    @property
    def loops(self) -> int | None:
        """How many times the node ran (None without ``ANALYZE``)."""
        loops = _number(self.data.get("Actual Loops"))
        return None if loops is None else int(loops)

    @property
    def misestimate(self) -> tuple[float, str] | None:
        """The factor between estimated and actual rows, and ``under`` or ``over``.

        ``under``: more rows came than the planner expected.  Zero rows count
        as one, as a plan's estimate never goes below one.  None without
        ``ANALYZE`` or for a node that never ran.
        """
        estimated, actual = self.estimated_rows, self.actual_rows
        if estimated is None or actual is None or not self.loops:
            return None
        estimated, actual = max(estimated, 1.0), max(actual, 1.0)
        if actual >= estimated:
            return actual / estimated, "under"
        return estimated / actual, "over"

    @property
    def shared_hit(self) -> int:
        """Shared buffers found in cache (``BUFFERS``)."""
        return int(self.data.get("Shared Hit Blocks") or 0)

    @property
    def shared_read(self) -> int:
        """Shared buffers read from the operating system (``BUFFERS``)."""
        return int(self.data.get("Shared Read Blocks") or 0)

    @property
    def details(self) -> list[str]:
        """Conditions, keys and row counts, as EXPLAIN's text format prints them under the node."""
        data = self.data
        # As the text format does: row counts only when rows were removed.
        lines = [
            f"{key}: {_joined(data[key])}"
            for key in _DETAILS
            if key in data and (data[key] or not key.startswith("Rows Removed"))
        ]
        if "Sort Method" in data:
            space = data.get("Sort Space Used")
            kind = data.get("Sort Space Type", "")
            lines.append(
                f"Sort Method: {data['Sort Method']}"
                + (f"  {kind}: {space}kB" if space is not None else "")
            )
        if "Hash Buckets" in data:
            lines.append(
                f"Buckets: {data['Hash Buckets']}  Batches: {data.get('Hash Batches', '?')}"
                f"  Memory Usage: {data.get('Peak Memory Usage', '?')}kB"
            )
        if "Workers Planned" in data:
            launched = data.get("Workers Launched")
            lines.append(
                f"Workers Planned: {data['Workers Planned']}"
                + (f"  Launched: {launched}" if launched is not None else "")
            )
        temp = (int(data.get("Temp Read Blocks") or 0), int(data.get("Temp Written Blocks") or 0))
        if any(temp):
            lines.append(f"Temp Buffers: read={temp[0]:,} written={temp[1]:,}")
        return lines

    def walk(self) -> Iterator[Node]:
        """Every node from this one down, top down (children in plan order)."""
        yield self
        for child in self.children:
            yield from child.walk()

    def _uses(self, reference: re.Pattern[str]) -> bool:
        return any(reference.search(_joined(self.data[k])) for k in _EXPRESSIONS if k in self.data)


def _read(
    data: Mapping[str, Any], depth: int, processes: int, leader: bool, limited: bool = False
) -> Node:
    own = {k: v for k, v in data.items() if k != "Plans"}
    node = Node(
        own,
        depth=depth,
        relationship=str(data.get("Parent Relationship") or ""),
        subplan=str(data.get("Subplan Name") or ""),
        processes=processes,
        limited=limited,
    )
    if node.node_type in ("Gather", "Gather Merge"):
        launched = int(data.get("Workers Launched") or 0)
        # Single Copy: one process runs the part, a worker if there is one.
        leader = leader and not data.get("Single Copy")
        processes = max(1, launched + (1 if leader else 0))
    loops, total = node.loops, _number(data.get("Actual Total Time"))
    if loops is not None and total is not None:
        node.inclusive = total * loops / node.processes
    limited = limited or node.node_type == "Limit"
    for child in data.get("Plans") or ():
        node.children.append(_read(child, depth + 1, processes, leader, limited))
    return node


def _inherited(node: Node, way: str) -> float:
    """The worst factor, the same way, among a node's children: what it took over from them."""
    factors = [c.misestimate[0] for c in node.children if c.misestimate and c.misestimate[1] == way]
    return max(factors, default=1.0)


def _initplan_reference(name: str) -> re.Pattern[str] | None:
    """How expressions name an InitPlan's result: ``$0`` up to PostgreSQL 16, ``(InitPlan 1)``."""
    found = re.fullmatch(r"InitPlan (\d+)(?: \(returns (.*)\))?", name)
    if found is None:
        return None
    if found.group(2):
        params = re.findall(r"\$\d+", found.group(2))
        return re.compile("|".join(re.escape(p) + r"(?!\d)" for p in params)) if params else None
    return re.compile(re.escape(f"(InitPlan {found.group(1)})"))


def _where_it_ran(parent: Node, initplan: Node) -> Node:
    """Where an InitPlan ran: the deepest node under ``parent`` that uses its result."""
    reference = _initplan_reference(initplan.subplan)
    if reference is None:
        return parent
    users = [
        n
        for child in parent.children
        if child is not initplan and child.relationship != "InitPlan"
        for n in child.walk()
        if n._uses(reference)
    ]
    return max(users, key=lambda n: n.depth) if users else parent


def _exclusive_times(root: Node) -> None:
    nodes = list(root.walk())
    taken: dict[int, float] = {id(n): 0.0 for n in nodes}
    scans: dict[str, list[Node]] = {}
    for node in nodes:
        if node.node_type == "CTE Scan" and node.data.get("CTE Name"):
            scans.setdefault(str(node.data["CTE Name"]), []).append(node)
    for node in nodes:
        for child in node.children:
            spent = child.inclusive or 0.0
            if child.relationship == "InitPlan" and child.subplan.startswith("CTE "):
                readers = scans.get(child.subplan[4:], [])
                weight = sum(r.inclusive or 0.0 for r in readers)
                for reader in readers:
                    share = (reader.inclusive or 0.0) / weight if weight else 1 / len(readers)
                    taken[id(reader)] += spent * share
            elif child.relationship == "InitPlan":
                taken[id(_where_it_ran(node, child))] += spent
            else:
                taken[id(node)] += spent
    for node in nodes:
        if node.inclusive is not None:
            node.exclusive = max(0.0, node.inclusive - taken[id(node)])


class Plan:
    """A query plan from ``EXPLAIN (FORMAT JSON)``, drawn as a tree.

    Parameters
    ----------
    json : list or dict or str
        What the server returned: ``[{"Plan": ..., "Planning Time": ...}]``
        (or its text, or its only element).
    notes : sequence of str
        Lines to show under the plan (``rolled back: ...``).

    Attributes
    ----------
    json : list
        The server's JSON plan, parsed.
    root : Node
        The top node.
    nodes : list of Node
        Every node, top down.
    notes : list of str

    Examples
    --------
    >>> plan = Plan([{"Plan": {"Node Type": "Result", "Plan Rows": 1}}])
    >>> print(plan.text)
    Result  (est. 1 row)
    """

    def __init__(self, json: Any, *, notes: Sequence[str] = ()) -> None:
        document = _parse(json)
        self.json: list[Any] = document
        top = document[0]
        self._document: dict[str, Any] = top
        self.root = _read(top["Plan"], 0, 1, _leader_takes_part(top))
        self.nodes = list(self.root.walk())
        self.notes = list(notes)
        _exclusive_times(self.root)
        self._highlight()

    @property
    def analyzed(self) -> bool:
        """Whether the plan holds what happened (``ANALYZE``), not only the estimates."""
        return self.root.loops is not None

    @property
    def planning_time(self) -> float | None:
        """Milliseconds spent planning (``ANALYZE`` or ``SUMMARY``)."""
        return _number(self._document.get("Planning Time"))

    @property
    def execution_time(self) -> float | None:
        """Milliseconds spent running (``ANALYZE``)."""
        return _number(self._document.get("Execution Time"))

    @property
    def settings(self) -> dict[str, str]:
        """Planner settings that differ from their defaults (``SETTINGS``, PostgreSQL 12+)."""
        return {str(k): str(v) for k, v in (self._document.get("Settings") or {}).items()}

    @property
    def hot(self) -> list[Node]:
        """The nodes that take the most time on their own, slowest first."""
        return sorted((n for n in self.nodes if n.hot), key=lambda n: -(n.exclusive or 0))

    @property
    def misestimated(self) -> list[Node]:
        """The nodes where the worst row estimates start (×10 or more), worst first."""
        worst = [n for n in self.nodes if n.misestimated]
        return sorted(worst, key=lambda n: -(n.misestimate or (0.0, ""))[0])

    def _total(self) -> float:
        return sum(n.exclusive or 0.0 for n in self.nodes)

    def _highlight(self) -> None:
        total = self._total()
        timed = sorted(
            (n for n in self.nodes if n.exclusive), key=lambda n: n.exclusive or 0, reverse=True
        )
        for node in timed[:_HOT_COUNT]:
            node.hot = total > 0 and (node.exclusive or 0) >= _HOT_SHARE * total
        off = [
            (n.misestimate[0], n)
            for n in self.nodes
            if n.misestimate is not None
            and not (n.limited and n.misestimate[1] == "over")
            and n.misestimate[0] >= _SOURCE * _inherited(n, n.misestimate[1])
        ]
        for factor, node in sorted(off, key=lambda pair: -pair[0])[:_HOT_COUNT]:
            node.misestimated = factor >= _BAD_FACTOR

    def share(self, node: Node) -> float | None:
        """The part of the whole time ``node`` takes on its own (0 to 1; None without ``ANALYZE``).

        Parameters
        ----------
        node : Node

        Returns
        -------
        float or None
        """
        total = self._total()
        return None if node.exclusive is None or not total else node.exclusive / total

    def summary(self) -> list[str]:
        """The lines under the tree: planning and execution time, triggers, JIT, settings, notes.

        Returns
        -------
        list of str
        """
        return planview.summary(self)

    @property
    def text(self) -> str:
        """The plan as an indented text tree, the slowest and worst-estimated nodes marked."""
        return planview.text(self)

    def html(self) -> str:
        """The plan as an HTML table: the tree, then the numbers per node.

        Returns
        -------
        str
        """
        return planview.html(self)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        time = f" · {planview.ms(self.execution_time)}" if self.execution_time is not None else ""
        return f"<Plan: {self.root.title}{time} · {len(self.nodes)} nodes>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text)

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # nbformat wants a JSON mime type's data to be an object: the server's
        # plan (the list's only element) and what the renderer draws.
        return {
            "text/plain": self.text,
            "text/html": self.html(),
            MIME_TYPE: {"plan": self._document, "view": planview.view(self)},
        }


def _parse(value: Any) -> list[Any]:
    if isinstance(value, str | bytes):
        value = json.loads(value)
    if isinstance(value, Mapping):
        value = [dict(value)]
    if (
        not isinstance(value, list)
        or len(value) != 1
        or not isinstance(value[0], Mapping)
        or not isinstance(value[0].get("Plan"), Mapping)
    ):
        raise ValueError("not a plan from EXPLAIN (FORMAT JSON): expected [{'Plan': {...}}]")
    # A list of our own: the caller's (a DataFrame's cell) stays as it was.
    return [dict(value[0])]


def _leader_takes_part(top: Mapping[str, Any]) -> bool:
    settings = top.get("Settings") or {}
    return str(settings.get("parallel_leader_participation", "on")).lower() not in ("off", "false")
