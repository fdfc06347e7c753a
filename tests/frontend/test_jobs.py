"""``%%pg --bg``: background jobs through a real IPython shell and a real server."""

from __future__ import annotations

import _thread
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pgmagic
from pgmagic.errors import OptionError, ParameterError, QueryCancelled
from pgmagic.frontend import jobs as front
from pgmagic.live import jobs
from pgmagic.live.jobs import Job, JobState
from pgmagic.runtime.connections import default_connections
from tests.shell import fails, run


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def newest() -> Job:
    return jobs.listed()[-1]


def running_on_server(sql: Any, pid: int) -> bool:
    rows = sql("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
    return bool(rows) and rows[0]["state"] == "active"


class Shown:
    """Every bundle a job's handle displayed or updated to, in order (the shell has no front end)."""

    def __init__(self) -> None:
        self.bundles: list[dict[str, Any]] = []

    def display(self, bundle: dict[str, Any], raw: bool = False) -> None:
        self.bundles.append(bundle)

    update = display


@pytest.fixture
def handles(monkeypatch: pytest.MonkeyPatch) -> list[Shown]:
    made: list[Shown] = []

    def new() -> Shown:
        made.append(Shown())
        return made[-1]

    monkeypatch.setattr(front, "new_display_handle", new)
    return made


def test_the_cell_returns_while_the_query_runs_and_the_variable_gets_the_rows(
    ip: Any, handles: list[Shown]
) -> None:
    assert (
        run(ip, "%%pg --bg -o big\nSELECT g AS n, pg_sleep(0.5) FROM generate_series(1, 3) g")
        is None
    )
    job = newest()
    assert job.name == "big"
    assert job.state in (JobState.QUEUED, JobState.RUNNING)
    assert "big" not in ip.user_ns
    frame = job.result(timeout=30)
    assert list(frame["n"]) == [1, 2, 3]
    assert str(frame["n"].dtype) == "Int32"
    assert ip.user_ns["big"] is frame
    assert job.state is JobState.DONE and job.rows == 3
    assert job.summary().startswith("big: 3 rows in ")
    # The handle: shown queued first, updated while it ran, done at the end.
    shown = handles[-1].bundles
    assert shown[0][front.JOB_MIME]["state"] == "queued"
    final = shown[-1][front.JOB_MIME]
    assert final["state"] == "done" and final["rows"] == 3 and final["name"] == "big"
    assert shown[-1]["text/plain"].startswith("[done] big: 3 rows in ")
    # The history has it, under the cell that started it.
    for runtime in default_connections().runtimes():
        runtime.history.flush()
    recorded = pgmagic.history(pattern="pg_sleep(0.5) FROM generate_series(1, 3)")
    assert list(recorded["rows"]) == [3] and list(recorded["status"]) == ["ok"]
    # The frame draws as a cell's would, with pgmagic's footer.
    assert "3 rows × 2 columns" in ip.display_formatter.format(frame)[0]["text/plain"]


def test_cancel_stops_the_query_on_the_server(ip: Any, sql: Any, handles: list[Shown]) -> None:
    run(ip, "%%pg --bg -o slow\nSELECT pg_sleep(60)")
    job = newest()
    wait_for(lambda: job.pid is not None and running_on_server(sql, job.pid))
    assert job.state is JobState.RUNNING
    assert job.cancel() is True
    with pytest.raises(QueryCancelled):
        job.result(timeout=10)
    assert job.state is JobState.CANCELLED
    assert job.pid is not None
    wait_for(lambda: not running_on_server(sql, job.pid), timeout=5)
    assert job.cancel() is False
    assert handles[-1].bundles[-1][front.JOB_MIME]["state"] == "cancelled"
    assert "slow" not in ip.user_ns
    # The pool connection is usable again.
    assert run(ip, "%pg --scalar SELECT 1") == 1


def test_ctrl_c_in_another_cell_leaves_jobs_running(
    ip: Any, sql: Any, handles: list[Shown]
) -> None:
    run(ip, "%%pg --bg -o survivor\nSELECT 42 AS answer, pg_sleep(3)")
    job = newest()
    wait_for(lambda: job.pid is not None)
    threading.Timer(0.5, _thread.interrupt_main).start()
    error, _ = fails(ip, "%pg SELECT pg_sleep(30)")
    assert isinstance(error, QueryCancelled)
    assert job.state is JobState.RUNNING
    assert list(job.result(timeout=10)["answer"]) == [42]


def test_a_failed_job_shows_the_psql_error_and_result_raises_it(
    ip: Any, handles: list[Shown]
) -> None:
    run(ip, "%%pg --bg -o bad\nSELECT 1;\nSELECT nope")
    job = newest()
    wait_for(job.done)
    assert job.state is JobState.FAILED
    lines = job.error_lines()
    assert lines[0] == 'ERROR:  column "nope" does not exist'
    assert any(line.startswith("LINE 2: SELECT nope") for line in lines)
    assert lines[-1] == "statement 2 of 2 failed; statement 1 ran and is committed"
    with pytest.raises(Exception, match="nope"):
        job.result()
    assert "bad" not in ip.user_ns
    final = handles[-1].bundles[-1]
    assert final[front.JOB_MIME]["state"] == "failed"
    assert final[front.JOB_MIME]["error"].startswith('ERROR:  column "nope"')
    assert 'ERROR:  column "nope" does not exist' in final["text/plain"]


def test_bg_to_writes_the_file(ip: Any, tmp_path: Path, handles: list[Shown]) -> None:
    target = tmp_path / "numbers.csv"
    run(ip, f'%pg --bg --to "{target}" SELECT g FROM generate_series(1, 5) g')
    job = newest()
    result = job.result(timeout=30)
    assert result.rows == 5 and job.rows == 5
    assert target.read_text().split() == ["g", "1", "2", "3", "4", "5"]
    assert job.name == "numbers.csv"
    assert job.summary().startswith(f"numbers.csv: 5 rows → {target} (")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--bg --stream", "--bg does not combine with --stream"),
        ("--bg --many '[(1,)]'", "--bg does not combine with --many"),
        ("--bg --one", "--bg does not combine with --one"),
        ("--bg --scalar", "--bg does not combine with --scalar"),
        ("--bg --explain", "--bg does not combine with --explain"),
        ("--bg --watch 1", "--bg does not combine with --watch"),
        ("--bg --refresh-on x", "--bg does not combine with --refresh-on"),
    ],
)
def test_bg_refuses_what_has_no_later(ip: Any, line: str, message: str) -> None:
    before = len(jobs.listed())
    error, _ = fails(ip, f"%%pg {line}\nSELECT 1")
    assert isinstance(error, OptionError)
    assert message in str(error)
    assert len(jobs.listed()) == before


