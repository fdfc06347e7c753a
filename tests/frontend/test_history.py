"""The query history through a real IPython shell: every path records, ``%pg history`` reads."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pgmagic
from pgmagic.errors import OptionError, QueryCancelled
from pgmagic.frontend import tables
from pgmagic.frontend.magics import PgMagics
from pgmagic.runtime.connections import default_runtime
from pgmagic.runtime.history import Entry, Status
from tests.shell import fails, run


@pytest.fixture
def history_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A history of this test's own (read when the first statement is recorded)."""
    path = tmp_path / "history.sqlite3"
    monkeypatch.setenv("PGMAGIC_HISTORY_FILE", str(path))
    return path


@pytest.fixture
def shell(history_file: Path, ip: Any) -> Iterator[Any]:
    yield ip


def recorded() -> list[Entry]:
    runtime = default_runtime(create=False)
    assert runtime is not None
    return runtime.history.read()


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _sql(entries: list[Entry]) -> list[str]:
    return [e.sql for e in entries]


# (set-up cells, the cell, what it records: (sql, params, rows, status, sqlstate) per statement)
PATHS = [
    pytest.param(
        [],
        "%%pg\nCREATE TEMP TABLE h_three (a int);\n"
        "INSERT INTO h_three VALUES ($x), ($x);\nSELECT * FROM h_three",
        [
            ("CREATE TEMP TABLE h_three (a int)", (), None, Status.OK, None),
            ("INSERT INTO h_three VALUES ($x), ($x)", ("$x",), 2, Status.OK, None),
            ("SELECT * FROM h_three", (), 2, Status.OK, None),
        ],
        id="cell of three statements",
    ),
    pytest.param(
        [],
        "%pg SELECT $x::int AS v, $name::text AS n",
        [("SELECT $x::int AS v, $name::text AS n", ("$x", "$name"), 1, Status.OK, None)],
        id="%pg line",
    ),
    pytest.param(
        [],
        "%pg -p \"(1, 'secret value')\" SELECT $1::int AS a, $2::text AS b",
        [("SELECT $1::int AS a, $2::text AS b", ("$1", "$2"), 1, Status.OK, None)],
        id="positional",
    ),
    pytest.param(
        [],
        "%pg SELECT 1/0",
        [("SELECT 1/0", (), None, Status.ERROR, "22012")],
        id="error with SQLSTATE",
    ),
    pytest.param(
        [],
        "%%pg\nSELECT 1;\nSELECT no_such_column_h;\nSELECT 3",
        [
            ("SELECT 1", (), 1, Status.OK, None),
            ("SELECT no_such_column_h", (), None, Status.ERROR, "42703"),
        ],
        id="a cell stops at its error",
    ),
    pytest.param(
        [],
        "%pg ALTER ROLE no_such_role_h PASSWORD 'hunter2'",
        [("ALTER ROLE no_such_role_h PASSWORD '***'", (), None, Status.ERROR, "42704")],
        id="password redacted",
    ),
    pytest.param(
        [],
        "%pg SELECT 'host=db password=hunter2' AS conninfo",
        [("SELECT 'host=db password=***' AS conninfo", (), 1, Status.OK, None)],
        id="password in a string redacted",
    ),
    pytest.param(
        ["%pg CREATE TEMP TABLE h_many (a int)"],
        '%pg -q --many "[(1,), (2,), (3,)]" INSERT INTO h_many VALUES ($1)',
        [("INSERT INTO h_many VALUES ($1)", ("$1",), 3, Status.OK, None)],
        id="--many",
    ),
    pytest.param(
        [],
        "%pg -q --to {tmp}/h.csv SELECT g FROM generate_series(1, 4) g",
        [("SELECT g FROM generate_series(1, 4) g", (), 4, Status.OK, None)],
        id="--to csv",
    ),
    pytest.param(
        [],
        "%pg -q --to {tmp}/h.parquet SELECT g FROM generate_series(1, 6) g",
        [("SELECT g FROM generate_series(1, 6) g", (), 6, Status.OK, None)],
        id="--to parquet",
    ),
    pytest.param(
        [],
        "%pg -q -o s --stream --chunksize 2 SELECT g FROM generate_series(1, 5) g\n"
        "chunks = [len(df) for df in s]",
        [("SELECT g FROM generate_series(1, 5) g", (), 5, Status.OK, None)],
        id="--stream, recorded when it ends",
    ),
    pytest.param(
        ["frame = __import__('pandas').DataFrame({'a': [1, 2, 3]})"],
        "%pg load frame INTO h_loaded --create -q",
        [('COPY "h_loaded" ("a") FROM STDIN', (), 3, Status.OK, None)],
        id="load",
    ),
    pytest.param(
        [],
        "%pg \\dt h_no_such_*",
        [("\\dt h_no_such_*", (), 0, Status.OK, None)],
        id="psql command as typed",
    ),
    pytest.param(
        ["%pg CREATE TEMP TABLE h_explained (a int)"],
        "%%pg --explain-analyze\nINSERT INTO h_explained VALUES ($x)",
        [
            (
                "EXPLAIN (ANALYZE, BUFFERS, WAL, VERBOSE, SETTINGS, FORMAT JSON) "
                "INSERT INTO h_explained VALUES ($x)",
                ("$x",),
                1,
                Status.OK,
                None,
            )
        ],
        id="--explain-analyze: what ran, behind its EXPLAIN",
    ),
    pytest.param(
        [],
        "%pg notify h_channel hello",
        [("SELECT pg_notify($1, $2)", ("$1", "$2"), 1, Status.OK, None)],
        id="notify",
    ),
]


