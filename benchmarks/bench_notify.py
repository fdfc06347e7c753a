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
widget shows only the newest 200 rows, so at high rates it skips rows by
design; its latency is over the rows it did show.

    python benchmarks/bench_notify.py [--seconds 5] [--out benchmarks/results/notify.md]

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
import subprocess
import sys
import tempfile
import threading
import time
import uuid
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
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok", reply["content"]
    return reply


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Result:
    label: str
    sent: int
    received: int = 0
    in_panel: int = 0
    widget: list[float] = field(default_factory=list)
    panel: list[float] = field(default_factory=list)
    kernel: list[float] = field(default_factory=list)
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
        if comm_id == ids["panel"] and data.get("type") == "batch":
            counts.append(data["state"]["count"])
            items, seen, latencies = data["items"], seen_panel, result.panel
        elif comm_id == ids["widget"] and "items" in data.get("state", {}):
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
    sender = subprocess.run(
        [sys.executable, __file__, "--send", dsn, tag, str(rate), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    sent = int(sender.stdout)
    time.sleep(1.0)
    if sleeper is not None:
        client.get_shell_msg(timeout=seconds + 30)
    label = f"{rate:,}/s" + (" (cell busy in time.sleep)" if busy else "")
    result = Result(label, sent, rss=rss_mib(pid))
    analyse(result, tag, recorder.take(), ids)
    # The anchor counted once in the kernel's running count.
    result.received -= 1
    return result


def table(results: list[Result], seconds: float) -> str:
    lines = [
        f"# NOTIFY → feed latency ({seconds:g} s per rate; {platform.system().lower()}, "
        f"{os.cpu_count()} cores)",
        "",
        "Latency: sender's clock before the NOTIFY statement → comm message received from the "
        "kernel's iopub (an upper bound on it leaving the kernel). Kernel receipt: send → "
        "the listener's callback in the kernel.",
        "",
        "| rate | sent | received by kernel | in panel batches | widget p50 / p99 (rows) "
        "| panel p50 / p99 | kernel receipt p50 / p99 | kernel RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def ms(values: list[float], p: float) -> str:
        return f"{percentile(values, p) * 1000:.1f}"

    for r in results:
        lines.append(
            f"| {r.label} | {r.sent:,} | {r.received:,} | {r.in_panel:,} "
            f"| {ms(r.widget, 50)} / {ms(r.widget, 99)} ms ({len(r.widget):,}) "
            f"| {ms(r.panel, 50)} / {ms(r.panel, 99)} ms "
            f"| {ms(r.kernel, 50)} / {ms(r.kernel, 99)} ms | {r.rss:.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "notify.md"), help="table file"
    )
    args = parser.parse_args()

    os.environ.setdefault("PGMAGIC_DATA_DIR", tempfile.mkdtemp(prefix="pgmagic-bench-"))
    from pgmagic.runtime import embedded

    dsn = os.environ.get("PGMAGIC_DSN") or embedded.start().dsn
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
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
        results = [measure(client, recorder, ids, dsn, pid, rate, args.seconds) for rate in RATES]
        results.append(measure(client, recorder, ids, dsn, pid, 1_000, args.seconds, busy=True))
    finally:
        recorder.close()
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    report = table(results, args.seconds)
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
