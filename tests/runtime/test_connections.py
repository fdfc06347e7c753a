"""Named connections without IPython: one loop thread, a runtime per name, closing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from pgmagic.errors import ConnectError, OptionError
from pgmagic.runtime.connections import Connections, is_name
from pgmagic.runtime.dsn import resolve
from pgmagic.runtime.loop import Runtime


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pgmagic-runtime" and t.is_alive()]


async def _database(runtime: Runtime) -> str:
    conn = await (await runtime.session()).ensure_connected()
    return str(await conn.fetchval("SELECT current_database()"))


@pytest.fixture
def connections(dsn: str) -> Iterator[Connections]:
    registry = Connections()
    registry.open(None, dsn)
    try:
        yield registry
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prod", True),
        ("dev_2", True),
        ("eu-west", True),
        ("_x", True),
        ("2nd", False),
        ("host=db", False),
        ("postgresql://h/db", False),
        ("$dsn", False),
        ("", False),
    ],
)
def test_is_name(text: str, expected: bool) -> None:
    assert is_name(text) is expected


def test_runtimes_share_one_loop_thread(connections: Connections, dsn: str) -> None:
    before = len(_loop_threads())
    for name in ("a", "b", "c"):
        connections.open(name, dsn)
    assert len(_loop_threads()) == before
    loops = {runtime.loop for runtime in connections.runtimes()}
    assert len(loops) == 1
    assert connections.names()[1:] == ["a", "b", "c"]
    assert connections.current is connections.get("c")


def test_closing_a_name_keeps_the_loop_and_the_others(connections: Connections, dsn: str) -> None:
    first = connections.current
    second = connections.open("second", dsn)
    assert connections.close_one("second") is first  # the default is current again
    assert second.closed and not first.closed
    assert second.loop.is_running()
    assert first.run(_database(first))
    with pytest.raises(OptionError, match="no connection named 'second'"):
        connections.get("second")


def test_closing_the_registry_stops_the_loop(dsn: str) -> None:
    registry = Connections()
    named = registry.open("x", dsn)
    loop = named.loop
    registry.close()
    assert registry.closed and named.closed and registry.default.closed
    assert not loop.is_running() and loop.is_closed()
    registry.close()  # twice is harmless


def test_a_runtime_of_its_own_stops_its_own_loop() -> None:
    runtime = Runtime()
    loop = runtime.loop
    runtime.close()
    assert loop.is_closed()


def test_a_failed_open_changes_nothing(connections: Connections, dsn: str) -> None:
    kept = connections.open("kept", dsn)
    bad = "postgresql://me:hunter2-named@127.0.0.1:1/nodb"
    for name in ("kept", "new"):
        with pytest.raises(ConnectError) as caught:
            connections.open(name, bad)
        assert "hunter2-named" not in str(caught.value)
    assert connections.current is kept
    assert "new" not in connections.names()
    assert kept.run(_database(kept))


@pytest.mark.parametrize("name", ["embedded", "2x", "a b"])
def test_names_that_cannot_be_given(connections: Connections, dsn: str, name: str) -> None:
    with pytest.raises(OptionError, match="cannot name a connection"):
        connections.open(name, dsn)


def test_default_is_the_default_connections_other_name(connections: Connections) -> None:
    assert connections.get("default") is connections.default
    assert connections.use("default") is connections.default


def test_the_default_connection_is_disconnected_not_removed(
    connections: Connections, dsn: str
) -> None:
    runtime = connections.default
    assert runtime.run(_database(runtime))
    assert connections.close_one(runtime.connection_name()) is runtime
    assert runtime.session_if_open() is None and not runtime.closed
    assert runtime.run(_database(runtime))  # reconnects when next used


def test_connection_names(connections: Connections, dsn: str) -> None:
    named = connections.open("named", dsn)
    assert named.connection_name() == "named"
    assert "named" in repr(named) and "named" in repr(connections)
    unnamed = Runtime()
    try:
        expected = "embedded" if resolve(None).embedded else "default"
        assert unnamed.connection_name() == expected  # named before it connects
        unnamed.set_target(dsn)  # a URL, even to the embedded server's socket
        assert unnamed.connection_name() == "default"
    finally:
        unnamed.close()


def test_history_records_the_connection_name(connections: Connections, dsn: str) -> None:
    named = connections.open("hist", dsn)

    async def go() -> None:
        conn = await (await named.session()).ensure_connected()
        with named.history.recording().start("SELECT 'named'"):
            await conn.fetchval("SELECT 'named'")

    named.run(go())
    named.history.flush()
    [entry] = [e for e in named.history.read() if e.sql == "SELECT 'named'"]
    assert entry.connection == "hist"


def test_pgservice_picks_the_default_connections_target(
    dsn: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.frontend.test_connections import service_file

    for key, value in service_file(tmp_path, "svc_env", dsn, "template1").items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PGMAGIC_DSN", raising=False)
    monkeypatch.setenv("PGSERVICE", "svc_env")
    registry = Connections()
    try:
        runtime = registry.current
        assert runtime.run(_database(runtime)) == "template1"
        assert runtime.connection_name() == "default"
        assert "service=svc_env" in runtime.describe_target()
    finally:
        registry.close()


def test_a_named_runtime_closed_directly_is_forgotten(connections: Connections, dsn: str) -> None:
    named = connections.open("direct", dsn)
    named.close()
    assert connections.current is connections.default
    assert "direct" not in connections.names()
