"""LISTEN/NOTIFY in a real kernel: what leaves it on iopub, also while a cell is busy.

Every iopub message is recorded (with its arrival time) by a thread, whatever
its parent: updates sent from pgmagic's runtime thread carry the parent of
whichever request the kernel handled last.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.kernels import Kernel

PANEL = "pgmagic.panel"


class Recorder:
    """A kernel whose iopub messages are all kept, and a way to talk to its comms."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.client = kernel.client
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            with self._lock:
                self.messages.append((time.time(), msg))
        # The blocking client runs an event loop per thread; this one ends here.
        asyncio.get_event_loop_policy().get_event_loop().close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def mark(self) -> int:
        with self._lock:
            return len(self.messages)

    def since(self, mark: int) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return self.messages[mark:]

    def wait_for(
        self, mark: int, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10
    ) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for arrived, msg in self.since(mark):
                if predicate(msg):
                    return arrived, msg
            time.sleep(0.01)
        raise AssertionError(f"no matching iopub message within {timeout} s")

    def send(self, code: str) -> str:
        msg_id: str = self.client.execute(code, allow_stdin=False)
        return msg_id

    def idle(self, mark: int, msg_id: str, timeout: float = 30) -> float:
        arrived, _ = self.wait_for(
            mark,
            lambda m: (
                m["msg_type"] == "status"
                and m["parent_header"].get("msg_id") == msg_id
                and m["content"]["execution_state"] == "idle"
            ),
            timeout,
        )
        return arrived

    def run(self, code: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Execute code, wait for it, and give its own iopub messages; fail on error."""
        mark = self.mark()
        msg_id = self.send(code)
        self.idle(mark, msg_id, timeout)
        own = [m for _, m in self.since(mark) if m["parent_header"].get("msg_id") == msg_id]
        errors = [m["content"] for m in own if m["msg_type"] == "error"]
        assert not errors, errors[0]["traceback"]
        return own

    def stdout(self, code: str) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.run(code)
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    def comm_send(self, comm_id: str, data: dict[str, Any]) -> None:
        msg = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        self.client.shell_channel.send(msg)


def comm_msg(comm_id: str, test: Callable[[dict[str, Any]], bool]) -> Callable[[Any], bool]:
    return lambda m: (
        m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == comm_id
        and test(m["content"]["data"])
    )


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
        panel = open_comm(own, lambda c: c["target_name"] == PANEL)
        snapshot = next(m for m in own if m["msg_type"] == "comm_open")["content"]["data"]
        assert snapshot["type"] == "snapshot" and snapshot["items"] == []
        assert snapshot["state"]["listener"] == "stopped"
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


def test_unload_closes_the_panel_comm_and_load_opens_a_new_one(
    kernel: tuple[Recorder, str],
) -> None:
    recorder, panel = kernel
    own = recorder.run("%unload_ext pgmagic")
    closed = [m["content"]["comm_id"] for m in own if m["msg_type"] == "comm_close"]
    assert panel in closed
    own = recorder.run("%load_ext pgmagic")
    assert open_comm(own, lambda c: c["target_name"] == PANEL) != panel
