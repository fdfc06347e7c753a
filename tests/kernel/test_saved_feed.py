"""What a notebook run headless saves of a ``%pg listen`` feed, and what nbconvert makes of it.

nbclient keeps only the messages whose parent is the cell it is running, and
the feed's live updates come from the runtime's thread with the ``%pg listen``
cell as parent: the saved feed must still say what arrived, in the widget
state and in the static HTML and text beside the widget view.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.kernel.test_notify_kernel import Recorder, widget_items
from tests.kernels import Kernel

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
FEED = "application/vnd.pgmagic.feed+json"

# Verbatim: a 64-bit integer and a decimal that parsing would change, HTML
# that must stay text, and a line break.
PAYLOADS = ["9223372036854775807", "1.10", "<b>&", "two\nlines"]


def sent(payloads: list[str]) -> str:
    array = ", ".join("'" + p.replace("'", "''") + "'" for p in payloads)
    return f"%%pg -q\nSELECT pg_notify('saved_feed', p) FROM unnest(ARRAY[{array}]) AS p"


CELLS = [
    "%load_ext pgmagic",
    "%pg listen saved_feed",
    sent(PAYLOADS),
    # Wait until the kernel has them: the next cell then has news to record.
    "import time, pgmagic\n"
    "deadline = time.monotonic() + 30\n"
    f"while len(pgmagic.notification_log()) < {len(PAYLOADS)} and time.monotonic() < deadline:\n"
    "    time.sleep(0.05)\n"
    "time.sleep(0.3)  # the feed takes what the log holds within a batch interval",
    "print('after')",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("saved_feed")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code) for code in CELLS]
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    path = folder / "feed.ipynb"
    nbformat.write(notebook, path)
    return path


def listen_output(path: Path) -> dict[str, Any]:
    notebook = nbformat.read(path, as_version=4)
    # The first %pg also prints where the embedded server lives.
    outputs = [o for o in notebook.cells[1].outputs if o.output_type != "stream"]
    assert [o.output_type for o in outputs] == ["display_data"], outputs
    data: dict[str, Any] = outputs[0].data
    return data


def test_the_saved_output_has_static_html_and_text_with_what_arrived(saved: Path) -> None:
    data = listen_output(saved)
    assert set(data) == {WIDGET_VIEW, FEED, "text/html", "text/plain"}
    text, page = data["text/plain"], data["text/html"]
    assert text.startswith("LISTEN saved_feed · listening · 4 received")
    assert "object at 0x" not in text and "FeedWidget" not in text
    # Newest first; the second line of a payload under the payload column.
    rows = text.splitlines()[2:-1]
    assert [r.split()[-1] for r in rows] == ["two", "lines", "<b>&", "1.10", "9223372036854775807"]
    assert rows[1].index("lines") == rows[0].index("two") == rows[2].index("<b>&")
    for payload in ["9223372036854775807", "1.10", "&lt;b&gt;&amp;", "two\nlines"]:
        assert f"<pre>{payload}</pre>" in page
    assert "<b>&" not in page
    assert "No notifications yet" not in text + page


def test_the_saved_widget_state_has_what_arrived(saved: Path) -> None:
    notebook = nbformat.read(saved, as_version=4)
    model_id = listen_output(saved)[WIDGET_VIEW]["model_id"]
    state = notebook.metadata.widgets[WIDGET_STATE]["state"][model_id]["state"]
    assert state["state"]["count"] == len(PAYLOADS)
    assert state["state"]["listener"] == "listening"
    assert [i["payload"] for i in state["items"]] == PAYLOADS


def nbconvert_html(saved: Path, folder: Path, *options: str) -> str:
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(saved)]
    subprocess.run(
        [*command, *options, "--output-dir", str(folder)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return (folder / "feed.html").read_text()


def test_nbconvert_html_draws_the_widget_from_its_saved_state(saved: Path, tmp_path: Path) -> None:
    page = nbconvert_html(saved, tmp_path)
    assert "object at 0x" not in page
    # nbconvert prefers the widget view when the notebook saved its state:
    # the page's widget script draws it from that state, which holds every payload.
    states = re.findall(
        r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', page, re.S
    )
    assert len(states) == 1
    items = [
        m["state"]["items"]
        for m in json.loads(states[0])["state"].values()
        if "items" in m["state"]
    ]
    assert [i["payload"] for i in items[0]] == PAYLOADS


def test_nbconvert_html_without_widget_state_shows_the_static_table(
    saved: Path, tmp_path: Path
) -> None:
    page = nbconvert_html(saved, tmp_path, "--ClearMetadataPreprocessor.enabled=True")
    assert "widget-state+json" not in page and "object at 0x" not in page
    assert "LISTEN saved_feed · listening · 4 received" in page
    for payload in ["9223372036854775807", "1.10", "&lt;b&gt;&amp;", "two\nlines"]:
        assert f"<pre>{payload}</pre>" in page


# Cell by cell: the display updates that cell's end sends, and what the last says.
RECORDS = [
    ("1", 0, None),
    ("%pg notify quiet_feed hello\nimport time; time.sleep(0.5)", 1, "· 1 received"),
    ("1", 0, None),
    ("time.sleep(0.5)", 0, None),
    ("%pg unlisten quiet_feed", 1, "· stopped · 1 received"),
    ("1", 0, None),
]


def test_a_cell_records_the_feed_only_when_what_it_shows_changed() -> None:
    with Kernel() as kernel:
        recorder = Recorder(kernel)
        try:
            recorder.run("%load_ext pgmagic")
            own = recorder.run("%pg listen quiet_feed")
            shown = [m for m in own if m["msg_type"] == "display_data"]
            display_id = shown[0]["content"]["transient"]["display_id"]
            for code, count, text in RECORDS:
                own = recorder.run(code)
                updates = [m["content"] for m in own if m["msg_type"] == "update_display_data"]
                states = [
                    m
                    for m in own
                    if m["msg_type"] == "comm_msg" and widget_items(m["content"]["data"])
                ]
                assert (len(updates), len(states)) == (count, count), code
                if text is not None:
                    assert updates[0]["transient"]["display_id"] == display_id
                    assert text in updates[0]["data"]["text/plain"]
        finally:
            recorder.stop()
