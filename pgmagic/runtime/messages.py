"""Lines for the cell that waits: server NOTICEs, command tags and our own notes.

They are posted from the loop thread and handed to the waiting thread by
:meth:`pgmagic.runtime.loop.Runtime.drain`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MessageKind(enum.Enum):
    """Where a message comes from."""

    INFO = "info"
    SERVER = "server"
    STATUS = "status"
    RESULT = "result"


@dataclass(frozen=True, slots=True)
class Message:
    """A line to show under the running cell.

    Attributes
    ----------
    kind : MessageKind
        Our own note, a server message (NOTICE, WARNING, ...), a statement's
        command tag, or a statement's rows to show as they complete.
    text : str
        The line as shown, e.g. ``NOTICE:  table created`` (for a result,
        its command tag, for front ends that show no tables).
    severity : str
        Server severity (``NOTICE``, ``WARNING``...) or ``INFO`` for ours.
    result : object, optional
        For ``RESULT``: the statement's result (a
        :class:`pgmagic.results.statement.StatementResult`).
    """

    kind: MessageKind
    text: str
    severity: str = "INFO"
    result: object | None = None
