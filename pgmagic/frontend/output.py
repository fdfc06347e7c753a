"""Where a magic's lines go: notes, NOTICEs and command tags to stdout, warnings to stderr."""

from __future__ import annotations

import sys

from pgmagic.runtime.messages import Message, MessageKind

__all__ = ["print_message"]

_QUIET_SEVERITIES = frozenset({"NOTICE", "INFO", "LOG", "DEBUG"})


def print_message(message: Message) -> None:
    """Print a message under the running cell, as psql would.

    Parameters
    ----------
    message : Message
    """
    stream = sys.stdout
    if message.kind is MessageKind.SERVER and message.severity not in _QUIET_SEVERITIES:
        stream = sys.stderr
    print(message.text, file=stream)
