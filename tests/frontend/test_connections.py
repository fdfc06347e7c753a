"""Named connections through a real IPython shell: two databases on the test server.

``%pg connect NAME DSN``, ``%%pg @NAME`` and ``--conn NAME``, ``%pg use``,
``%pg connections`` and ``%pg close``, checked against what the server sees
(``pg_stat_activity``), not what pgmagic says of itself.
"""

from __future__ import annotations

import _thread
import asyncio
import re
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pgmagic.errors import QueryCancelled
from pgmagic.runtime.connections import default_connections
from tests.conftest import run_sql
from tests.shell import fails, run


@pytest.fixture
def two(ip: Any, second: tuple[str, str], capsys: Any) -> str:
    """A shell with the connection ``two`` on the second database, current; its name."""
    ip.user_ns["two_dsn"] = second[1]
    run(ip, "%pg connect two $two_dsn")
    out = capsys.readouterr().out
    assert out.startswith("two: connected to ") and f"database {second[0]}" in out
    return second[0]


def backends(dsn: str, database: str) -> list[Any]:
    """pgmagic's backends on ``database``, as the server lists them."""
    return run_sql(
        dsn,
        "SELECT pid, state, query FROM pg_stat_activity "
        "WHERE datname = $1 AND application_name = 'pgmagic'",
        database,
    )


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_cells_run_on_the_current_connection(ip: Any, two: str, dsn: str) -> None:
    first = run_sql(dsn, "SELECT current_database()")[0][0]
    assert run(ip, "%pg --scalar SELECT current_database()") == two
    assert run(ip, "%pg @default --scalar SELECT current_database()") == first
    assert run(ip, "%pg --scalar SELECT current_database()") == two  # @ was for one call


# (cell, the connection it runs on: "two" or the default)
FORMS = [
    ("%%pg @default --scalar\nSELECT current_database()", "default"),
    ("%%pg --conn default --scalar\nSELECT current_database()", "default"),
    ("%%pg --scalar --conn=default\nSELECT current_database()", "default"),
    ("%pg @default --scalar SELECT current_database()", "default"),
    ("%pg --conn default --scalar SELECT current_database()", "default"),
    ("%pg @two --scalar SELECT current_database()", "two"),
    ("%%pg @two\nSELECT current_database() AS db", "two"),
    ("%pg @default -o where_db --scalar SELECT current_database()", "default"),
]


@pytest.mark.parametrize(("cell", "where"), FORMS)
def test_a_call_names_its_connection(ip: Any, two: str, dsn: str, cell: str, where: str) -> None:
    run(ip, "%pg use default")
    value = run(ip, cell)
    if isinstance(value, pd.DataFrame):
        value = value["db"].iloc[0]
    first = run_sql(dsn, "SELECT current_database()")[0][0]
    assert value == (two if where == "two" else first)


def test_use_changes_the_default_for_later_cells(ip: Any, two: str, capsys: Any) -> None:
    default = default_connections(create=False)
    assert default is not None
    name = default.default.connection_name()
    run(ip, f"%pg use {name}")
    assert capsys.readouterr().out.startswith(f"using {name} (")
    assert run(ip, "%pg --scalar SELECT current_database()") != two
    run(ip, "%pg connect two")  # a lone name switches, as psql's \c does
    assert run(ip, "%pg --scalar SELECT current_database()") == two


def test_session_state_is_per_connection(ip: Any, dsn: str) -> None:
    # Two names on one database: still two sessions.
    ip.user_ns["same_dsn"] = dsn
    run(ip, "%pg connect same $same_dsn")
    run(ip, "%pg CREATE TEMP TABLE only_on_same (a int)")
    assert run(ip, "%pg --scalar SELECT to_regclass('pg_temp.only_on_same') IS NOT NULL")
    assert not run(
        ip, "%pg @default --scalar SELECT to_regclass('pg_temp.only_on_same') IS NOT NULL"
    )
    run(ip, "%pg @default BEGIN")
    assert run(ip, "%pg --scalar SELECT 1") == 1  # same's session is not in that transaction
    frame = run(ip, "%pg connections").set_index("name")
    name = default_connections(create=False).default.connection_name()  # type: ignore[union-attr]
    assert frame.loc[name, "transaction"] == "in transaction"
    assert frame.loc["same", "transaction"] == "idle"
    fails(ip, "%pg @default SELECT 1 / 0")
    frame = run(ip, "%pg connections").set_index("name")
    assert frame.loc[name, "transaction"] == "failed (ROLLBACK needed)"
    assert frame.loc["same", "transaction"] == "idle"
    run(ip, "%pg @default ROLLBACK")


