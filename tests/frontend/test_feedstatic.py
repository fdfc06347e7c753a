"""The feed's static HTML and text: what a saved notebook shows without its kernel."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pgmagic.frontend import feedstatic

NOON = time.mktime((2026, 12, 3, 12, 0, 0, 0, 0, -1))


def note(seq: int, payload: str, channel: str = "orders", pid: int = 4242) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": "notification",
        "time": NOON + seq,
        "channel": channel,
        "pid": pid,
        "payload": payload,
    }


def state(count: int, listener: str = "listening", dropped: int = 0) -> dict[str, Any]:
    return {
        "listener": listener,
        "channels": ["inventory", "orders"],
        "count": count,
        "rate": 1.5,
        "dropped": dropped,
    }


GAP = {
    "seq": 3,
    "kind": "gap",
    "time": NOON + 3,
    "start": NOON + 1,
    "end": NOON + 3,
    "message": "disconnected 12:00:01 to 12:00:03: notifications sent in this window were not received",
}


@pytest.mark.parametrize(
    ("feed_state", "items", "expected"),
    [
        (
            state(0),
            [],
            "LISTEN inventory, orders · listening · 0 received\nNo notifications yet.",
        ),
        (
            state(2),
            [note(1, '{"id": 42}'), note(2, "9223372036854775807", "inventory", 7)],
            "LISTEN inventory, orders · listening · 2 received\n"
            "time      channel    pid   payload\n"
            "12:00:02  inventory  7     9223372036854775807\n"
            '12:00:01  orders     4242  {"id": 42}\n'
            "newest first · a saved view: the live feed needs the kernel",
        ),
        (
            state(2, "stopped"),
            [note(1, "first\nsecond"), note(2, "1.10")],
            "LISTEN inventory, orders · stopped · 2 received\n"
            "time      channel  pid   payload\n"
            "12:00:02  orders   4242  1.10\n"
            "12:00:01  orders   4242  first\n"
            "                         second\n"
            "newest first · a saved view: the live feed needs the kernel",
        ),
        (
            state(2, "reconnecting"),
            [note(1, "a"), GAP],
            "LISTEN inventory, orders · reconnecting · 2 received\n"
            "time      channel  pid   payload\n"
            f"12:00:03  (gap)          {GAP['message']}\n"
            "12:00:01  orders   4242  a\n"
            "1 of 2 shown, newest first · a saved view: the live feed needs the kernel",
        ),
    ],
    ids=["empty", "two", "multiline-stopped", "gap"],
)
def test_text_reads_as_lines(
    feed_state: dict[str, Any], items: list[dict[str, Any]], expected: str
) -> None:
    assert feedstatic.text(feed_state, items) == expected


def test_text_and_html_show_the_newest_rows_and_what_was_dropped() -> None:
    items = [note(seq, f"payload {seq}") for seq in range(1, 31)]
    text = feedstatic.text(state(500, dropped=470), items)
    assert text.splitlines()[0] == (
        "LISTEN inventory, orders · listening · 500 received · 470 dropped from view"
    )
    shown = [line.split("  ")[-1] for line in text.splitlines()[2:-1]]
    assert shown == [f"payload {seq}" for seq in range(30, 10, -1)]
    assert text.splitlines()[-1].startswith("20 of 500 shown, newest first")
    page = feedstatic.html(state(500, dropped=470), items)
    assert page.count("<tr>") == feedstatic.ROWS + 1  # and the head
    assert "payload 30" in page and "payload 10<" not in page


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        ("<b>&", "<pre>&lt;b&gt;&amp;</pre>"),
        ("<script>alert(1)</script>", "<pre>&lt;script&gt;alert(1)&lt;/script&gt;</pre>"),
        ("\"quoted\" 'single'", "<pre>&quot;quoted&quot; &#x27;single&#x27;</pre>"),
        ("9223372036854775807", "<pre>9223372036854775807</pre>"),
        ("1.10", "<pre>1.10</pre>"),
        ("  two\nlines  ", "<pre>  two\nlines  </pre>"),
    ],
)
def test_html_shows_payloads_verbatim_and_escaped(payload: str, shown: str) -> None:
    page = feedstatic.html(state(1), [note(1, payload, channel="<ch>")])
    assert shown in page
    assert "<td>&lt;ch&gt;</td><td>4242</td>" in page
    assert "<script>" not in page


def test_html_without_items_says_so() -> None:
    page = feedstatic.html(state(0, "stopped"), [])
    assert "<table>" not in page
    assert "LISTEN inventory, orders · stopped · 0 received" in page
    assert "No notifications yet." in page
