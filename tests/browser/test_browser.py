"""Real-browser tests of the JupyterLab extension (Debian Chromium via Playwright).

The specs live in labextension/ui-tests/; run.sh installs what they need
(Chromium from apt when missing, node packages with jlpm) and runs them headless.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

RUN = pathlib.Path(__file__).parents[2] / "labextension" / "ui-tests" / "run.sh"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is needed for the browser tests")
@pytest.mark.timeout(1800)
def test_browser_specs() -> None:
    env = dict(os.environ, CI="true")
    # run.sh finds python, jupyter and jlpm on PATH: put this environment's first.
    env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run(
        ["bash", str(RUN)], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
