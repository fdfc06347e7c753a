"""No copyleft licence among pgmagic's runtime dependencies (pgmagic is MIT).

Every runtime dependency is walked, transitively, through the ``Requires-Dist``
of the installed distributions (markers honoured, extras left out).  A licence
is read from ``License-Expression`` (SPDX) first, then from the ``License ::``
classifiers, then from the first line of ``License``.  Copyleft families fail:
GPL, AGPL, LGPL, MPL, EPL, CDDL, SSPL, EUPL, OSL, CPAL, CeCILL.  A licence
choice (``MIT OR GPL-2.0``) is fine when one branch is permissive.

File-level copyleft (MPL-2.0) that pgmagic only installs, unmodified, is
allowed package by package in ``REVIEWED``, with the reason; a stale entry
fails too.  A direct dependency whose licence cannot be read fails; an
indirect one is printed.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# Weak, file-level copyleft, reviewed: MPL-2.0 binds changes to the MPL files
# themselves; pgmagic ships none of them and links to the packages as they are.
REVIEWED = {
    "certifi": "MPL-2.0 CA bundle data, through requests/httpx (jupyterlab); used as installed",
    "orjson": "MPL-2.0 AND (Apache-2.0 OR MIT); a direct dependency, used as installed",
    "tqdm": "MPL-2.0 AND MIT; a direct dependency, used as installed",
}

_COPYLEFT_SPDX = re.compile(
    r"^(?:A|L)?GPL|^MPL|^EPL|^CDDL|^SSPL|^EUPL|^OSL|^CPAL|^CECILL-[12]", re.I
)
_COPYLEFT_TEXT = re.compile(
    r"\b(?:A|L)?GPL|GNU (?:Affero |Lesser |Library )?(?:General )?Public|Mozilla Public|\bMPL\b"
    r"|Eclipse Public|\bEPL\b|\bCDDL\b|Common Development and Distribution|\bSSPL\b"
    r"|Server Side Public|\bEUPL\b|European Union Public|Open Software License|\bOSL\b|CeCILL"
    r"|copyleft",
    re.I,
)
_PERMISSIVE_TEXT = re.compile(
    r"\bMIT\b|\bBSD\b|Apache|\bISC\b|\bPSF|Python Software Foundation|\bZlib\b|\b0BSD\b"
    r"|Unlicense|\bCC0\b|Public Domain|Historical Permission Notice|\bHPND\b|Python License",
    re.I,
)


@dataclass(frozen=True)
class Licence:
    """What a distribution's metadata says of its licence."""

    verdict: str  # "permissive", "copyleft" or "unknown"
    source: str  # the text it was read from


