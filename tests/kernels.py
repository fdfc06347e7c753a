"""Real ipykernel processes driven by jupyter_client, for tests that need a kernel.

Ctrl-C, kernel shutdown and output that arrives while another cell is busy can
only be checked in a kernel process of its own.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager

#: The side panel's comm target (``pgmagic.frontend.feed.PANEL_TARGET``).
PANEL = "pgmagic.panel"


@dataclass
class Reply:
    """What one execute request produced."""

    status: str = ""
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    displays: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def text(self) -> str:
        """Everything a user would read: streams, results and the error."""
        parts = [self.stdout, self.stderr]
        parts += [r.get("text/plain", "") for r in self.results]
        if self.error:
            parts += self.error.get("traceback", [])
        return "\n".join(parts)


class Kernel:
    """A running kernel; use as a context manager."""

    def __init__(self) -> None:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def send(self, code: str) -> str:
        """Start executing ``code``; return the request's message id."""
        return self.client.execute(code, allow_stdin=False)

    def collect(self, msg_id: str, timeout: float = 60) -> Reply:
        """Gather iopub output for ``msg_id`` until the kernel is idle again."""
        reply = Reply()
        started = time.perf_counter()
        deadline = started + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"no idle status within {timeout} s; so far: {reply.text!r}")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                if content["name"] == "stdout":
                    reply.stdout += content["text"]
                else:
                    reply.stderr += content["text"]
            elif kind == "execute_result":
                reply.results.append(content["data"])
            elif kind in ("display_data", "update_display_data"):
                reply.displays.append(content["data"])
            elif kind == "error":
                reply.error = content
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply.status = "error" if reply.error else "ok"
        reply.elapsed = time.perf_counter() - started
        return reply

    def run(self, code: str, timeout: float = 60) -> Reply:
        """Execute ``code`` and wait for it."""
        return self.collect(self.send(code), timeout)

    def interrupt(self) -> None:
        """Send the kernel an interrupt (SIGINT), as the stop button does."""
        self.manager.interrupt_kernel()

    def kill(self) -> None:
        """SIGKILL the kernel process, as the OOM killer would: nothing of it runs after."""
        os.kill(self.manager.provisioner.pid, signal.SIGKILL)

    def shutdown(self) -> None:
        """Ask the kernel to shut down gracefully and wait for it."""
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)


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

    def comm_send(self, comm_id: str, data: dict[str, Any], subshell_id: str | None = None) -> str:
        """Send a ``comm_msg`` (to a subshell when given); return its message id."""
        msg = self.client.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self.client.shell_channel.send(msg)
        msg_id: str = msg["header"]["msg_id"]
        return msg_id

    def comm_open(self, target: str = PANEL, subshell_id: str | None = None) -> str:
        """Open a comm as a front end does (on a subshell when given); return its id."""
        comm_id = uuid.uuid4().hex
        content = {"comm_id": comm_id, "target_name": target, "data": {}}
        msg = self.client.session.msg("comm_open", content)
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self.client.shell_channel.send(msg)
        return comm_id

    def create_subshell(self) -> str:
        """Ask the kernel for a subshell, as JupyterLab 4.4+ does per comm target.

        jupyter_client has no helper for it: the request goes on the control
        channel as ``@jupyterlab/services`` sends it.
        """
        self.client.control_channel.send(self.client.session.msg("create_subshell_request", {}))
        reply = self.client.get_control_msg(timeout=10)
        assert reply["content"]["status"] == "ok", reply["content"]
        subshell_id: str = reply["content"]["subshell_id"]
        return subshell_id

    def comm_close(self, comm_id: str) -> None:
        """Close a comm from the front end's side."""
        msg = self.client.session.msg("comm_close", {"comm_id": comm_id, "data": {}})
        self.client.shell_channel.send(msg)


def comm_msg(comm_id: str, test: Callable[[dict[str, Any]], bool]) -> Callable[[Any], bool]:
    return lambda m: (
        m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == comm_id
        and test(m["content"]["data"])
    )
