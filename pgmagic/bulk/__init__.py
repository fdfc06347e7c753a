"""Big data in and out: streams, exports, loads.

:mod:`~pgmagic.bulk.stream` iterates over a server-side cursor,
:mod:`~pgmagic.bulk.export` writes files (through :mod:`~pgmagic.bulk.arrow`,
the Arrow and JSON-lines side of the C parser), :mod:`~pgmagic.bulk.load`
sends DataFrames and files with ``COPY FROM`` (encoded by
:mod:`~pgmagic.bulk.encode`, read by :mod:`~pgmagic.bulk.sources`, the
tables ``--create`` makes typed by :mod:`~pgmagic.bulk.coltypes`).

May import: errors, _oids, runtime, sql, results
"""
