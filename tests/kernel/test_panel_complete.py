"""``complete`` on the panel comm: SQL completion that a running cell does not block.

JupyterLab 4.4+ sends a comm's messages to a kernel subshell (ipykernel 7+),
one per comm target; these tests create the subshell and send on it the way
``@jupyterlab/services`` does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.kernels import Kernel, Recorder, comm_msg

TABLE = "completion_probe_orders"


@pytest.fixture(scope="module")
def panel() -> Iterator[tuple[Recorder, str, str]]:
    """A kernel with pgmagic loaded, a table, a panel comm, and a subshell to send on."""
    with Kernel() as kernel:
        recorder = Recorder(kernel)
        recorder.run(
            f"%load_ext pgmagic\n%pg DROP TABLE IF EXISTS {TABLE}\n"
            f"%pg CREATE TABLE {TABLE} (id int, total numeric)\n"
            "completion_probe_limit = 5"
        )
        subshell = recorder.create_subshell()
        mark = recorder.mark()
        # On the main shell, as JupyterLab opens it: its subshell for the
        # target is still being created then; later messages carry its id.
        comm_id = recorder.comm_open()
        recorder.wait_for(mark, comm_msg(comm_id, lambda d: d["type"] == "snapshot"))
        yield recorder, comm_id, subshell
        recorder.stop()


def ask(
    recorder: Recorder, comm_id: str, subshell: str, request: dict[str, Any], timeout: float = 10
) -> tuple[float, dict[str, Any], str]:
    """Send ``request``; give the seconds until its reply, the reply, and the request's id."""
    mark = recorder.mark()
    sent = time.time()
    msg_id = recorder.comm_send(comm_id, request, subshell_id=subshell)
    arrived, reply = recorder.wait_for(
        mark, comm_msg(comm_id, lambda d: d["type"] == "completions"), timeout
    )
    data: dict[str, Any] = reply["content"]["data"]
    return arrived - sent, data, msg_id


def test_complete_offers_tables_and_variables(panel: tuple[Recorder, str, str]) -> None:
    recorder, comm_id, subshell = panel
    # A character outside the BMP before the cursor: offsets count code
    # points, as JupyterLab's completer hands them to its providers.
    code = "%%pg\n-- 🐘 orders\nSELECT * FROM completion_probe_o"
    _, reply, _ = ask(
        recorder, comm_id, subshell, {"type": "complete", "id": 7, "code": code, "pos": len(code)}
    )
    assert reply["id"] == 7
    assert reply["end"] == len(code)
    assert reply["start"] == len(code) - len("completion_probe_o")
    assert {"label": TABLE, "type": "table", "detail": "public"} in reply["items"]

    code = "%%pg\nSELECT * FROM t LIMIT $completion_probe_l"
    _, reply, _ = ask(
        recorder, comm_id, subshell, {"type": "complete", "id": 8, "code": code, "pos": len(code)}
    )
    assert reply["id"] == 8
    assert [i["label"] for i in reply["items"]] == ["completion_probe_limit"]

    # Python code: pgmagic has nothing to say, and says so.
    code = "import o"
    _, reply, _ = ask(
        recorder, comm_id, subshell, {"type": "complete", "id": 9, "code": code, "pos": len(code)}
    )
    assert reply == {"type": "completions", "id": 9, "start": 8, "end": 8, "items": []}


def test_complete_is_answered_while_a_cell_sleeps(panel: tuple[Recorder, str, str]) -> None:
    recorder, comm_id, subshell = panel
    mark = recorder.mark()
    busy = recorder.send("import time; time.sleep(10)")
    recorder.wait_for(
        mark,
        lambda m: m["msg_type"] == "execute_input" and m["parent_header"].get("msg_id") == busy,
    )
    code = "%%pg\nSELECT * FROM completion_probe_o"
    latency, reply, _ = ask(
        recorder, comm_id, subshell, {"type": "complete", "id": 1, "code": code, "pos": len(code)}
    )
    assert TABLE in [i["label"] for i in reply["items"]]
    # Measured about 10 ms; the main shell would answer after the sleep.
    assert latency < 2, latency
    assert not [
        m
        for _, m in recorder.since(mark)
        if m["msg_type"] == "status"
        and m["parent_header"].get("msg_id") == busy
        and m["content"]["execution_state"] == "idle"
    ], "the cell had finished before the reply"
    recorder.idle(mark, busy)


@pytest.mark.parametrize(
    ("request_data", "reply_id"),
    [
        ({"type": "complete", "id": 3, "code": 5, "pos": 0}, 3),
        ({"type": "complete", "id": 4, "code": "%%pg\nSELECT", "pos": "end"}, 4),
        ({"type": "complete", "id": 5, "code": "%%pg\nSELECT", "pos": 99}, 5),
        ({"type": "complete", "id": True, "code": "%%pg\nSELECT", "pos": -1}, None),
        ({"type": "complete"}, None),
    ],
)
def test_malformed_complete_gets_an_empty_reply(
    panel: tuple[Recorder, str, str], request_data: dict[str, Any], reply_id: int | None
) -> None:
    recorder, comm_id, subshell = panel
    _, reply, msg_id = ask(recorder, comm_id, subshell, request_data)
    assert reply["id"] == reply_id
    assert reply["items"] == []
    time.sleep(0.2)  # anything the request printed has reached iopub
    printed = [
        m["content"]["text"]
        for _, m in recorder.since(0)
        if m["msg_type"] == "stream" and m["parent_header"].get("msg_id") == msg_id
    ]
    assert printed == []
    # The bridge still answers.
    code = "%%pg\nSELECT * FROM completion_probe_o"
    _, reply, _ = ask(
        recorder, comm_id, subshell, {"type": "complete", "id": 6, "code": code, "pos": len(code)}
    )
    assert TABLE in [i["label"] for i in reply["items"]]
