"""Every code block of the README and of ``%pg?`` runs as pasted, so the documentation cannot rot.

The README's ``python`` and ``sql`` blocks become the cells of one notebook, in
order, run by a real kernel against a fresh embedded server in an empty folder:
what a new user pasting them one by one would see.  A block preceded by
``<!-- not run: REASON -->`` needs something the suite cannot give (a server
of the user's own); the marker says so in the README's source.  Shell blocks
are not cells: the set-up commands are what CI runs.

The ``Examples::`` block of ``%pg?`` runs the same way, as one cell.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pgmagic.frontend.magics import PgMagics

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(
    r"^(<!-- not run: (?P<why>.+?) -->\n)?```(?P<info>\w*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


def readme_blocks() -> list[tuple[str, str | None]]:
    """(code, reason it is not run or None) for each python/sql block, in order."""
    text = (ROOT / "README.md").read_text()
    return [
        (m.group("body"), m.group("why"))
        for m in _FENCE.finditer(text)
        if m.group("info") in ("python", "sql")
    ]


def help_examples() -> str:
    """The ``Examples::`` block of ``%pg?``, dedented."""
    doc = PgMagics.pg.__doc__ or ""
    match = re.search(r"Examples::\n\n(?P<block>(?:[ \t]+.*\n|\n)+)", doc)
    assert match, "%pg? has no Examples:: block"
    lines = match.group("block").rstrip().splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines) + "\n"


@pytest.fixture
def fresh_folder(tmp_path: Path) -> Iterator[Path]:
    """An empty working folder and a new embedded server's data folder for the kernel."""
    if os.environ.get("PGMAGIC_TEST_DSN"):
        pytest.skip("the README runs against the embedded server")
    saved = {k: os.environ.get(k) for k in ("PGMAGIC_DATA_DIR", "PGMAGIC_DSN", "DATABASE_URL")}
    os.environ["PGMAGIC_DATA_DIR"] = str(tmp_path / "pgdata")
    os.environ.pop("PGMAGIC_DSN", None)
    os.environ.pop("DATABASE_URL", None)
    work = tmp_path / "work"
    work.mkdir()
    try:
        yield work
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run(cells: list[str], folder: Path) -> list[tuple[str, list[str]]]:
    """Run cells in a real kernel; the errors, as (cell, what it showed)."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    failures = []
    for cell in notebook.cells:
        for output in cell.outputs:
            text = output.get("text", "") if output.output_type == "stream" else ""
            if output.output_type == "error" or "Error:" in text or "ERROR:" in text:
                shown = output.get("traceback") or [text]
                failures.append((cell.source, [str(line) for line in shown]))
    return failures


def test_the_readme_runs_as_pasted(fresh_folder: Path) -> None:
    blocks = readme_blocks()
    cells = [code for code, why in blocks if why is None]
    # The tour, big results, notifications and the API at least; and some are marked.
    assert len(cells) >= 15 and len(cells) < len(blocks)
    assert _run(cells, fresh_folder) == []


def test_the_help_examples_run_as_pasted(fresh_folder: Path) -> None:
    code = help_examples()
    assert code.count("%pg") >= 8
    assert _run(["%load_ext pgmagic", code], fresh_folder) == []
