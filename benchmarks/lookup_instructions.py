"""Instructions per ``%%pg`` one-row lookup, counted by callgrind: stable on a busy machine.

Run::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \\
        python benchmarks/lookup_instructions.py [--calls 100] [--value-only] [--dsn DSN]

then divide callgrind's ``Collected`` by ``--calls``.  The lookups run inside
``functools.reduce``, so ``--toggle-collect`` counts them and nothing else (not
the imports, the connection or the warm-up); only the kernel's thread is
counted, where the magic, the frame and the display run (the loop thread's
part is one round trip on a cached statement).  Wall times on a shared
machine move with its load; instruction counts do not, so two versions of
pgmagic compare by their counts.
"""

from __future__ import annotations

import argparse
import functools


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--value-only", action="store_true", help="no display")
    parser.add_argument("--dsn", help="default: pgmagic's embedded server")
    args = parser.parse_args()

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "pgmagic")
    if args.dsn:
        shell.run_line_magic("pg", f"connect {args.dsn}")
    shell.run_cell_magic(
        "pg",
        "-q",
        "DROP TABLE IF EXISTS bench_lookup;"
        "CREATE TABLE bench_lookup AS SELECT g AS id, 'user ' || g AS name, "
        "g * 0.5 AS score, now() AS joined FROM generate_series(1, 100000) g;"
        "ALTER TABLE bench_lookup ADD PRIMARY KEY (id)",
    )
    formatter = shell.display_formatter

    def lookup(done: int, i: int) -> int:
        shell.user_ns["key"] = i % 100000 + 1
        value = shell.run_cell_magic("pg", "", "SELECT * FROM bench_lookup WHERE id = $key")
        if not args.value_only:
            formatter.format(value)
        return done + 1

    for i in range(args.warmup):
        lookup(0, i)
    done = functools.reduce(lookup, range(args.calls), 0)
    print(f"{done} lookups counted")
    shell.run_cell_magic("pg", "-q", "DROP TABLE bench_lookup")
    shell.run_line_magic("unload_ext", "pgmagic")


if __name__ == "__main__":
    main()
