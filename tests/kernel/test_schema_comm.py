"""The panel's Schema view, kernel side: ``schema`` and ``columns`` requests on the comm."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.kernels import Kernel, Recorder, comm_msg

_ids = itertools.count(1)


@pytest.fixture
def panel(sql: Any) -> Iterator[tuple[Recorder, str, str]]:
    """A kernel with pgmagic loaded, its panel comm, and a fresh schema of related tables."""
    schema = f"Shop_{uuid.uuid4().hex[:8]}"
    for statement in (
        f'CREATE SCHEMA "{schema}"',
        f'CREATE TABLE "{schema}".customers (id int PRIMARY KEY, name text NOT NULL)',
        f'CREATE TABLE "{schema}"."Orders" (order_id bigint PRIMARY KEY,'
        f' customer_id int REFERENCES "{schema}".customers (id), total numeric(10, 2))',
        f'CREATE VIEW "{schema}".big_orders AS SELECT * FROM "{schema}"."Orders" WHERE total > 100',
        f'INSERT INTO "{schema}".customers SELECT g, g::text FROM generate_series(1, 500) g',
        f'ANALYZE "{schema}".customers',
        f'CREATE TABLE "{schema}".events (at date) PARTITION BY RANGE (at)',
        f'CREATE TABLE "{schema}".events_2026 PARTITION OF "{schema}".events'
        " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        f'CREATE MATERIALIZED VIEW "{schema}".totals AS SELECT count(*) FROM "{schema}".customers',
    ):
        sql(statement)
    with Kernel() as kernel:
        recorder = Recorder(kernel)
        recorder.run("%load_ext pgmagic")
        mark = recorder.mark()
        comm_id = recorder.comm_open()
        recorder.wait_for(mark, comm_msg(comm_id, lambda d: d["type"] == "snapshot"))
        yield recorder, comm_id, schema
        recorder.stop()
    sql(f'DROP SCHEMA "{schema}" CASCADE')


def ask(recorder: Recorder, comm_id: str, request: dict[str, Any]) -> dict[str, Any]:
    """Send a request with a fresh id and give the reply that carries it."""
    ident = next(_ids)
    mark = recorder.mark()
    recorder.comm_send(comm_id, {**request, "id": ident})
    _, msg = recorder.wait_for(mark, comm_msg(comm_id, lambda d: d.get("id") == ident), 30)
    reply: dict[str, Any] = msg["content"]["data"]
    return reply


def test_schema_lists_tables_views_and_mixed_case_names(
    panel: tuple[Recorder, str, str], dsn: str
) -> None:
    recorder, comm_id, schema = panel
    started = time.perf_counter()
    reply = ask(recorder, comm_id, {"type": "schema"})
    print(f"schema reply in {time.perf_counter() - started:.3f} s")
    assert reply["type"] == "schema"
    assert reply["database"] and reply["user"]
    names = [s["name"] for s in reply["schemas"]]
    assert schema in names and "public" in names
    assert not [n for n in names if n.startswith("pg_") or n == "information_schema"]
    mine = {r["name"]: r for s in reply["schemas"] if s["name"] == schema for r in s["relations"]}
    # The partition is left out: its parent stands for it.
    assert sorted(mine) == ["Orders", "big_orders", "customers", "events", "totals"]
    kinds = {name: relation["kind"] for name, relation in mine.items()}
    assert kinds == {
        "Orders": "table",
        "big_orders": "view",
        "customers": "table",
        "events": "partitioned table",
        "totals": "materialized view",
    }
    assert mine["customers"]["rows"] == 500
    assert mine["customers"]["bytes"] > 8192  # heap and the primary key's index
    assert mine["Orders"]["rows"] is None  # never analyzed
    assert mine["big_orders"]["bytes"] is None


def test_columns_mark_primary_and_foreign_keys(panel: tuple[Recorder, str, str]) -> None:
    recorder, comm_id, schema = panel
    reply = ask(recorder, comm_id, {"type": "columns", "schema": schema, "relation": "Orders"})
    assert reply["type"] == "columns"
    assert reply["columns"] == [
        {"name": "order_id", "type": "bigint", "nullable": False, "key": "PK", "references": None},
        {
            "name": "customer_id",
            "type": "integer",
            "nullable": True,
            "key": "FK",
            "references": f'"{schema}".customers(id)',
        },
        {
            "name": "total",
            "type": "numeric(10,2)",
            "nullable": True,
            "key": None,
            "references": None,
        },
    ]
    view = ask(recorder, comm_id, {"type": "columns", "schema": schema, "relation": "big_orders"})
    assert [c["name"] for c in view["columns"]] == ["order_id", "customer_id", "total"]


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"schema": "public", "relation": "no_such_table"}, "does not exist"),
        ({"schema": "public"}, "'schema' and 'relation'"),
    ],
)
def test_a_bad_columns_request_answers_one_line(
    panel: tuple[Recorder, str, str], request_fields: dict[str, Any], message: str
) -> None:
    recorder, comm_id, _ = panel
    reply = ask(recorder, comm_id, {"type": "columns", **request_fields})
    assert reply["type"] == "error"
    assert message in reply["message"]
    assert "\n" not in reply["message"] and "Traceback" not in reply["message"]
    # The comm still serves requests after an error.
    assert ask(recorder, comm_id, {"type": "schema"})["type"] == "schema"


def catalog_changes(recorder: Recorder, comm_id: str, mark: int) -> int:
    test = comm_msg(comm_id, lambda d: d["type"] == "catalog-changed")
    return sum(1 for _, msg in recorder.since(mark) if test(msg))


@pytest.mark.parametrize(
    ("cell", "changes"),
    [
        ("%%pg\nCREATE TABLE {schema}.added (id int);\nDROP TABLE {schema}.added", 1),
        ("%pg -q ALTER TABLE {schema}.customers ADD COLUMN note text", 1),
        ("%pg -q SELECT count(*) FROM {schema}.customers", 0),
        ("x = 1", 0),
    ],
)
def test_a_cell_that_runs_ddl_tells_the_front_end(
    panel: tuple[Recorder, str, str], cell: str, changes: int
) -> None:
    recorder, comm_id, schema = panel
    mark = recorder.mark()
    recorder.run(cell.format(schema=f'"{schema}"'))
    if changes:
        recorder.wait_for(mark, comm_msg(comm_id, lambda d: d["type"] == "catalog-changed"))
    else:
        # The message would leave at the end of the cell, before its idle status.
        recorder.run("pass")
    assert catalog_changes(recorder, comm_id, mark) == changes
    # What the front end then reads shows the change.
    columns = ask(recorder, comm_id, {"type": "columns", "schema": schema, "relation": "customers"})
    assert ("note" in [c["name"] for c in columns["columns"]]) == ("ADD COLUMN" in cell)
