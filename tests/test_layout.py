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
PACKAGES = ("runtime", "sql", "results", "bulk", "live", "catalog", "frontend")
# Front-end libraries: only pgmagic.frontend may import them.
FRONT_LIBRARIES = {"IPython", "traitlets", "comm", "anywidget", "ipywidgets", "tqdm"}
# What each package may not import from outside pgmagic, beyond the front-end libraries.
FORBIDDEN = {
    "runtime": {"pandas", "numpy", "pyarrow"},
    "sql": {"asyncpg", "pandas", "numpy", "pyarrow"},
    "catalog": {"pandas", "numpy", "pyarrow"},
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test or node)


def imported_modules(path: pathlib.Path) -> set[str]:
    """Modules a file imports at run time (at any depth; not under TYPE_CHECKING)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking(node):
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # "from pgmagic.results import frames" imports the module frames.
                full = f"{node.module}.{alias.name}"
                names.add(full if full in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return names


def internal_imports(name: str) -> set[str]:
    return {m for m in imported_modules(MODULES[name]) if m in MODULES and m != "pgmagic"}


def allowed(package: str) -> set[str]:
    """The ``May import:`` line of a package's docstring."""
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text())) or ""
    lines = [line for line in doc.splitlines() if line.startswith("May import:")]
    assert len(lines) == 1, f"pgmagic.{package} must state its import rules"
    return {w.strip() for w in lines[0].split(":", 1)[1].split(",") if w.strip()}


def top_of(module: str) -> str:
    """``pgmagic.results.cell`` -> ``results``; top-level modules keep their name."""
    return module.split(".")[1]


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_their_rules_allow(package: str) -> None:
    rules = allowed(package) | {package}
    assert rules - {package} <= {"errors", "_oids", *PACKAGES}
    broken = {
        f"{name} imports {target}"
        for name in MODULES
        if name.startswith(f"pgmagic.{package}.")
        for target in internal_imports(name)
        if top_of(target) not in rules
    }
    assert not broken


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith("pgmagic.frontend")))
def test_only_the_front_imports_front_end_libraries(name: str) -> None:
    outside = {m.split(".")[0] for m in imported_modules(MODULES[name])} - {"pgmagic"}
    package = name.split(".")[1] if name.count(".") >= 2 else ""
    assert not outside & (FRONT_LIBRARIES | FORBIDDEN.get(package, set()))


def test_the_low_modules_stay_low() -> None:
    # errors and _oids are imported by every package; the API sits beside the front, never under it.
    assert {top_of(m) for m in internal_imports("pgmagic.errors")} == set()
    assert {top_of(m) for m in internal_imports("pgmagic._oids")} == set()
    assert "frontend" not in {top_of(m) for m in internal_imports("pgmagic.api")}


def find_cycle() -> list[str] | None:
    graph = {name: internal_imports(name) for name in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_no_import_cycles() -> None:
    assert find_cycle() is None


def test_the_cycle_finder_finds_cycles(tmp_path: pathlib.Path) -> None:
    # The checks above must be able to fail: a cycle planted in a copy is found.
    MODULES["pgmagic.sql._planted"] = tmp_path / "planted.py"
    (tmp_path / "planted.py").write_text("from pgmagic.sql import params\n")
    params = MODULES["pgmagic.sql.params"]
    original = params.read_text()
    try:
        MODULES["pgmagic.sql.params"] = tmp_path / "params.py"
        (tmp_path / "params.py").write_text(original + "\nfrom pgmagic.sql import _planted\n")
        cycle = find_cycle()
        assert cycle is not None
        assert set(cycle) == {"pgmagic.sql._planted", "pgmagic.sql.params"}
    finally:
        MODULES["pgmagic.sql.params"] = params
        del MODULES["pgmagic.sql._planted"]


def test_no_module_is_over_700_lines() -> None:
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 700}
    assert not long


def test_the_magic_front_stays_thin() -> None:
    assert len((PACKAGE / "frontend" / "magics.py").read_text().splitlines()) < 200


PUBLIC = [
    "__version__",
    "execute",
    "explain",
    "fetch",
    "fetchrow",
    "fetchval",
    "history",
    "job",
    "jobs",
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
