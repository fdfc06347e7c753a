"""PostgreSQL's lexical rules in pgmagic.sql.lexer, construct by construct."""

from __future__ import annotations

import pytest

from pgmagic.sql.lexer import Kind, client_copy, is_plain_query, scan

W, Q, S, N, P = Kind.WORD, Kind.QUOTED, Kind.STRING, Kind.NUMBER, Kind.PARAM
OP, PU, OT, C = Kind.OPERATOR, Kind.PUNCT, Kind.OTHER, Kind.COMMENT


def pieces(sql: str) -> list[tuple[Kind, str]] | None:
    """Each token as (kind, source text); None where scan says the server would refuse."""
    tokens = scan(sql)
    if tokens is None:
        return None
    for token in tokens:
        assert 0 <= token.start < token.end <= len(sql)
    return [(t.kind, sql[t.start : t.end]) for t in tokens]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # standard strings: '' doubles, a backslash is an ordinary character
        ("'a''b'", [(S, "'a''b'")]),
        ("'a\\'", [(S, "'a\\'")]),
        ("'; $a -- /*'", [(S, "'; $a -- /*'")]),
        ("''''", [(S, "''''")]),
        # continuation needs a newline between the quotes
        ("'a'\n'b'", [(S, "'a'\n'b'")]),
        ("'a'  \r\n\t 'b'", [(S, "'a'  \r\n\t 'b'")]),
        ("'a' -- note\n 'b'", [(S, "'a' -- note\n 'b'")]),
        ("'a'\n-- note\n'b'", [(S, "'a'\n-- note\n'b'")]),
        ("'a' 'b'", [(S, "'a'"), (S, "'b'")]),
        ("'a'\n-'b'", [(S, "'a'"), (OP, "-"), (S, "'b'")]),
        ("'a'\n-- note", [(S, "'a'"), (C, "-- note")]),
        ("'a'\n;'b'", [(S, "'a'"), (PU, ";"), (S, "'b'")]),
        # E'' strings: backslash escapes, continued in the same mode
        ("E'\\''", [(S, "E'\\''")]),
        ("e'\\\\'", [(S, "e'\\\\'")]),
        ("E'a\\';b'", [(S, "E'a\\';b'")]),
        ("E'\\n\\t\\x41\\101\\u00e9\\U0001F600'", [(S, "E'\\n\\t\\x41\\101\\u00e9\\U0001F600'")]),
        ("E'\\xc3\\xa9'", [(S, "E'\\xc3\\xa9'")]),
        ("E'\\uD83D\\uDE00'", [(S, "E'\\uD83D\\uDE00'")]),
        ("E'a'\n'\\''", [(S, "E'a'\n'\\''")]),
        ("E'a' -- \\u\n'b'", [(S, "E'a' -- \\u\n'b'")]),
        ("xE'a'", [(W, "xE"), (S, "'a'")]),
        # U&'' and U&"", with UESCAPE
        ("U&'d\\0061t' UESCAPE '!'", [(S, "U&'d\\0061t'"), (W, "UESCAPE"), (S, "'!'")]),
        ("u&'a''b'", [(S, "u&'a''b'")]),
        ("U&\"d!0061t\" UESCAPE '!'", [(Q, 'U&"d!0061t"'), (W, "UESCAPE"), (S, "'!'")]),
        ("u&x", [(W, "u"), (OP, "&"), (W, "x")]),
        # bit strings: no doubling, so '' ends one and starts another
        ("B'0101'", [(S, "B'0101'")]),
        ("x'1F'\n'2E'", [(S, "x'1F'\n'2E'")]),
        ("b'01''10'", [(S, "b'01'"), (S, "'10'")]),
        # N'' is the keyword NCHAR and a string
        ("N'x'", [(W, "N"), (S, "'x'")]),
        # quoted identifiers
        ('"a""b"', [(Q, '"a""b"')]),
        ('"$a;--"', [(Q, '"$a;--"')]),
        ('""""', [(Q, '""""')]),
        # comments
        ("-- a; $b", [(C, "-- a; $b")]),
        ("a--b\nc", [(W, "a"), (C, "--b"), (W, "c")]),
        ("/* a /* b */ c */ d", [(C, "/* a /* b */ c */"), (W, "d")]),
        ("/*/ x */ y", [(C, "/*/ x */"), (W, "y")]),
        ("/**/", [(C, "/**/")]),
        ("/* a **/ b", [(C, "/* a **/"), (W, "b")]),
        ("/*/**/*/", [(C, "/*/**/*/")]),
        ("+/*c*/1", [(OP, "+"), (C, "/*c*/"), (N, "1")]),
        ("@@--x", [(OP, "@@"), (C, "--x")]),
        # dollar quotes
        ("$$a;b$$", [(S, "$$a;b$$")]),
        ("$t$a;$$;b$t$", [(S, "$t$a;$$;b$t$")]),
        ("$$ $a$ $$", [(S, "$$ $a$ $$")]),
        ("$a$ $$ $A$ $a$", [(S, "$a$ $$ $A$ $a$")]),
        ("$a$x$ba$$a$", [(S, "$a$x$ba$$a$")]),
        ("$_1$ x $_1$", [(S, "$_1$ x $_1$")]),
        ("$é$ ; $é$", [(S, "$é$ ; $é$")]),
        # parameters, $name and $ inside words
        ("$1", [(P, "$1")]),
        ("$1$ x", [(P, "$1"), (OT, "$"), (W, "x")]),
        ("$1abc", [(P, "$1"), (W, "abc")]),  # libpg_query 18 scans this, as here
        ("$1.5", [(P, "$1"), (N, ".5")]),
        ("$a", [(OT, "$"), (W, "a")]),
        ("$user", [(OT, "$"), (W, "user")]),
        ("$ a", [(OT, "$"), (W, "a")]),
        ("x$y", [(W, "x$y")]),
        ("a$", [(W, "a$")]),
        ("a$b$c", [(W, "a$b$c")]),
        ("$n'x'", [(OT, "$"), (W, "n"), (S, "'x'")]),
        ("$E'x'", [(OT, "$"), (S, "E'x'")]),
        # numbers
        ("1_000", [(N, "1_000")]),
        ("0x1F 0X_ff 0o17 0b101", [(N, "0x1F"), (N, "0X_ff"), (N, "0o17"), (N, "0b101")]),
        ("1.5e3 1e-3 .5 5. 1.e5", [(N, "1.5e3"), (N, "1e-3"), (N, ".5"), (N, "5."), (N, "1.e5")]),
        ("1..2", [(N, "1"), (OP, ".."), (N, "2")]),
        ("1.2.3", [(N, "1.2"), (N, ".3")]),
        ("1$", [(N, "1"), (OT, "$")]),
        ("1.5$x", [(N, "1.5"), (OT, "$"), (W, "x")]),
        ("1_0.5$", [(N, "1_0.5"), (OT, "$")]),
        ("1e-5$", [(N, "1e-5"), (OT, "$")]),
        ("a[1:2]", [(W, "a"), (PU, "["), (N, "1"), (PU, ":"), (N, "2"), (PU, "]")]),
        # operators
        ("x::int", [(W, "x"), (OP, "::"), (W, "int")]),
        ("a := 1", [(W, "a"), (OP, ":="), (N, "1")]),
        ("::=", [(OP, "::"), (OP, "=")]),
        ("=-1", [(OP, "="), (OP, "-"), (N, "1")]),
        ("<=-1", [(OP, "<="), (OP, "-"), (N, "1")]),
        ("?-1", [(OP, "?-"), (N, "1")]),
        ("@-", [(OP, "@-")]),
        ("!=-", [(OP, "!=-")]),
        ("*/*x*/", [(OP, "*"), (C, "/*x*/")]),
        ("x /- y", [(W, "x"), (OP, "/"), (OP, "-"), (W, "y")]),
        (
            "<=> || ~~* |/- => <>",
            [(OP, "<=>"), (OP, "||"), (OP, "~~*"), (OP, "|/-"), (OP, "=>"), (OP, "<>")],
        ),
        ("+" * 63, [(OP, "+")] * 63),  # trailing + are cut one at a time
        ("@" * 63, [(OP, "@" * 63)]),
        # punctuation, other characters
        (
            "(a, b).c;",
            [(PU, "("), (W, "a"), (PU, ","), (W, "b"), (PU, ")"), (PU, "."), (W, "c"), (PU, ";")],
        ),
        ("\\x {}", [(OT, "\\"), (W, "x"), (OT, "{"), (OT, "}")]),
        # whitespace, including vertical tab and form feed
        (" \t\n\r\f\va\v", [(W, "a")]),
        ("", []),
        ("-- only", [(C, "-- only")]),
        # non-ASCII characters are word characters
        ("é$ünï", [(W, "é$ünï")]),
        ("a\u00a0b", [(W, "a\u00a0b")]),
    ],
)
def test_scan(sql: str, expected: list[tuple[Kind, str]]) -> None:
    assert pieces(sql) == expected


