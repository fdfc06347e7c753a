"""NOTIFY to feed latency and loss in a real kernel, at 100, 1,000 and 10,000 notifications/s.

A kernel runs ``%load_ext pgmagic`` and ``%pg listen bench``; a separate
sender process sends notifications at a fixed rate, each payload carrying the
sender's clock just before its statement went out.  This process records the
kernel's iopub traffic and measures, per notification, the time from that send
to the first comm message carrying it: the widget's state update
(``FeedWidget.items``) and the panel's ``batch``.  It is measured where the
message is received from the kernel's iopub socket, so it is an upper bound on
the message leaving the kernel (ZMQ transit and decoding add well under a
millisecond on one machine).

Loss is counted twice: notifications the kernel received (the panel state's
``count``) and distinct notifications that reached the panel in batches.  The
widget shows only the newest 200 rows of each update, so when more arrive
between two updates it skips rows by design; its latency is over the rows it
did show.

Where the panel's milliseconds go comes from the message header's ``date``,
set when the kernel built the message: send → the listener's callback (kernel
receipt), callback → message built (waiting for the batch, building it), built
→ received here (iopub, ZMQ, decoding).  Client CPU is the kernel process's
user + system time over each rate's run (sending and the 1 s after it), beside
that run's wall time.

Each round starts a fresh kernel per tree and runs every rate; the table gives
the median over rounds of each percentile and of the CPU time, and the totals
of sent and received notifications over all rounds.  ``--tree LABEL=PATH``
(repeatable) puts PATH first on the kernel's ``PYTHONPATH`` (a copy of another
revision's ``pgmagic`` package), so that revisions are compared side by side
in one run, rounds interleaved; without it the kernel imports the pgmagic this
process would.

    python benchmarks/bench_notify.py [--seconds 5] [--rounds 3] [--tree LABEL=PATH ...]
                                      [--out benchmarks/results/notify.md]

At 10,000/s the sender puts 10 notifications in each statement (one statement
per millisecond); below that, one per statement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

RATES = (100, 1_000, 10_000)
PANEL = "pgmagic.panel"
CHANNEL = "bench"


# ----------------------------------------------------------------- the sender
async def send(dsn: str, tag: str, rate: int, seconds: float) -> int:
    import asyncpg

    per_statement = 10 if rate > 1_000 else 1
    statements = int(rate * seconds / per_statement)
    interval = per_statement / rate
    conn = await asyncpg.connect(dsn)
    sent = 0
    start = time.perf_counter() + 0.05
    for n in range(statements):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.time()
        payloads = [json.dumps({"tag": tag, "i": sent + k, "t": now}) for k in range(per_statement)]
        await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) p", CHANNEL, payloads)
        sent += per_statement
    await conn.close()
    return sent


# --------------------------------------------------------------- the measuring
class Recorder:
    """Keeps every iopub comm message with the time it was received."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self) -> None:
        while not self.stop.is_set():
            try:
                msg = self.client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            with self.lock:
                self.messages.append((time.time(), msg))
        asyncio.get_event_loop_policy().get_event_loop().close()

    def take(self) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            taken, self.messages = self.messages, []
        return taken

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)


