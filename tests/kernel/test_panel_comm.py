"""Who opens the ``pgmagic.panel`` comm: front ends do, the kernel only answers.

A kernel that opened the comm itself made every front end without the
JupyterLab extension (``nbconvert --execute``, papermill, nbval) print
``No handler found for comm target 'pgmagic.panel'``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.kernels import PANEL, Kernel, Recorder, comm_msg

# Counts the bridges the kernel holds: one per open panel comm.
BRIDGES = (
    "from pgmagic.frontend import feed\n"
    "from pgmagic.live.listener import listener_for\n"
    "from pgmagic.runtime.connections import default_runtime\n"
    "print(sum(isinstance(s, feed.PanelBridge) for s in listener_for(default_runtime()).sinks))"
)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Kernel() as kernel:
        recorder = Recorder(kernel)
        yield recorder
        recorder.stop()


def closed_ids(recorder: Recorder, mark: int) -> list[str]:
    return [
        m["content"]["comm_id"] for _, m in recorder.since(mark) if m["msg_type"] == "comm_close"
    ]


def carries(payload: str) -> Any:
    return lambda d: d["type"] == "batch" and any(i.get("payload") == payload for i in d["items"])


def test_nbconvert_execute_prints_no_comm_warning(tmp_path: Path, dsn: str) -> None:
    notebook = tmp_path / "listen.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext pgmagic"),
        nbformat.v4.new_code_cell("%pg listen orders"),
        nbformat.v4.new_code_cell(
            "%pg notify orders 'from nbconvert'\nimport time; time.sleep(0.5)"
        ),
    ]
    nbformat.write(nb, notebook)
    result = subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", str(notebook)],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "No handler found" not in result.stderr
    assert PANEL not in result.stderr
    executed = nbformat.read(tmp_path / "listen.nbconvert.ipynb", as_version=4)
    outputs = [o for cell in executed.cells for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # The listen cell still shows its feed widget.
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_comm_is_closed_before_load_ext_and_served_after(recorder: Recorder, sql: Any) -> None:
    mark = recorder.mark()
    early = recorder.comm_open()
    recorder.wait_for(
        mark, lambda m: m["msg_type"] == "comm_close" and m["content"]["comm_id"] == early
    )
    assert not [m for _, m in recorder.since(mark) if m["msg_type"] == "comm_msg"], (
        "a comm nobody serves got data"
    )

    recorder.run("%load_ext pgmagic\n%pg listen served")
    mark = recorder.mark()
    panel = recorder.comm_open()
    _, opened = recorder.wait_for(mark, comm_msg(panel, lambda d: d["type"] == "snapshot"))
    state = opened["content"]["data"]["state"]
    assert state["listener"] == "listening" and state["channels"] == ["served"]
    sql("SELECT pg_notify('served', 'to the panel')")
    recorder.wait_for(mark, comm_msg(panel, carries("to the panel")))
    assert recorder.stdout(BRIDGES) == "1\n"


def test_each_front_end_gets_a_bridge_and_reload_leaves_one_target(
    recorder: Recorder, sql: Any
) -> None:
    recorder.run("%load_ext pgmagic\n%pg listen tabs")
    mark = recorder.mark()
    first, second = recorder.comm_open(), recorder.comm_open()
    for comm_id in (first, second):
        recorder.wait_for(mark, comm_msg(comm_id, lambda d: d["type"] == "snapshot"))
    sql("SELECT pg_notify('tabs', 'both tabs')")
    for comm_id in (first, second):
        recorder.wait_for(mark, comm_msg(comm_id, carries("both tabs")))
    assert recorder.stdout(BRIDGES) == "2\n"

    # A front end that closes its comm detaches its bridge; the other stays.
    recorder.comm_close(first)
    assert recorder.stdout(BRIDGES) == "1\n"
    mark = recorder.mark()
    sql("SELECT pg_notify('tabs', 'one tab')")
    recorder.wait_for(mark, comm_msg(second, carries("one tab")))
    assert not [m for _, m in recorder.since(mark) if m["content"].get("comm_id") == first]

    # A reload closes the old bridges and serves new comms with one bridge each.
    mark = recorder.mark()
    recorder.run("%reload_ext pgmagic")
    assert closed_ids(recorder, mark) == [second]
    third = recorder.comm_open()
    recorder.wait_for(mark, comm_msg(third, lambda d: d["type"] == "snapshot"))
    assert recorder.stdout(BRIDGES) == "1\n"
    snapshots = [
        m
        for _, m in recorder.since(mark)
        if m["msg_type"] == "comm_msg" and m["content"]["data"].get("type") == "snapshot"
    ]
    assert len(snapshots) == 1

    recorder.run("%unload_ext pgmagic")
    mark = recorder.mark()
    late = recorder.comm_open()
    recorder.wait_for(
        mark, lambda m: m["msg_type"] == "comm_close" and m["content"]["comm_id"] == late
    )


def test_terminal_ipython_registers_no_target() -> None:
    """No kernel, no front end to open a comm: loading touches no comm manager."""
    code = (
        "import comm\n"
        "from IPython.terminal.interactiveshell import TerminalInteractiveShell\n"
        "ip = TerminalInteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'pgmagic')\n"
        "manager = comm.get_comm_manager()\n"
        # ipywidgets registers its own targets on import; ours must not be there.
        "print('panel target', 'pgmagic.panel' in manager.targets, 'comms', len(manager.comms))\n"
        "ip.run_line_magic('unload_ext', 'pgmagic')\n"
        "print('unloaded')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["panel target False comms 0", "unloaded"]


def test_the_panel_gathers_every_connections_notifications(
    recorder: Recorder, second: tuple[str, str]
) -> None:
    recorder.run(f"%load_ext pgmagic\n%pg listen home\nsecond_dsn = {second[1]!r}")
    recorder.run("%pg connect two $second_dsn\n%pg listen away")
    mark = recorder.mark()
    panel = recorder.comm_open()
    _, opened = recorder.wait_for(mark, comm_msg(panel, lambda d: d["type"] == "snapshot"))
    # The header names the other connection's channels.
    assert opened["content"]["data"]["state"]["channels"] == ["home", "two: away"]

    recorder.run("%pg notify away 'from two'\n%pg @default notify home 'from home'")
    recorder.wait_for(mark, comm_msg(panel, carries("from two")))
    recorder.wait_for(mark, comm_msg(panel, carries("from home")))
    items = {
        i["payload"]: i
        for _, m in recorder.since(mark)
        if m["msg_type"] == "comm_msg" and m["content"]["data"].get("type") == "batch"
        for i in m["content"]["data"]["items"]
    }
    assert items["from two"]["connection"] == "two"
    assert items["from two"]["channel"] == "away"
    assert items["from home"]["connection"] == ""

    # The first connection's log (the panel's, exported by it) says where each
    # came from; the other connection's own log has only its own.
    out = recorder.stdout(
        "import pgmagic\n"
        "print(list(pgmagic.notification_log()['payload']))\n"
        "%pg use default\n"
        "log = pgmagic.notification_log()\n"
        "print(sorted(zip(log['payload'], log['connection'])))"
    )
    lines = out.strip().splitlines()
    assert lines[0] == "['from two']"
    assert lines[-1] == "[('from home', ''), ('from two', 'two')]"
    # A channel of the same name on the other connection stays out of `home`'s counts.
    recorder.run("%pg @two listen home\n%pg @two notify home 'two says home'")
    recorder.wait_for(mark, comm_msg(panel, carries("two says home")))
    counted = recorder.stdout(
        "from pgmagic.live.listener import listener_for\n"
        "from pgmagic.runtime.connections import default_connections\n"
        "print(listener_for(default_connections().get('default')).log.counts(['home']))"
    )
    assert counted.strip() == "(1, 0)"
