"""The core, API, bulk and notification tests again, on PostgreSQL 15 and through pgbouncer.

Each target gets a child ``python -m pytest`` over ``PATHS`` with
``PGMAGIC_TEST_DSN`` pointing at a fresh database of its own.  The tests known
to fail on a target are left out of its run by ``tests/servers/expected.py``;
the lists below are the one place to keep them, with a reason each.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.servers import debian, expected

ROOT = Path(__file__).resolve().parents[2]
PATHS = (
    "tests/runtime",
    "tests/sql",
    "tests/results",
    "tests/bulk",
    "tests/live",
    "tests/frontend/test_magics.py",
    "tests/test_api.py",
)
CHILD_TIMEOUT = 1200.0

# Fails on PostgreSQL 15 only: real findings, fixed in pgmagic or its tests, never here.
PG15_EXPECTED_FAILURES: dict[str, str] = {
    # Infinite intervals are new in PostgreSQL 17: 15 rejects the literal before any export runs
    # (InvalidDatetimeFormatError: invalid input syntax for type interval: "infinity").
    "tests/results/test_decode.py::test_export_stops_at_values_asyncpg_refuses"
    "[arrow-'infinity'::interval-OverflowError]": "'infinity'::interval needs PostgreSQL 17",
    "tests/results/test_decode.py::test_export_stops_at_values_asyncpg_refuses"
    "[jsonl-'infinity'::interval-OverflowError]": "'infinity'::interval needs PostgreSQL 17",
}

# Cannot pass through pgbouncer 1.18 in transaction pooling mode yet (issue 9); the list
# shrinks as pgmagic learns poolers.  The server behind it is PostgreSQL 15, hence the first line.
PGBOUNCER_EXPECTED_FAILURES: dict[str, str] = {
    **PG15_EXPECTED_FAILURES,
    # -- LISTEN holds on a server connection for one transaction only: nothing is delivered,
    # and pgmagic now says so ("ConnectError: notifications do not arrive through ...,
    # probably a transaction pooler such as pgbouncer: listen through a direct connection").
    **dict.fromkeys(
        [
            f"tests/live/test_notify.py::{name}"
            for name in (
                "test_listen_notify_shows_in_widget_and_log",
                "test_notify_binds_the_payload_as_a_parameter",
                "test_notify_inside_a_transaction_waits_for_commit",
                "test_notify_with_a_missing_variable_sends_nothing",
                "test_channel_names_are_quoted_identifiers",
                "test_reconnects_after_the_backend_is_terminated",
                "test_flood_keeps_the_history_bounded_and_counts_drops",
                "test_refresh_on_notification",
                "test_refresh_runs_one_at_a_time",
                "test_terminal_ipython_prints_notifications",
                "test_notifications_iterator",
                "test_slow_iterator_gets_a_gap_for_what_it_dropped",
                "test_async_with_listens_before_its_body",
                "test_an_abandoned_iterator_unsubscribes",
                "test_unlisten_unknown_channel_and_all",
                "test_listen_again_replaces_the_earlier_widget",
                "test_iterator_ends_when_the_listener_closes",
                "test_tcp_listener_has_keepalives_and_a_health_check",
            )
        ],
        "LISTEN cannot work through transaction pooling; pgmagic refuses it (ConnectError)",
    ),
    **dict.fromkeys(
        [
            f"tests/live/test_batching.py::{name}"
            for name in (
                "test_first_after_quiet_goes_at_once_and_the_rest_at_the_interval_end",
                "test_reconnecting_is_shown_at_once_within_an_interval",
                "test_under_load_the_interval_stretches_and_light_load_shortens_it",
            )
        ],
        "the batching tests listen: LISTEN cannot work through transaction pooling",
    ),
    # These two check the direct (non-pooled) case on the test server itself.
    **dict.fromkeys(
        [
            "tests/live/test_listen_pooler.py::"
            "test_embedded_listen_is_unchanged_and_hides_the_probe",
            "tests/live/test_listen_pooler.py::test_probe_cost_on_a_direct_connection",
        ],
        "assumes the test server is a direct connection, not a pooler",
    ),
    # -- Session state (temp tables, SET) stays on a pooled server connection, seen by others.
    "tests/live/test_notify.py::test_refresh_cannot_see_session_temp_tables": (
        "the refresh connection gets the session's server connection and sees its temp table"
    ),
    "tests/test_api.py::test_session_shares_state_with_cells": (
        "the API's pool connection sees a temp table of the cells' session"
    ),
    "tests/frontend/test_magics.py::test_missing_variable_before_any_io": (
        "temp table m left on a pooled server connection by an earlier test: already exists"
    ),
    "tests/frontend/test_magics.py::test_unload_closes_every_backend": (
        "closing the client leaves pgbouncer's server connection (and its SET) alive"
    ),
    **dict.fromkeys(
        [
            "tests/bulk/test_bulk.py::test_stream_closed_early_or_abandoned_ends_its_transaction",
            "tests/bulk/test_bulk.py::test_leaving_a_for_loop_early_ends_the_stream",
        ],
        "an open stream's backend is not found idle in transaction in pg_stat_activity",
    ),
    # -- pg_backend_pid() names a pooled server connection, which the test's own checking
    # connection then gets and terminates: "server conn crashed?".
    "tests/runtime/test_session.py::"
    "test_a_connection_lost_outside_a_transaction_reconnects_with_a_note": (
        "pg_terminate_backend(session pid) kills the checker's own pooled connection"
    ),
    "tests/frontend/test_magics.py::test_session_reconnects_after_termination": (
        "pg_terminate_backend(session pid) kills the checker's own pooled connection"
    ),
    # -- pgbouncer refuses client_connection_check_interval ("unsupported startup parameter").
    "tests/runtime/test_connect.py::"
    "test_session_and_pool_connections_check_for_a_vanished_client": (
        "the check interval is dropped after pgbouncer refuses it: SHOW gives '0', not '2s'"
    ),
    "tests/runtime/test_connect.py::test_a_dsn_that_sets_the_check_interval_keeps_its_own": (
        "a DSN that sets client_connection_check_interval cannot connect through pgbouncer"
    ),
}

TARGETS = {
    "pg15": (debian.Servers.pg15_dsn, PG15_EXPECTED_FAILURES),
    "pgbouncer": (debian.Servers.pgbouncer_dsn, PGBOUNCER_EXPECTED_FAILURES),
}


def summary(output: str) -> str:
    """The child's short test summary and final line, or its tail when it has none."""
    match = re.search(r"^=+ short test summary info =+$", output, re.MULTILINE)
    if match:
        return output[match.start() :].rstrip()
    return "\n".join(output.rstrip().splitlines()[-60:])


