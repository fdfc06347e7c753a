"""Client CPU of decoding object columns (numeric, jsonb, uuid, arrays) on the default path.

Usage::

    python benchmarks/bench_objects.py [--rows 1000000] [--rounds 5] [--only numeric ...]
    python benchmarks/bench_objects.py --rows 100000 --save DIR  # capture the streams only
    valgrind --tool=callgrind python benchmarks/bench_objects.py --load DIR --only numeric

Each column is a single-column table in the embedded server (or
``PGMAGIC_BENCH_DSN``).  Its binary COPY stream is captured once; then only
the decoding is timed (``time.process_time``, the collector paused as
:func:`pgmagic.results.decode.copy_frame` pauses it): the parser fed the
captured chunks and the DataFrame built from its buffers, which is the client
work the COPY path adds to the server's.  Reported: the median CPU seconds of
the rounds and the same per 1M values.

``--save`` writes the captured streams and plans to a folder; ``--load``
decodes them once per column without a database, for instruction counts
under callgrind (which then measure the decoding plus a constant start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# name -> the column's SQL, over generate_series(1, rows) g
COLUMNS: dict[str, str] = {
    "int8": "g::int8",
    "numeric": "round((g * 1.2345678)::numeric, g % 9)",
    "numeric(12,2)": "((g % 1000000)::numeric / 7)::numeric(12, 2)",
    "numeric int": "(g * 37)::numeric",
    "jsonb": "jsonb_build_object('a', g, 'b', 'x')",
    "jsonb nested": "jsonb_build_object('id', g, 'tags', jsonb_build_array('x', g % 7), "
    "'p', g / 3.0, 'o', jsonb_build_object('k', g % 2 = 0))",
    # integers beyond 64 bits: orjson would make them floats
    "jsonb big ints": "jsonb_build_object('a', g, 'n', g * 100000000000000000000::numeric)",
    "json": "json_build_object('a', g, 'b', 'x')",
    "uuid": "md5(g::text)::uuid",
    "int4[]": "ARRAY[g, g + 1, g + 2]::int4[]",
    "text[]": "ARRAY['a' || g, 'b', NULL]::text[]",
    "numeric[]": "ARRAY[g::numeric / 4, 1.5]::numeric[]",
}


def _table(name: str) -> str:
    return "bench_obj_" + "".join(ch if ch.isalnum() else "_" for ch in name)


async def _capture(dsn: str, rows: int, names: list[str]) -> dict[str, tuple[Any, list[bytes]]]:
    import asyncpg

    from pgmagic.results import decode

    conn = await asyncpg.connect(dsn)
    captured = {}
    try:
        for name in names:
            table = _table(name)
            ready = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
            if not ready or await conn.fetchval(f"SELECT count(*) FROM {table}") != rows:
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
                await conn.execute(
                    f"CREATE TABLE {table} AS SELECT {COLUMNS[name]} AS v "
                    f"FROM generate_series(1, {int(rows)}) g"
                )
            sql = f"SELECT v FROM {table}"
            stmt = await conn.prepare(sql)
            plan = await decode.plan_columns(conn, stmt.get_attributes(), False)
            chunks: list[bytes] = []

            async def sink(chunk: bytearray, chunks: list[bytes] = chunks) -> None:
                chunks.append(bytes(chunk))

            await conn.copy_from_query(sql, output=sink, format="binary")
            captured[name] = (plan, chunks)
    finally:
        await conn.close()
    return captured


def decode_once(plan: Any, chunks: list[bytes]) -> Any:
    """Feed the captured chunks to a new parser and build the frame."""
    from pgmagic.results import decode

    with decode._gc_paused():
        builder = decode._FrameBuilder(plan)
        for chunk in chunks:
            builder.feed(chunk)
        return builder.frame()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", choices=sorted(COLUMNS), default=None)
    parser.add_argument("--save", type=Path, help="capture the streams into this folder")
    parser.add_argument("--load", type=Path, help="decode saved streams once each, no database")
    args = parser.parse_args()
    names = args.only or list(COLUMNS)

    if args.load:
        for name in names:
            plan, chunks = pickle.loads((args.load / _table(name)).read_bytes())
            decode_once(plan, chunks)
        return

    from pgmagic.runtime import embedded

    dsn = os.environ.get("PGMAGIC_BENCH_DSN") or embedded.start().dsn
    captured = asyncio.run(_capture(dsn, args.rows, names))
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for name, item in captured.items():
            (args.save / _table(name)).write_bytes(pickle.dumps(item))
        return

    print(f"{args.rows:,} rows, median of {args.rounds} rounds, client CPU of decoding")
    print(f"{'column':<16} {'MB':>7} {'CPU s':>7} {'s per 1M':>9}")
    for name in names:
        plan, chunks = captured[name]
        decode_once(plan, chunks)  # warm-up: imports, caches
        times = []
        for _ in range(args.rounds):
            start = time.process_time()
            frame = decode_once(plan, chunks)
            times.append(time.process_time() - start)
            del frame
        median = statistics.median(times)
        size = sum(len(c) for c in chunks) / 1e6
        print(f"{name:<16} {size:7.1f} {median:7.3f} {median * 1e6 / args.rows:9.3f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
