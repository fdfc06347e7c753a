"""``timestamptz`` and the session's ``TimeZone``: the server's rule, kept on the Python side.

PostgreSQL reads a time without an offset (``'2024-01-01 12:00'::timestamptz``)
as a wall time in the session's ``TimeZone`` and writes timestamptz values in
that zone.  pgmagic does the same with Python values:

- a naive ``datetime`` (or a ``date``, as midnight) bound to a timestamptz
  parameter means that wall time in the connection's zone, where asyncpg
  would read it in the kernel machine's local zone (:func:`localize`);
- DataFrames show timestamptz in the zone (:func:`result_zone`); the instants
  are the same whatever the zone.

The zone's name comes from the server's ParameterStatus messages, which
asyncpg keeps per connection: knowing it costs no round trip.  A name Python
has no zone for (a POSIX rule such as ``XST3XDT,M3.2.0,M11.1.0``) shows
results in UTC, and refuses naive values rather than guess.
"""

from __future__ import annotations

import array
import dataclasses
import datetime as dt
import functools
import importlib.resources
import os
import re
import struct
import zoneinfo
from collections.abc import Sequence
from typing import Any

from pgmagic import _oids as oids
from pgmagic.errors import ParameterError
from pgmagic.sql.params import BoundStatement

__all__ = [
    "localize",
    "localize_rows",
    "offset_table",
    "python_zone",
    "read_naive",
    "result_zone",
    "shown_in",
    "wall_time",
    "zone_name",
    "zone_of",
]

UTC = dt.UTC

# Names of UTC itself: shown as pandas' plain "UTC", as before any SET TIME ZONE.
_UTC_NAMES = frozenset(
    name.lower()
    for name in (
        "UTC", "UCT", "Universal", "Zulu", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich",
        "Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "Etc/GMT", "Etc/GMT0",
        "Etc/GMT+0", "Etc/GMT-0", "Etc/Greenwich",
    )
)  # fmt: skip

# A POSIX zone without daylight-saving rules, as the server reports a numeric
# SET TIME ZONE: '<+05:30>-05:30', 'UTC+3'.  POSIX counts hours west of Greenwich.
_POSIX_FIXED = re.compile(
    r"(?:<[^<>]+>|[A-Za-z]{3,})([+-]?)(\d{1,2})(?::(\d{1,2}))?(?::(\d{1,2}))?", re.ASCII
)


@functools.lru_cache(maxsize=64)
def python_zone(name: str | None) -> dt.tzinfo | None:
    """The Python zone of a ``TimeZone`` setting as the server reports it.

    Parameters
    ----------
    name : str or None
        ``Asia/Kolkata``, ``Etc/UTC``, ``<+05:30>-05:30``, ...

    Returns
    -------
    datetime.tzinfo or None
        ``datetime.UTC`` for the names of UTC, a fixed offset for POSIX
        zones without rules, a ``ZoneInfo`` for IANA names; None when
        Python has no such zone.

    Examples
    --------
    >>> python_zone("Asia/Kolkata"), python_zone("<+05:30>-05:30"), python_zone("Etc/UTC")
    (zoneinfo.ZoneInfo(key='Asia/Kolkata'), datetime.timezone(datetime.timedelta(seconds=19800)), datetime.timezone.utc)
    """  # noqa: E501
    if not name:
        return None
    if name.lower() in _UTC_NAMES:
        return UTC
    fixed = _POSIX_FIXED.fullmatch(name)
    if fixed is not None:
        sign, hours, minutes, seconds = fixed.groups()
        west = dt.timedelta(hours=int(hours), minutes=int(minutes or 0), seconds=int(seconds or 0))
        offset = west if sign == "-" else -west
        return UTC if not offset else dt.timezone(offset)
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError, OSError):
        return None


def zone_of(conn: Any) -> dt.tzinfo | None:
    """The Python zone of a connection's ``TimeZone`` (no round trip).

    Parameters
    ----------
    conn : asyncpg.Connection
        Or a pool's connection proxy.

    Returns
    -------
    datetime.tzinfo or None
        None when the server has not reported a zone Python knows.
    """
    try:
        name = conn.get_settings().TimeZone
    except AttributeError:  # a server (or pooler) that never reported one
        return None
    return python_zone(str(name))


