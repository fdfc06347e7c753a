"""What a listener's views and subscribers see: its state, its status, and their protocols."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from pgmagic.live.log import Item, NotificationLog

__all__ = ["TRANSITIONS", "ListenerState", "Sink", "Status", "Subscriber"]


class ListenerState(enum.Enum):
    """Where the listener connection stands; the values are the feed protocol's."""

    LISTENING = "listening"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


#: The moves a listener's state may make.
TRANSITIONS = {
    ListenerState.STOPPED: {ListenerState.LISTENING},
    ListenerState.LISTENING: {ListenerState.RECONNECTING, ListenerState.STOPPED},
    ListenerState.RECONNECTING: {ListenerState.LISTENING, ListenerState.STOPPED},
}


class Sink(Protocol):
    """A view the listener updates: called on the loop thread, at most once per batch interval."""

    def update(self, log: NotificationLog, status: Status) -> None:
        """Pull what is new from ``log`` and show ``status``."""


class Subscriber(Protocol):
    """Code that wants each notification on some channels as it arrives."""

    @property
    def channels(self) -> frozenset[str]:
        """Channels to receive; gaps are pushed to every subscriber."""

    def push(self, item: Item) -> None:
        """Take one item; called on the loop thread, so it must not block."""

    def end(self) -> None:
        """The listener closed; no more items will come."""


@dataclass(frozen=True, slots=True)
class Status:
    """What views show about the listener.

    Attributes
    ----------
    state : ListenerState
    channels : frozenset of str
        Channels LISTENed for any reason (``%pg listen``, iterators, refreshes).
    listened : frozenset of str
        Channels ``%pg listen`` asked for.
    """

    state: ListenerState
    channels: frozenset[str]
    listened: frozenset[str]
