"""Values in result tables as psql shows them: plain numeric digits, padded years, aligned CJK."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from pgmagic.errors import display_width
from pgmagic.frontend.tables import ResultInfo, text
from tests.shell import run


@pytest.mark.parametrize(
    ("sql", "shown"),
    [
        ("1e30::numeric", "1000000000000000000000000000000"),
        ("1e-10::numeric", "0.0000000001"),
        ("123.4500::numeric", "123.4500"),
        ("'NaN'::numeric", "NaN"),
        ("-0.5::numeric", "-0.5"),
        ("'0001-01-01'::date", "0001-01-01"),
        ("'0099-12-31'::date", "0099-12-31"),
        ("'0001-01-01 00:00:01'::timestamp", "0001-01-01 00:00:01"),
        ("B'101'", "101"),
        ("'101'::varbit", "101"),
    ],
)
def test_values_read_as_psql_prints_them(ip: Any, sql: str, shown: str) -> None:
    frame = run(ip, f"%pg SELECT {sql} AS v")
    table = text(frame, _info(frame))
    assert table.splitlines()[2].strip() == shown
    assert run(ip, f"%pg --scalar SELECT ({sql})::text") == shown


def _info(frame: Any) -> ResultInfo:
    return ResultInfo(0.001, 20)


@pytest.mark.parametrize(
    ("text", "width"),
    [("abc", 3), ("日本語", 6), ("😀x", 3), ("é", 1), ("e\u0301", 1), ("", 0)],
)
def test_display_width(text: str, width: int) -> None:
    assert display_width(text) == width


def test_cjk_and_emoji_columns_line_up(ip: Any) -> None:
    frame = run(
        ip,
        "%pg SELECT * FROM (VALUES ('日本語', 1), ('ab', 22), ('😀x', 3), ('e\u0301', 4)) v(名前, n)",
    )
    lines = text(frame, _info(frame)).splitlines()[:6]
    # Every line of the table has its bar at the same terminal column.
    bars = {display_width(line[: line.index("|")]) for line in lines if "|" in line}
    assert len(bars) == 1, lines


def test_a_record_reads_as_a_one_row_table(ip: Any) -> None:
    record = run(ip, "%pg --one SELECT 1 AS a, 'x' AS b, 2 AS a, NULL AS c")
    assert record["b"] == "x"  # the value stays an asyncpg Record
    data, _ = ip.display_formatter.format(record)
    lines = data["text/plain"].splitlines()
    assert [c.strip() for c in lines[0].split("|")] == ["a", "b", "a", "c"]
    assert [c.strip() for c in lines[2].split("|")] == ["1", "x", "2", "NULL"]
    assert lines[-1] == "1 row × 4 columns"
    assert "<table" in data["text/html"] and "Record" not in data["text/html"]


@pytest.mark.parametrize(
    ("cell", "printed"),
    [
        ("%pg --one SELECT 1 WHERE false", "(0 rows)\n"),
        ("%pg --scalar SELECT 1 WHERE false", "(0 rows)\n"),
        ("%pg --scalar SELECT NULL", ""),
        ("%pg -q --one SELECT 1 WHERE false", ""),
    ],
)
def test_no_row_says_so(ip: Any, capsys: Any, cell: str, printed: str) -> None:
    capsys.readouterr()
    assert run(ip, cell) is None
    assert capsys.readouterr().out == printed


def test_a_plan_shows_whole_lines(ip: Any) -> None:
    long_name = "a_rather_long_literal_" * 8
    frame = run(
        ip, f"%pg EXPLAIN SELECT * FROM generate_series(1, 3) g WHERE g::text <> '{long_name}'"
    )
    assert any(long_name in line for line in text(frame, _info(frame)).splitlines())
    data, _ = ip.display_formatter.format(frame)
    assert long_name in data["text/html"]
    # Several columns keep their cells short.
    wide = run(ip, "%pg SELECT repeat('x', 300) AS a, 1 AS b")
    assert "x" * 300 not in text(wide, _info(wide)) and "…" in text(wide, _info(wide))


def test_null_stays_distinct_from_the_text_null_without_styles(ip: Any) -> None:
    frame = run(ip, "%pg SELECT NULL::text AS a, 'NULL' AS b")
    data, _ = ip.display_formatter.format(frame)
    without_style = data["text/html"].split("</style>", 1)[1]
    assert '<td class="null" style="text-align:left"><em>NULL</em></td>' in without_style
    assert '<td style="text-align:left">NULL</td>' in without_style


@pytest.mark.parametrize(
    ("sql", "out"),
    [
        ("431.43::numeric", "431.43"),
        ("1e30::numeric", "1000000000000000000000000000000"),
        ("'2026-01-02'::date", "2026-01-02"),
        ("'2026-01-02 03:04:05'::timestamp", "2026-01-02 03:04:05"),
        ("'12:30'::time", "12:30:00"),
        ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ("'192.168.0.1'::inet", "192.168.0.1"),
        ("'10.0.0.0/8'::cidr", "10.0.0.0/8"),
        ("int4range(1, 5)", "[1,5)"),
        ("B'101'", "101"),
        ("42", "42"),
        ("'text'", "'text'"),
    ],
)
def test_a_scalar_reads_as_psql_prints_it(ip: Any, capsys: Any, sql: str, out: str) -> None:
    capsys.readouterr()
    ip.run_cell(f"%pg --scalar SELECT {sql}", store_history=True)
    printed = capsys.readouterr().out
    assert printed.split(": ", 1)[1].strip() == out, printed


def test_a_scalar_keeps_its_python_repr_elsewhere(ip: Any, capsys: Any) -> None:
    ip.run_cell("n = %pg --scalar SELECT 431.43::numeric", store_history=True)
    capsys.readouterr()
    ip.run_cell("n", store_history=True)
    assert "Decimal('431.43')" in capsys.readouterr().out
    ip.run_cell("import decimal; decimal.Decimal('1.5')", store_history=True)
    assert "Decimal('1.5')" in capsys.readouterr().out


_INTERVALS = [
    "1 year 2 mons 3 days 04:05:06.789",
    "1 mon",
    "30 days",
    "720:00:00",
    "25:00:00",
    "-02:00:00",
    "-1 days +02:00:00",
    "1 day -00:00:01",
    "-1 year -2 mons +3 days -04:05:06",
    "00:00:00.000001",
    "00:00:00",
    "-5000 years",
    "100 years 00:00:00.5",
    "3 days",
    "-1 mons -3 days",
]


@pytest.mark.parametrize("style", ["postgres", "iso_8601"])
def test_intervals_read_as_the_server_writes_them(ip: Any, style: str) -> None:
    run(ip, f"%pg SET intervalstyle = {style}")
    try:
        values = ", ".join(f"('{v}'::interval)" for v in _INTERVALS)
        frame = run(ip, f"%pg SELECT v, v::text AS server FROM (VALUES {values}) t(v)")
        lines = text(frame, ResultInfo(0.001, None)).splitlines()[2:-1]
        shown = [[c.strip() for c in line.split("|")] for line in lines]
        assert [row[0] for row in shown] == [row[1] for row in shown]
        assert str(frame.dtypes["v"]) == "timedelta64[us]"  # the value stays a duration
    finally:
        run(ip, "%pg RESET intervalstyle")


def test_an_interval_changed_in_the_frame_shows_the_new_value(ip: Any) -> None:
    frame = run(ip, "%pg SELECT '1 mon'::interval AS v, 1 AS n")
    assert text(frame, _info(frame)).splitlines()[2].split("|")[0].strip() == "1 mon"
    frame.loc[0, "v"] = pd.Timedelta(hours=2)
    assert text(frame, _info(frame)).splitlines()[2].split("|")[0].strip() == "02:00:00"


@pytest.mark.parametrize(
    ("sql", "shown"),
    [
        ("'-2 hours'::interval", "-02:00:00"),
        ("'1 day 2 hours'::interval", "1 day 02:00:00"),
        ("'0'::interval", "00:00:00"),
    ],
)
def test_a_record_or_scalar_interval_reads_as_a_duration(ip: Any, sql: str, shown: str) -> None:
    record = run(ip, f"%pg --one SELECT {sql} AS v")
    data, _ = ip.display_formatter.format(record)
    assert data["text/plain"].splitlines()[2].strip() == shown


def test_json_null_is_not_sql_null(ip: Any) -> None:
    frame = run(
        ip,
        "%pg SELECT * FROM (VALUES ('null'::jsonb, ' null '::json), (NULL, NULL),"
        " ('{\"a\": null}', '[null]')) t(b, j)",
    )
    assert frame["b"].tolist() == [None, None, {"a": None}]
    rows = [
        [c.strip() for c in line.split("|")] for line in text(frame, _info(frame)).splitlines()[2:5]
    ]
    assert rows == [["null", "null"], ["NULL", "NULL"], ['{"a": null}', "[null]"]]
    data, _ = ip.display_formatter.format(frame)
    assert '<td style="text-align:left">null</td>' in data["text/html"]
    assert '<td class="null" style="text-align:left"><em>NULL</em></td>' in data["text/html"]
