"""--to into places that cannot take a file: one line naming the file the user gave."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pgmagic.errors import OptionError
from tests.shell import fails, run


@pytest.fixture
def places(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    yield tmp_path
    locked.chmod(0o700)


CASES = [
    ("folder", "is a folder: name a file in it"),
    ("folder/", "is a folder: name a file in it"),
    ("afile/x.csv", "afile' is a file, not a folder"),
    ("afile/deeper/x.parquet", "is a file, not a folder"),
    ("missing/x.csv", "does not exist"),
    ("x.unknown", "cannot tell the format"),
]


@pytest.mark.parametrize(("name", "message"), CASES)
def test_bad_targets_are_one_line(ip: Any, places: Path, name: str, message: str) -> None:
    target = f"{places}/{name}"
    error, _ = fails(ip, f'%pg --to "{target}" SELECT 1 AS one')
    assert isinstance(error, OptionError), error
    assert message in str(error) and "\n" not in str(error)
    assert ".partial" not in str(error)
    assert not [p for p in places.rglob("*") if p.name.endswith(".partial")]
    assert run(ip, "%pg --scalar SELECT 1") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_an_unwritable_folder_is_one_line(ip: Any, places: Path) -> None:
    error, _ = fails(ip, f"%pg --to {places}/locked/x.csv SELECT 1")
    assert "cannot write" in str(error) and "Permission denied" in str(error)
    assert ".partial" not in str(error)


def test_an_unwritable_device_is_one_line(ip: Any) -> None:
    # Writable by nobody, root included: /proc takes no new files.
    error, _ = fails(ip, "%pg --to /proc/pgmagic-x.csv SELECT 1")
    assert isinstance(error, OptionError)
    assert "cannot write '/proc/pgmagic-x.csv'" in str(error) and ".partial" not in str(error)


def test_a_void_column_exports_as_nulls(ip: Any, tmp_path: Path) -> None:
    target = tmp_path / "void.parquet"
    run(ip, f"%pg -q --to {target} SELECT NULL::void AS v, 1 AS n")
    table = pq.read_table(target)
    assert table.column("v").null_count == 1 and table.column("n").to_pylist() == [1]
