"""``%%pg --bg`` in a real kernel: the handle's updates, Cancel over the panel comm, shutdown.

The Cancel button and the end-of-job notification of the JupyterLab
extension go over the ``pgmagic.panel`` comm, sent on a subshell as
JupyterLab 4.4+ sends it, so they work while another cell keeps the kernel busy.
"""

from __future__ import annotations

import time
from typing import Any

from tests.kernels import Kernel, Recorder, comm_msg

JOB_MIME = "application/vnd.pgmagic.job+json"


def job_outputs(recorder: Recorder, mark: int, name: str) -> list[dict[str, Any]]:
    """The job's handle as the front end receives it: the display, then its updates."""
    return [
        m["content"]["data"][JOB_MIME]
        for _, m in recorder.since(mark)
        if m["msg_type"] in ("display_data", "update_display_data")
        and m["content"]["data"].get(JOB_MIME, {}).get("name") == name
    ]


def backend_gone(sql: Any, pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sql("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid):
            return True
        time.sleep(0.05)
    return False


def test_cancel_over_the_comm_while_a_cell_runs(sql: Any) -> None:
    with Kernel() as kernel:
        recorder = Recorder(kernel)
        try:
            recorder.run("%load_ext pgmagic")
            subshell = recorder.create_subshell()
            mark = recorder.mark()
            comm_id = recorder.comm_open()
            recorder.wait_for(mark, comm_msg(comm_id, lambda d: d["type"] == "snapshot"))

            mark = recorder.mark()
            recorder.run("%%pg --bg -o sleeper\nSELECT pg_sleep(60)")
            _, running = recorder.wait_for(
                mark,
                lambda m: (
                    m["msg_type"] == "update_display_data"
                    and m["content"]["data"].get(JOB_MIME, {}).get("state") == "running"
                ),
            )
            job = running["content"]["data"][JOB_MIME]
            assert job["pid"] is not None
            display_id = running["content"]["transient"]["display_id"]

            busy = recorder.send("import time; time.sleep(8)")
            time.sleep(0.5)
            sent = time.monotonic()
            request = {"type": "cancel-job", "id": -1, "job": job["id"]}
            recorder.comm_send(comm_id, request, subshell_id=subshell)
            recorder.wait_for(
                mark,
                comm_msg(comm_id, lambda d: d["type"] == "job-cancelling" and d["id"] == -1),
            )
            _, ended = recorder.wait_for(
                mark, comm_msg(comm_id, lambda d: d["type"] == "job-ended")
            )
            assert time.monotonic() - sent < 5, "waited for the sleeping cell"
            assert ended["content"]["data"] == {
                "type": "job-ended",
                "job": job["id"],
                "name": "sleeper",
                "state": "cancelled",
                "summary": ended["content"]["data"]["summary"],
                "connection": job["connection"],
            }
            assert ended["content"]["data"]["summary"].startswith("sleeper cancelled after ")
            # The sleeping cell is still running: the cancel did not wait for it.
            assert not [
                m
                for _, m in recorder.since(mark)
                if m["msg_type"] == "status"
                and m["parent_header"].get("msg_id") == busy
                and m["content"]["execution_state"] == "idle"
            ]
            states = [o["state"] for o in job_outputs(recorder, mark, "sleeper")]
            assert states[0] == "queued" and states[-1] == "cancelled"
            last_update = [
                m
                for _, m in recorder.since(mark)
                if m["msg_type"] == "update_display_data"
                and m["content"]["transient"]["display_id"] == display_id
            ][-1]
            assert last_update["content"]["data"][JOB_MIME]["state"] == "cancelled"
            # The pool keeps the connection, no longer running the query.
            assert not sql(
                "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", job["pid"]
            )

            # A job the kernel does not know (a handle from before a restart).
            recorder.comm_send(
                comm_id, {"type": "cancel-job", "id": -2, "job": 999}, subshell_id=subshell
            )
            _, refused = recorder.wait_for(mark, comm_msg(comm_id, lambda d: d.get("id") == -2))
            assert refused["content"]["data"]["type"] == "error"
            assert "not in this kernel" in refused["content"]["data"]["message"]
            recorder.idle(mark, busy)
        finally:
            recorder.stop()


def test_kernel_shutdown_cancels_running_jobs_on_the_server(sql: Any) -> None:
    kernel = Kernel()
    recorder = Recorder(kernel)
    try:
        recorder.run("%load_ext pgmagic")
        mark = recorder.mark()
        recorder.run("%%pg --bg -o orphan\nSELECT pg_sleep(120)")
        _, running = recorder.wait_for(
            mark,
            lambda m: (
                m["msg_type"] == "update_display_data"
                and m["content"]["data"].get(JOB_MIME, {}).get("state") == "running"
            ),
        )
        pid = running["content"]["data"][JOB_MIME]["pid"]
        assert sql("SELECT 1 FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        recorder.stop()
        kernel.shutdown()
    assert backend_gone(sql, pid), "the job's backend outlived the kernel"
