"""One statement to a value: Records or binary COPY, the dtype table, the cell runner.

:mod:`~pgmagic.results.statement` runs one statement and chooses between asyncpg
Records and binary ``COPY`` (decoded by :mod:`~pgmagic.results.decode`, the
pandas side of the C parser, or by :mod:`~pgmagic.results.arrow` into
Arrow tables, the types Parquet exports and polars frames share);
:mod:`~pgmagic.results.frames` is the pandas dtype table;
:mod:`~pgmagic.results.cell` runs a whole cell on the session;
:mod:`~pgmagic.results.history` gives the query history as a DataFrame.
:mod:`~pgmagic.results.explain` runs a statement behind ``EXPLAIN`` (its
writes rolled back) and :mod:`~pgmagic.results.plan` reads the JSON plan
into a tree of timed nodes, drawn by :mod:`~pgmagic.results.planview`.

May import: errors, _oids, runtime, sql
"""
