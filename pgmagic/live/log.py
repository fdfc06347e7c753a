"""The bounded notification log, its items, and the rate meter.

Every notification goes into the :class:`NotificationLog` first; the log is
bounded, and counts exactly what it drops.  Gaps (the listener reconnected)
are items of the log too, so every view shows them where they happened.
The log is read from the kernel's main thread and written from the loop
thread, so it takes a lock.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from pgmagic.errors import OptionError

# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes, and pg_notify
# rejects longer channel names outright.
_MAX_CHANNEL_BYTES = 63
RATE_WINDOW = 3.0


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification as the kernel received it.

    Attributes
    ----------
    seq : int
        Position in the log; increases by one per item (notification or gap).
    time : float
        Epoch seconds when the kernel received it.
    channel : str
    pid : int
        Backend pid of the sending session.
    payload : str
    connection : str
        The named connection whose listener received it, when that is not
        the log's own (the side panel's log gathers every connection's);
        empty for the log's own.
    """

    kind: ClassVar[str] = "notification"
    seq: int
    time: float
    channel: str
    pid: int
    payload: str
    connection: str = ""

    def to_item(self) -> dict[str, Any]:
        """The item as the feed widget and the panel comm carry it."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "time": self.time,
            "channel": self.channel,
            "pid": self.pid,
            "payload": self.payload,
            "connection": self.connection,
        }


@dataclass(frozen=True, slots=True)
class Gap:
    """A window in which notifications may have been missed.

    Attributes
    ----------
    seq : int
        Position in the log.
    time : float
        Epoch seconds when the gap was recorded (its end).
    start, end : float
        Epoch seconds of the window.
    message : str
        What happened, e.g. ``disconnected 12:01:03 to 12:01:05: ...``.
    """

    kind: ClassVar[str] = "gap"
    seq: int
    time: float
    start: float
    end: float
    message: str

    def to_item(self) -> dict[str, Any]:
        """The item as the feed widget and the panel comm carry it."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "time": self.time,
            "start": self.start,
            "end": self.end,
            "message": self.message,
        }


Item = Notification | Gap


def matches(item: Item, channel: str | None = None, text: str | None = None) -> bool:
    """Whether an item passes the panel's filters.

    Parameters
    ----------
    item : Notification or Gap
    channel : str, optional
        Exact channel, as the panel's header lists it (``two: away`` for
        another connection's ``away``); gaps concern every channel and always pass.
    text : str, optional
        Case-insensitive substring of the channel, payload or pid (of a
        gap's message).

    Returns
    -------
    bool
    """
    needle = (text or "").lower()
    if isinstance(item, Gap):
        return needle in item.message.lower()
    label = f"{item.connection}: {item.channel}" if item.connection else item.channel
    if channel is not None and label != channel:
        return False
    return (
        needle in item.channel.lower() or needle in item.payload.lower() or needle in str(item.pid)
    )


