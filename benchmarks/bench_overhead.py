"""Per-cell cost of %%pg against a raw asyncpg fetch on the same connection.

Run: ``python benchmarks/bench_overhead.py [--rounds 7] [--calls 300]``

Three paths, one process, one server, the session's own connection:

* raw asyncpg: ``await conn.fetch(sql, *args)`` awaited on the runtime loop
  (the floor: no thread hop, Records only);
* ``%%pg`` value: ``run_cell_magic`` returning the DataFrame (parse, bind,
  thread hop, prepare/execute, DataFrame build);
* ``%%pg`` shown: the same plus rendering the HTML and text forms, as a
  notebook does after the cell.

Each round times ``--calls`` sequential calls per path; the table gives the
median per-call time over rounds and the overhead above raw asyncpg.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def timed(calls: int, fn: Callable[[int], Any]) -> float:
    started = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    from IPython.core.interactiveshell import InteractiveShell

    from pgmagic.runtime.connections import default_runtime

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "pgmagic")
    shell.run_cell_magic(
        "pg",
        "-q",
        "DROP TABLE IF EXISTS bench_users;"
        "CREATE TABLE bench_users AS SELECT g AS id, 'user ' || g AS name, "
        "g * 0.5 AS score, now() AS joined FROM generate_series(1, 100000) g;"
        "ALTER TABLE bench_users ADD PRIMARY KEY (id)",
    )
    runtime = default_runtime()
    assert runtime is not None
    session = runtime.run(runtime.session())
    conn = session.conn
    formatter = shell.display_formatter

    cases = {
        "SELECT 1": ("SELECT 1", lambda i: ()),
        "primary-key lookup": (
            "SELECT * FROM bench_users WHERE id = $1",
            lambda i: (i % 100000 + 1,),
        ),
    }
    rows = []
    load_before = os.getloadavg()
    for label, (sql, make_args) in cases.items():
        magic_sql = sql.replace("$1", "$key")
        raw_times, value_times, shown_times = [], [], []

        async def raw_round(calls: int, sql: str = sql, make_args: Any = make_args) -> float:
            started = time.perf_counter()
            for i in range(calls):
                await conn.fetch(sql, *make_args(i))
            return (time.perf_counter() - started) / calls

        def magic(i: int, sql: str = magic_sql, make_args: Any = make_args) -> Any:
            args_ = make_args(i)
            if args_:
                shell.user_ns["key"] = args_[0]
            return shell.run_cell_magic("pg", "", sql)

        def shown(i: int) -> None:
            formatter.format(magic(i))

        for _ in range(args.rounds):
            raw_times.append(runtime.run(raw_round(args.calls)))
            value_times.append(timed(args.calls, magic))
            shown_times.append(timed(args.calls, shown))
        raw = statistics.median(raw_times)
        value = statistics.median(value_times)
        show = statistics.median(shown_times)
        rows.append((label, raw, value, show))

    load_after = os.getloadavg()
    lines = [
        f"# %%pg per-cell overhead ({args.rounds} rounds x {args.calls} calls, medians; "
        f"{sys.platform}, {os.cpu_count()} cores)",
        "",
        f"Command: `python {shlex.join(sys.argv)}`; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after (2-3 other processes may share the machine: compare "
        "the overheads of one run, not runs).",
        "",
        "| query | raw asyncpg | %%pg value | overhead | %%pg + display | overhead |",
        "|---|---|---|---|---|---|",
    ]
    for label, raw, value, show in rows:
        lines.append(
            f"| {label} | {raw * 1e3:.3f} ms | {value * 1e3:.3f} ms | "
            f"+{(value - raw) * 1e3:.3f} ms | {show * 1e3:.3f} ms | +{(show - raw) * 1e3:.3f} ms |"
        )
    report = "\n".join(lines)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.md").write_text(report + "\n")
    shell.run_cell_magic("pg", "-q", "DROP TABLE bench_users")
    shell.run_line_magic("unload_ext", "pgmagic")


if __name__ == "__main__":
    main()
