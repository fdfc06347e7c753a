"""--arrow, --polars, --pandas and PgMagics.frame, through a real IPython shell."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from pgmagic.errors import OptionError
from pgmagic.results import decode
from tests.shell import fails, run

polars = pytest.importorskip("polars")
pytestmark = pytest.mark.skipif(
    not decode.is_available(), reason="the _pgcopy extension is not built"
)

U = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"

# SQL expression -> (Arrow type, the value, polars dtype)
TYPES: list[tuple[str, Any, Any, Any]] = [
    ("7::int2", pa.int16(), 7, polars.Int16),
    ("NULL::int4", pa.int32(), None, polars.Int32),
    ("9007199254740993::int8", pa.int64(), 9007199254740993, polars.Int64),
    ("0.1::float8", pa.float64(), 0.1, polars.Float64),
    ("1.50::numeric", pa.decimal128(38, 2), Decimal("1.50"), polars.Decimal(38, 2)),
    ("'ü'::varchar(3)", pa.string(), "ü", polars.String),
    ("true", pa.bool_(), True, polars.Boolean),
    ("date '2024-01-02'", pa.date32(), dt.date(2024, 1, 2), polars.Date),
    (
        "timestamp '2024-01-02 03:04:05.000006'",
        pa.timestamp("us"),
        dt.datetime(2024, 1, 2, 3, 4, 5, 6),
        polars.Datetime("us"),
    ),
    (
        "interval '1 day 02:00'",
        pa.duration("us"),
        dt.timedelta(days=1, hours=2),
        polars.Duration("us"),
    ),
    ("time '12:30'", pa.time64("us"), dt.time(12, 30), polars.Time),
    ("'\\x01ff'::bytea", pa.binary(), b"\x01\xff", polars.Binary),
    ("'{\"a\": [1]}'::jsonb", pa.string(), '{"a": [1]}', polars.String),
    ("ARRAY[1, NULL]", pa.list_(pa.int32()), [1, None], polars.List(polars.Int32)),
    (f"'{U}'::uuid", pa.uuid(), uuid.UUID(U), polars.Binary),
]


@pytest.mark.parametrize(("expression", "arrow_type", "value", "polars_type"), TYPES)
def test_each_type_on_the_copy_and_the_record_path(
    ip: Any, expression: str, arrow_type: Any, value: Any, polars_type: Any
) -> None:
    cell = f"%%pg --arrow\nSELECT {expression} AS v"
    # The first run goes through COPY; a result known to be short, through Records.
    for _ in ("copy", "records"):
        table = run(ip, cell)
        assert isinstance(table, pa.Table)
        assert table.schema.field("v").type == arrow_type
        assert table.column("v").to_pylist() == [value]
    frame = run(ip, f"%%pg --polars\nSELECT {expression} AS v")
    assert isinstance(frame, polars.DataFrame)
    assert frame.schema["v"] == polars_type
    expected = value.bytes if isinstance(value, uuid.UUID) else value
    assert frame["v"].to_list() == [expected]


def test_the_values_equal_the_pandas_frames(ip: Any) -> None:
    sql = (
        "SELECT g AS i, g * 0.5 AS f, 'row ' || g AS t, g % 2 = 0 AS b, "
        "CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS maybe "
        "FROM generate_series(1, 2500) g"
    )
    frame = run(ip, f"%%pg --pandas\n{sql}")
    table = run(ip, f"%%pg --arrow\n{sql}")
    assert table.num_rows == len(frame) == 2500
    for name in frame.columns:
        pandas_values = [None if pd.isna(v) else v for v in frame[name].tolist()]
        assert table.column(name).to_pylist() == pandas_values, name


def test_zero_rows_keep_the_schema(ip: Any) -> None:
    sql = "SELECT 1::int4 AS a, 'x'::text AS b, 1.5::numeric AS c, now() AS d WHERE false"
    table = run(ip, f"%%pg --arrow\n{sql}")
    assert table.num_rows == 0
    assert table.schema.types[:3] == [pa.int32(), pa.string(), pa.decimal128(38, 0)]
    assert pa.types.is_timestamp(table.schema.types[3])
    frame = run(ip, f"%%pg --polars\n{sql}")
    assert frame.height == 0 and frame.columns == ["a", "b", "c", "d"]


def test_returning_takes_the_record_path_with_the_same_types(ip: Any) -> None:
    run(ip, "%pg -q CREATE TEMP TABLE kinds_t (id int4, n numeric(6,2), tags text[])")
    table = run(
        ip,
        "%%pg --arrow\nINSERT INTO kinds_t VALUES (1, 2.5, '{a,b}'), (2, NULL, NULL) RETURNING *",
    )
    assert table.schema.types == [pa.int32(), pa.decimal128(38, 2), pa.list_(pa.string())]
    assert table.to_pylist() == [
        {"id": 1, "n": Decimal("2.50"), "tags": ["a", "b"]},
        {"id": 2, "n": None, "tags": None},
    ]
    copied = run(ip, "%%pg --arrow\nSELECT * FROM kinds_t ORDER BY id")
    assert copied.schema == table.schema and copied.to_pylist() == table.to_pylist()


def test_a_cell_of_several_statements(ip: Any, capsys: Any) -> None:
    capsys.readouterr()
    value = run(ip, "%%pg --polars\nSELECT 1 AS a;\nSELECT 2 AS b")
    assert isinstance(value, polars.DataFrame) and value.to_dicts() == [{"b": 2}]
    shown = capsys.readouterr().out
    assert " a\n---\n 1\n1 row × 1 column" in shown  # the earlier result, as a table
    value = run(ip, "%%pg --arrow\nBEGIN;\nSELECT 3 AS c;\nCOMMIT")
    assert value.to_pylist() == [{"c": 3}]
    # its Out points up to the table the cell showed, as for pandas
    assert "↑ the table above: 1 row × 1 column" in capsys.readouterr().out


def test_o_stores_the_value(ip: Any) -> None:
    value = run(ip, "%%pg --polars -o pf\nSELECT 1 AS x")
    assert ip.user_ns["pf"] is value
    run(ip, "%pg --arrow -o at SELECT 2 AS y")
    assert isinstance(ip.user_ns["at"], pa.Table)


def test_the_config_trait_and_the_per_cell_override(ip: Any) -> None:
    run(ip, "%config PgMagics.frame = 'arrow'")
    assert isinstance(run(ip, "%pg SELECT 1 AS x"), pa.Table)
    assert isinstance(run(ip, "%pg --pandas SELECT 1 AS x"), pd.DataFrame)
    assert isinstance(run(ip, "%pg --polars SELECT 1 AS x"), polars.DataFrame)
    # a record, a value: unaffected
    assert run(ip, "%pg --one SELECT 1 AS x")["x"] == 1
    assert run(ip, "%pg --scalar SELECT 1") == 1
    run(ip, "%config PgMagics.frame = 'polars'")
    assert isinstance(run(ip, "%pg SELECT 1 AS x"), polars.DataFrame)


@pytest.mark.parametrize("value", ["'spark'", "'Arrow'", "None", "3"])
def test_a_bad_frame_is_refused_in_one_line(ip: Any, caplog: Any, value: str) -> None:
    run(ip, f"%config PgMagics.frame = {value}")
    assert "PgMagics.frame" in caplog.text
    magics = ip.magics_manager.registry["PgMagics"]
    assert magics.frame == "pandas"
    assert isinstance(run(ip, "%pg SELECT 1 AS x"), pd.DataFrame)
    ip.run_line_magic("reload_ext", "pgmagic")  # the refused value must not break loading
    assert isinstance(run(ip, "%pg SELECT 1 AS x"), pd.DataFrame)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--arrow --polars SELECT 1", "--arrow and --polars cannot be combined"),
        ("--pandas --arrow SELECT 1", "--pandas and --arrow cannot be combined"),
        ("--arrow --one SELECT 1", "does not combine with --one"),
        ("--polars --scalar SELECT 1", "does not combine with --one, --scalar"),
        ("--arrow --to x.csv SELECT 1", "--to"),
        ("--arrow --watch 5 SELECT 1", "--watch"),
        ("--arrow --explain SELECT 1", "--explain"),
    ],
)
def test_combinations_that_make_no_sense(ip: Any, line: str, message: str) -> None:
    error, _ = fails(ip, f"%pg {line}")
    assert isinstance(error, OptionError) and message in str(error)
    assert "\n" not in str(error)


def test_without_polars_one_line_says_how_to_install_it(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(ip, "%pg -q CREATE TEMP TABLE kinds_untouched (n int)")
    monkeypatch.setitem(sys.modules, "polars", None)  # what an absent package looks like
    for cell in (
        "%%pg --polars\nINSERT INTO kinds_untouched VALUES (1) RETURNING n",
        "%%pg --stream --polars\nSELECT 1",
    ):
        error, _ = fails(ip, cell)
        assert isinstance(error, OptionError)
        assert "pip install 'pgmagic[polars]'" in str(error) and "\n" not in str(error)
    run(ip, "%config PgMagics.frame = 'polars'")
    error, _ = fails(ip, "%pg SELECT 1")
    assert "pip install 'pgmagic[polars]'" in str(error)
    monkeypatch.undo()
    # refused before any I/O: the INSERT never ran
    assert run(ip, "%pg --scalar SELECT count(*) FROM kinds_untouched") == 0


@pytest.mark.parametrize("kind", ["arrow", "polars"])
def test_display_is_the_pandas_result_table(ip: Any, kind: str) -> None:
    sql = "SELECT g AS n, 'r' || g AS t FROM generate_series(1, 30) g"
    value = run(ip, f"%%pg --{kind}\n{sql}")
    pandas_value = run(ip, f"%%pg --pandas\n{sql}")
    formatted, _ = ip.display_formatter.format(value)
    reference, _ = ip.display_formatter.format(pandas_value)
    holder = "table" if kind == "arrow" else "DataFrame"
    text = formatted["text/plain"]
    assert "30 rows × 2 columns" in text and f"(first 20 shown; the {holder} holds all)" in text
    # the same rows, drawn the same way, under the same headers and types
    assert text.splitlines()[:22] == reference["text/plain"].splitlines()[:22]
    assert "<small>int4</small>" in formatted["text/html"]
    assert formatted["text/html"].count("<tr>") == reference["text/html"].count("<tr>") == 21
    # the value itself stays as it is
    assert type(value) is (pa.Table if kind == "arrow" else polars.DataFrame)
    derived = value.slice(0, 2) if kind == "arrow" else value.head(2)
    assert "holds all" not in ip.display_formatter.format(derived)[0]["text/plain"]


@pytest.mark.parametrize("kind", ["arrow", "polars"])
def test_streamed_chunks_of_one_schema(ip: Any, kind: str) -> None:
    stream = run(
        ip,
        f"%%pg --stream --chunksize 2 --{kind}\n"
        "SELECT g AS i, (g / 4.0)::numeric(8, 3) AS n FROM generate_series(1, 5) g",
    )
    chunks = list(stream)
    assert [len(c) for c in chunks] == [2, 2, 1]
    tables = [c if kind == "arrow" else c.to_arrow() for c in chunks]
    assert all(t.schema.types[1] == pa.decimal128(38, 3) for t in tables)
    values = [v for t in tables for v in t.column("n").to_pylist()]
    assert values == [Decimal(g) / 4 for g in range(1, 6)]


def test_a_cell_with_psql_commands(ip: Any, capsys: Any) -> None:
    capsys.readouterr()
    value = run(ip, "%%pg --arrow\nSELECT 1 AS a;\n\\dn public\nSELECT 2 AS b")
    assert isinstance(value, pa.Table) and value.to_pylist() == [{"b": 2}]
    shown = capsys.readouterr().out
    assert " a\n---\n 1\n1 row × 1 column" in shown and "public" in shown


def test_numeric_as_float_and_max_rows_apply(ip: Any) -> None:
    run(ip, "%config PgMagics.numeric_as_float = True")
    table = run(ip, "%pg --arrow SELECT 1.5::numeric AS n, ARRAY[2.5]::numeric[] AS a")
    # as on the Parquet export: numeric columns become double, numeric arrays stay decimal
    assert table.schema.types == [pa.float64(), pa.list_(pa.decimal128(38, 1))]
    run(ip, "%config PgMagics.max_rows = 10")  # rows then come through a cursor, as Records
    table = run(ip, "%pg --arrow SELECT g AS i, g * 0.5 AS n FROM generate_series(1, 10) g")
    assert table.schema.types == [pa.int32(), pa.float64()] and table.num_rows == 10
    error, _ = fails(ip, "%pg --polars SELECT g FROM generate_series(1, 11) g")
    assert "more than 10 rows" in str(error)
