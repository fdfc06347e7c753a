"""One source for type OIDs and C kinds: the generator, the server and the C modules agree.

``tools/update_oids.py`` writes ``pgmagic/_oids.py`` and ``pgmagic/_c/oids.h``
from its lists.  These tests check that the files on disk are what it
writes, that every OID is the server's, and, by behaviour, that the
compiled C modules use the numbers of the Python enums (a stale build or a
hand edit of the header would not).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import io
import shutil
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

import asyncpg
import pandas as pd
import pytest
from asyncpg.pgproto import pgproto

from pgmagic import _oids as oids
from pgmagic._oids import CopyKind, CopyLayout, EncodeKind
from pgmagic.bulk import arrow, encode
from pgmagic.results import decode

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "update_oids.py"
GENERATED = (Path("pgmagic/_oids.py"), Path("pgmagic/_c/oids.h"))
T = TypeVar("T")


def generator() -> ModuleType:
    """``tools/update_oids.py`` as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("update_oids", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["update_oids"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["update_oids"]
    return module


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def with_conn(dsn: str, body: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def go() -> T:
        conn = await asyncpg.connect(dsn)
        try:
            return await body(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def type_oids() -> dict[str, int]:
    """Every type OID ``pgmagic._oids`` defines, by name."""
    return {
        name: value
        for name, value in vars(oids).items()
        if name.isupper() and type(value) is int and name != "FIRST_USER_OID"
    }


def typname(name: str) -> str:
    """``INT4`` -> ``int4``; ``INT4_ARRAY`` -> ``_int4`` (the array type's pg_type name)."""
    base = name.removesuffix("_ARRAY").lower()
    return f"_{base}" if name.endswith("_ARRAY") else base


# ------------------------------------------------------------ the generator
def test_the_generated_files_are_up_to_date() -> None:
    result = run_script("--check")
    assert result.returncode == 0, result.stderr


def copy_of_the_generated_files(root: Path) -> None:
    for path in GENERATED:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, root / path)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (GENERATED[0], "INT4: Final = 23", "INT4: Final = 24"),
        (GENERATED[0], "    JSONB = 20\n", "    JSONB = 21\n"),
        (GENERATED[1], "#define PGM_OID_UUID 2950", "#define PGM_OID_UUID 2951"),
        (GENERATED[1], "EK_ARRAY = 23,", "EK_ARRAY = 25,"),
    ],
)
def test_check_mode_finds_a_hand_edit(tmp_path: Path, path: Path, old: str, new: str) -> None:
    copy_of_the_generated_files(tmp_path)
    assert run_script("--check", "--root", str(tmp_path)).returncode == 0
    text = (tmp_path / path).read_text()
    assert old in text
    (tmp_path / path).write_text(text.replace(old, new))
    result = run_script("--check", "--root", str(tmp_path))
    assert result.returncode == 1
    assert new in result.stderr  # the diff shows the edit


def test_without_check_the_files_are_rewritten(tmp_path: Path) -> None:
    (tmp_path / "pgmagic" / "_c").mkdir(parents=True)
    assert run_script("--check", "--root", str(tmp_path)).returncode == 1  # missing
    assert run_script("--root", str(tmp_path)).returncode == 0
    for path in GENERATED:
        assert (tmp_path / path).read_text() == (ROOT / path).read_text()


def test_the_generated_python_is_what_pgmagic_imports() -> None:
    script = generator()
    assert (ROOT / GENERATED[0]).read_text() == script.python_source()
    assert Path(oids.__file__).resolve() == ROOT / GENERATED[0]
    assert {name: oid for name, _, oid in script.oid_names()} == type_oids()


def test_a_server_that_disagrees_is_reported() -> None:
    script = generator()
    agreeing = [(t.typname, t.oid, t.array_oid) for t in script.TYPES]
    assert script.disagreements(agreeing) == []
    changed = [(n, oid + 1 if n == "uuid" else oid, a) for n, oid, a in agreeing]
    assert script.disagreements(changed) == [
        "uuid: the server has oid 2951, typarray 2951; the list has 2950, 2951"
    ]
    assert script.disagreements(agreeing[1:]) == ["bool: not in pg_type"]


# ------------------------------------------------------------ the server
def test_the_checked_in_list_matches_the_server(dsn: str) -> None:
    result = run_script("--check", "--dsn", dsn)
    assert result.returncode == 0, result.stderr


def test_every_oid_is_the_servers(dsn: str) -> None:
    names = type_oids()
    assert len(names) > 40  # scalar and array types, not an empty module

    async def body(conn: asyncpg.Connection) -> dict[str, int]:
        rows = await conn.fetch(
            "SELECT typname::text, oid::int8 FROM pg_catalog.pg_type"
            " WHERE typnamespace = 'pg_catalog'::regnamespace AND typname = ANY($1::text[])",
            [typname(n) for n in names],
        )
        return {r[0]: r[1] for r in rows}

    server = with_conn(dsn, body)
    assert {n: server.get(typname(n)) for n in names} == names


def test_first_user_oid_divides_built_in_from_user_types(dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> tuple[int, int]:
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE oid_probe (a int)")
            created = await conn.fetchval("SELECT 'oid_probe'::regtype::oid::int8")
            built_in = await conn.fetchval(
                "SELECT max(oid::int8) FROM pg_catalog.pg_type"
                " WHERE typnamespace = 'pg_catalog'::regnamespace"
            )
            await conn.execute("DROP TABLE oid_probe")
        return built_in, created

    built_in, created = with_conn(dsn, body)
    assert built_in < oids.FIRST_USER_OID <= created


# ------------------------------------------------------------ the C modules
def test_kind_numbers_are_small_and_distinct() -> None:
    # kinds travel to C as single bytes; 0 means "no element kind"
    for enumeration in (CopyKind, EncodeKind):
        numbers = [k.value for k in enumeration]
        assert len(set(numbers)) == len(numbers) and min(numbers) > 0 and max(numbers) < 256


class CopySample(NamedTuple):
    """A value of a type planned with one parser kind, and what the parser makes of it."""

    expr: str  # SQL
    value: Any  # the DataFrame cell
    dtype: str  # the DataFrame column's dtype
    json: str  # the value in JSON lines


# Same-width kinds (int4 and float4, timestamp and timestamptz) fill the
# pandas buffers alike; the NULL row and the JSON lines the parser writes
# itself tell them apart.
COPY_SAMPLES: dict[CopyKind, CopySample] = {
    CopyKind.BOOL: CopySample("true", True, "boolean", "true"),
    CopyKind.INT2: CopySample("(-7)::int2", -7, "Int16", "-7"),
    CopyKind.INT4: CopySample("(-7)::int4", -7, "Int32", "-7"),
    CopyKind.INT8: CopySample("1099511627776::int8", 2**40, "Int64", "1099511627776"),
    CopyKind.OID: CopySample("4294967295::oid", 2**32 - 1, "Int64", "4294967295"),
    CopyKind.FLOAT4: CopySample("1.5::float4", 1.5, "float32", "1.5"),
    CopyKind.FLOAT8: CopySample("(-2.25)::float8", -2.25, "float64", "-2.25"),
    CopyKind.TEXT: CopySample("'héllo'::text", "héllo", "str", '"héllo"'),
    CopyKind.NUMERIC: CopySample("1.50::numeric", Decimal("1.50"), "object", '"1.50"'),
    CopyKind.NUMERIC_FLOAT: CopySample("1.50::numeric", 1.5, "float64", "1.5"),
    CopyKind.TIMESTAMP: CopySample(
        "'2020-02-29 12:34:56.789012'::timestamp",
        pd.Timestamp("2020-02-29 12:34:56.789012"),
        "datetime64[us]",
        '"2020-02-29T12:34:56.789012"',
    ),
    CopyKind.TIMESTAMPTZ: CopySample(
        "'2020-02-29 12:34:56.789012+02'::timestamptz",
        pd.Timestamp("2020-02-29 10:34:56.789012", tz="UTC"),
        "datetime64[us, UTC]",
        '"2020-02-29T10:34:56.789012Z"',
    ),
    CopyKind.DATE: CopySample(
        "'2020-02-29'::date", pd.Timestamp("2020-02-29"), "datetime64[s]", '"2020-02-29"'
    ),
    CopyKind.INTERVAL: CopySample(
        "'1 day 2 hours 3 microseconds'::interval",
        pd.Timedelta(days=1, hours=2, microseconds=3),
        "timedelta64[us]",
        '"P1DT2H0M0.000003S"',
    ),
    CopyKind.TIME: CopySample(
        "'12:34:56.000007'::time", dt.time(12, 34, 56, 7), "object", '"12:34:56.000007"'
    ),
    CopyKind.TIMETZ: CopySample(
        "'12:34:56+02'::timetz",
        dt.time(12, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "object",
        '"12:34:56+02:00"',
    ),
    CopyKind.UUID: CopySample(
        "'0c7119e3-a6a2-209d-a6a5-b90e5b5b75bd'::uuid",
        pgproto.UUID("0c7119e3-a6a2-209d-a6a5-b90e5b5b75bd"),
        "object",
        '"0c7119e3-a6a2-209d-a6a5-b90e5b5b75bd"',
    ),
    CopyKind.BYTEA: CopySample("'\\x00ff'::bytea", b"\x00\xff", "object", '"\\\\x00ff"'),
    CopyKind.JSON: CopySample(
        """'{"a": [1, 2]}'::json""", {"a": [1, 2]}, "object", '{"a": [1, 2]}'
    ),
    CopyKind.JSONB: CopySample(
        """'{"a": [1, 2]}'::jsonb""", {"a": [1, 2]}, "object", '{"a": [1, 2]}'
    ),
    CopyKind.ARRAY: CopySample("ARRAY[1, NULL, 3]::int4[]", [1, None, 3], "object", "[1,null,3]"),
}


def test_every_parser_kind_has_a_sample() -> None:
    assert set(COPY_SAMPLES) | {CopyKind.VOID} == set(CopyKind)  # void: exports only


@pytest.mark.parametrize("kind", list(COPY_SAMPLES), ids=lambda k: k.name)
def test_the_parser_decodes_each_kind_the_enum_names(dsn: str, kind: CopyKind) -> None:
    sample = COPY_SAMPLES[kind]
    sql = f"SELECT v FROM (VALUES ({sample.expr}), (NULL)) AS t (v)"
    as_float = kind is CopyKind.NUMERIC_FLOAT
    lines = io.BytesIO()

    async def body(conn: asyncpg.Connection) -> tuple[decode.Plan, pd.DataFrame]:
        columns = (await conn.prepare(sql)).get_attributes()
        plan = await decode.plan_columns(conn, columns, as_float)
        frame = await decode.copy_frame(conn, sql, columns, numeric_as_float=as_float)
        await arrow.copy_json_lines(conn, sql, columns, lines.write, numeric_as_float=as_float)
        return plan, frame

    plan, frame = with_conn(dsn, body)
    assert plan.kinds == bytes([kind])
    if kind is CopyKind.ARRAY:
        assert (plan.elem_kinds, plan.elem_oids) == (bytes([CopyKind.INT4]), (oids.INT4,))
    assert str(frame["v"].dtype) == sample.dtype
    cell, null = frame["v"]
    assert cell == sample.value and pd.isna(null)
    if sample.dtype == "object":  # what asyncpg returns, not merely an equal value
        assert type(cell) is type(sample.value)
    assert lines.getvalue().decode() == f'{{"v":{sample.json}}}\n{{"v":null}}\n'


def test_void_and_the_export_layouts(dsn: str) -> None:
    sql = "SELECT pg_sleep(0) AS v, 7::int4 AS n"
    batches: list[Any] = []
    lines = io.BytesIO()

    async def body(conn: asyncpg.Connection) -> decode.Plan:
        columns = (await conn.prepare(sql)).get_attributes()
        await arrow.copy_record_batches(conn, sql, columns, batches.append)
        await arrow.copy_json_lines(conn, sql, columns, lines.write)
        return await decode.plan_columns(conn, columns, False, export=True)

    plan = with_conn(dsn, body)
    assert plan.kinds == bytes([CopyKind.VOID, CopyKind.INT4])
    assert [str(t) for t in batches[0].schema.types] == ["null", "int32"]
    assert batches[0].to_pylist() == [{"v": None, "n": 7}]
    assert lines.getvalue() == b'{"v":null,"n":7}\n'


def test_each_layout_gives_its_own_shape() -> None:
    header = b"PGCOPY\n\xff\r\n\0" + b"\0" * 8
    stream = header + b"\x00\x01\x00\x00\x00\x04\x00\x00\x00\x07" + b"\xff\xff"
    plan = decode.Plan(bytes([CopyKind.INT4]), b"\0", (0,), ["a"])
    shapes = {}
    for layout in CopyLayout:
        keys = (b'{"a":',) if layout is CopyLayout.JSONL else None
        parser = decode.new_parser(plan, layout, keys)
        parser.feed(stream)
        shapes[layout] = parser.finish()
    assert shapes[CopyLayout.PANDAS][0][0] == "fixed"  # one tuple per column
    n, columns = shapes[CopyLayout.ARROW]
    assert (n, columns[0][:3]) == (1, (1, 0, None))  # length, nulls, validity
    n, payload = shapes[CopyLayout.JSONL]
    assert (n, bytes(payload)) == (1, b'{"a":7}\n')


def test_the_kind_past_the_last_is_refused() -> None:
    plan = decode.Plan(bytes([max(CopyKind) + 1]), b"\0", (0,), ["a"])
    with pytest.raises(ValueError, match="unsupported kind"):
        decode.new_parser(plan)
    with pytest.raises(ValueError, match="unsupported kind"):
        encode.pgencode.Encoder(
            bytes([max(EncodeKind) + 1]), b"\0", (0,), (), uuid.UUID, Decimal, repr, repr
        )


# Per encoder kind: a column, the type it goes into, and that value as SQL.
ENCODE_SAMPLES: dict[EncodeKind, tuple[pd.Series, str, str]] = {
    EncodeKind.FIXED1: (pd.Series([True], dtype="boolean"), "bool", "true"),
    EncodeKind.FIXED2: (pd.Series([-7], dtype="Int16"), "int2", "-7"),
    EncodeKind.FIXED4: (pd.Series([-7], dtype="Int32"), "int4", "-7"),
    EncodeKind.FIXED8: (pd.Series([2**40], dtype="Int64"), "int8", "1099511627776"),
    EncodeKind.INTERVAL: (
        pd.Series([pd.Timedelta(microseconds=90_061_000_002)], dtype="timedelta64[us]"),
        "interval",
        "'1 day 01:01:01.000002'",  # days apart, as the CSV path's text has them
    ),
    EncodeKind.NUMERIC_I64: (pd.Series([-12345], dtype="int64"), "numeric", "-12345"),
    EncodeKind.NUMERIC_U64: (
        pd.Series([2**64 - 1], dtype="uint64"),
        "numeric",
        "18446744073709551615",
    ),
    EncodeKind.ARROW_TEXT: (pd.Series(["héllo"], dtype="str"), "text", "'héllo'"),
    EncodeKind.ARROW_JSONB: (
        pd.Series(['{"a": [1, 2]}'], dtype="str"),
        "jsonb",
        """'{"a": [1, 2]}'""",
    ),
    EncodeKind.BOOL: (pd.Series([True], dtype=object), "bool", "true"),
    EncodeKind.INT2: (pd.Series([-7], dtype=object), "int2", "-7"),
    EncodeKind.INT4: (pd.Series([-7], dtype=object), "int4", "-7"),
    EncodeKind.INT8: (pd.Series([2**40], dtype=object), "int8", "1099511627776"),
    EncodeKind.FLOAT8: (pd.Series([-2.25], dtype=object), "float8", "-2.25"),
    EncodeKind.NUMERIC: (pd.Series([Decimal("-1.50")], dtype=object), "numeric", "-1.50"),
    EncodeKind.TEXT: (pd.Series(["héllo"], dtype=object), "text", "'héllo'"),
    EncodeKind.BYTEA: (pd.Series([b"\x00\xff"], dtype=object), "bytea", "'\\x00ff'"),
    EncodeKind.UUID: (
        pd.Series([uuid.UUID("0c7119e3-a6a2-209d-a6a5-b90e5b5b75bd")], dtype=object),
        "uuid",
        "'0c7119e3-a6a2-209d-a6a5-b90e5b5b75bd'",
    ),
    EncodeKind.DATE: (pd.Series([dt.date(2020, 2, 29)], dtype=object), "date", "'2020-02-29'"),
    EncodeKind.TIME: (
        pd.Series([dt.time(12, 34, 56, 7)], dtype=object),
        "time",
        "'12:34:56.000007'",
    ),
    # json keeps its text; jsonb writes its own, so the sample is already in that form
    EncodeKind.JSON: (pd.Series([[1, 2]], dtype=object), "json", "'[1,2]'"),
    EncodeKind.JSONB: (pd.Series([[1]], dtype=object), "jsonb", "'[1]'"),
    EncodeKind.ARRAY: (pd.Series([[1, None, 3]], dtype=object), "int4[]", "'{1,NULL,3}'"),
}


def test_every_encoder_kind_has_a_sample() -> None:
    assert set(ENCODE_SAMPLES) == set(EncodeKind)


@pytest.mark.parametrize("kind", list(ENCODE_SAMPLES), ids=lambda k: k.name)
def test_the_encoder_writes_each_kind_as_the_server_does(dsn: str, kind: EncodeKind) -> None:
    series, sql_type, literal = ENCODE_SAMPLES[kind]

    async def body(conn: asyncpg.Connection) -> tuple[int, int, bytes]:
        oid, elem = await conn.fetchrow(
            "SELECT t.oid::int8, t.typelem::int8 FROM pg_catalog.pg_type t"
            " WHERE t.oid = $1::regtype",
            sql_type,
        )
        out = io.BytesIO()
        sql = f"SELECT {literal}::{sql_type}"
        await conn.copy_from_query(sql, output=out, format="binary")
        return oid, elem, out.getvalue()

    oid, elem, server = with_conn(dsn, body)
    frame = series.to_frame("v")
    targets = {"v": encode.Target(oid, elem if kind is EncodeKind.ARRAY else 0)}
    plan = encode.binary_plan(frame, targets)
    assert plan is not None and [c.kind for c in plan] == [kind]
    ours, nrows = next(encode.binary_chunks(iter([frame]), targets))
    header, trailer = encode.pgencode.HEADER, encode.pgencode.TRAILER
    assert nrows == 1 and header + ours + trailer == server