@pytest.mark.parametrize(("setup", "cell", "expected"), PATHS)
def test_each_path_records_its_statements(
    shell: Any, tmp_path: Path, setup: list[str], cell: str, expected: list[Any]
) -> None:
    shell.user_ns.update(x=7, name="Ada")
    for earlier in setup:
        run(shell, earlier)
    before = len(recorded())
    result = shell.run_cell(cell.replace("{tmp}", str(tmp_path)), store_history=True)
    entries = recorded()[before:]
    got = [(e.sql, e.params, e.rows, e.status, e.sqlstate) for e in entries]
    assert got == expected
    assert {e.cell for e in entries} <= {result.execution_count}
    assert all(e.connection and e.seconds >= 0 for e in entries)
    # Values never reach the history: not "Ada", not 7, not the -p value.
    text = history_file_text(shell)
    assert "secret value" not in text and "hunter2" not in text and "Ada" not in text


def history_file_text(shell: Any) -> str:
    runtime = default_runtime(create=False)
    assert runtime is not None
    runtime.history.flush()
    return runtime.history.path.read_bytes().decode("utf-8", "replace") + "".join(
        p.read_bytes().decode("utf-8", "replace") for p in runtime.history.path.parent.glob("*-wal")
    )


def test_cell_numbers_follow_the_prompt(shell: Any) -> None:
    first = shell.run_cell("%pg SELECT 'h_first'", store_history=True)
    second = shell.run_cell("%%pg\nSELECT 'h_second'", store_history=True)
    run(shell, "%pg SELECT 'h_not_stored'")  # store_history=False: no In [N]
    shell.run_line_magic("pg", "SELECT 'h_outside'")  # no cell at all
    numbers = {e.sql: e.cell for e in recorded()}
    assert numbers["SELECT 'h_first'"] == first.execution_count
    assert numbers["SELECT 'h_second'"] == second.execution_count == first.execution_count + 1
    assert numbers["SELECT 'h_not_stored'"] is None
    assert numbers["SELECT 'h_outside'"] is None


def test_the_python_api_records(shell: Any) -> None:
    async def go() -> None:
        await pgmagic.fetch("SELECT $n::int AS v", n=3)
        await pgmagic.execute("SELECT 1; SELECT 2", session=True)

    asyncio.run(go())
    got = [(e.sql, e.params, e.rows) for e in recorded()]
    assert got == [("SELECT $n::int AS v", ("$n",), 1), ("SELECT 1", (), 1), ("SELECT 2", (), 1)]


def test_an_interrupted_statement_is_recorded_cancelled(shell: Any) -> None:
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        error = fails(shell, "%pg SELECT pg_sleep(30), 'h_cancel'")[0]
    finally:
        timer.cancel()
    assert isinstance(error, QueryCancelled)
    [entry] = [e for e in recorded() if "h_cancel" in e.sql]
    assert entry.status is Status.CANCELLED and entry.rows is None
    assert entry.seconds < 10


def test_a_timeout_is_an_error_with_the_servers_sqlstate(shell: Any) -> None:
    run(shell, "%config PgMagics.command_timeout = 0.3")
    fails(shell, "%pg SELECT pg_sleep(5), 'h_timeout'")
    [entry] = [e for e in recorded() if "h_timeout" in e.sql]
    assert (entry.status, entry.sqlstate) == (Status.ERROR, "57014")


def test_watch_runs_are_recorded_under_the_cell_that_started_them(shell: Any) -> None:
    started = shell.run_cell("%%pg --watch 0.2\nSELECT 'h_watch' AS w", store_history=True)
    try:
        wait_for(lambda: sum("h_watch" in e.sql for e in recorded()) >= 3)
    finally:
        run(shell, "%pg stop")
    cells = {e.cell for e in recorded() if "h_watch" in e.sql}
    assert cells == {started.execution_count}


