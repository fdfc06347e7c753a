"""Connections declared in pgmagic.toml or pyproject.toml, found from the working folder upward."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgmagic.errors import ConnectError
from pgmagic.runtime.declared import find

PYPROJECT = '[project]\nname = "x"\n\n[tool.pgmagic.connections]\nprod = "service=prod"\n'
PGMAGIC = '[connections]\ndev = "postgresql://me@localhost/dev"\nlocal = "embedded"\n'


# (files by folder under tmp: "" is tmp itself, "a/b" the folder searched from; what is found)
@pytest.mark.parametrize(
    ("files", "found"),
    [
        ({"a/b/pyproject.toml": PYPROJECT}, ("a/b/pyproject.toml", ["prod"])),
        ({"a/b/pgmagic.toml": PGMAGIC}, ("a/b/pgmagic.toml", ["dev", "local"])),
        ({"pgmagic.toml": PGMAGIC}, ("pgmagic.toml", ["dev", "local"])),
        # In one folder pgmagic.toml comes first; a nearer folder beats a farther one.
        (
            {"a/b/pyproject.toml": PYPROJECT, "a/b/pgmagic.toml": PGMAGIC},
            ("a/b/pgmagic.toml", ["dev", "local"]),
        ),
        ({"a/pyproject.toml": PYPROJECT, "pgmagic.toml": PGMAGIC}, ("a/pyproject.toml", ["prod"])),
        # A pyproject.toml that declares nothing is passed over.
        (
            {"a/b/pyproject.toml": '[project]\nname = "x"\n', "a/pgmagic.toml": PGMAGIC},
            ("a/pgmagic.toml", ["dev", "local"]),
        ),
        ({"a/b/pyproject.toml": "[tool.pgmagic]\nx = 1\n"}, None),
    ],
)
def test_the_nearest_declaration_wins(
    tmp_path: Path, files: dict[str, str], found: tuple[str, list[str]] | None
) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    declared = find(tmp_path / "a" / "b")
    if found is None:
        assert declared is None or not str(declared.path).startswith(str(tmp_path))
    else:
        assert declared is not None
        assert (declared.path, sorted(declared.dsns)) == (tmp_path / found[0], found[1])


def test_targets_are_described_like_connections(tmp_path: Path) -> None:
    (tmp_path / "pgmagic.toml").write_text(PGMAGIC + 'kw = "host=h dbname=d"\n')
    declared = find(tmp_path)
    assert declared is not None
    assert declared.describe("dev") == "postgresql://me@localhost/dev"
    assert declared.describe("local") == "embedded PostgreSQL"
    assert declared.describe("kw") == "postgresql://?host=h&database=d"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[connections]\nprod = "postgresql://me:hunter2@h/db"\n', "holds a password"),
        ("[connections]\nprod = \"host=h password='hunter2'\"\n", "holds a password"),
        ('[connections]\nembedded = "service=x"\n', "cannot name a connection 'embedded'"),
        ('[connections]\ndefault = "service=x"\n', "cannot name a connection 'default'"),
        ('[connections]\n"2x" = "service=x"\n', "cannot name a connection '2x'"),
        ("[connections]\nprod = 5\n", "must be a string"),
        ('[connections]\nprod = "mysql://h/db"\n', "unsupported URL scheme"),
        ('connections = "prod"\n', "must be a table"),
        ('[connections]\nprod = "hunter2\n', "cannot read "),
    ],
)
def test_mistakes_in_the_file_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pgmagic.toml").write_text(text)
    with pytest.raises(ConnectError) as caught:
        find(tmp_path)
    shown = str(caught.value)
    assert message in shown and str(tmp_path / "pgmagic.toml") in shown
    assert "hunter2" not in shown and "\n" not in shown
