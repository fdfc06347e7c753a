"""The JupyterLab extension's own checks: lint and unit tests (no browser).

``jlpm lint:check`` runs eslint, stylelint and prettier; ``jlpm test`` type
checks the tests, runs vitest and checks that ``pgmagic/_static/feed.js`` was
rebuilt from ``labextension/src``.  jlpm comes with ``jupyter_builder``, as for
``labextension/ui-tests/run.sh``; Node.js must be on PATH.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

LABEXTENSION = pathlib.Path(__file__).parents[2] / "labextension"
# A cold install downloads about 400 MB of node packages.
pytestmark = pytest.mark.timeout(1200)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The package scripts call jlpm again: this environment's must come first.
    env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), env.get("PATH", "")])
    # The same yarn cache as ui-tests/run.sh, so the two share downloads.
    env.setdefault("YARN_GLOBAL_FOLDER", str(LABEXTENSION / ".yarn" / "global"))
    env["YARN_ENABLE_PROGRESS_BARS"] = "false"
    return env


def _jlpm(*args: str) -> subprocess.CompletedProcess[str]:
    env = _env()
    jlpm = shutil.which("jlpm", path=env["PATH"])
    if jlpm is None:
        pytest.fail(
            "jlpm not found: install pgmagic's test extras (jupyterlab brings jupyter_builder)"
        )
    return subprocess.run(
        [jlpm, *args],
        cwd=LABEXTENSION,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )


def _check(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{' '.join(result.args[1:])} exited {result.returncode}\n"
        f"{result.stdout[-12000:]}\n{result.stderr[-4000:]}"
    )


@pytest.fixture(scope="module")
def node_modules() -> None:
    """Install the extension's node packages; quick when they are up to date.

    Run on every session, not only without node_modules, so a package.json
    change reaches the checks.  Under CI=true yarn refuses to change yarn.lock.
    """
    _check(_jlpm("install"))


@pytest.mark.parametrize("script", ["lint:check", "test"])
def test_labextension(node_modules: None, script: str) -> None:
    _check(_jlpm(script))