@pytest.mark.timeout(CHILD_TIMEOUT + 120)
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_suite_passes_on(
    target: str,
    debian_servers: debian.Servers,
    tmp_path: Path,
    report_line: Callable[[str], None],
) -> None:
    dsn_of, expected_failures = TARGETS[target]
    database = f"pgmagic_{target}"
    debian_servers.create_database(database)
    env = {
        **os.environ,
        "PGMAGIC_TEST_DSN": dsn_of(debian_servers, database),
        "PGMAGIC_TEST_TARGET": target,
        expected.ENV: json.dumps(expected_failures),
    }
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["-p", "tests.servers.expected", "-q", "-rfEX", "--tb=short"]
    command += ["--ignore=tests/servers", *PATHS]
    log = tmp_path / "child.log"
    began = time.monotonic()
    with log.open("wb") as out:
        child = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        status: int | str = f"killed after {CHILD_TIMEOUT:.0f} s"
        try:
            status = child.wait(CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        finally:
            # Also on Ctrl-C: the child runs in its own session and would outlive us.
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    seconds = time.monotonic() - began
    output = log.read_text(errors="replace")
    last = (output.rstrip().splitlines() or ["(no output)"])[-1].strip("= ")
    outcome = last if status == 0 else f"exit status {status}: {last}"
    report_line(f"{target}: {seconds:.0f} s, {len(expected_failures)} left out, {outcome}")
    debian_servers.drop_database(database)
    assert status == 0, (
        f"the suite on {target} failed ({status}) in {seconds:.0f} s; "
        f"to rerun, start the servers with `python -m tests.servers.debian`, then "
        f"PGMAGIC_TEST_DSN=<its {target} DSN> {' '.join(command[2:])}\n"
        f"{summary(output)}\n{debian_servers.logs(lines=15)}"
    )
