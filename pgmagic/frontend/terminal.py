"""Notifications as printed lines: ``%pg listen`` in terminal IPython, which shows no widgets."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pgmagic.frontend.feed import start_listening
from pgmagic.live.listener import Status
from pgmagic.live.log import Gap, NotificationLog
from pgmagic.runtime.loop import Runtime
from pgmagic.runtime.messages import Message

__all__ = ["TextFeed", "listen_as_text"]


class TextFeed:
    """Notifications as printed lines, for terminals (which show no widgets).

    Parameters
    ----------
    channels : sequence of str
    log : NotificationLog
        The listener's log; lines start after what it already holds.
    """

    def __init__(self, channels: Sequence[str], log: NotificationLog) -> None:
        self.channels = frozenset(channels)
        self._seq = log.last_seq

    def update(self, log: NotificationLog, status: Status) -> None:
        """Print what arrived since the last call (on the loop thread)."""
        for item in log.since(self._seq):
            self._seq = item.seq
            stamp = time.strftime("%H:%M:%S", time.localtime(item.time))
            if isinstance(item, Gap):
                print(f"{stamp}  GAP  {item.message}", flush=True)
            elif item.channel in self.channels and not item.connection:
                print(f"{stamp}  {item.channel}  pid {item.pid}  {item.payload}", flush=True)


def listen_as_text(
    runtime: Runtime,
    channels: Sequence[str],
    *,
    on_message: Callable[[Message], None] | None = None,
    dsn: str | None = None,
) -> None:
    """LISTEN on channels and print notifications as they arrive (terminal IPython).

    Parameters
    ----------
    runtime : Runtime
    channels : sequence of str
    on_message : callable, optional
        Receives notes (the embedded server starting) while connecting.
    dsn : str, optional
        Where the listener connects instead of the runtime's target.
    """
    listener, names = start_listening(runtime, channels, on_message, dsn)
    for sink in listener.sinks:
        if isinstance(sink, TextFeed) and sink.channels == frozenset(names):
            listener.remove_sink(sink)
    listener.add_sink(TextFeed(names, listener.log))
    print(f"listening on {', '.join(names)}; notifications print here as they arrive")
