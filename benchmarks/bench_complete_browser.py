"""Completion latency with the browser in the loop: Tab keydown to the painted list.

Builds one database per catalog size (N tables of 20 columns, a foreign key
from each to the one before, as in ``bench_complete.py``) in the embedded
server, then runs ``labextension/ui-tests/bench/completion.bench.ts`` in
Debian's Chromium against JupyterLab (through ``labextension/ui-tests/run.sh``,
which builds the extension and installs what the browser needs). The page
times each Tab from its keydown event to the animation frame that paints the
list, for four kinds of request, with the kernel idle and while another cell
sleeps (when only pgmagic's comm can answer).

    python benchmarks/bench_complete_browser.py [--tables 2000 20000] [--rounds 40]
        [--out benchmarks/results/complete-browser.md]

Needs the test extras, Node.js and chromium, as the browser tests do.
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

from bench_complete import COLUMNS, catalog_statements

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "labextension" / "ui-tests" / "run.sh"


async def build(dsn: str, tables: int) -> tuple[str, float]:
    """Create database ``bench_complete_<tables>``; its DSN and the seconds it took."""
    import asyncpg

    name = f"bench_complete_{tables}"
    started = time.perf_counter()
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    target = dsn.replace("/postgres?", f"/{name}?")
    conn = await asyncpg.connect(target)
    try:
        for statement in catalog_statements(tables, "public"):
            await conn.execute(statement)
    finally:
        await conn.close()
    return target, time.perf_counter() - started


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def cell(got: list[dict[str, Any]], field: str) -> str:
    values = [sample[field] for sample in got if sample[field] is not None]
    if not values:
        return "–"
    return f"{statistics.median(values):.0f} / {percentile(values, 0.95):.0f}"


def table(samples: dict[str, Any], built: dict[int, float], rounds: int) -> str:
    sizes = sorted({int(key.split("|")[0]) for key in samples})
    cases = list(dict.fromkeys(key.split("|")[2] for key in samples if "|idle|" in key))
    lines = [
        f"# Completion in the browser ({platform.system().lower()}, {os.cpu_count()} cores)",
        "",
        "JupyterLab with pgmagic's extension in Debian's Chromium (headless). Milliseconds",
        "from the Tab keydown to the animation frame that paints the list, measured in the",
        f"page; median / p95 of {rounds} Tabs per cell. *Busy*: another cell sleeps, so only",
        f"pgmagic's comm (served on a kernel subshell) can answer. Tables of {COLUMNS} columns,",
        "each with a foreign key to the one before. The last column is JupyterLab's own",
        "kernel completer in a Python cell, for reference.",
        "",
        "| tables | kernel | " + " | ".join(f"`{case}`" for case in cases) + " |",
        "|---|---|" + "---|" * len(cases),
    ]
    for size in sizes:
        for state in ("idle", "busy"):
            row = [cell(samples.get(f"{size}|{state}|{case}", []), "shown") for case in cases]
            lines.append(f"| {size:,} | {state} | " + " | ".join(row) + " |")
    lines += [
        "",
        "Where the time goes, for pgmagic's cases: from the Tab to the comm request leaving",
        "the page, and to its reply arriving (User Timing marks set by the extension); the",
        "rest, up to the painted list, is JupyterLab's completer.",
        "",
        "| tables | kernel | request sent | reply in | list painted |",
        "|---|---|---|---|---|",
    ]
    for size in sizes:
        for state in ("idle", "busy"):
            got = [
                sample
                for key, values in samples.items()
                if key.startswith(f"{size}|{state}|")
                for sample in values
                if sample["asked"] is not None
            ]
            row = [cell(got, field) for field in ("asked", "replied", "shown")]
            lines.append(f"| {size:,} | {state} | " + " | ".join(row) + " |")
    lines += ["", "First Tab after `%pg connect` and `%pg refresh`, and building each catalog:", ""]
    for size in sizes:
        first = samples[f"{size}|first|{cases[0]}"][0]["shown"]
        lines.append(f"- {size:,} tables: first Tab {first:.0f} ms; built in {built[size]:.1f} s")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent / "results" / "complete-browser.md"),
        help="table file",
    )
    args = parser.parse_args()
    # The JupyterLab server started by run.sh, and so its kernels, use this too.
    os.environ.setdefault("PGMAGIC_DATA_DIR", tempfile.mkdtemp(prefix="pgmagic-bench-"))
    from pgmagic.runtime import embedded

    dsn = embedded.start().dsn
    catalogs, built = [], {}
    for tables in args.tables:
        target, seconds = asyncio.run(build(dsn, tables))
        catalogs.append({"tables": tables, "dsn": target})
        built[tables] = seconds
        print(f"built {tables:,} tables in {seconds:.1f} s", flush=True)

    out = Path(tempfile.mkdtemp(prefix="pgmagic-bench-")) / "samples.json"
    env = dict(
        os.environ,
        PGMAGIC_BENCH_CATALOGS=json.dumps(catalogs),
        PGMAGIC_BENCH_ROUNDS=str(args.rounds),
        PGMAGIC_BENCH_OUT=str(out),
        CI="true",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    subprocess.run(["bash", str(RUN), "--config=playwright.bench.config.js"], env=env, check=True)
    samples: dict[str, Any] = json.loads(out.read_text())
    report = table(samples, built, args.rounds)
    print(report)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
