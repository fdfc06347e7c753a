"""The query history in real kernels: cell numbers as Out[N] shows them, kept across a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.kernels import Kernel


def _history(kernel: Kernel, *arguments: str) -> list[dict[str, object]]:
    """``pgmagic.history(...)`` in the kernel, as plain rows."""
    code = (
        "import json, pgmagic\n"
        f"_h = pgmagic.history({', '.join(arguments)})\n"
        "print(json.dumps(_h[['cell', 'sql', 'status', 'kernel']].astype(object)"
        ".where(_h.notna(), None).to_dict('records')))"
    )
    reply = kernel.run(code)
    assert reply.status == "ok", reply.text
    rows: list[dict[str, object]] = json.loads(reply.stdout)
    return rows


def test_the_history_survives_a_kernel_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGMAGIC_HISTORY_FILE", str(tmp_path / "history.sqlite3"))
    with Kernel() as kernel:
        assert kernel.run("%load_ext pgmagic").status == "ok"
        reply = kernel.run("%pg SELECT 'before the restart' AS h")
        assert reply.status == "ok", reply.text
        # Restarted at once: what the writer thread still held is written as the kernel exits.
        kernel.manager.restart_kernel(now=False)
        kernel.client.wait_for_ready(timeout=60)
        assert kernel.run("%load_ext pgmagic").status == "ok"
        assert kernel.run("%pg SELECT 'after the restart' AS h").status == "ok"
        mine = _history(kernel)
        every = _history(kernel, "all_kernels=True")
    assert [row["sql"] for row in mine] == ["SELECT 'after the restart' AS h"]
    assert [row["sql"] for row in every] == [
        "SELECT 'before the restart' AS h",
        "SELECT 'after the restart' AS h",
    ]
    assert every[0]["kernel"] != every[1]["kernel"]
    # In [2] both times: %load_ext was In [1].
    assert every[0]["cell"] == 2 and every[1]["cell"] == 2
