"""Plans from a real server read as trees whose node times add up, however the plan is shaped."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from pgmagic.results.explain import prefix
from pgmagic.results.plan import MIME_TYPE, Plan

SETUP = """
CREATE SCHEMA IF NOT EXISTS plan_t;
DROP TABLE IF EXISTS plan_t.orders, plan_t.customers;
CREATE TABLE plan_t.customers AS SELECT g AS id, 'c' || g AS name FROM generate_series(1, 2000) g;
ALTER TABLE plan_t.customers ADD PRIMARY KEY (id);
-- a = b always: the planner multiplies their selectivities and expects 100x too few rows.
CREATE TABLE plan_t.orders AS
  SELECT g AS id, g % 2000 + 1 AS customer_id, g % 100 AS a, g % 100 AS b, g % 7 AS k
  FROM generate_series(1, 200000) g;
CREATE INDEX ON plan_t.orders (customer_id);
ANALYZE plan_t.customers, plan_t.orders;
"""
ANALYZE = "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON) "
SERIAL = ["SET max_parallel_workers_per_gather = 0"]
PARALLEL = [
    "SET max_parallel_workers_per_gather = 2",
    "SET parallel_setup_cost = 0",
    "SET parallel_tuple_cost = 0",
    "SET min_parallel_table_scan_size = 0",
]


def explain(dsn: str, query: str, settings: Sequence[str] = SERIAL, how: str = ANALYZE) -> Plan:
    """The plan of ``query`` after ``settings``, on a connection of its own (JSON as text)."""

    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            # SET LOCAL: behind a transaction pooler a plain SET would stay on the
            # server connection, for the next test to find.
            async with conn.transaction():
                for setting in settings:
                    await conn.execute(setting.replace("SET ", "SET LOCAL ", 1))
                return await conn.fetchval(how + query)
        finally:
            await conn.close()

    return Plan(asyncio.run(go()))


@pytest.fixture(scope="module")
def tables(dsn: str) -> str:
    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SETUP)
        finally:
            await conn.close()

    asyncio.run(go())
    return dsn


JOIN = (
    "SELECT c.name, count(*) FROM plan_t.orders o JOIN plan_t.customers c ON c.id = o.customer_id "
    "WHERE o.k = 3 GROUP BY c.name"
)
CTE = (
    "WITH big AS MATERIALIZED (SELECT * FROM plan_t.orders WHERE k = 1) "
    "SELECT count(*) FROM big b1 JOIN big b2 ON b1.id = b2.id"
)
SUBPLAN = (
    "SELECT c.id, (SELECT count(*) FROM plan_t.orders o WHERE o.customer_id = c.id) "
    "FROM plan_t.customers c WHERE c.id <= 50"
)
INITPLAN = (
    "SELECT * FROM plan_t.orders o JOIN plan_t.customers c ON c.id = o.customer_id "
    "WHERE o.id > (SELECT max(id) - 100 FROM plan_t.orders)"
)
NESTED = (
    "SELECT * FROM plan_t.customers c JOIN plan_t.orders o ON o.customer_id = c.id WHERE c.id <= 20"
)
MISESTIMATE = "SELECT * FROM plan_t.orders WHERE a = 1 AND b = 1 ORDER BY id"
PARALLEL_QUERY = "SELECT k, count(*) FROM plan_t.orders GROUP BY k"


@pytest.mark.parametrize(
    ("query", "settings", "titles"),
    [
        (JOIN, SERIAL, ["Hash Join", "Seq Scan on plan_t.orders o", "on plan_t.customers c"]),
        (CTE, SERIAL, ["CTE big: Seq Scan on plan_t.orders", "CTE Scan on big b1"]),
        (SUBPLAN, SERIAL, ["SubPlan 1: Aggregate", "on plan_t.orders o"]),
        (INITPLAN, SERIAL, ["InitPlan 1", "on plan_t.customers c"]),
        (NESTED, [*SERIAL, "SET enable_hashjoin = off", "SET enable_mergejoin = off"], ["Nested Loop"]),
        (PARALLEL_QUERY, PARALLEL, ["Gather", "Parallel Seq Scan on plan_t.orders", "Partial"]),
    ],
)  # fmt: skip
def test_times_add_up_on_real_plans(
    tables: str, query: str, settings: list[str], titles: list[str]
) -> None:
    plan = explain(tables, query, settings)
    assert plan.analyzed and plan.json[0]["Plan"]["Node Type"] == plan.root.node_type
    for title in titles:
        assert title in plan.text, plan.text
    for node in plan.nodes:
        assert node.inclusive is not None and node.exclusive is not None
        assert 0 <= node.exclusive <= node.inclusive + 1e-9, node.title
    # Exclusive times share out the top node's time: no node's time is counted twice
    # (the CTE inside the CTE Scans, the InitPlan inside its user, not also their parents).
    top = plan.root.inclusive or 0.0
    total = sum(n.exclusive or 0.0 for n in plan.nodes)
    assert total == pytest.approx(top, rel=0.05, abs=0.05), plan.text
    assert plan.execution_time is not None and plan.planning_time is not None
    assert sum(plan.share(n) or 0.0 for n in plan.nodes) == pytest.approx(1.0)


def test_parallel_nodes_count_wall_clock_time(tables: str) -> None:
    plan = explain(tables, PARALLEL_QUERY, PARALLEL)
    gather = next(n for n in plan.nodes if n.node_type in ("Gather", "Gather Merge"))
    launched = gather.data["Workers Launched"]
    if not launched:
        pytest.skip("the server launched no parallel workers")
    scan = next(n for n in plan.nodes if n.title.startswith("Parallel Seq Scan"))
    assert scan.processes == launched + 1 and scan.loops == launched + 1
    # Summed over the processes the loops say; run side by side, it is the average.
    assert scan.inclusive == pytest.approx(scan.data["Actual Total Time"])
    assert scan.inclusive is not None and gather.inclusive is not None
    assert scan.inclusive <= gather.inclusive * 1.5


def test_the_cte_is_taken_from_its_scans_not_from_its_parent(tables: str) -> None:
    plan = explain(tables, CTE)
    cte = next(n for n in plan.nodes if n.subplan == "CTE big")
    scans = [n for n in plan.nodes if n.node_type == "CTE Scan"]
    assert len(scans) == 2
    parent = next(n for n in plan.nodes if cte in n.children)
    others = sum(c.inclusive or 0.0 for c in parent.children if c is not cte)
    assert parent.exclusive == pytest.approx(max(0.0, (parent.inclusive or 0.0) - others))
    taken = sum((s.inclusive or 0.0) - (s.exclusive or 0.0) for s in scans)
    assert taken == pytest.approx(cte.inclusive, rel=0.01, abs=0.01)


def test_the_initplan_is_taken_from_the_node_that_uses_it(tables: str) -> None:
    plan = explain(tables, INITPLAN)
    init = next(n for n in plan.nodes if n.subplan.startswith("InitPlan"))
    user = next(
        n for n in plan.nodes if "o.id >" in str(n.data.get("Filter", n.data.get("Index Cond", "")))
    )
    assert (user.inclusive or 0.0) - (user.exclusive or 0.0) >= (init.inclusive or 0.0) * 0.99


def test_misestimates_are_measured_and_highlighted(tables: str) -> None:
    plan = explain(tables, MISESTIMATE)
    scan = next(n for n in plan.nodes if "plan_t.orders" in n.title)
    assert scan.misestimate is not None
    factor, way = scan.misestimate
    assert way == "under" and factor > 50
    assert scan in plan.misestimated and scan.misestimated
    # The sort above takes the bad estimate over: only where it starts is marked.
    sort = next(n for n in plan.nodes if n.node_type == "Sort")
    assert sort.misestimate is not None and sort.misestimate[0] > 50
    assert not sort.misestimated and plan.misestimated == [scan]
    assert re.search(r"rows 2,000 of est\. \d+ ×\d+ under", plan.text)
    assert "◀ rows under-estimated" in plan.text
    html = plan.html()
    assert 'class="pgmagic-plan-misestimate"' in html or "pgmagic-plan-misestimate" in html


def test_fewer_rows_under_a_limit_are_no_misestimate(tables: str) -> None:
    plan = explain(tables, "SELECT * FROM plan_t.orders ORDER BY id DESC LIMIT 3")
    below = [n for n in plan.nodes if n.limited]
    assert below and all(n.misestimate is not None for n in below)
    assert not any(n.misestimated for n in below)


def test_the_slowest_nodes_are_marked(tables: str) -> None:
    plan = explain(tables, JOIN)
    assert plan.hot and plan.hot[0].exclusive == max(n.exclusive or 0 for n in plan.nodes)
    assert "◀ slow:" in plan.text
    assert "pgmagic-plan-hot" in plan.html()


def test_a_plan_without_analyze_has_estimates_only(tables: str) -> None:
    plan = explain(tables, JOIN, how="EXPLAIN (VERBOSE, FORMAT JSON) ")
    assert not plan.analyzed and plan.execution_time is None
    assert all(n.inclusive is None and n.exclusive is None for n in plan.nodes)
    assert not plan.hot and not plan.misestimated
    assert re.search(r"Hash Join  \(est\. [\d,]+ rows\)", plan.text)
    assert "cost" in plan.html()


def test_static_html_needs_no_script_and_no_stylesheet(tables: str) -> None:
    html = explain(tables, SUBPLAN).html()
    assert "<script" not in html.lower() and "<style" not in html.lower()
    # The tree's guides, alignment and highlight colours are inline.
    assert "└─ " in html and "text-align:right" in html and "rgba(" in html
    # JupyterLab's stylesheet aligns table cells right unless the cell says otherwise.
    assert all("text-align:left" in cell for cell in re.findall(r'<td class="tree"[^>]*>', html))
    # A theme colour only after a plain one: a sanitizer dropping var() keeps the first.
    for style in re.findall(r'style="([^"]*var\([^"]*)"', html):
        declarations = [d.split(":", 1) for d in style.split(";")]
        themed = [name for name, value in declarations if "var(" in value]
        plain = [name for name, value in declarations if "var(" not in value]
        assert all(any(p.startswith(name.split("-")[0]) for p in plain) for name in themed)


def test_display_bundle_and_repr(tables: str) -> None:
    plan = explain(tables, JOIN)
    bundle = plan._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", MIME_TYPE}
    # nbformat wants a JSON mime type's data to be an object.
    assert isinstance(bundle[MIME_TYPE], dict) and "Plan" in bundle[MIME_TYPE]["plan"]
    # What the JupyterLab renderer draws: the HTML's rows and cells, as data.
    view = bundle[MIME_TYPE]["view"]
    assert view["columns"][0] == "node" and view["summary"] == plan.summary()
    assert [n["title"] for n in view["nodes"]] == [n.title for n in plan.nodes]
    assert view["nodes"][0]["depth"] == 0 and max(n["depth"] for n in view["nodes"]) >= 1
    assert all(len(n["cells"]) == len(view["columns"]) - 1 for n in view["nodes"])
    assert "Plans" not in view["nodes"][0]["hover"] and view["nodes"][0]["hover"]
    json.dumps(view)  # a mime bundle must be JSON
    assert bundle["text/plain"] == plan.text == str(plan)
    assert repr(plan).startswith("<Plan: HashAggregate") and "nodes>" in repr(plan)
    summary = plan.summary()
    assert summary[0].startswith("Planning: ") and "Execution: " in summary[0]


def test_triggers_jit_and_settings_at_the_bottom() -> None:
    top = {
        "Plan": {"Node Type": "ModifyTable", "Operation": "Insert", "Relation Name": "t",
                 "Schema": "public", "Alias": "t", "Plan Rows": 0, "Actual Rows": 0,
                 "Actual Loops": 1, "Actual Total Time": 2.0, "Plans": []},
        "Planning Time": 0.1, "Execution Time": 2.5,
        "Triggers": [{"Trigger Name": "audit", "Relation": "t", "Time": 1.25, "Calls": 3}],
        "JIT": {"Functions": 4, "Timing": {"Generation": 0.5, "Total": 1.5}},
        "Settings": {"work_mem": "1MB"},
    }  # fmt: skip
    plan = Plan([top], notes=["rolled back: EXPLAIN ANALYZE of a statement that writes"])
    assert plan.root.title == "Insert on public.t"
    assert plan.summary() == [
        "Planning: 0.100 ms · Execution: 2.50 ms",
        "Trigger audit on t: 1.25 ms, calls 3",
        "JIT: 4 functions, 1.50 ms (generation 0.500 ms)",
        "Settings: work_mem = '1MB'",
        "rolled back: EXPLAIN ANALYZE of a statement that writes",
    ]


@pytest.mark.parametrize(
    "value",
    [[], {}, "not json", [{"Plan": []}], [{"Plan": {}}, {"Plan": {}}], 42],
)
def test_what_is_not_a_plan_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        Plan(value)


@pytest.mark.parametrize(
    ("analyze", "version", "expected"),
    [
        (False, 11, "EXPLAIN (VERBOSE, FORMAT JSON) "),
        (False, 12, "EXPLAIN (VERBOSE, SETTINGS, FORMAT JSON) "),
        (True, 12, "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON) "),
        (True, 18, "EXPLAIN (ANALYZE, BUFFERS, WAL, VERBOSE, SETTINGS, FORMAT JSON) "),
    ],
)
def test_explain_options_follow_the_server_version(
    analyze: bool, version: int, expected: str
) -> None:
    assert prefix(analyze=analyze, version=version) == expected


@pytest.mark.parametrize(
    ("query", "settings", "title"),
    [
        ("SELECT * FROM plan_t.customers ORDER BY id DESC LIMIT 2", SERIAL,
         "Index Scan Backward using customers_pkey on plan_t.customers"),
        ("SELECT * FROM plan_t.orders WHERE customer_id = 5", SERIAL,
         "Bitmap Index Scan on orders_customer_id_idx"),
        ("SELECT * FROM plan_t.customers c LEFT JOIN plan_t.orders o ON o.customer_id = c.id",
         SERIAL, "Hash Right Join"),
        ("SELECT * FROM plan_t.customers c WHERE NOT EXISTS "
         "(SELECT FROM plan_t.orders o WHERE o.customer_id = c.id)", SERIAL, " Anti Join"),
        ("SELECT id FROM plan_t.customers INTERSECT SELECT customer_id FROM plan_t.orders",
         [*SERIAL, "SET enable_sort = off"], "HashSetOp Intersect"),
        ("SELECT * FROM (SELECT id, random() AS r FROM plan_t.customers OFFSET 0) s WHERE r > 2",
         SERIAL, "Subquery Scan on s"),
        ("SELECT * FROM (VALUES (1), (2)) v(x) WHERE x > 1", SERIAL, 'Values Scan on "*VALUES*"'),
        ("SELECT * FROM generate_series(1, 10) g", SERIAL,
         "Function Scan on pg_catalog.generate_series g"),
        ("SELECT k, count(*) FROM plan_t.orders GROUP BY k", SERIAL, "HashAggregate"),
    ],
)  # fmt: skip
def test_nodes_are_named_as_explain_names_them(
    tables: str, query: str, settings: list[str], title: str
) -> None:
    plan = explain(tables, query, settings)
    assert any(title in n.title for n in plan.nodes), plan.text


def test_a_node_that_never_ran_says_so(tables: str) -> None:
    plan = explain(
        tables,
        "SELECT * FROM plan_t.customers c JOIN plan_t.orders o ON o.customer_id = c.id "
        "WHERE c.id < 0",
        [*SERIAL, "SET enable_hashjoin = off", "SET enable_mergejoin = off"],
    )
    idle = [n for n in plan.nodes if n.loops == 0]
    assert idle and all(n.misestimate is None and n.exclusive == 0 for n in idle)
    assert "never executed" in plan.text
    html = plan.html()
    # Every row has the header's number of cells, a node that never ran too.
    cells = [row.count("<td") for row in re.findall(r"<tr[^>]*>.*?</tr>", html)[1:]]
    assert set(cells) == {len(re.findall(r"<th[ >]", html))}
