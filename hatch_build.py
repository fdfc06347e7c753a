"""Hatchling build hook: compile pgmagic's C extensions with the system C compiler.

- ``pgmagic/_c/pgcopy.c``: the binary-COPY parser behind query results;
- ``pgmagic/_c/pgencode.c``: the binary-COPY encoder behind ``%pg load``.

The extensions have no dependencies beyond the Python headers of the
interpreter running the build, so each is compiled with one compiler call
instead of pulling setuptools into the build.  A wheel that contains them is
platform-specific (``infer_tag``).

- ``pip install .`` (wheel): compiled into a temporary directory and added
  to the wheel as ``pgmagic/<name><EXT_SUFFIX>``.
- ``pip install -e .`` (editable): compiled next to the source, in
  ``pgmagic/``, where the editable install imports them from.

Environment:
  ``CC``                 compiler to use (default: ``cc``)
  ``CFLAGS``             extra flags, appended
  ``PGMAGIC_NO_EXT=1``   build a pure-Python wheel; results then take the
                         record path and loads send CSV
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

MODULES = ("_pgcopy", "_pgencode")


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compile the binary-COPY extensions."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile the extensions and register them with the build.

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
        if version != "editable":
            self._tmp = tempfile.mkdtemp(prefix="pgmagic-build-")
        for name in MODULES:
            source = root / "pgmagic" / "_c" / f"{name.lstrip('_')}.c"
            if version == "editable":
                _compile(source, root / "pgmagic" / (name + suffix))
            else:
                target = Path(self._tmp) / (name + suffix)
                _compile(source, target)
                build_data["force_include"][str(target)] = f"pgmagic/{name}{suffix}"
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
            " or set PGMAGIC_NO_EXT=1 to build without the binary COPY paths"
        )
    cc = shlex.split(os.environ.get("CC", "cc"))
    flags = ["-O2", "-fPIC", "-shared", "-std=c11", "-fno-strict-aliasing"]
    if sys.platform == "darwin":
        flags += ["-undefined", "dynamic_lookup"]
    flags += shlex.split(os.environ.get("CFLAGS", ""))
    cmd = [*cc, *flags, f"-I{include}", f"-I{source.parent}", str(source), "-o", str(target)]
    try:
        subprocess.run(cmd, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(
            f"compiling {source} failed ({' '.join(cmd)}); a C compiler is needed,"
            " or set PGMAGIC_NO_EXT=1 to build without the binary COPY paths"
        ) from exc
