"""LISTEN/NOTIFY in a real kernel: what leaves it on iopub, also while a cell is busy.

Every iopub message is recorded (with its arrival time) by a
:class:`~tests.kernels.Recorder`, whatever its parent: updates sent from
pgmagic's runtime thread carry the parent of whichever request the kernel
handled last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

from pgmagic.live.listener import BATCH_INTERVAL
from tests.kernels import Kernel, Recorder, comm_msg


def widget_items(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    if data.get("method") != "update":
        return None
    items: list[dict[str, Any]] | None = data["state"].get("items")
    return items


def open_comm(messages: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> str:
    opened = [m for m in messages if m["msg_type"] == "comm_open" and test(m["content"])]
    assert len(opened) == 1, opened
    comm_id: str = opened[0]["content"]["comm_id"]
    return comm_id


@pytest.fixture(scope="module")
def kernel() -> Iterator[tuple[Recorder, str]]:
    with Kernel() as k:
        recorder = Recorder(k)
        own = recorder.run("%load_ext pgmagic")
        # The kernel opens no comm itself: the panel's front end does.
        assert not [m for m in own if m["msg_type"] == "comm_open"]
        mark = recorder.mark()
        panel = recorder.comm_open()
        _, opened = recorder.wait_for(mark, comm_msg(panel, lambda d: d["type"] == "snapshot"))
        snapshot = opened["content"]["data"]
        assert snapshot["items"] == [] and snapshot["state"]["listener"] == "stopped"
        yield recorder, panel
        recorder.stop()


@pytest.fixture(scope="module")
def widget(kernel: tuple[Recorder, str]) -> str:
    recorder, _ = kernel
    own = recorder.run("%pg listen busy")
    return open_comm(own, lambda c: "paused" in c["data"].get("state", {}))


def test_updates_leave_the_kernel_while_a_cell_sleeps(
    kernel: tuple[Recorder, str], widget: str, sql: Any
) -> None:
    recorder, panel = kernel
    mark = recorder.mark()
    sleeper = recorder.send("import time\ntime.sleep(2.5)")
    recorder.wait_for(
        mark,
        lambda m: (
            m["parent_header"].get("msg_id") == sleeper
            and m["msg_type"] == "status"
            and m["content"]["execution_state"] == "busy"
        ),
    )
    time.sleep(0.5)
    sent = time.time()
    sql("SELECT pg_notify('busy', 'during sleep')")

    def carries(items: Any) -> bool:
        return bool(items) and any(i.get("payload") == "during sleep" for i in items)

    in_widget, _ = recorder.wait_for(mark, comm_msg(widget, lambda d: carries(widget_items(d))))
    in_panel, batch = recorder.wait_for(
        mark, comm_msg(panel, lambda d: d["type"] == "batch" and carries(d["items"]))
    )
    idle = recorder.idle(mark, sleeper)
    assert in_widget < idle and in_panel < idle
    assert in_widget - sent < 1.0 and in_panel - sent < 1.0
    state = batch["content"]["data"]["state"]
    assert state["listener"] == "listening" and "busy" in state["channels"]


def test_panel_hello_and_export(kernel: tuple[Recorder, str], widget: str, sql: Any) -> None:
    recorder, panel = kernel
    mark = recorder.mark()
    sql("SELECT pg_notify('busy', 'to export')")
    sql("SELECT pg_notify('busy', 'ignored by the filter')")
    # The snapshot can only hold what the listener has received: wait for it.
    recorder.wait_for(
        mark,
        comm_msg(
            panel,
            lambda d: (
                d["type"] == "batch"
                and any(i.get("payload") == "ignored by the filter" for i in d["items"])
            ),
        ),
    )
    mark = recorder.mark()
    recorder.comm_send(panel, {"type": "hello"})
    _, reply = recorder.wait_for(mark, comm_msg(panel, lambda d: d["type"] == "snapshot"))
    items = reply["content"]["data"]["items"]
    payloads = [i["payload"] for i in items]
    assert payloads[-2:] == ["to export", "ignored by the filter"]
    seqs = [i["seq"] for i in items]
    assert seqs == sorted(set(seqs))

    def export(**request: Any) -> dict[str, Any]:
        mark = recorder.mark()
        recorder.comm_send(panel, {"type": "export", "variable": "pg_out", **request})
        _, reply = recorder.wait_for(
            mark, comm_msg(panel, lambda d: d["type"] in ("exported", "error"))
        )
        data: dict[str, Any] = reply["content"]["data"]
        return data

    assert export(channel="busy", text="EXPORT") == {
        "type": "exported",
        "variable": "pg_out",
        "rows": 1,
    }
    assert recorder.stdout("print(pg_out.payload.tolist(), str(pg_out.time.dtype))") == (
        "['to export'] datetime64[us, UTC]\n"
    )
    assert export(channel=None, text=None, after_seq=seqs[-2])["rows"] == 1
    assert export(channel="nope", text=None)["rows"] == 0

    failed = export(variable="not a name", channel=None, text=None)
    assert failed["type"] == "error" and "not a Python variable name" in failed["message"]
    failed = export(channel=None, text=None, after_seq="3")
    assert failed == {"type": "error", "message": "export field 'after_seq' must be an integer"}


def test_widget_clear_and_pause(kernel: tuple[Recorder, str], widget: str, sql: Any) -> None:
    recorder, _ = kernel
    mark = recorder.mark()
    recorder.comm_send(widget, {"method": "custom", "content": {"type": "clear"}})
    recorder.wait_for(mark, comm_msg(widget, lambda d: widget_items(d) == []))

    recorder.comm_send(widget, {"method": "update", "state": {"paused": True}, "buffer_paths": []})
    # The comm message is handled once the kernel is idle: make sure it was.
    recorder.run("pass")
    mark = recorder.mark()
    sql("SELECT pg_notify('busy', 'while paused')")
    recorder.wait_for(
        mark,
        comm_msg(widget, lambda d: d.get("method") == "update" and "state" in d.get("state", {})),
    )
    time.sleep(0.2)
    updates = [
        m["content"]["data"]
        for _, m in recorder.since(mark)
        if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == widget
    ]
    assert updates and all(widget_items(d) is None for d in updates)

    mark = recorder.mark()
    recorder.comm_send(widget, {"method": "update", "state": {"paused": False}, "buffer_paths": []})
    _, resumed = recorder.wait_for(mark, comm_msg(widget, lambda d: bool(widget_items(d))))
    assert [i["payload"] for i in widget_items(resumed["content"]["data"]) or []] == [
        "while paused"
    ]


def payloads(items: list[dict[str, Any]]) -> list[str]:
    return [i["payload"] for i in items]


def send_paced(dsn: str, channel: str, count: int, rate: float) -> None:
    """NOTIFY ``count`` times at ``rate`` per second, one statement each."""

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            start = time.perf_counter()
            for n in range(count):
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await conn.execute("SELECT pg_notify($1, $2)", channel, f"flood {n}")
        finally:
            await conn.close()

    asyncio.run(go())


def test_a_flood_is_batched_in_order_and_nothing_is_lost(
    kernel: tuple[Recorder, str], widget: str, dsn: str
) -> None:
    recorder, panel = kernel
    count = 2_000
    mark = recorder.mark()
    send_paced(dsn, "busy", count, 1_000.0)
    last = f"flood {count - 1}"

    def flood(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [i for i in items or [] if i.get("payload", "").startswith("flood ")]

    def panel_items(data: dict[str, Any]) -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] | None = data["items"] if data["type"] == "batch" else None
        return items

    recorder.wait_for(mark, comm_msg(panel, lambda d: last in payloads(flood(panel_items(d)))))
    recorder.wait_for(mark, comm_msg(widget, lambda d: last in payloads(flood(widget_items(d)))))

    def sent_on(comm_id: str) -> list[tuple[float, dict[str, Any]]]:
        """When the kernel built each message on a comm, and its data."""
        return [
            (m["header"]["date"].timestamp(), m["content"]["data"])
            for _, m in recorder.since(mark)
            if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
        ]

    panel_batches = [
        (built, flood(panel_items(d))) for built, d in sent_on(panel) if flood(panel_items(d))
    ]
    # The panel gets every notification, once, in order, seq only growing.
    rows = [i for _, items in panel_batches for i in items]
    assert payloads(rows) == [f"flood {n}" for n in range(count)]
    seqs = [i["seq"] for i in rows]
    assert seqs == sorted(set(seqs))

    widget_updates = [
        (built, flood(widget_items(d))) for built, d in sent_on(widget) if flood(widget_items(d))
    ]
    # The widget shows its newest rows: in order, ending with the last one.
    shown = {i["seq"]: i["payload"] for _, items in widget_updates for i in items}
    assert list(shown.values())[-1] == last
    assert sorted(shown) == list(shown)

    for updates in (panel_batches, widget_updates):
        # Coalesced: at most one update per batch interval while the flood
        # lasts, plus the once-a-second rate refresh, instead of one per
        # notification.
        span = updates[-1][0] - updates[0][0]
        assert len(updates) <= span * (1 / BATCH_INTERVAL + 1) + 2, (len(updates), span)
        assert len(updates) < count / 4


def test_refresh_updates_the_output_in_place(kernel: tuple[Recorder, str], sql: Any) -> None:
    recorder, _ = kernel
    sql("DROP TABLE IF EXISTS kernel_refresh")
    sql("CREATE TABLE kernel_refresh (n int)")
    own = recorder.run("%%pg --refresh-on kernel_refresh\nSELECT count(*) AS n FROM kernel_refresh")
    (shown,) = [m for m in own if m["msg_type"] == "display_data"]
    display_id = shown["content"]["transient"]["display_id"]
    assert "last run" in shown["content"]["data"]["text/plain"]

    mark = recorder.mark()
    sql("INSERT INTO kernel_refresh VALUES (1), (2)")
    sql("SELECT pg_notify('kernel_refresh', '')")
    _, update = recorder.wait_for(
        mark,
        lambda m: (
            m["msg_type"] == "update_display_data"
            and m["content"]["transient"]["display_id"] == display_id
        ),
    )
    text = update["content"]["data"]["text/plain"]
    assert text.startswith(" n\n---\n 2\n") and "(NOTIFY kernel_refresh, run 2)" in text
    assert recorder.stdout("%pg stop") == "stopped 1 refresh\n"


def test_unload_closes_the_panel_comm_and_load_serves_a_new_one(
    kernel: tuple[Recorder, str],
) -> None:
    recorder, panel = kernel
    own = recorder.run("%unload_ext pgmagic")
    closed = [m["content"]["comm_id"] for m in own if m["msg_type"] == "comm_close"]
    assert closed == [panel]
    own = recorder.run("%load_ext pgmagic")
    assert not [m for m in own if m["msg_type"] == "comm_open"]
    mark = recorder.mark()
    again = recorder.comm_open()
    recorder.wait_for(mark, comm_msg(again, lambda d: d["type"] == "snapshot"))