def run(client: Any, code: str, timeout: float = 60) -> dict[str, Any]:
    msg_id = client.execute(code)
    reply: dict[str, Any] = client.get_shell_msg(timeout=timeout)
    # A late kernel_info_reply from wait_for_ready may come first on a loaded machine.
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = client.get_shell_msg(timeout=timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return reply


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    label: str
    sent: int
    received: int = 0
    in_panel: int = 0
    widget: list[float] = field(default_factory=list)
    panel: list[float] = field(default_factory=list)
    kernel: list[float] = field(default_factory=list)
    # Per panel item: callback → message built, message built → received here.
    in_kernel: list[float] = field(default_factory=list)
    transit: list[float] = field(default_factory=list)
    widget_messages: int = 0
    panel_messages: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    rss: float = 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def analyse(
    result: Result, tag: str, messages: list[tuple[float, dict[str, Any]]], ids: dict[str, str]
) -> None:
    seen_widget: set[int] = set()
    seen_panel: set[int] = set()
    counts = []
    for arrived, msg in messages:
        if msg["msg_type"] != "comm_msg":
            continue
        comm_id, data = msg["content"]["comm_id"], msg["content"]["data"]
        built = msg["header"]["date"].timestamp()
        if comm_id == ids["panel"] and data.get("type") == "batch":
            result.panel_messages += 1
            counts.append(data["state"]["count"])
            items, seen, latencies = data["items"], seen_panel, result.panel
        elif comm_id == ids["widget"] and "items" in data.get("state", {}):
            result.widget_messages += 1
            items, seen, latencies = data["state"]["items"], seen_widget, result.widget
        else:
            continue
        for item in items:
            if item.get("kind") != "notification":
                continue
            payload = json.loads(item["payload"])
            if payload["tag"] != tag or payload["i"] in seen:
                continue
            seen.add(payload["i"])
            latencies.append(arrived - payload["t"])
            if seen is seen_panel:
                result.kernel.append(item["time"] - payload["t"])
                result.in_kernel.append(built - item["time"])
                result.transit.append(arrived - built)
    result.in_panel = len(seen_panel)
    result.received = max(counts) - min(counts) + 1 if counts else 0


def measure(
    client: Any,
    recorder: Recorder,
    ids: dict[str, str],
    dsn: str,
    pid: int,
    rate: int,
    seconds: float,
    busy: bool = False,
) -> Result:
    tag = f"{rate}{'-busy' if busy else ''}-{time.time()}"
    recorder.take()
    # Anchor the kernel's running count with one notification before the run.
    before = asyncio.run(send(dsn, tag + "-anchor", 1, 1))
    assert before == 1
    sleeper = client.execute(f"import time; time.sleep({seconds + 1.5})") if busy else None
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    sender = subprocess.run(
        [sys.executable, __file__, "--send", dsn, tag, str(rate), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    sent = int(sender.stdout)
    time.sleep(1.0)
    cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
    if sleeper is not None:
        client.get_shell_msg(timeout=seconds + 30)
    label = f"{rate:,}/s" + (" (cell busy in time.sleep)" if busy else "")
    result = Result(label, sent, cpu=cpu, wall=wall, rss=rss_mib(pid))
    analyse(result, tag, recorder.take(), ids)
    # The anchor counted once in the kernel's running count.
    result.received -= 1
    return result


def one_round(dsn: str, pythonpath: str | None, seconds: float) -> list[Result]:
    """Start a kernel (with ``pythonpath`` first on its path), run every rate, stop it."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    recorder = Recorder(client)
    try:
        run(client, "%load_ext pgmagic")
        # The panel's comm is opened by the front end, as JupyterLab does.
        panel = uuid.uuid4().hex
        content = {"comm_id": panel, "target_name": PANEL, "data": {}}
        client.shell_channel.send(client.session.msg("comm_open", content))
        run(client, f"%pg listen {CHANNEL}")
        time.sleep(0.5)
        opened = [m for _, m in recorder.take() if m["msg_type"] == "comm_open"]
        ids = {
            "panel": panel,
            "widget": next(
                m["content"]["comm_id"]
                for m in opened
                if "paused" in m["content"]["data"].get("state", {})
            ),
        }
        pid = manager.provisioner.pid  # type: ignore[union-attr]
        results = [measure(client, recorder, ids, dsn, pid, rate, seconds) for rate in RATES]
        results.append(measure(client, recorder, ids, dsn, pid, 1_000, seconds, busy=True))
    finally:
        recorder.close()
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    return results


def table(rounds: dict[str, list[list[Result]]], seconds: float, command: str) -> str:
    n = len(next(iter(rounds.values())))
    lines = [
        f"# NOTIFY → feed latency ({seconds:g} s per rate, {n} rounds; "
        f"{platform.system().lower()}, {os.cpu_count()} cores)",
        "",
        f"    {command}",
        "",
        "Latency: sender's clock before the NOTIFY statement → comm message received from the "
        "kernel's iopub (an upper bound on it leaving the kernel); medians over rounds of "
        "each round's percentile. Panel p50 split: send → the listener's callback (kernel "
        "receipt) + callback → message built in the kernel + built → received here (iopub). "
        "Messages: comm messages per second of sending, widget / panel. Kernel CPU: the "
        "kernel process's user + system seconds over the run, beside the run's wall time "
        "(median over rounds). Sent / received / in panel: totals over all rounds.",
        "",
        "| tree | rate | sent | received by kernel | in panel batches "
        "| widget p50 / p99 (rows) | panel p50 / p99 | panel p50 split | kernel receipt p99 "
        "| messages/s | kernel CPU / wall | kernel RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(values: list[float], p: float) -> float:
        return percentile(values, p) * 1000

    def med(results: list[Result], f: Callable[[Result], float]) -> float:
        return statistics.median(f(r) for r in results)

    for label, per_round in rounds.items():
        for row in zip(*per_round, strict=True):
            rs = list(row)
            widget_rows = sum(len(r.widget) for r in rs)
            lines.append(
                f"| {label} | {rs[0].label} | {sum(r.sent for r in rs):,} "
                f"| {sum(r.received for r in rs):,} | {sum(r.in_panel for r in rs):,} "
                f"| {med(rs, lambda r: ms(r.widget, 50)):.1f} / "
                f"{med(rs, lambda r: ms(r.widget, 99)):.1f} ms ({widget_rows:,}) "
                f"| {med(rs, lambda r: ms(r.panel, 50)):.1f} / "
                f"{med(rs, lambda r: ms(r.panel, 99)):.1f} ms "
                f"| {med(rs, lambda r: ms(r.kernel, 50)):.1f} + "
                f"{med(rs, lambda r: ms(r.in_kernel, 50)):.1f} + "
                f"{med(rs, lambda r: ms(r.transit, 50)):.1f} ms "
                f"| {med(rs, lambda r: ms(r.kernel, 99)):.1f} ms "
                f"| {med(rs, lambda r: r.widget_messages / seconds):.0f} / "
                f"{med(rs, lambda r: r.panel_messages / seconds):.0f} "
                f"| {med(rs, lambda r: r.cpu):.2f} / {med(rs, lambda r: r.wall):.1f} s "
                f"| {med(rs, lambda r: r.rss):.0f} MiB |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="put PATH first on the kernel's PYTHONPATH; repeat to compare trees",
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "notify.md"), help="table file"
    )
    args = parser.parse_args()
    trees: dict[str, str | None] = {"this tree": None}
    if args.tree:
        trees = dict(tree.split("=", 1) for tree in args.tree)

    os.environ.setdefault("PGMAGIC_DATA_DIR", tempfile.mkdtemp(prefix="pgmagic-bench-"))
    from pgmagic.runtime import embedded

    dsn = os.environ.get("PGMAGIC_DSN") or embedded.start().dsn
    rounds: dict[str, list[list[Result]]] = {label: [] for label in trees}
    for n in range(args.rounds):
        for label, path in trees.items():
            print(f"round {n + 1}/{args.rounds}: {label}", flush=True)
            rounds[label].append(one_round(dsn, path, args.seconds))
    command = "python benchmarks/bench_notify.py " + " ".join(sys.argv[1:])
    report = table(rounds, args.seconds, command.strip())
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--send"]:
        dsn, tag, rate, seconds = sys.argv[2:6]
        print(asyncio.run(send(dsn, tag, int(rate), float(seconds))))
    else:
        main()
