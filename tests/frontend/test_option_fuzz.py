"""Generated %pg lines: whatever a user types, an error is one line (or psql's), never a traceback."""

from __future__ import annotations

import pathlib
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

FOLDER = pathlib.Path(tempfile.mkdtemp(prefix="pgmagic-fuzz-"))
VALUES = [
    "0", "-1", "1", "10", "abc", "''", '""', "'a b'", "None", "1/0", "undefined_name",
    "rows", "frame", "[1, 2]", "[(1,), (2,)]", '[{"a": 1}]', '{"a": 1}', "(1, 'x')",
    "SELECT", "class", "1bad", "x", "'unclosed",
    str(FOLDER), str(FOLDER / "out.csv"), str(FOLDER / "out.parquet"),
    str(FOLDER / "out.xlsx"), "/no/such/folder/out.csv", "xlsx", "csv",
]  # fmt: skip
OPTIONS = [
    "-o", "--out", "-p", "--params", "--one", "--scalar", "-q", "--quiet", "--stream",
    "--chunksize", "--to", "--format", "--many", "--refresh-on", "--watch", "--bogus", "-z",
    "--explain", "--explain-analyze",
]  # fmt: skip
SQL = [
    "", "SELECT 1", "SELECT $x AS x", "SELECT $1 AS one", "SELECT * FROM fuzzed",
    "INSERT INTO fuzzed VALUES ($1)", "INSERT INTO fuzzed VALUES ($a)", "SELECT 1; SELECT 2",
    "SELEC oops", "COPY fuzzed TO STDOUT", "\\dt", "-- only a comment", "SELECT 'x' # y",
]  # fmt: skip
SUBCOMMANDS = [
    "status", "status extra", "help", "listen", "listen ''", "unlisten", "unlisten --all x",
    "notify", "notify 'a b'", "notify chan $undefined_name", "load", "load frame",
    "load frame INTO", "load nothing INTO t", "load frame INTO fuzz_t --create --append",
    "connect", "connect '", "connect --embedded extra", "connect $undefined_name",
    "connect postgresql://h/db extra", "stop extra", "disconnect now",
    "history -n", "history -n 2 --bogus", "history --clear x", "history -n 1 '",
]  # fmt: skip

option = st.sampled_from(OPTIONS).flatmap(
    lambda name: st.one_of(st.just(name), st.sampled_from(VALUES).map(lambda v: f"{name} {v}"))
)
magic_line = st.one_of(
    st.tuples(st.lists(option, max_size=4), st.sampled_from(SQL)).map(
        lambda parts: "%pg " + " ".join([*parts[0], parts[1]])
    ),
    st.tuples(st.lists(option, max_size=4), st.sampled_from(SQL)).map(
        lambda parts: "%%pg " + " ".join(parts[0]) + "\n" + parts[1]
    ),
    st.sampled_from(SUBCOMMANDS).map(lambda s: f"%pg {s}"),
)


@pytest.fixture
def shell(ip: Any) -> Any:
    ip.run_cell(
        "import pandas as pd\n"
        "rows = [{'a': 1}, {'b': 2}]\nframe = pd.DataFrame({'a': [1, 2]})\nx = 5"
    )
    ip.run_cell("%pg -q CREATE TABLE IF NOT EXISTS fuzzed (a int)")
    yield ip
    ip.run_cell("%pg stop")
    ip.run_cell("%pg -q DROP TABLE IF EXISTS fuzzed, fuzz_t")


def shown(error: BaseException) -> list[str] | None:
    """What IPython prints instead of a traceback, or None if it prints a traceback."""
    if type(error) is UsageError:
        return [f"UsageError: {error}"]
    render = getattr(error, "_render_traceback_", None)
    return list(render()) if render is not None else None


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(line=magic_line)
def test_every_error_is_one_line_or_psqls(shell: Any, line: str) -> None:
    result = shell.run_cell(line)
    error = result.error_in_exec or result.error_before_exec
    if "--stream" in line:
        # An open stream holds a pool connection until it is read or closed;
        # a few of them would make later examples wait for the pool.
        shell.run_cell("%pg disconnect")
    if error is None:
        return
    lines = shown(error)
    assert lines is not None, f"{line!r} printed a traceback: {type(error).__name__}: {error}"
    if lines[0].startswith(("ERROR:", "FATAL:")):
        return  # a server error, rendered as psql renders it
    assert len(lines) == 1, (line, lines)
    assert "Traceback" not in lines[0] and "\n" not in lines[0], (line, lines)
    # The session is still usable after whatever the line did.
    assert shell.run_cell("%pg --scalar SELECT 1").result == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%pg --many 1 INSERT INTO fuzzed VALUES ($1)", "OptionError: --many needs a DataFrame"),
        ("%pg --many None INSERT INTO fuzzed VALUES ($1)", "OptionError: --many needs a DataFrame"),
        (
            """%pg --many "'ab'" INSERT INTO fuzzed VALUES ($1)""",
            "OptionError: --many needs a DataFrame",
        ),
        ("%pg --many rows INSERT INTO fuzzed VALUES ($a)", "OptionError: --many: row 1 has no key"),
        ("%pg --many rows SELECT * FROM fuzzed", "OptionError: --many runs the statement once"),
        (
            "%pg --many frame INSERT INTO fuzzed VALUES (1)",
            "OptionError: --many runs the statement",
        ),
        (
            "%pg --many [(1,),(2,3)] INSERT INTO fuzzed VALUES ($1 + $2)",
            "OptionError: --many: row 0 has 1 value(s); the statement uses $2",
        ),
        (f"%pg --to {FOLDER / 'z.parquet'} --chunksize 0 SELECT 1", "OptionError: --chunksize"),
        ("%pg connect '", "OptionError: no closing ' for the quote"),
        ("%pg --format csv SELECT 1", "OptionError: --format goes with --to FILE"),
        ("%pg --chunksize 10 SELECT 1", "OptionError: --chunksize goes with --stream or --to"),
        ("%%pg --chunksize 10\nSELECT 1", "OptionError: --chunksize goes with --stream or --to"),
    ],
)
def test_known_bad_lines_are_one_line(shell: Any, line: str, expected: str) -> None:
    result = shell.run_cell(line)
    error = result.error_in_exec or result.error_before_exec
    assert error is not None
    lines = shown(error)
    assert lines is not None and len(lines) == 1 and lines[0].startswith(expected), lines
