"""Fake kernel side of the ``pgmagic.panel`` comm protocol, for UI tests.

Run it in a notebook cell (``%run fake_feed.py``), then::

    feed = FakeFeed(interval=0.2)   # opens the comm, starts emitting
    feed.widget                     # the anywidget front end (feed.js)
    feed.emit_later("marker", 1.0)  # one notification, 1 s from now
    feed.gap(2.5)                   # a gap row
    feed.stop()

It speaks the same protocol as the real ``%pg listen`` (snapshot on open and
on ``hello``, batches at most every 50 ms from a background thread, export
to a DataFrame) but makes up its notifications instead of asking PostgreSQL.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import pathlib
import threading
import time

import anywidget
import comm
import traitlets
from IPython import get_ipython

TARGET = "pgmagic.panel"
BATCH_SECONDS = 0.05
WIDGET_ITEMS = 200
_LIVE_KEY = "_fake_pgmagic_feed"
_STATIC = pathlib.Path(__file__).resolve().parents[2] / "pgmagic" / "_static"


class FeedWidget(anywidget.AnyWidget):
    """Stand-in for the real widget class: same traits, same ESM."""

    _esm = _STATIC / "feed.js"
    _css = _STATIC / "feed.css"
    items = traitlets.List().tag(sync=True)
    state = traitlets.Dict().tag(sync=True)
    paused = traitlets.Bool(False).tag(sync=True)


class FakeFeed:
    """Emit made-up notifications to the panel comm and a widget."""

    def __init__(self, *, interval=0.2, channels=("orders", "jobs"), history=2000):
        # One live comm per kernel, as the real kernel side must keep; the
        # user namespace survives re-running this file, a class would not.
        user_ns = get_ipython().user_ns
        previous = user_ns.get(_LIVE_KEY)
        if previous is not None:
            previous.stop()
        user_ns[_LIVE_KEY] = self
        self.interval = interval
        self.channels = list(channels)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._history = collections.deque(maxlen=history)
        self._pending = []
        self._count = 0
        self._dropped = 0
        self._sent_times = collections.deque(maxlen=200)
        self._scheduled = []
        self._stop = threading.Event()
        self._widget_cleared_seq = 0

        self.widget = FeedWidget(state=self._state())
        self.widget.on_msg(self._on_widget_msg)
        self.comm = comm.create_comm(
            target_name=TARGET,
            data={"type": "snapshot", "items": [], "state": self._state()},
        )
        self.comm.on_msg(self._on_comm_msg)
        threading.Thread(target=self._run, name="fake-feed", daemon=True).start()

    # -- producing -------------------------------------------------------

    def emit(self, payload, channel=None, pid=None):
        """Record one notification now (the flusher sends it within 50 ms)."""
        with self._lock:
            self._append(
                {
                    "seq": next(self._seq),
                    "kind": "notification",
                    "time": time.time(),
                    "channel": channel or self.channels[0],
                    "pid": pid or os.getpid(),
                    "payload": payload,
                }
            )
            self._count += 1
            self._sent_times.append(time.monotonic())

    def emit_later(self, payload, delay, channel=None):
        """Emit from the background thread after ``delay`` seconds."""
        with self._lock:
            self._scheduled.append((time.monotonic() + delay, payload, channel))

    def gap(self, seconds, message="listener connection lost; reconnected"):
        """Record a gap row covering the last ``seconds``."""
        now = time.time()
        with self._lock:
            self._append(
                {
                    "seq": next(self._seq),
                    "kind": "gap",
                    "time": now,
                    "start": now - seconds,
                    "end": now,
                    "message": message,
                }
            )

    def stop(self):
        """Stop emitting and close the comm, as ``%unload_ext`` would."""
        self._stop.set()
        self.comm.close()

    def _append(self, item):
        if len(self._history) == self._history.maxlen:
            self._dropped += 1
        self._history.append(item)
        self._pending.append(item)

    def _state(self):
        now = time.monotonic()
        recent = [t for t in self._sent_times if now - t <= 5.0]
        return {
            "listener": "stopped" if self._stop.is_set() else "listening",
            "channels": self.channels,
            "count": self._count,
            "rate": len(recent) / 5.0,
            "dropped": self._dropped,
        }

    def _run(self):
        counter = itertools.count(1)
        next_emit = time.monotonic()
        while not self._stop.wait(BATCH_SECONDS):
            now = time.monotonic()
            if self.interval and now >= next_emit:
                n = next(counter)
                payload = (
                    json.dumps({"id": n, "status": "shipped", "items": [n, n + 1]})
                    if n % 3
                    else f"plain text payload #{n}"
                )
                self.emit(payload, channel=self.channels[n % len(self.channels)])
                next_emit = now + self.interval
            with self._lock:
                due = [s for s in self._scheduled if s[0] <= now]
                self._scheduled = [s for s in self._scheduled if s[0] > now]
            for _, payload, channel in due:
                self.emit(payload, channel=channel)
            self._flush()

    def _flush(self):
        with self._lock:
            if not self._pending:
                return
            items, self._pending = self._pending, []
            state = self._state()
            window = [i for i in self._history if i["seq"] > self._widget_cleared_seq]
            window = window[-WIDGET_ITEMS:]
        self.comm.send({"type": "batch", "items": items, "state": state})
        if not self.widget.paused:
            self.widget.items = window
        self.widget.state = state

    # -- requests from the frontends ---------------------------------------

    def _on_comm_msg(self, msg):
        data = msg["content"]["data"]
        if data.get("type") == "hello":
            with self._lock:
                items, state = list(self._history), self._state()
            self.comm.send({"type": "snapshot", "items": items, "state": state})
        elif data.get("type") == "export":
            self._export(data)

    def _export(self, request):
        import pandas as pd

        channel, text = request.get("channel"), (request.get("text") or "").lower()
        with self._lock:
            rows = [
                item
                for item in self._history
                if item["kind"] == "notification"
                and (channel is None or item["channel"] == channel)
                and (
                    not text
                    or text in item["channel"].lower()
                    or text in item["payload"].lower()
                    or text in str(item["pid"])
                )
            ]
        frame = pd.DataFrame(rows, columns=["seq", "time", "channel", "pid", "payload"])
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        get_ipython().user_ns[request["variable"]] = frame
        self.comm.send({"type": "exported", "variable": request["variable"], "rows": len(frame)})

    def _on_widget_msg(self, _widget, content, _buffers):
        if content.get("type") == "clear":
            with self._lock:
                if self._history:
                    self._widget_cleared_seq = self._history[-1]["seq"]
                self.widget.items = []
