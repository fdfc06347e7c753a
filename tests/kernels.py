"""Real ipykernel processes driven by jupyter_client, for tests that need a kernel.

Ctrl-C, kernel shutdown and output that arrives while another cell is busy can
only be checked in a kernel process of its own.
"""

from __future__ import annotations

import os
import queue
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


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