@pytest.mark.parametrize(
    ("sql", "texts"),
    [
        ("select Select sElEcT", ["SELECT", "SELECT", "SELECT"]),
        ("begin atomic end", ["BEGIN", "ATOMIC", "END"]),
        # only ASCII letters fold, as in the server's keyword lookup
        ("ſelect begın", ["ſELECT", "BEGıN"]),
        ("N'x'", ["NCHAR", "'x'"]),
        ('"select"', ['"select"']),
    ],
)
def test_token_text(sql: str, texts: list[str]) -> None:
    tokens = scan(sql)
    assert tokens is not None
    assert [t.text for t in tokens] == texts


@pytest.mark.parametrize(
    "sql",
    [
        # unterminated constructs
        "SELECT 'abc",
        "SELECT 'a''",
        "SELECT 'a'\n'b",
        "E'abc\\'",
        "E'abc\\",
        "U&'abc",
        "B'01",
        "X'1F",
        "N'x",
        '"abc',
        'U&"abc',
        "/* abc",
        "/* a /* b */",
        "/*/",
        "$$ abc",
        "$a$ abc $b$",
        "$a$ abc $A$",
        # other errors of the server's lexer
        '""',
        'U&""',
        "1abc",
        "1_",
        "1__0",
        "0x",
        "0x_",
        "0x1G",
        "0x1F$",
        "1_0$",  # "1" then the identifier "_0$", longer than "1_0"
        "1e5$",
        "1.e5$",
        "1.5_0$",
        "1e-5_0$",
        "0b102",
        "0o8",
        "1e",
        "1e+",
        "1.5e",
        "1.x",
        "1._5",
        "1e5e",
        ".5x",
        "0b'1'",
        "$2147483648",
        "E'\\u12'",
        "E'\\U1234'",
        "E'\\u'",
        "E'\\u0000'",
        "E'\\U00110000'",
        "E'\\uD800'",
        "E'\\uDC00'",
        "E'\\uD800x\\uDC00'",
        "E'\\uD800'\n'\\uDC00'",
        "E'\\xff'",
        "E'\\000'",
        "E'\\xc3' 'x'",
        "@" * 64,
    ],
)
def test_scan_refuses(sql: str) -> None:
    assert scan(sql) is None


