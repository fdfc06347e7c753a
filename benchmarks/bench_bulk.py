"""Bulk load and export: pgmagic against DataFrame.to_sql and psql \\copy, in one run.

Usage::

    pip install -e '.[bench]'
    python benchmarks/bench_bulk.py [--load-rows 1000000] [--export-rows 10000000] [--rounds 3]

Load: the wide benchmark table (see bench_frames.py) read into a DataFrame with
pgmagic's dtype table, then loaded into a new table by

* ``%pg load df INTO t --replace`` (pgmagic, in an IPython shell);
* ``DataFrame.to_sql`` through SQLAlchemy + psycopg2, default method and
  ``method="multi"`` (the jsonb and uuid columns given as text, which is what
  to_sql can send);
* ``psql \\copy t FROM file (FORMAT csv)`` of the same rows as CSV (the floor:
  the server parsing CSV, a client that only reads a file);
* ``psql \\copy t FROM file (FORMAT binary)`` of the same rows as binary COPY
  (written by the server): the server's own floor, which pgmagic's binary
  load approaches.

Export: ``%pg --to`` a Parquet, a JSON lines and a CSV file, each in a fresh
process whose peak RSS is measured (and its RSS when the export starts, after
the imports), against ``psql \\copy (SELECT ...) TO file (FORMAT csv)``; and,
for reference, ``psql \\copy ... TO '/dev/null' (FORMAT binary)``: the server
producing the binary COPY that Parquet and JSON lines are made from.

Every figure is the median of ``--rounds`` rounds in the same run; ratios are
to the psql median.  Results are printed and written to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_frames import WIDE_SQL, find_psql, server  # noqa: E402


def make_wide(dsn: str, rows: int, name: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
            if exists and await conn.fetchval(f"SELECT count(*) FROM {name}") == rows:
                return
            await conn.execute(f"DROP TABLE IF EXISTS {name}")
            await conn.execute(WIDE_SQL.replace("bench_wide", name).format(rows=int(rows)))
            await conn.execute(f"VACUUM ANALYZE {name}")
        finally:
            await conn.close()

    asyncio.run(go())


def psql(psql_path: str, dsn: str, command: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [psql_path, dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def shell(dsn: str) -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    os.environ["PGMAGIC_DSN"] = dsn
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "pgmagic")
    return ip


def sqlalchemy_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg2://", 1)


def bench_load(dsn: str, rows: int, rounds: int, psql_path: str, folder: Path) -> list[str]:
    import sqlalchemy

    import pgmagic

    make_wide(dsn, rows, "bulk_source")
    ip = shell(dsn)
    frame = ip.run_cell_magic("pg", "-q", "SELECT * FROM bulk_source")
    ip.user_ns["frame"] = frame
    for_to_sql = frame.copy()
    for_to_sql["j"] = [json.dumps(v) for v in for_to_sql["j"]]
    for_to_sql["u"] = [str(v) for v in for_to_sql["u"]]
    csv_path = folder / "bulk_source.csv"
    psql(psql_path, dsn, f"\\copy bulk_source TO '{csv_path}' (FORMAT csv)")
    binary_path = folder / "bulk_source.bin"
    psql(psql_path, dsn, f"\\copy bulk_source TO '{binary_path}' (FORMAT binary)")
    psql(
        psql_path, dsn, "DROP TABLE IF EXISTS load_psql; CREATE TABLE load_psql (LIKE bulk_source)"
    )
    engine = sqlalchemy.create_engine(sqlalchemy_url(dsn))

    def pgmagic_load() -> float:
        started = time.perf_counter()
        ip.run_line_magic("pg", "load frame INTO load_pgmagic --replace -q")
        return time.perf_counter() - started

    def to_sql(method: str | None) -> float:
        started = time.perf_counter()
        for_to_sql.to_sql(
            "load_tosql", engine, if_exists="replace", index=False, method=method, chunksize=10_000
        )
        return time.perf_counter() - started

    def psql_copy(path: Path, fmt: str) -> float:
        psql(psql_path, dsn, "TRUNCATE load_psql")
        return psql(psql_path, dsn, f"\\copy load_psql FROM '{path}' (FORMAT {fmt})")

    peers = {
        "psql \\copy FROM csv (floor)": lambda: psql_copy(csv_path, "csv"),
        "psql \\copy FROM binary (server floor)": lambda: psql_copy(binary_path, "binary"),
        "pgmagic %pg load": pgmagic_load,
        "to_sql psycopg2 method=multi": lambda: to_sql("multi"),
        "to_sql psycopg2 default": lambda: to_sql(None),
    }
    times: dict[str, list[float]] = {name: [] for name in peers}
    for _ in range(rounds):
        for name, peer in peers.items():
            times[name].append(peer())
    count = ip.run_line_magic("pg", "--scalar SELECT count(*) FROM load_pgmagic")
    assert count == rows, count
    sent = asyncio.run(pgmagic.load_table(frame, "load_pgmagic", mode="replace")).copy_format
    floor = statistics.median(times["psql \\copy FROM csv (floor)"])
    ours = statistics.median(times["pgmagic %pg load"])
    lines = [
        f"## Load {rows:,} rows of the wide table from a DataFrame ({rounds} rounds, medians)",
        "",
        f"pgmagic sent the rows as {sent} COPY.",
        "",
        "| peer | seconds | ratio to psql \\copy csv | pgmagic speed-up |",
        "|---|---:|---:|---:|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.2f} | {median / floor:.2f}x | {median / ours:.1f}x |")
    ip.run_line_magic("unload_ext", "pgmagic")
    return lines


EXPORT_CHILD = """
import os, sys, time, json
os.environ["PGMAGIC_DSN"] = sys.argv[1]
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "pgmagic")
ip.run_line_magic("pg", "--scalar SELECT 1")
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status("VmRSS:")
started = time.perf_counter()
ip.run_line_magic("pg", f"--to {sys.argv[2]} -q SELECT * FROM bulk_export")
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_mb": status("VmHWM:") / 1024, "before_mb": before / 1024}))
"""


def bench_export(dsn: str, rows: int, rounds: int, psql_path: str, folder: Path) -> list[str]:
    make_wide(dsn, rows, "bulk_export")
    results: dict[str, list[dict[str, float]]] = {}
    for _ in range(rounds):
        for suffix in ("parquet", "jsonl", "csv"):
            target = folder / f"export.{suffix}"
            out = subprocess.run(
                [sys.executable, "-c", EXPORT_CHILD, dsn, str(target)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            measured = json.loads(out.strip().splitlines()[-1])
            measured["mb"] = target.stat().st_size / 1e6
            results.setdefault(f"pgmagic --to .{suffix}", []).append(measured)
            target.unlink()
        target = folder / "export_psql.csv"
        seconds = psql(
            psql_path,
            dsn,
            f"\\copy (SELECT * FROM bulk_export) TO '{target}' (FORMAT csv, HEADER)",
        )
        results.setdefault("psql \\copy TO csv (floor)", []).append(
            {"seconds": seconds, "mb": target.stat().st_size / 1e6}
        )
        target.unlink()
        seconds = psql(
            psql_path,
            dsn,
            "\\copy (SELECT * FROM bulk_export) TO '/dev/null' (FORMAT binary)",
        )
        results.setdefault("psql \\copy TO /dev/null binary (server only)", []).append(
            {"seconds": seconds, "mb": float("nan")}
        )
    floor = statistics.median(r["seconds"] for r in results["psql \\copy TO csv (floor)"])
    lines = [
        f"## Export {rows:,} rows of the wide table ({rounds} rounds, medians)",
        "",
        "| peer | seconds | ratio to psql \\copy csv | file MB | peak RSS MB | RSS at start MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def cell(values: list[dict[str, float]], key: str, fmt: str) -> str:
        value = statistics.median(v.get(key, float("nan")) for v in values)
        return "" if value != value else format(value, fmt)

    for name, values in results.items():
        seconds = statistics.median(v["seconds"] for v in values)
        lines.append(
            f"| {name} | {seconds:.2f} | {seconds / floor:.2f}x | {cell(values, 'mb', ',.0f')} "
            f"| {cell(values, 'peak_mb', ',.0f')} | {cell(values, 'before_mb', ',.0f')} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-rows", type=int, default=1_000_000)
    parser.add_argument("--export-rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip", choices=["load", "export"], action="append", default=[])
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bulk.md")
    args = parser.parse_args()
    psql_path = find_psql()
    lines = [
        f"# Bulk load and export ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f} at start.",
        "",
    ]
    with server() as dsn, tempfile.TemporaryDirectory(prefix="pgmagic-bulk-") as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o777)  # the embedded server runs as its own user when root starts it
        if "load" not in args.skip:
            lines += [*bench_load(dsn, args.load_rows, args.rounds, psql_path, folder), ""]
        if "export" not in args.skip:
            lines += bench_export(dsn, args.export_rows, args.rounds, psql_path, folder)
    lines.append(f"\nload average {os.getloadavg()[0]:.2f} at the end.")
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
