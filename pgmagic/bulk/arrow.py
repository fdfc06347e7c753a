"""Binary ``COPY`` into Arrow record batches and JSON lines, for exports.

:func:`copy_record_batches` and :func:`copy_json_lines` run the same COPY as
:func:`pgmagic.results.decode.copy_frame` and hand its rows, a batch at a time,
to a writer in a worker thread: Arrow record batches (the C parser fills
Arrow's buffers directly, no Python object per value: the types of
:mod:`pgmagic.results.arrow`) or JSON lines (the parser writes them).
While one batch is written the next is decoded; at most those two are held,
so memory stays bounded whatever the size of the result.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import asyncpg.types
import pyarrow as pa

from pgmagic._oids import CopyLayout
from pgmagic.results.arrow import RecordBatches, copy_batches
from pgmagic.results.decode import new_parser, plan_columns
from pgmagic.results.zones import offset_table


async def copy_record_batches(
    conn: asyncpg.Connection,
    sql: str,
    columns: Sequence[asyncpg.types.Attribute],
    write: Callable[[pa.RecordBatch], None],
    *,
    numeric_as_float: bool = False,
    batch_rows: int = 50_000,
    timeout: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    zone: str = "UTC",
) -> int:
    """Run ``sql`` through binary COPY and hand its rows to ``write`` as Arrow record batches.

    The Arrow types are :mod:`pgmagic.results.arrow`'s table.

    Parameters
    ----------
    conn : asyncpg.Connection
        A connection of the caller's; the COPY runs in whatever transaction
        it has open.
    sql : str
        A statement without parameters that returns rows (bind values with
        :func:`pgmagic.results.copyout.bound_values`).
    columns : sequence of asyncpg.types.Attribute
        ``PreparedStatement.get_attributes()`` for ``sql``.
    write : callable
        Called in a worker thread with each batch, in order, one at a time;
        the next batch is decoded meanwhile.  Every batch has the schema of
        the first; an empty result gives one empty batch.
    numeric_as_float : bool, default False
        Give ``numeric`` as float64.
    batch_rows : int, default 50,000
        Rows per batch (fewer when rows are wide: a batch also ends after
        32 MB of COPY data).
    timeout : float, optional
        Seconds before asyncpg cancels the COPY.
    on_progress : callable, optional
        Called on the loop thread after each chunk with the rows decoded and
        the bytes received so far.
    zone : str, default "UTC"
        The time zone timestamptz columns are annotated with (the session's,
        as :func:`pgmagic.results.zones.zone_name` names it); the stored
        values are UTC instants whatever the zone.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    UnsupportedColumnError
        Before running anything, when a column type is not supported.
    ColumnTypeError
        A value does not fit the type the first batch gave its column.
    ValueError, OverflowError, UnicodeDecodeError
        A value asyncpg would refuse to decode; the COPY is cancelled.

    Examples
    --------
    >>> columns = (await conn.prepare(sql)).get_attributes()  # doctest: +SKIP
    >>> await copy_record_batches(conn, sql, columns, writer.write_batch)  # doctest: +SKIP
    """
    plan = await plan_columns(conn, columns, numeric_as_float, export=True)
    batches = RecordBatches(plan, zone)

    def deliver(nrows: int, payload: list[tuple[Any, ...]]) -> None:
        write(batches(nrows, payload))

    return await copy_batches(
        conn,
        sql,
        new_parser(plan, CopyLayout.ARROW),
        deliver,
        batch_rows=batch_rows,
        timeout=timeout,
        on_progress=on_progress,
    )


async def copy_json_lines(
    conn: asyncpg.Connection,
    sql: str,
    columns: Sequence[asyncpg.types.Attribute],
    write: Callable[[memoryview], None],
    *,
    numeric_as_float: bool = False,
    batch_rows: int = 50_000,
    timeout: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    zone: dt.tzinfo = dt.UTC,
) -> int:
    """Run ``sql`` through binary COPY and hand its rows to ``write`` as JSON lines.

    Each row is one JSON object, keys in column order, UTF-8, ending in a
    newline.  Numbers stay numbers (floats as Python's ``repr``, NaN and
    infinities null) except ``numeric``, which is its exact text as a
    string (NaN null); timestamps are ISO 8601 with microseconds
    (timestamptz with the offset of ``zone``, as the server's CSV has it:
    ``2024-01-01T12:00:00.000000+05:30``; ``Z`` in UTC, for the infinities
    and where the local time would leave years 1-9999), dates
    ``YYYY-MM-DD``, intervals as pandas writes them
    (``P1DT3H0M0S``), times ``isoformat()``, bytea PostgreSQL's hex form;
    json and jsonb are nested as the server wrote them; arrays are JSON
    arrays, nested by dimension.

    Parameters
    ----------
    conn, sql, columns
        As for :func:`copy_record_batches`.
    write : callable
        Called in a worker thread with each batch of lines, in order, one at
        a time.
    numeric_as_float : bool, default False
        Write ``numeric`` as a JSON number.
    batch_rows : int, default 50,000
        Rows per batch (fewer when rows are wide).
    timeout : float, optional
        Seconds before asyncpg cancels the COPY.
    on_progress : callable, optional
        Called on the loop thread with the rows decoded and the bytes
        received so far.
    zone : datetime.tzinfo, default UTC
        The session's zone (:func:`pgmagic.results.zones.result_zone`).

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    UnsupportedColumnError
        Before running anything, when a column type is not supported.
    ValueError, OverflowError, UnicodeDecodeError
        A value asyncpg would refuse to decode; the COPY is cancelled.

    Examples
    --------
    >>> columns = (await conn.prepare(sql)).get_attributes()  # doctest: +SKIP
    >>> await copy_json_lines(conn, sql, columns, file.write)  # doctest: +SKIP
    """
    plan = await plan_columns(conn, columns, numeric_as_float, export=True)
    keys = tuple(
        (b"," if i else b"{") + json.dumps(name, ensure_ascii=False).encode() + b":"
        for i, name in enumerate(plan.names)
    )

    def deliver(nrows: int, payload: Any) -> None:
        write(memoryview(payload))

    return await copy_batches(
        conn,
        sql,
        new_parser(plan, CopyLayout.JSONL, keys, offset_table(zone)),
        deliver,
        batch_rows=batch_rows,
        timeout=timeout,
        on_progress=on_progress,
    )