def test_connections_lists_every_connection(ip: Any, two: str, second: Any, capsys: Any) -> None:
    frame = run(ip, "%pg connections")
    out = capsys.readouterr().out
    assert list(frame.columns) == [
        "name",
        "target",
        "server",
        "database",
        "user",
        "backend pid",
        "transaction",
        "current",
    ]
    rows = frame.set_index("name")
    assert rows.loc["two", "current"] == "*" and rows.loc["two", "database"] == two
    assert rows.loc["two", "server"].startswith("PostgreSQL ")
    assert rows.loc["two", "transaction"] == "idle"
    pid = rows.loc["two", "backend pid"]
    assert pid in [row["pid"] for row in backends(second[1], two)]
    assert "two" in out and "backend pid" in out  # shown as a table too


def test_connections_hide_passwords(ip: Any, dsn: str, capsys: Any) -> None:
    parts = urllib.parse.urlsplit(dsn)
    if parts.password or parts.username is None:
        pytest.skip("needs a server that trusts the test's role (the embedded one)")
    # The embedded server trusts local connections, so the password is ignored.
    netloc = f"{parts.username}:hunter2-named@{parts.netloc.rsplit('@', 1)[-1]}"
    ip.user_ns["secret_dsn"] = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    run(ip, "%pg connect secret $secret_dsn")
    frame = run(ip, "%pg connections")
    run(ip, "%pg use secret")
    run(ip, "%pg close secret")
    out = capsys.readouterr().out
    assert "hunter2" not in out and "hunter2" not in frame.to_string()
    assert ":***@" in frame.set_index("name").loc["secret", "target"]


def test_close_leaves_no_backend(ip: Any, two: str, second: Any, capsys: Any) -> None:
    run(ip, "%pg @two SELECT 1")
    run(ip, "%pg listen two_events")  # the listener's connection too
    wait_until(lambda: len(backends(second[1], two)) >= 2)
    capsys.readouterr()
    run(ip, "%pg close two")
    out = capsys.readouterr().out
    name = default_connections(create=False).default.connection_name()  # type: ignore[union-attr]
    assert out.startswith(f"closed two; using {name} (")
    wait_until(lambda: not backends(second[1], two))
    assert run(ip, "%pg --scalar SELECT current_database()") != two
    assert "two" not in run(ip, "%pg connections")["name"].tolist()


# (cell, what its one line says)
MISTAKES = [
    ("%pg @nope SELECT 1", "no connection named 'nope'; connections: "),
    ("%pg --conn nope SELECT 1", "no connection named 'nope'; connections: "),
    ("%%pg @nope\nSELECT 1", "no connection named 'nope'; connections: "),
    ("%pg use nope", "no connection named 'nope'; connections: "),
    ("%pg close nope", "no connection named 'nope'; connections: "),
    ("%pg connect nope", "no connection named 'nope'; connections: "),
    ("%pg @ SELECT 1", "@ needs a connection name"),
    ("%pg @2x SELECT 1", "@ needs a connection name"),
    ("%pg @two --conn default SELECT 1", "two connections named"),
    ("%pg use", "usage: %pg use NAME"),
    ("%pg use a b", "usage: %pg use NAME"),
    ("%pg close", "usage: %pg close NAME"),
    ("%pg connections now", "takes no arguments"),
    ("%pg connect two --bogus", "unknown option --bogus"),
    ("%pg connect two postgresql://u@h/db extra", "unexpected text after the DSN"),
]


@pytest.mark.parametrize(("cell", "message"), MISTAKES)
def test_mistakes_are_one_line(ip: Any, two: str, capsys: Any, cell: str, message: str) -> None:
    _error, out = fails(ip, cell, capsys)
    assert message in out and len(out.strip().splitlines()) == 1, out
    assert "Traceback" not in out


def test_closing_the_default_connection_disconnects_it(ip: Any, two: str, capsys: Any) -> None:
    name = default_connections(create=False).default.connection_name()  # type: ignore[union-attr]
    run(ip, "%pg @default SELECT 1")
    capsys.readouterr()
    for closed in (name, "default"):
        run(ip, f"%pg close {closed}")
        assert capsys.readouterr().out == f"{name}: disconnected; the next statement reconnects\n"
    listed = run(ip, "%pg connections").set_index("name")
    assert listed.loc[name, "server"] == "not connected" and listed.loc["two", "current"] == "*"
    assert run(ip, "%pg @default --scalar SELECT 1") == 1  # and it reconnects


