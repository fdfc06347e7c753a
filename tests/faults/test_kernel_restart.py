"""A kernel restarted while its cell runs a query: the query ends on the server within seconds.

The SIGKILL case (a kernel killed by the OOM killer) is in
``tests/kernel/test_kernel.py``; this is the Restart button, which asks the
kernel to shut down while the cell is still busy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.kernel.test_kernel import scalar, wait_for_state
from tests.kernels import Kernel

# As for a killed kernel: about client_connection_check_interval (2 s) and the restart itself.
BOUND = 6.0


def test_a_restarted_kernels_query_ends_on_the_server_within_seconds(
    sql: Any, figure: Callable[[str], None]
) -> None:
    with Kernel() as kernel:
        assert kernel.run("%load_ext pgmagic").status == "ok"
        session = scalar(kernel.run("%pg --scalar SELECT pg_backend_pid()"))
        pooled = scalar(
            kernel.run("import pgmagic\nawait pgmagic.fetchval('SELECT pg_backend_pid()')")
        )
        kernel.send("%pg SELECT pg_sleep(60)")
        assert wait_for_state(sql, session, "active") is not None
        old_process = kernel.manager.provisioner.pid
        started = time.monotonic()
        # What JupyterLab's Restart does: a shutdown request, then a new kernel.
        kernel.manager.restart_kernel(now=False)
        assert wait_for_state(sql, session, None, timeout=2 * BOUND) is None
        gone = time.monotonic() - started
        assert wait_for_state(sql, pooled, None, timeout=2 * BOUND) is None
        assert gone < BOUND
        # The new kernel is another process, and pgmagic works in it.
        assert kernel.manager.provisioner.pid != old_process
        kernel.client.wait_for_ready(timeout=60)
        assert kernel.run("%load_ext pgmagic").status == "ok"
        assert scalar(kernel.run("%pg --scalar SELECT pg_backend_pid()")) != session
    figure(f"kernel restart during pg_sleep(60): backend gone {gone:.2f} s after the restart began")
