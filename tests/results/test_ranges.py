"""Values Python and pandas cannot hold: one line naming the column, on every path."""

from __future__ import annotations

from typing import Any

import pytest

import pgmagic
from pgmagic.errors import ColumnTypeError
from tests.shell import fails, run

VALUES = [
    "'24:00:00'::time",
    "'0044-03-15 BC'::date",
    "'10000-01-01'::date",
    "'0001-01-01 BC'::timestamp",
    "'0044-03-15 BC'::timestamptz",
    "'12000-06-01 12:00'::timestamp",
    "'12000-06-01 12:00+00'::timestamptz",
]
# The binary COPY path (a plain query), and the Records path (--one, --scalar,
# max_rows, which fetches in chunks).
FORMS = [
    "%pg SELECT 1 AS n, {value} AS far",
    "%pg --one SELECT 1 AS n, {value} AS far",
    "%pg --scalar SELECT {value} AS far",
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("form", FORMS)
def test_a_value_out_of_pythons_range_names_its_column(ip: Any, form: str, value: str) -> None:
    error, _ = fails(ip, form.format(value=value))
    assert isinstance(error, ColumnTypeError), error
    message = str(error)
    assert "column 'far'" in message and "far::text" in message and "\n" not in message
    # The text cast shows it, and the session goes on.
    assert run(ip, f"%pg --scalar SELECT ({value})::text").strip()
    assert run(ip, "%pg --scalar SELECT 1") == 1


@pytest.mark.parametrize("form", FORMS)
def test_an_infinite_interval_names_its_column(ip: Any, form: str) -> None:
    if run(ip, "%pg --scalar SELECT current_setting('server_version_num')::int") < 170000:
        pytest.skip("infinite intervals came with PostgreSQL 17")
    for value in ("'infinity'::interval", "'-infinity'::interval"):
        error, _ = fails(ip, form.format(value=value))
        assert isinstance(error, ColumnTypeError), error
        assert "column 'far'" in str(error) and "infinite interval" in str(error)
    assert run(ip, "%pg --scalar SELECT 1") == 1


def test_an_interval_beyond_timedelta64_names_its_column(ip: Any) -> None:
    # A Python timedelta holds it (--one, --scalar); a DataFrame column cannot.
    error, _ = fails(ip, "%pg SELECT 1 AS n, '300000 years'::interval AS far")
    assert isinstance(error, ColumnTypeError) and "column 'far'" in str(error)
    assert run(ip, "%pg --scalar SELECT '300000 years'::interval").days == 300000 * 365


def test_max_rows_path_and_the_api_say_the_same(ip: Any) -> None:
    run(ip, "%config PgMagics.max_rows = 1000")
    error, _ = fails(ip, "%pg SELECT '0044-03-15 BC'::date AS far")
    assert isinstance(error, ColumnTypeError)
    run(ip, "%config PgMagics.max_rows = 0")
    import asyncio

    with pytest.raises(ColumnTypeError, match="column 'far'"):
        asyncio.run(pgmagic.fetch("SELECT '0044-03-15 BC'::date AS far"))
    with pytest.raises(ColumnTypeError, match="column 'far'"):
        asyncio.run(pgmagic.fetchval("SELECT '10000-01-01'::date AS far"))


def test_the_edges_that_python_holds_are_shown(ip: Any) -> None:
    frame = run(ip, "%pg SELECT '0001-01-01'::date AS lo, '9999-12-31'::date AS hi")
    assert str(frame["lo"][0].date()) == "0001-01-01"
    assert str(frame["hi"][0].date()) == "9999-12-31"


@pytest.mark.parametrize("value", ["'0044-03-15 BC'::date", "'24:00:00'::time"])
def test_streams_and_exports_say_it_in_one_line_too(ip: Any, value: str, tmp_path: Any) -> None:
    run(ip, f"%pg --stream -o far_stream SELECT {value} AS far")
    error, _ = fails(ip, "next(iter(far_stream))")
    assert isinstance(error, ColumnTypeError) and "column 'far'" in str(error)
    for suffix in ("parquet", "jsonl"):
        target = tmp_path / f"far.{suffix}"
        error, _ = fails(ip, f"%pg --to {target} SELECT {value} AS far")
        assert "cannot (" in str(error) and "::text" in str(error), error
        assert str(error).count("::text") == 1 and not target.exists()
    assert run(ip, "%pg --scalar SELECT 1") == 1
