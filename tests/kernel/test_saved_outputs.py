"""What a notebook run headless saves: no dead progress widget, only the summary lines."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

# Long enough for the bars to appear (half a second), small enough to be quick.
CELLS = [
    "%load_ext pgmagic",
    "%pg -q CREATE TABLE IF NOT EXISTS saved_outputs AS "
    "SELECT g, md5(g::text) AS h FROM generate_series(1, 3000000) g",
    "%%pg --to out.parquet\nSELECT * FROM saved_outputs",
    "frame = %pg SELECT * FROM saved_outputs",
    "%pg load frame INTO saved_outputs_copy --replace",
    "%pg -q DROP TABLE saved_outputs, saved_outputs_copy",
]


def test_a_saved_notebook_keeps_no_progress_widget(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code) for code in CELLS]
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    saved = json.dumps(nbformat.v4.upgrade(notebook))
    assert "widget-view+json" not in saved
    assert "rows/s]" not in saved  # no bar's text fallback either
    texts = [
        "".join(o.get("text", ""))
        for cell in notebook.cells
        for o in cell.outputs
        if o.output_type == "stream"
    ]
    assert any("rows → out.parquet" in t for t in texts), texts
    assert any("rows → saved_outputs_copy" in t for t in texts), texts
    # Outputs the bars left are empty, so front ends draw nothing for them.
    leftovers = [
        o
        for cell in notebook.cells
        for o in cell.outputs
        if o.output_type == "display_data" and o.get("data")
    ]
    assert leftovers == []