def test_what_is_wrong_before_any_io_fails_the_cell_not_the_job(ip: Any, tmp_path: Path) -> None:
    before = len(jobs.listed())
    error, _ = fails(ip, "%pg --bg SELECT $not_defined_anywhere")
    assert isinstance(error, ParameterError)
    error, _ = fails(ip, f"%pg --bg --to {tmp_path}/missing/x.csv SELECT 1")
    assert isinstance(error, OptionError) and "does not exist" in str(error)
    error, _ = fails(ip, "%pg --bg --to x.unknown SELECT 1")
    assert isinstance(error, OptionError)
    assert len(jobs.listed()) == before


def test_a_note_says_what_the_pool_connection_does_not_see(
    ip: Any, capsys: pytest.CaptureFixture[str], handles: list[Shown]
) -> None:
    run(ip, "%pg -q CREATE TEMP TABLE bg_only_here (a int)")
    run(ip, "%pg -q SET work_mem = '9MB'")
    capsys.readouterr()
    run(ip, "%%pg --bg -o nothere\nSELECT * FROM bg_only_here")
    out = capsys.readouterr().out
    assert "runs on a pool connection, not the session" in out
    assert "temp table bg_only_here" in out and "SET work_mem" in out
    job = newest()
    wait_for(job.done)
    assert job.state is JobState.FAILED
    assert 'relation "bg_only_here" does not exist' in job.error_lines()[0]
    # search_path is carried over, as for exports.
    run(ip, "%pg -q CREATE SCHEMA IF NOT EXISTS bg_path")
    run(ip, "%pg -q CREATE TABLE IF NOT EXISTS bg_path.bg_seen AS SELECT 7 AS v")
    run(ip, "%pg -q SET search_path = bg_path, public")
    try:
        run(ip, "%%pg --bg -o seen\nSELECT v FROM bg_seen")
        assert list(newest().result(timeout=30)["v"]) == [7]
    finally:
        run(ip, "%pg -q RESET search_path")
        run(ip, "%pg -q DROP SCHEMA bg_path CASCADE")
    # A cell that needs nothing of the session gets no note.
    run(ip, "%pg -q RESET work_mem")
    run(ip, "%pg -q DROP TABLE bg_only_here")
    capsys.readouterr()
    run(ip, "%pg --bg SELECT 1")
    assert "pool connection" not in capsys.readouterr().out
    newest().result(timeout=30)


