"""%pg load of sources with nothing in them: one line, or an empty table where that is meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgmagic.errors import OptionError
from tests.shell import fails, run


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "cannot read empty.csv as CSV: Empty CSV file"),
    ],
)
def test_an_empty_csv_is_one_line(ip: Any, tmp_path: Path, content: str, message: str) -> None:
    source = tmp_path / "empty.csv"
    source.write_text(content)
    error, _ = fails(ip, f"%pg load {source} INTO empty_load --create")
    assert isinstance(error, OptionError) and message in str(error)


def test_a_header_only_csv_creates_an_empty_table(ip: Any, tmp_path: Path) -> None:
    source = tmp_path / "header.csv"
    source.write_text("a,b\n")
    run(ip, f"%pg load {source} INTO header_only --create -q")
    assert run(ip, "%pg --scalar SELECT count(*) FROM header_only") == 0
    columns = run(
        ip,
        "%pg SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'header_only' ORDER BY ordinal_position",
    )
    assert columns["column_name"].tolist() == ["a", "b"]
    run(ip, "%pg -q DROP TABLE header_only")


def test_a_frame_without_columns_is_refused(ip: Any) -> None:
    import pandas as pd

    ip.user_ns["no_columns"] = pd.DataFrame(index=[1, 2])
    error, _ = fails(ip, "%pg load no_columns INTO no_columns --create")
    assert str(error) == "nothing to load: the data has no columns"
    assert run(ip, "%pg --scalar SELECT to_regclass('no_columns') IS NULL") is True