def test_history_off_records_nothing(shell: Any, capsys: Any) -> None:
    run(shell, "%config PgMagics.history = False")
    run(shell, "%pg SELECT 'h_off'")
    asyncio.run(pgmagic.fetch("SELECT 'h_off_api'"))
    capsys.readouterr()
    frame = run(shell, "%pg history")
    assert "the history is off" in capsys.readouterr().out
    assert frame.empty
    run(shell, "%config PgMagics.history = True")
    run(shell, "%pg SELECT 'h_on'")
    assert _sql(recorded()) == ["SELECT 'h_on'"]


def test_history_size_bounds_the_file(shell: Any) -> None:
    run(shell, "%config PgMagics.history_size = 3")
    for n in range(6):
        run(shell, f"%pg SELECT {n} AS h_bound")
    assert _sql(recorded()) == [f"SELECT {n} AS h_bound" for n in (3, 4, 5)]


def test_pg_history_shows_a_table_and_returns_the_frame(shell: Any, capsys: Any) -> None:
    run(shell, "%%pg\nSELECT 'orders' AS a;\nSELECT 2 AS b;\nSELECT 'ORDERS again' AS c")
    run(shell, "%pg SELECT 'more orders' AS d")
    frame = run(shell, "%pg history -n 2 orders")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "started",
        "cell",
        "sql",
        "params",
        "rows",
        "seconds",
        "status",
        "sqlstate",
        "connection",
        "pid",
        "kernel",
    ]
    # Newest last, case ignored.
    assert frame["sql"].tolist() == ["SELECT 'ORDERS again' AS c", "SELECT 'more orders' AS d"]
    assert str(frame.dtypes["started"]).startswith("datetime64") and "UTC" in str(
        frame.dtypes["started"]
    )
    assert frame["rows"].tolist() == [1, 1]
    assert tables.info_for(frame) is not None
    formatted, _ = shell.display_formatter.format(frame)
    assert "2 rows × 11 columns" in formatted["text/plain"]
    assert "more orders" in formatted["text/html"]
    everything = run(shell, "%pg history")
    assert len(everything) == 4
    assert run(shell, "%pg history --all -n 1")["sql"].tolist() == ["SELECT 'more orders' AS d"]


def test_pg_history_clear(shell: Any, capsys: Any) -> None:
    run(shell, "%pg SELECT 'h_clear'")
    capsys.readouterr()
    assert run(shell, "%pg history --clear") is None
    assert capsys.readouterr().out == "forgot 1 statement\n"
    assert recorded() == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%pg history -x", "unknown option -x for %pg history"),
        ("%pg history -n", "-n needs a number of statements, at least 1, got ''"),
        ("%pg history -n 0", "-n needs a number of statements, at least 1, got '0'"),
        ("%pg history -n two", "-n needs a number of statements, at least 1, got 'two'"),
        ("%pg history --clear orders", "--clear takes only --all"),
    ],
)
def test_bad_options_are_one_line(shell: Any, line: str, message: str) -> None:
    error = fails(shell, line)[0]
    assert isinstance(error, OptionError)
    assert str(error).startswith(message)
    assert "\n" not in str(error)


def test_help_lists_history(shell: Any, capsys: Any) -> None:
    assert "%pg history [-n N]" in (PgMagics.pg.__doc__ or "")
    run(shell, "%pg help")
    assert "%pg history [-n N]" in capsys.readouterr().out


def status_of_history(shell: Any, capsys: Any) -> str:
    capsys.readouterr()
    run(shell, "%pg status")
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.strip().splitlines())
    return lines["history"]


def test_status_says_where_the_history_is(shell: Any, history_file: Path, capsys: Any) -> None:
    assert status_of_history(shell, capsys) == str(history_file)
    run(shell, "%config PgMagics.history = False")
    assert status_of_history(shell, capsys).startswith("off")


def test_an_unwritable_folder_costs_one_line_and_cells_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ip: Any, capsys: Any
) -> None:
    # A file where the folder should be: unwritable even for root.
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("PGMAGIC_HISTORY_FILE", str(tmp_path / "not-a-folder" / "h.sqlite3"))
    outputs = []
    for n in range(3):
        capsys.readouterr()
        assert run(ip, f"%pg SELECT {n} AS h_readonly")["h_readonly"].tolist() == [n]
        default_runtime(create=False).history.flush()  # type: ignore[union-attr]
        outputs.append(capsys.readouterr())
    run(ip, "%pg history")
    printed = "".join(o.out + o.err for o in outputs) + capsys.readouterr().out
    warnings = [line for line in printed.splitlines() if "history" in line]
    assert len(warnings) == 1, printed
    assert warnings[0].startswith("pgmagic: query history kept in memory only: cannot write ")
    assert "Traceback" not in printed
    assert len(recorded()) == 3
    assert status_of_history(ip, capsys) == "in memory only"
