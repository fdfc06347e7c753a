"""Hatchling build hook: compile ``pgmagic/_pgcopy.c`` with the system C compiler.

The extension has no dependencies beyond the Python headers of the
interpreter running the build, so it is compiled with one compiler call
instead of pulling setuptools into the build.  A wheel that contains it is
platform-specific (``infer_tag``).

- ``pip install .`` (wheel): compiled into a temporary directory and added
  to the wheel as ``pgmagic/_pgcopy<EXT_SUFFIX>``.
- ``pip install -e .`` (editable): compiled next to the source, in
  ``pgmagic/``, where the editable install imports it from.

Environment:
  ``CC``                 compiler to use (default: ``cc``)
  ``CFLAGS``             extra flags, appended
  ``PGMAGIC_NO_EXT=1``   build a pure-Python wheel; the COPY fast path then
                         reports itself unavailable and results take the
                         record path
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("pgmagic/_pgcopy.c")
MODULE = "pgmagic/_pgcopy"


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile the binary-COPY parser extension."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile the extension and register it with the build.

        Parameters
        ----------
        version : str
            ``"standard"`` or ``"editable"``.
        build_data : dict
            Hatchling's mutable build description.
        """
        if self.target_name != "wheel" or os.environ.get("PGMAGIC_NO_EXT") == "1":
            return
        root = Path(self.root)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        if version == "editable":
            target = root / (MODULE + suffix)
            _compile(root / SOURCE, target)
        else:
            self._tmp = tempfile.mkdtemp(prefix="pgmagic-build-")
            target = Path(self._tmp) / ("_pgcopy" + suffix)
            _compile(root / SOURCE, target)
            build_data["force_include"][str(target)] = MODULE + suffix
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the temporary build directory."""
        tmp = getattr(self, "_tmp", None)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _compile(source: Path, target: Path) -> None:
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        raise RuntimeError(
            f"Python.h not found in {include}: install the Python development headers,"
            " or set PGMAGIC_NO_EXT=1 to build without the COPY fast path"
        )
    cc = shlex.split(os.environ.get("CC", "cc"))
    flags = ["-O2", "-fPIC", "-shared", "-std=c11", "-fno-strict-aliasing"]
    if sys.platform == "darwin":
        flags += ["-undefined", "dynamic_lookup"]
    flags += shlex.split(os.environ.get("CFLAGS", ""))
    cmd = [*cc, *flags, f"-I{include}", str(source), "-o", str(target)]
    try:
        subprocess.run(cmd, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(
            f"compiling {source} failed ({' '.join(cmd)}); a C compiler is needed,"
            " or set PGMAGIC_NO_EXT=1 to build without the COPY fast path"
        ) from exc