def test_jobs_are_listed_found_and_cancelled_by_name(
    ip: Any, sql: Any, capsys: pytest.CaptureFixture[str], handles: list[Shown]
) -> None:
    run(ip, "%%pg --bg -o listed_a\nSELECT 1 AS a")
    newest().result(timeout=30)
    run(ip, "%%pg --bg -o listed_b\nSELECT pg_sleep(60)")
    slow = newest()
    wait_for(lambda: slow.pid is not None)
    frame = run(ip, "%pg jobs")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "job", "name", "state", "connection", "rows", "seconds", "pid", "started", "sql",
    ]  # fmt: skip
    by_name = frame.set_index("name")
    assert by_name.loc["listed_a", "state"] == "done"
    assert by_name.loc["listed_b", "state"] == "running"
    assert by_name.loc["listed_b", "pid"] == slow.pid
    assert list(pgmagic.jobs()["name"]) == list(frame["name"])
    assert pgmagic.job("listed_b") is slow and pgmagic.job(slow.number) is slow
    capsys.readouterr()
    run(ip, "%pg cancel listed_b")
    assert "cancelling listed_b" in capsys.readouterr().out
    with pytest.raises(QueryCancelled):
        slow.result(timeout=10)
    error, _ = fails(ip, "%pg cancel no_such_job")
    assert isinstance(error, OptionError) and "no background job 'no_such_job'" in str(error)
    error, _ = fails(ip, "%pg cancel")
    assert isinstance(error, OptionError) and "usage" in str(error)
    with pytest.raises(OptionError):
        pgmagic.job(10**9)


def test_await_gives_the_result(ip: Any, handles: list[Shown]) -> None:
    run(ip, "%%pg --bg -o awaited\nSELECT 5 AS five")
    run(ip, "import pgmagic")
    assert list(run(ip, "(await pgmagic.job('awaited'))['five']")) == [5]


def test_closing_the_connection_cancels_its_jobs_on_the_server(
    ip: Any, sql: Any, dsn: str, handles: list[Shown]
) -> None:
    ip.user_ns["side_dsn"] = dsn
    run(ip, "%pg connect bg_side $side_dsn")
    run(ip, "%%pg --bg -o doomed\nSELECT pg_sleep(60)")
    job = newest()
    assert job.connection == "bg_side"
    wait_for(lambda: job.pid is not None and running_on_server(sql, job.pid))
    run(ip, "%pg close bg_side")
    assert job.state is JobState.CANCELLED
    assert job.pid is not None
    wait_for(lambda: not sql("SELECT 1 FROM pg_stat_activity WHERE pid = $1", job.pid))


def test_terminal_ipython_prints_the_handle_then_a_line_when_the_job_ends() -> None:
    code = (
        "from IPython.terminal.interactiveshell import TerminalInteractiveShell\n"
        "import time\n"
        "import pgmagic\n"
        "ip = TerminalInteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'pgmagic')\n"
        "ip.run_line_magic('pg', '--bg -o term SELECT g FROM generate_series(1, 7) g, pg_sleep(0.5)')\n"
        "print('the prompt is back')\n"
        "pgmagic.job('term').result(timeout=30)\n"
        "time.sleep(0.2)\n"
        "print(len(ip.user_ns['term']))\n"
        "ip.run_line_magic('unload_ext', 'pgmagic')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    ).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert any(line.startswith("[queued] term:") for line in lines), out
    assert "the prompt is back" in lines, out
    back = lines.index("the prompt is back")
    done = next(i for i, line in enumerate(lines) if line.startswith("[done] term: 7 rows in "))
    assert back < done
    assert lines[-1] == "7"


@pytest.mark.parametrize(
    ("options", "check"),
    [
        (
            "--polars",
            lambda v: type(v).__module__.startswith("polars") and v["n"].to_list() == [1, 2],
        ),
        ("--arrow", lambda v: v.column("n").to_pylist() == [1, 2]),
        ("--dtype-backend pyarrow", lambda v: str(v["n"].dtype) == "int32[pyarrow]"),
    ],
)
def test_bg_gives_the_frame_kind_asked_for(
    ip: Any, handles: list[Shown], options: str, check: Any
) -> None:
    run(ip, f"%%pg --bg {options} -o kinds\nSELECT g AS n FROM generate_series(1, 2) g")
    value = newest().result(timeout=30)
    assert check(value)
    assert ip.user_ns["kinds"] is value
