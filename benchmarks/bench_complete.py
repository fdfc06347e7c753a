"""Schema-aware completion on big catalogs: snapshot time, memory, and latency per Tab.

Builds a schema of N tables of 20 columns each (with a foreign key from every
table to the one before it) in the embedded server, then, in this process
with pgmagic loaded in a real IPython shell, measures:

- reading the catalog snapshot (``%pg refresh``: relations, schemas, functions);
- the snapshot's memory (tracemalloc, Python objects only);
- the kernel-side latency of one completion (``complete_code``), median and
  p95 over repeated requests, for a table name after ``FROM``, an alias's
  columns (the first request for a table reads its columns), and a join
  condition from foreign keys.

This is the engine both front ends use (the kernel's completer and the
JupyterLab extension over pgmagic's comm); the browser adds the comm round
trip and rendering on top.

    python benchmarks/bench_complete.py [--tables 2000 20000] [--out benchmarks/results/complete.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

COLUMNS = 20
REPEAT = 200


def catalog_statements(tables: int, schema: str) -> list[str]:
    """DDL for ``tables`` tables ``schema.t1 ...`` of 20 columns, each with a foreign key
    to the one before; run each statement on its own (they COMMIT every 500 tables,
    since one transaction cannot lock 20,000 of them)."""
    cols = ", ".join(f"c{i} int" for i in range(COLUMNS - 2))
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"DO $$ BEGIN FOR i IN 1..{tables} LOOP "
        f"EXECUTE format('CREATE TABLE {schema}.t%s (id int PRIMARY KEY, prev int, "
        f"{cols})', i); IF i % 500 = 0 THEN COMMIT; END IF; END LOOP; END $$",
        f"DO $$ BEGIN FOR i IN 2..{tables} LOOP "
        f"EXECUTE format('ALTER TABLE {schema}.t%s ADD FOREIGN KEY (prev) REFERENCES "
        f"{schema}.t%s (id)', i, i - 1); IF i % 500 = 0 THEN COMMIT; END IF; END LOOP; END $$",
    ]


def build(ip: Any, tables: int) -> float:
    """Create schema ``bench_n`` with ``tables`` tables; return the seconds it took."""
    started = time.perf_counter()
    ip.run_cell(
        "%%pg -q\nDROP SCHEMA IF EXISTS bench_n CASCADE;\n"
        + ";\n".join(catalog_statements(tables, "bench_n"))
        + ";\nSET search_path = bench_n, public"
    )
    return time.perf_counter() - started


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median and p95 of ``repeat`` calls, in milliseconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def measure(ip: Any, tables: int) -> dict[str, Any]:
    from pgmagic.catalog import snapshot as catalog
    from pgmagic.frontend.complete import complete_code
    from pgmagic.runtime.connections import default_runtime

    runtime = default_runtime()
    assert runtime is not None
    built = build(ip, tables)
    tracemalloc.start()
    started = time.perf_counter()
    snap = catalog.current(runtime, fresh=True)
    load_s = time.perf_counter() - started
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    namespace: dict[str, Any] = {}

    def ask(code: str) -> Callable[[], Any]:
        pos = code.index("|")
        text = code.replace("|", "")
        return lambda: complete_code(text, pos, namespace, runtime)

    first_columns = timed(ask(f"%%pg\nSELECT x.| FROM t{tables} x"), 1)
    cases = {
        "FROM t12…": ask("%%pg\nSELECT * FROM t12|"),
        "alias. (columns known)": ask(f"%%pg\nSELECT x.| FROM t{tables} x"),
        "JOIN … ON (foreign key)": ask(
            f"%%pg\nSELECT * FROM t{tables} a JOIN t{tables - 1} b ON |"
        ),
    }
    latency = {name: timed(call, REPEAT) for name, call in cases.items()}
    found = ask(f"%%pg\nSELECT * FROM t{tables} a JOIN t{tables - 1} b ON |")()
    assert found is not None and any("=" in s.text for s in found[1]), "no join condition"
    ip.run_cell(
        "%%pg -q\nRESET search_path;\n"
        f"DO $$ BEGIN FOR i IN REVERSE {tables}..1 LOOP "
        "EXECUTE format('DROP TABLE bench_n.t%s', i); "
        "IF i % 500 = 0 THEN COMMIT; END IF; END LOOP; END $$;\nDROP SCHEMA bench_n"
    )
    return {
        "tables": tables,
        "relations": len(snap.relations),
        "build_s": built,
        "load_s": load_s,
        "memory": memory,
        "first_columns_ms": first_columns[0],
        "latency": latency,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"# Completion on big catalogs ({platform.system().lower()}, {os.cpu_count()} cores)",
        "",
        f"Kernel-side `complete_code` per request, median / p95 of {REPEAT}; tables of "
        f"{COLUMNS} columns, each with a foreign key to the one before.",
        "",
        "| tables | snapshot read | snapshot memory | first `alias.` (reads columns) "
        "| `FROM t12…` | `alias.` | `JOIN … ON` |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [f"{p50:.2f} / {p95:.2f} ms" for p50, p95 in r["latency"].values()]
        lines.append(
            f"| {r['tables']:,} | {r['load_s']:.2f} s | {r['memory'] / 2**20:.1f} MiB "
            f"| {r['first_columns_ms']:.1f} ms | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "complete.md"), help="table file"
    )
    args = parser.parse_args()
    os.environ.setdefault("PGMAGIC_DATA_DIR", tempfile.mkdtemp(prefix="pgmagic-bench-"))
    os.environ.setdefault("PGMAGIC_DSN", "embedded")
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    assert ip is not None
    ip.run_line_magic("load_ext", "pgmagic")
    ip.run_cell("%pg -q SELECT 1")
    results = [measure(ip, n) for n in args.tables]
    report = table(results)
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