class NotificationLog:
    """The bounded, thread-safe history of everything the listener received.

    Parameters
    ----------
    maxlen : int
        Items kept; the oldest are dropped, and counted, beyond it.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        _check_history(maxlen)
        self._lock = threading.Lock()
        self._items: collections.deque[Item] = collections.deque(maxlen=maxlen)
        self._seq = 0
        self._received = 0
        self._dropped = 0
        self._received_by_channel: collections.Counter[str] = collections.Counter()
        self._dropped_by_channel: collections.Counter[str] = collections.Counter()

    @property
    def maxlen(self) -> int:
        """Items kept at most."""
        maxlen = self._items.maxlen
        assert maxlen is not None
        return maxlen

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest item (0 before the first)."""
        return self._seq

    def append(self, channel: str, pid: int, payload: str, connection: str = "") -> Notification:
        """Record a notification received now.

        Parameters
        ----------
        channel : str
        pid : int
        payload : str
        connection : str
            Another connection's name, when its listener received it.

        Returns
        -------
        Notification
        """
        with self._lock:
            self._seq += 1
            item = Notification(self._seq, time.time(), channel, pid, payload, connection)
            self._push(item)
            self._received += 1
            if not connection:
                # Per channel: the log's own connection's, as its widgets count them.
                self._received_by_channel[channel] += 1
        return item

    def append_gap(self, start: float, end: float, message: str) -> Gap:
        """Record a window in which notifications may have been missed.

        Parameters
        ----------
        start, end : float
            Epoch seconds.
        message : str

        Returns
        -------
        Gap
        """
        with self._lock:
            self._seq += 1
            gap = Gap(self._seq, time.time(), start, end, message)
            self._push(gap)
        return gap

    def _push(self, item: Item) -> None:
        if len(self._items) == self._items.maxlen:
            self._evicted(self._items[0])
        self._items.append(item)

    def _evicted(self, item: Item) -> None:
        self._dropped += 1
        if isinstance(item, Notification) and not item.connection:
            self._dropped_by_channel[item.channel] += 1

    def since(self, seq: int) -> list[Item]:
        """Items newer than ``seq`` that the log still holds, oldest first.

        Parameters
        ----------
        seq : int

        Returns
        -------
        list of Notification or Gap
        """
        with self._lock:
            # seq numbers are contiguous in the deque, so the newest
            # (last_seq - seq) items are exactly the ones wanted.
            wanted = min(self._seq - seq, len(self._items))
            newest = list(itertools.islice(reversed(self._items), max(wanted, 0)))
        newest.reverse()
        return newest

    def items(self) -> list[Item]:
        """Every item held, oldest first."""
        with self._lock:
            return list(self._items)

    def counts(self, channels: Iterable[str] | None = None) -> tuple[int, int]:
        """Notifications received and dropped from the history.

        Parameters
        ----------
        channels : iterable of str, optional
            Count only these channels (notifications only); all items if None.

        Returns
        -------
        (received, dropped) : tuple of int
        """
        with self._lock:
            if channels is None:
                return self._received, self._dropped
            wanted = list(channels)
            return (
                sum(self._received_by_channel[c] for c in wanted),
                sum(self._dropped_by_channel[c] for c in wanted),
            )

    def resize(self, maxlen: int) -> None:
        """Keep at most ``maxlen`` items from now on, dropping (and counting) the oldest.

        Parameters
        ----------
        maxlen : int
        """
        _check_history(maxlen)
        with self._lock:
            if maxlen == self._items.maxlen:
                return
            while len(self._items) > maxlen:
                self._evicted(self._items.popleft())
            self._items = collections.deque(self._items, maxlen=maxlen)

    def to_frame(
        self,
        *,
        channel: str | None = None,
        text: str | None = None,
        after_seq: int | None = None,
    ) -> pd.DataFrame:
        """The history as a DataFrame, filtered as the panel filters.

        Parameters
        ----------
        channel, text : str, optional
            See :func:`matches`.
        after_seq : int, optional
            Only items with a larger ``seq``.

        Returns
        -------
        pandas.DataFrame
            Columns ``seq``, ``time`` (UTC), ``kind`` (``"notification"`` or
            ``"gap"``), ``channel``, ``pid``, ``payload`` (a gap's message),
            ``connection`` (another connection's name, else empty);
            ``frame.attrs["dropped"]`` is how many items the history dropped.
        """
        with self._lock:
            held = list(self._items)
            dropped = self._dropped
        low = after_seq if after_seq is not None else 0
        rows = [i for i in held if i.seq > low and matches(i, channel, text)]
        notes = [i if isinstance(i, Notification) else None for i in rows]
        frame = pd.DataFrame(
            {
                "seq": pd.array([i.seq for i in rows], dtype="int64"),
                "time": pd.to_datetime([i.time for i in rows], unit="s", utc=True).as_unit("us"),
                "kind": pd.array([i.kind for i in rows], dtype="str"),
                "channel": pd.array([n.channel if n else None for n in notes], dtype="str"),
                "pid": pd.array([n.pid if n else None for n in notes], dtype="Int64"),
                "payload": pd.array(
                    [i.payload if isinstance(i, Notification) else i.message for i in rows],
                    dtype="str",
                ),
                "connection": pd.array([n.connection if n else "" for n in notes], dtype="str"),
            }
        )
        frame.attrs["dropped"] = dropped
        return frame


def _check_history(maxlen: int) -> None:
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
        raise OptionError(f"the notification history needs a size of at least 1, got {maxlen!r}")


class RateMeter:
    """Items per second over the last few seconds, from running counts.

    Parameters
    ----------
    window : float
        Seconds the rate looks back.
    """

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self._window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def rate(self, count: int) -> float:
        """Record the running count now and give the recent rate.

        Parameters
        ----------
        count : int

        Returns
        -------
        float
        """
        now = time.monotonic()
        samples = self._samples
        samples.append((now, count))
        while len(samples) > 1 and now - samples[0][0] > self._window:
            samples.popleft()
        then, before = samples[0]
        # At least a second, so two notifications 5 ms apart do not read as 400/s.
        return (count - before) / max(now - then, 1.0)


def check_channels(channels: Iterable[str]) -> list[str]:
    """Validate channel names, keeping order and dropping repeats.

    Names are used exactly as written (case-sensitive, as ``pg_notify``
    takes them); ``LISTEN`` gets them as quoted identifiers.

    Parameters
    ----------
    channels : iterable of str

    Returns
    -------
    list of str

    Raises
    ------
    OptionError
        An empty name, a NUL character, or more than 63 bytes.
    """
    names: list[str] = []
    for name in channels:
        if not isinstance(name, str) or not name:
            raise OptionError("a channel name cannot be empty")
        if "\x00" in name:
            raise OptionError(f"a channel name cannot contain NUL characters: {name!r}")
        size = len(name.encode())
        if size > _MAX_CHANNEL_BYTES:
            raise OptionError(
                f"channel name too long ({size} bytes; PostgreSQL allows {_MAX_CHANNEL_BYTES}): "
                f"{name[:20]!r}..."
            )
        if name not in names:
            names.append(name)
    return names


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


def gap_message(start: float, end: float) -> str:
    """The line a gap shows: when the listener was away.

    Parameters
    ----------
    start, end : float
        Epoch seconds.

    Returns
    -------
    str
    """
    return (
        f"disconnected {_clock(start)} to {_clock(end)}: "
        "notifications sent in this window were not received"
    )