def test_scan_accepts_valid_neighbours_of_errors() -> None:
    for sql in ("$2147483647", "E'\\xc3'\n'\\xa9'", "E'\\101'", "@" * 63):
        assert scan(sql) is not None, sql


def test_scan_offsets_are_character_indexes() -> None:
    sql = "SELECT 'ü', $x"
    tokens = scan(sql)
    assert tokens is not None
    assert [(t.start, t.end) for t in tokens] == [(0, 6), (7, 10), (10, 11), (12, 13), (13, 14)]


PLAIN = [
    "SELECT 1",
    "select 1;",
    ";SELECT 1;;",
    "SELECT * FROM t JOIN u USING (id) WHERE t.x > $1",
    "WITH a AS (SELECT 1) SELECT * FROM a",
    "WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 5) TABLE r",
    "WITH a AS MATERIALIZED (SELECT 1), b AS NOT MATERIALIZED (SELECT 2) SELECT * FROM a, b",
    'WITH "update" AS (SELECT 1), update AS (SELECT 2) SELECT * FROM update',
    "SELECT 1 UNION SELECT 2 EXCEPT SELECT 3",
    "VALUES (1, 'a'), (2, 'b') ORDER BY 1",
    "TABLE t",
    "(SELECT 1) UNION ALL (SELECT 2)",
    "((VALUES (1)))",
    "SELECT * FROM (SELECT * FROM t) s WHERE EXISTS (SELECT 1 FROM u)",
    "SELECT sum(x) OVER (PARTITION BY y ORDER BY z ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t",
    "SELECT update, share, key, no, delete, insert, merge FROM t",
    "SELECT (update), count(delete), (insert + 1), (merge)::text FROM t",
    "SELECT * FROM t FOR READ ONLY",
    "SELECT substring(s FROM 1 FOR 2), substring(s FOR key), substring((s) FOR share) FROM t",
    "SELECT 1 AS into, 2 AS update",
    "SELECT * FROM generate_series(1, 3) WITH ORDINALITY AS g(x, n)",
    "SELECT now()::timestamp WITH TIME ZONE",
    "SELECT * FROM t ORDER BY x FETCH FIRST 1 ROW WITH TIES",
    "SELECT (WITH a AS (SELECT 1) SELECT * FROM a)",
    "SELECT 'INTO', \"into\", $$FOR UPDATE$$ -- INTO\n/* FOR UPDATE */",
    "/* lead */ SELECT 1",
]