def test_psql_commands_follow_the_named_connection(ip: Any, two: str) -> None:
    run(ip, "%pg -q CREATE TABLE IF NOT EXISTS listed_on_two (a int)")
    run(ip, "%pg use default")
    assert "listed_on_two" in run(ip, "%pg @two \\dt").to_string()
    listed = run(ip, "%pg \\dt")
    assert listed is None or "listed_on_two" not in listed.to_string()
    cell = run(ip, "%%pg @two\n\\dt listed_on_two\nSELECT current_database() AS db")
    assert cell["db"].iloc[0] == two


def test_status_names_the_connection(ip: Any, two: str, capsys: Any) -> None:
    capsys.readouterr()
    run(ip, "%pg @default status")
    run(ip, "%pg status")
    default, named = capsys.readouterr().out.split("\nconnection ")
    name = default_connections(create=False).default.connection_name()  # type: ignore[union-attr]
    assert default.split()[:2] == ["connection", name]
    assert named.split()[0] == "two" and re.search(rf"\ndatabase +{two}\n", named)


def test_sql_close_on_a_line_says_where_it_goes(ip: Any, capsys: Any) -> None:
    _error, out = fails(ip, "%pg CLOSE my_cursor", capsys)
    assert "no connection named 'my_cursor'" in out and "run it in a %%pg cell" in out


def test_the_known_names_are_listed(ip: Any, two: str, capsys: Any) -> None:
    _error, out = fails(ip, "%pg @nope SELECT 1", capsys)
    name = default_connections(create=False).default.connection_name()  # type: ignore[union-attr]
    assert out.strip().endswith(f"connections: {name}, two")


def test_a_failed_connect_keeps_the_old_connection(ip: Any, two: str, capsys: Any) -> None:
    bad = "postgresql://me:hunter2-named@127.0.0.1:1/nodb"
    for line in (f"%pg connect two {bad}", f"%pg connect three {bad}"):
        _error, out = fails(ip, line, capsys)
        assert "cannot connect" in out and "hunter2" not in out
    assert run(ip, "%pg --scalar SELECT current_database()") == two  # two, still current
    assert "three" not in run(ip, "%pg connections")["name"].tolist()


def test_interrupting_a_named_cell_cancels_on_its_server(ip: Any, two: str, second: Any) -> None:
    run(ip, "%pg use default")
    timer = threading.Timer(0.8, _thread.interrupt_main)
    timer.start()
    started = time.monotonic()
    try:
        error, _ = fails(ip, "%%pg @two\nSELECT pg_sleep(30), 'named_cancel'")
    finally:
        timer.cancel()
    assert isinstance(error, QueryCancelled)
    assert time.monotonic() - started < 10
    wait_until(
        lambda: (
            not [
                row
                for row in backends(second[1], two)
                if row["state"] == "active" and "named_cancel" in row["query"]
            ]
        )
    )
    assert run(ip, "%pg @two --scalar SELECT current_database()") == two


def test_the_history_names_the_connection(ip: Any, two: str) -> None:
    run(ip, "%pg @two SELECT 'on_two'")
    run(ip, "%pg @default SELECT 'on_default'")
    frame = run(ip, "%pg history -n 50")
    where = dict(zip(frame["sql"], frame["connection"], strict=True))
    name = default_connections(create=False).default.connection_name()  # type: ignore[union-attr]
    assert (where["SELECT 'on_two'"], where["SELECT 'on_default'"]) == ("two", name)


def _loop_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "pgmagic-runtime" and t.is_alive()]


def test_one_loop_thread_and_unload_closes_everything(ip: Any, second: Any, dsn: str) -> None:
    ip.user_ns["two_dsn"] = second[1]
    for name in ("a", "b", "c"):
        run(ip, f"%pg connect {name} $two_dsn")
        run(ip, f"%pg @{name} SELECT 1")
    assert len(_loop_threads()) == 1
    assert len(backends(dsn, second[0])) >= 3
    ip.run_line_magic("unload_ext", "pgmagic")
    try:
        wait_until(lambda: not backends(dsn, second[0]))
        assert _loop_threads() == []
    finally:
        ip.run_line_magic("load_ext", "pgmagic")


def test_the_python_api_uses_the_current_connection(ip: Any, two: str) -> None:
    import pgmagic

    assert asyncio.run(pgmagic.fetchval("SELECT current_database()")) == two


