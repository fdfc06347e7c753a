"""The package's shape: import rules, the public API, lint and types."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import pgmagic

PACKAGE = pathlib.Path(pgmagic.__file__).parent
ROOT = PACKAGE.parent
FRONT = {"magics.py"}


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", sorted(p for p in PACKAGE.glob("*.py") if p.name not in FRONT), ids=lambda p: p.name
)
def test_only_the_front_imports_ipython(path: pathlib.Path) -> None:
    assert not {m for m in imported_modules(path) if m.split(".")[0] == "IPython"}


PUBLIC = [
    "__version__",
    "execute",
    "fetch",
    "fetchrow",
    "fetchval",
    "load_ipython_extension",
    "load_table",
    "notification_log",
    "notifications",
    "stream",
    "to_file",
    "unload_ipython_extension",
]


def test_public_api_is_pinned() -> None:
    assert pgmagic.__all__ == PUBLIC
    for name in pgmagic.__all__:
        assert getattr(pgmagic, name) is not None
    with pytest.raises(AttributeError):
        _ = pgmagic.not_a_thing  # type: ignore[attr-defined]


def test_importing_pgmagic_is_cheap() -> None:
    code = "import sys, pgmagic; print(sorted(m for m in ('IPython', 'asyncpg', 'pandas') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_ruff() -> None:
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "pgmagic", "tests", "benchmarks"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "pgmagic"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