NOT_PLAIN = [
    "",
    ";",
    "INSERT INTO t VALUES (1) RETURNING *",
    "UPDATE t SET x = 1 RETURNING *",
    "DELETE FROM t RETURNING *",
    "SELECT 1; SELECT 2",
    "SELECT x INTO t2 FROM t",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t FOR NO KEY UPDATE OF t NOWAIT",
    "SELECT * FROM t FOR SHARE SKIP LOCKED",
    "SELECT * FROM t FOR KEY SHARE",
    "(SELECT * FROM t FOR UPDATE)",
    "SELECT 1 UNION (SELECT 2 FOR UPDATE)",
    "WITH a AS (SELECT * FROM t FOR KEY SHARE) SELECT * FROM a",
    "((SELECT * FROM t) FOR NO KEY UPDATE)",
    "INTO t",
    "WITH a AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM a",
    "WITH a AS (UPDATE t SET x = 1 RETURNING *) SELECT * FROM a",
    "WITH a AS (DELETE FROM t RETURNING *) SELECT * FROM a",
    "WITH a AS (SELECT 1), b AS (DELETE FROM t RETURNING *) SELECT * FROM a",
    "WITH a AS (WITH b AS (SELECT 1) UPDATE t SET x = 1 RETURNING *) SELECT * FROM a",
    "WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a",
    "WITH a AS (SELECT 1) DELETE FROM t",
    "EXPLAIN SELECT 1",
    "CREATE TABLE t2 AS SELECT 1",
    "DECLARE c CURSOR FOR SELECT 1",
    "SHOW search_path",
    "COPY t TO STDOUT",
    "SELECT 'unterminated",
    "SELECT (1",
    "SELECT 1)",
    '"select" 1',
]

# Plain queries that is_plain_query turns down on purpose (the caller then
# takes the slower path): listed in its docstring.
CONSERVATIVE = [
    "SELECT substring((SELECT s) FOR key) FROM t",
    "SELECT * FROM (SELECT 1 INTO x) s",
    "WITH RECURSIVE r(n) AS (SELECT 1) SEARCH DEPTH FIRST BY n SET o SELECT * FROM r",
    "SELECT * FROM (SELECT * FROM t FOR UPDATE) s",
    "SELECT * FROM t WHERE a IN (SELECT a FROM u FOR SHARE)",
    "SELECT * FROM (WITH a AS (DELETE FROM t RETURNING *) SELECT * FROM a) s",
]


@pytest.mark.parametrize("sql", PLAIN)
def test_plain_queries(sql: str) -> None:
    assert is_plain_query(sql)


@pytest.mark.parametrize("sql", NOT_PLAIN + CONSERVATIVE)
def test_not_plain_queries(sql: str) -> None:
    assert not is_plain_query(sql)


COPIES: list[tuple[str, str | None]] = [
    ("COPY t FROM STDIN", "from"),
    ("copy t (a, b) from stdin with (format csv)", "from"),
    ("COPY BINARY t FROM STDIN", "from"),
    ("COPY s.t TO STDOUT WITH CSV HEADER", "to"),
    ("COPY (SELECT a FROM b WHERE c) TO STDOUT", "to"),
    ("/* note */ COPY t TO STDOUT", "to"),
    ("-- note\nCOPY t FROM STDIN", "from"),
    ('COPY "from" FROM STDIN', "from"),
    ("COPY t FROM '/tmp/x.csv'", None),
    ("COPY t FROM PROGRAM 'gunzip -c x.gz'", None),
    ("COPY (SELECT 1) TO '/tmp/x'", None),
    ("COPY stdin FROM 'x'", None),
    ("SELECT 'COPY t FROM STDIN'", None),
    ("COPYING", None),
    ("COPY t FROM STDIN 'oops", None),
    ("", None),
]


@pytest.mark.parametrize(("sql", "expected"), COPIES)
def test_client_copy(sql: str, expected: str | None) -> None:
    assert client_copy(sql) == expected


def test_comments_before_a_routine_do_not_hide_its_own_parameters() -> None:
    # params.bind() reads the first four words that are not comments (the
    # pglast version counted comments among the four).
    from pgmagic.sql.params import Statement, bind

    sql = "/* a */ /* b */ /* c */ CREATE FUNCTION f(int) RETURNS int LANGUAGE sql RETURN $1 + 1"
    bound = bind(Statement(sql, 0), {})
    assert bound.sql == sql and bound.args == ()