def service_file(folder: Path, name: str, dsn: str, database: str) -> dict[str, str]:
    """Write a service file (and a password file) for ``database``; the variables to set."""
    parts = urllib.parse.urlsplit(dsn)
    query = dict(urllib.parse.parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or "localhost"
    port = query.get("port") or str(parts.port or 5432)
    lines = [f"[{name}]", f"host={host}", f"port={port}", f"dbname={database}"]
    if parts.username:
        lines.append(f"user={parts.username}")
    if "sslmode" in query:
        lines.append(f"sslmode={query['sslmode']}")
    (folder / "pg_service.conf").write_text("\n".join(lines) + "\n")
    env = {"PGSERVICEFILE": str(folder / "pg_service.conf")}
    if parts.password:
        # The secret lives in the password file, as it should outside tests.
        password = urllib.parse.unquote(parts.password)
        passfile = folder / "pgpass"
        passfile.write_text(f"{host}:{port}:{database}:{parts.username}:{password}\n")
        passfile.chmod(0o600)
        env["PGPASSFILE"] = str(passfile)
    return env


@pytest.mark.parametrize(
    "form",
    ["service=svc_two", "postgresql:///?service=svc_two", '"postgresql://?service=svc_two"'],
)
def test_a_service_names_the_connection(
    ip: Any,
    second: Any,
    dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    form: str,
) -> None:
    for key, value in service_file(tmp_path, "svc_two", dsn, second[0]).items():
        monkeypatch.setenv(key, value)
    run(ip, f"%pg connect svc {form}")
    assert "service=svc_two" in capsys.readouterr().out
    assert run(ip, "%pg --scalar SELECT current_database()") == second[0]


def test_an_unknown_service_is_one_line(
    ip: Any, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for key, value in service_file(tmp_path, "svc_known", dsn, "postgres").items():
        monkeypatch.setenv(key, value)
    _error, out = fails(ip, "%pg connect svc service=svc_unknown", capsys)
    assert "service 'svc_unknown' is not defined in " in out
    assert len(out.strip().splitlines()) == 1


def test_declared_connections_open_when_named(
    ip: Any, second: Any, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    if urllib.parse.urlsplit(second[1]).password:
        pytest.skip("a declaration holds no password; the test server needs one")
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.pgmagic.connections]\nsales = {second[1]!r}\nlater = 'service=later'\n"
    )
    monkeypatch.chdir(tmp_path)
    listed = run(ip, "%pg connections").set_index("name")
    assert "declared in" in listed.loc["sales", "server"]
    assert listed.loc["later", "target"] == "postgresql://?service=later"
    first = run(ip, "%pg --scalar SELECT current_database()")
    assert run(ip, "%pg @sales --scalar SELECT current_database()") == second[0]
    assert run(ip, "%pg --scalar SELECT current_database()") == first  # @ opened, not switched
    _error, out = fails(ip, "%pg @nope SELECT 1", capsys)
    assert f"declared in {tmp_path / 'pyproject.toml'}: sales, later" in out
    run(ip, "%pg connect sales")
    assert run(ip, "%pg --scalar SELECT current_database()") == second[0]
    assert run(ip, "%pg connections").set_index("name").loc["sales", "current"] == "*"


def test_a_watch_runs_on_its_connection_and_stop_ends_it(ip: Any, two: str, capsys: Any) -> None:
    run(ip, "%%pg @default --watch 0.2\nSELECT 'watch_on_default' AS w")
    run(ip, "%%pg --watch 0.2\nSELECT 'watch_on_two' AS w")
    run(ip, "%pg use default")

    def ran() -> dict[str, set[str]]:
        frame = run(ip, "%pg history -n 200 watch_on_")
        return {
            s: set(frame[frame["sql"].str.contains(s)]["connection"]) for s in ("default", "two")
        }

    wait_until(lambda: all(ran().values()))
    name = default_connections(create=False).default.connection_name()  # type: ignore[union-attr]
    assert ran() == {"default": {name}, "two": {"two"}}
    capsys.readouterr()
    run(ip, "%pg stop")  # every connection's
    assert capsys.readouterr().out.endswith("stopped 2 refreshes\n")


def test_listen_dsn_is_the_default_connections_only(ip: Any, two: str) -> None:
    from pgmagic.live.listener import listener_for

    connections = default_connections(create=False)
    assert connections is not None
    run(ip, "%config PgMagics.listen_dsn = 'postgresql://me@direct.example.com/app'")
    run(ip, "%pg connect three $two_dsn")  # configured as it opens
    defaults = {r.connection_name(): listener_for(r).default_dsn for r in connections.runtimes()}
    name = connections.default.connection_name()
    assert defaults == {name: "postgresql://me@direct.example.com/app", "two": None, "three": None}