def _spdx_copyleft(expression: str) -> bool:
    """Whether an SPDX expression leaves no way around a copyleft licence."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expression)
    position = 0

    def either() -> bool:  # a OR b: copyleft only when every branch is
        nonlocal position
        result = both()
        while position < len(tokens) and tokens[position].upper() == "OR":
            position += 1
            result = both() and result
        return result

    def both() -> bool:  # a AND b: copyleft when any part is
        nonlocal position
        result = one()
        while position < len(tokens) and tokens[position].upper() == "AND":
            position += 1
            result = one() or result
        return result

    def one() -> bool:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "(":
            result = either()
            position += 1  # ")"
        else:
            result = bool(_COPYLEFT_SPDX.match(token)) and "no-copyleft" not in token.lower()
        if position < len(tokens) and tokens[position].upper() == "WITH":
            position += 2  # an exception keeps the licence what it is
        return result

    return either()


def classify(expression: str | None, licence: str | None, classifiers: list[str]) -> Licence:
    """Read a licence from the three places metadata keeps one, most reliable first."""
    if expression and expression.strip():
        verdict = "copyleft" if _spdx_copyleft(expression) else "permissive"
        return Licence(verdict, expression)
    named = [c for c in classifiers if c.startswith("License ::") and c.count("::") > 1]
    named = [c for c in named if c != "License :: OSI Approved"]
    if named:
        if any(_COPYLEFT_TEXT.search(c.split("::", 1)[1]) for c in named):
            return Licence("copyleft", "; ".join(named))
        if any(_PERMISSIVE_TEXT.search(c) for c in named):
            return Licence("permissive", "; ".join(named))
    first_line = next((line for line in (licence or "").splitlines() if line.strip()), "")
    if first_line.strip().upper() not in ("", "UNKNOWN"):
        if _COPYLEFT_TEXT.search(first_line):
            return Licence("copyleft", first_line)
        if _PERMISSIVE_TEXT.search(first_line):
            return Licence("permissive", first_line)
    return Licence("unknown", first_line or "; ".join(classifiers) or "(nothing)")


def licence_of(distribution: metadata.Distribution) -> Licence:
    """The licence of an installed distribution."""
    meta = distribution.metadata

    def field(name: str) -> str | None:
        values = meta.get_all(name)
        return str(values[0]) if values else None

    return classify(field("License-Expression"), field("License"), meta.get_all("Classifier") or [])


def runtime_requirements() -> list[str]:
    """pgmagic's own runtime requirements: pyproject.toml in a checkout, else the installed ones."""
    if PYPROJECT.exists():
        return list(tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"])
    requires = metadata.distribution("pgmagic").requires or []
    return [r for r in requires if "extra ==" not in r]


def walk(requirements: list[str]) -> tuple[dict[str, Licence], set[str], set[str]]:
    """Every installed distribution these requirements pull in, with its licence.

    Returns
    -------
    licences : dict
        Canonical name to licence.
    direct : set of str
        The names required directly.
    missing : set of str
        Names required (markers allowing) but not installed.
    """
    licences: dict[str, Licence] = {}
    missing: set[str] = set()
    direct: set[str] = set()
    todo = [(Requirement(r), True) for r in requirements]
    while todo:
        requirement, is_direct = todo.pop()
        # Extras are left out: "extra" is empty when markers are evaluated.
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if is_direct:
            direct.add(name)
        if name in licences or name in missing:
            continue
        try:
            distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            missing.add(name)
            continue
        licences[name] = licence_of(distribution)
        todo.extend((Requirement(r), False) for r in distribution.requires or [])
    return licences, direct, missing


def test_runtime_dependencies_have_no_copyleft_licence() -> None:
    licences, direct, missing = walk(runtime_requirements())
    unknown = {name: lic.source for name, lic in licences.items() if lic.verdict == "unknown"}
    if unknown:
        print("\nlicence metadata not understood:", unknown)
    if missing:
        print("\nrequired but not installed (not checked):", sorted(missing))
    copyleft = {
        name: lic.source
        for name, lic in licences.items()
        if lic.verdict == "copyleft" and name not in REVIEWED
    }
    assert not copyleft, f"copyleft runtime dependencies: {copyleft}"
    assert not (set(unknown) & direct), f"direct dependencies of unknown licence: {unknown}"
    stale = set(REVIEWED) - {n for n, lic in licences.items() if lic.verdict == "copyleft"}
    assert not stale, f"REVIEWED lists packages no longer copyleft dependencies: {stale}"
    assert len(licences) > 20  # the walk did walk


def test_pglast_is_a_test_dependency_only() -> None:
    runtime = {canonicalize_name(Requirement(r).name) for r in runtime_requirements()}
    assert "pglast" not in runtime


def test_pglast_in_the_runtime_would_fail() -> None:
    pytest.importorskip("pglast")
    assert licence_of(metadata.distribution("pglast")) == Licence("copyleft", "GPL-3.0-or-later")
    licences, _, _ = walk([*runtime_requirements(), "pglast>=7"])
    assert licences["pglast"].verdict == "copyleft"
    assert "pglast" not in REVIEWED


@pytest.mark.parametrize(
    ("expression", "licence", "classifiers", "verdict"),
    [
        ("MIT", None, [], "permissive"),
        ("GPL-3.0-or-later", None, [], "copyleft"),
        ("LGPL-2.1-only", None, [], "copyleft"),
        ("AGPL-3.0", None, [], "copyleft"),
        ("MIT OR GPL-2.0-only", None, [], "permissive"),
        ("(GPL-2.0-only OR LGPL-3.0) AND MIT", None, [], "copyleft"),
        ("MPL-2.0 AND (Apache-2.0 OR MIT)", None, [], "copyleft"),
        ("GPL-2.0-only WITH Classpath-exception-2.0", None, [], "copyleft"),
        ("Apache-2.0 AND BSD-2-Clause AND ISC", None, [], "permissive"),
        ("EPL-2.0 OR Apache-2.0", None, [], "permissive"),
        ("MPL-2.0-no-copyleft-exception", None, [], "permissive"),
        # the expression wins over the rest
        ("MIT", "GPL", ["License :: OSI Approved :: GNU General Public License v3 (GPLv3)"], "permissive"),
        (None, None, ["License :: OSI Approved :: GNU General Public License v3 (GPLv3)"], "copyleft"),
        (None, None, ["License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)"], "copyleft"),
        (None, None, ["License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)"], "copyleft"),
        (None, None, ["License :: OSI Approved :: Eclipse Public License 2.0 (EPL-2.0)"], "copyleft"),
        (None, None, ["License :: OSI Approved :: European Union Public Licence 1.2 (EUPL 1.2)"], "copyleft"),
        (None, None, ["License :: OSI Approved :: Common Development and Distribution License 1.0 (CDDL-1.0)"], "copyleft"),
        (None, None, ["License :: OSI Approved :: BSD License"], "permissive"),
        (None, "UNKNOWN", ["License :: OSI Approved :: ISC License (ISCL)"], "permissive"),
        (None, "Apache 2.0", [], "permissive"),
        (None, "BSD 3-Clause License\n\nCopyright (c) ...\nor the GNU GPL, at your choice", [], "permissive"),
        (None, "GPLv3", [], "copyleft"),
        (None, "SSPL-1.0", [], "copyleft"),
        (None, "", ["License :: OSI Approved"], "unknown"),
        (None, "UNKNOWN", [], "unknown"),
        (None, "Proprietary-ish", [], "unknown"),
    ],
)  # fmt: skip
def test_classify(
    expression: str | None, licence: str | None, classifiers: list[str], verdict: str
) -> None:
    assert classify(expression, licence, classifiers).verdict == verdict