def result_zone(conn: Any) -> dt.tzinfo:
    """The zone a connection's timestamptz results are shown in: its ``TimeZone``, else UTC.

    Parameters
    ----------
    conn : asyncpg.Connection

    Returns
    -------
    datetime.tzinfo
    """
    return zone_of(conn) or UTC


def zone_name(zone: dt.tzinfo) -> str:
    """A zone as Arrow and Parquet name it: ``UTC``, ``Asia/Kolkata``, ``+05:30``.

    Parameters
    ----------
    zone : datetime.tzinfo
        From :func:`python_zone`.

    Returns
    -------
    str

    Examples
    --------
    >>> zone_name(python_zone("<-03:30>+03:30"))
    '-03:30'
    """
    if zone is UTC:
        return "UTC"
    if isinstance(zone, zoneinfo.ZoneInfo):
        return zone.key
    offset = zone.utcoffset(None) or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes, seconds = divmod(int(abs(offset).total_seconds()), 60)
    text = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return text + (f":{seconds:02d}" if seconds else "")


def wall_time(naive: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """A naive wall time in ``zone`` as the server reads it, as a UTC datetime.

    A time that a daylight-saving change skips (02:30 on a spring-forward
    night) or repeats (01:30 on a fall-back night) has two candidate
    offsets; PostgreSQL takes the later instant of the two (its
    ``DetermineTimeZoneOffset``: the offset before a gap, after an overlap),
    and so does this.

    Parameters
    ----------
    naive : datetime.datetime
        Without ``tzinfo``.
    zone : datetime.tzinfo

    Returns
    -------
    datetime.datetime
        The instant, with ``tzinfo=UTC``.

    Examples
    --------
    >>> wall_time(dt.datetime(2024, 1, 1, 12), python_zone("Asia/Kolkata"))
    datetime.datetime(2024, 1, 1, 6, 30, tzinfo=datetime.timezone.utc)
    """
    early = naive.replace(tzinfo=zone, fold=0).utcoffset() or dt.timedelta(0)
    late = naive.replace(tzinfo=zone, fold=1).utcoffset() or dt.timedelta(0)
    return (naive - min(early, late)).replace(tzinfo=UTC)


# Naive datetime.max and .min stay as they are: asyncpg sends them as ±infinity.
_INFINITIES = (dt.datetime.max, dt.datetime.min)


def read_naive(value: Any, zone: dt.tzinfo | None, name: str) -> Any:
    """A value bound or loaded into timestamptz, with naive times read in ``zone``.

    Parameters
    ----------
    value : object
        A naive ``datetime`` becomes the instant :func:`wall_time` gives; a
        ``date`` is its midnight; lists and tuples (arrays) are converted
        element by element; anything else is returned as it is.
    zone : datetime.tzinfo or None
        The session's zone; None when Python has none for it.
    name : str
        What the value is, for errors (``$when``, ``column 'ts'``).

    Returns
    -------
    object

    Raises
    ------
    ParameterError
        A naive value and no zone, or an instant beyond Python's range.
    """
    if isinstance(value, list | tuple):
        converted = [read_naive(v, zone, name) for v in value]
        return (
            converted if any(a is not b for a, b in zip(converted, value, strict=True)) else value
        )
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None or value in _INFINITIES:
            return value
    elif isinstance(value, dt.date):
        value = dt.datetime(value.year, value.month, value.day)  # midnight, as the server reads it
    else:
        return value
    if zone is None:
        raise ParameterError(
            f"{name} is a datetime without a time zone, and Python has no zone for the "
            "session's TimeZone to read it in; give it a tzinfo, or SET TIME ZONE to a zone name"
        )
    try:
        return wall_time(value, zone)
    except OverflowError:
        raise ParameterError(
            f"{name} is out of the range of Python's datetime once read in the session's TimeZone"
        ) from None


def localize(bound: BoundStatement, types: Sequence[Any], conn: Any) -> BoundStatement:
    """``bound`` with naive datetimes and dates of timestamptz parameters read in ``conn``'s zone.

    Parameters
    ----------
    bound : BoundStatement
    types : sequence of asyncpg.types.Type
        The statement's parameter types (``PreparedStatement.get_parameters()``).
    conn : asyncpg.Connection
        Where the statement runs: its ``TimeZone`` is the one the server
        would read a naive literal in.

    Returns
    -------
    BoundStatement
        ``bound`` itself when no value needed it.

    Raises
    ------
    ParameterError
        A naive value, and a ``TimeZone`` Python has no zone for.
    """
    args = list(bound.args)
    changed = False
    for index, (value, param) in enumerate(zip(args, types, strict=False)):
        if value is None or param.oid not in (oids.TIMESTAMPTZ, oids.TIMESTAMPTZ_ARRAY):
            continue
        name = f"${bound.names[index]}" if index < len(bound.names) and bound.names[index] else ""
        args[index] = read_naive(value, zone_of(conn), name or f"${index + 1}")
        changed |= args[index] is not value
    return dataclasses.replace(bound, args=tuple(args)) if changed else bound


def localize_rows(
    rows: Sequence[tuple[Any, ...]], types: Sequence[Any], conn: Any
) -> list[tuple[Any, ...]]:
    """:func:`localize` for the rows of ``--many`` (positions named ``$1, $2, ...``).

    Parameters
    ----------
    rows : sequence of tuple
    types : sequence of asyncpg.types.Type
    conn : asyncpg.Connection

    Returns
    -------
    list of tuple
    """
    zoned = [i for i, t in enumerate(types) if t.oid in (oids.TIMESTAMPTZ, oids.TIMESTAMPTZ_ARRAY)]
    if not zoned:
        return list(rows)
    zone = zone_of(conn)
    out = []
    for row in rows:
        values = list(row)
        for i in zoned:
            if i < len(values) and values[i] is not None:
                values[i] = read_naive(values[i], zone, f"${i + 1}")
        out.append(tuple(values))
    return out


def shown_in(value: Any, column: Any, zone: dt.tzinfo) -> Any:
    """A single value (``--scalar``, ``fetchval``) with a timestamptz shown in ``zone``.

    Parameters
    ----------
    value : object
        As asyncpg decoded it (timestamptz: a UTC datetime; ``infinity``:
        naive ``datetime.max``, left as it is).
    column : pgmagic.results.frames.Column
    zone : datetime.tzinfo

    Returns
    -------
    object

    Raises
    ------
    OverflowError
        The local time falls outside years 1-9999 (see
        :func:`pgmagic.results.frames.in_python_range`).
    """
    if column.oid == oids.TIMESTAMPTZ and isinstance(value, dt.datetime) and value.tzinfo:
        return value.astimezone(zone)
    return value


# ----------------------------------------------------- offsets for the C writer
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# 400 Gregorian years: calendars and daylight-saving rules repeat with this period.
_CYCLE_SECONDS = 146_097 * 86_400
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=16)
def offset_table(zone: dt.tzinfo) -> tuple[bytes, bytes, int] | None:
    """A zone's offsets for the C parser's JSON lines: every transition, then a 400-year cycle.

    The transitions come from the zone's TZif file (as ``zoneinfo`` finds
    it), those after its last listed one from ``zoneinfo`` itself (the
    file's POSIX rule), for 400 years: after that the rule repeats.

    Parameters
    ----------
    zone : datetime.tzinfo
        From :func:`python_zone`.

    Returns
    -------
    (bytes, bytes, int) or None
        Transition instants (int64 microseconds since 1970, the first
        ``INT64_MIN``), the offset from each on (int32 seconds east of UTC),
        and the instant from which the cycle repeats; None for UTC.

    Examples
    --------
    >>> at, offsets, end = offset_table(python_zone("Asia/Kolkata"))
    >>> array.array("i", offsets)[-1], end == 2**63 - 1
    (19800, True)
    """
    if zone is UTC:
        return None
    if not isinstance(zone, zoneinfo.ZoneInfo):
        offset = zone.utcoffset(None) or dt.timedelta(0)
        return _pack([(_INT64_MIN, int(offset.total_seconds()))], _INT64_MAX)
    data = _tzif(zone.key)
    parsed = _parse_tzif(data) if data is not None else None
    if parsed is None:  # no file to read: ask zoneinfo, week by week, 1800 to 2440
        start = int((dt.datetime(1800, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
        end = int((dt.datetime(2440, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())
        first = _offset_at(zone, start)
        return _pack([(_INT64_MIN, first), *_probe(zone, start, end, 7 * 86_400)], end)
    times, offsets, footer = parsed
    table = list(zip(times, offsets, strict=True))
    if "," not in footer:  # no daylight-saving rule after the last transition
        return _pack(table, _INT64_MAX)
    last = table[-1][0] if len(table) > 1 else 0
    year = (_EPOCH + dt.timedelta(seconds=last)).year + 1
    end = int((dt.datetime(year, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()) + _CYCLE_SECONDS
    return _pack(table + _probe(zone, last, end, 14 * 86_400), end)


def _pack(table: list[tuple[int, int]], end: int) -> tuple[bytes, bytes, int]:
    at = array.array("q", [t if t == _INT64_MIN else t * 1_000_000 for t, _ in table])
    offsets = array.array("i", [o for _, o in table])
    return at.tobytes(), offsets.tobytes(), end if end == _INT64_MAX else end * 1_000_000


def _offset_at(zone: dt.tzinfo, seconds: int) -> int:
    local = (_EPOCH + dt.timedelta(seconds=seconds)).astimezone(zone)
    return int((local.utcoffset() or dt.timedelta(0)).total_seconds())


def _probe(zone: dt.tzinfo, start: int, end: int, step: int) -> list[tuple[int, int]]:
    """The transitions after ``start`` and before ``end``, found every ``step`` seconds."""
    found = []
    before, offset = start, _offset_at(zone, start)
    while before < end:
        after = min(before + step, end)
        now = _offset_at(zone, after)
        if now != offset:
            low, high = before, after  # offset at low, now at high
            while high - low > 1:
                middle = (low + high) // 2
                if _offset_at(zone, middle) == offset:
                    low = middle
                else:
                    high = middle
            found.append((high, _offset_at(zone, high)))
            offset = found[-1][1]
            after = high
        before = after
    return found


def _tzif(key: str) -> bytes | None:
    """The TZif file ``zoneinfo`` loads for ``key``: on its search path, else the tzdata package."""
    for root in zoneinfo.TZPATH:
        path = os.path.join(root, *key.split("/"))
        if os.path.isfile(path):
            with open(path, "rb") as file:
                return file.read()
    try:
        resource = importlib.resources.files("tzdata").joinpath("zoneinfo", *key.split("/"))
        return resource.read_bytes()
    except (ImportError, OSError):
        return None


def _parse_tzif(data: bytes) -> tuple[list[int], list[int], str] | None:
    """Transition times (seconds, the first ``INT64_MIN``), offsets and the POSIX footer.

    RFC 8536: the version 2+ body, with 64-bit times, follows a version 1
    body; before the first transition the first local time type holds.
    """
    try:
        return _read_tzif(data)
    except (struct.error, IndexError):
        return None


def _read_tzif(data: bytes) -> tuple[list[int], list[int], str] | None:
    header = struct.Struct(">4sc15x6l")
    if data[:4] != b"TZif":
        return None
    _, version, isut, isstd, leap, count, types, chars = header.unpack_from(data)
    if version == b"\0":
        return None
    # skip the version 1 body, then read the second header
    offset = header.size + count * 5 + types * 6 + chars + leap * 8 + isstd + isut
    _, _, isut, isstd, leap, count, types, chars = header.unpack_from(data, offset)
    offset += header.size
    times = struct.unpack_from(f">{count}q", data, offset)
    offset += count * 8
    indexes = data[offset : offset + count]
    offset += count
    utoffs = [struct.unpack_from(">l", data, offset + 6 * i)[0] for i in range(types)]
    offset += types * 6 + chars + leap * 12 + isstd + isut
    footer = data[offset:].strip(b"\n").split(b"\n")[0].decode("ascii", "replace")
    return [_INT64_MIN, *times], [utoffs[0], *(utoffs[i] for i in indexes)], footer
