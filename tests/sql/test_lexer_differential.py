"""Our lexer against PostgreSQL's own (libpg_query through pglast), on generated SQL.

The oracle for splitting and placeholders is pgmagic's previous implementation,
which ran on ``pglast.parser.scan``; the oracle for plain queries and client-side
COPY is the previous parse-tree check on ``pglast.parse_sql``.  pglast (GPL) is a
test dependency only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest

pglast = pytest.importorskip("pglast")
from pglast import parse_sql  # noqa: E402
from pglast.parser import ParseError  # noqa: E402
from pglast.parser import scan as pg_scan  # noqa: E402

from pgmagic.sql.lexer import Kind, client_copy, is_plain_query, scan  # noqa: E402
from pgmagic.sql.params import Statement, placeholders, split  # noqa: E402

TEXTS = 12_000
SEED = 20240608

# ---------------------------------------------------------------------------
# The oracle: pgmagic's split() and placeholders() as they were on pglast.


def _oracle_tokens(sql: str) -> list[Any]:
    try:
        return list(pg_scan(sql))
    except ParseError:
        return []


def _oracle_in_routine_body(first_words: list[str]) -> bool:
    words = [w for w in first_words if w not in ("OR", "REPLACE")]
    return len(words) >= 2 and words[0] == "CREATE" and words[1] in ("FUNCTION", "PROCEDURE")


def _oracle_lstrip_offset(text: str, start: int) -> int:
    return start + len(text[start:]) - len(text[start:].lstrip())


def _oracle_statement(cell: str, start: int, end: int) -> Statement:
    offset = _oracle_lstrip_offset(cell, start)
    return Statement(cell[offset:end].rstrip(), offset)


def oracle_split(cell: str) -> list[Statement]:
    tokens = _oracle_tokens(cell)
    if not tokens:
        return [Statement(cell.strip(), _oracle_lstrip_offset(cell, 0))] if cell.strip() else []
    statements: list[Statement] = []
    start = depth = parens = 0
    first_words: list[str] = []
    has_code = False
    for token in tokens:
        name = token.name
        if name in ("SQL_COMMENT", "C_COMMENT"):
            continue
        if name == "ASCII_40":
            parens += 1
        elif name == "ASCII_41":
            parens -= 1
        if name == "ASCII_59" and depth == 0 and parens <= 0:
            end = token.start
            if has_code:
                statements.append(_oracle_statement(cell, start, end))
            start = end + 1
            first_words = []
            has_code = False
            parens = 0
            continue
        has_code = True
        if len(first_words) < 4:
            first_words.append(name)
        if _oracle_in_routine_body(first_words):
            if name in ("BEGIN_P", "CASE"):
                depth += 1
            elif name == "END_P" and depth > 0:
                depth -= 1
    if has_code:
        statements.append(_oracle_statement(cell, start, len(cell)))
    return statements


def oracle_placeholders(sql: str) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    tokens = _oracle_tokens(sql)
    for i, token in enumerate(tokens):
        if token.name == "PARAM":
            start, end = token.start, token.end + 1
            found.append((start, end, sql[start + 1 : end]))
        elif token.name == "ASCII_36" and i + 1 < len(tokens):
            nxt = tokens[i + 1]
            if nxt.start != token.end + 1:
                continue
            start, end = token.start, nxt.end + 1
            word = sql[start + 1 : end]
            if word.isidentifier():
                found.append((start, end, word))
    return found


_STRINGS = {"SCONST", "USCONST", "BCONST", "XCONST"}
_OPERATORS = {
    "Op",
    "TYPECAST",
    "DOT_DOT",
    "COLON_EQUALS",
    "EQUALS_GREATER",
    "LESS_EQUALS",
    "GREATER_EQUALS",
    "NOT_EQUALS",
}


def oracle_kind(sql: str, token: Any) -> Kind:
    name = token.name
    if name in _STRINGS:
        return Kind.STRING
    if name in ("SQL_COMMENT", "C_COMMENT"):
        return Kind.COMMENT
    if name in ("ICONST", "FCONST"):
        return Kind.NUMBER
    if name == "PARAM":
        return Kind.PARAM
    if name in _OPERATORS:
        return Kind.OPERATOR
    if name == "UIDENT" or (name == "IDENT" and sql[token.start] == '"'):
        return Kind.QUOTED
    if name == "UNKNOWN":  # pglast's name for characters like { and }
        return Kind.OTHER
    if name.startswith("ASCII_"):
        char = chr(int(name[6:]))
        if char in ",()[].;:":
            return Kind.PUNCT
        return Kind.OPERATOR if char in "+-*/%^<>=" else Kind.OTHER
    return Kind.WORD  # IDENT and every keyword


def oracle_scan(sql: str) -> list[tuple[Kind, int, int]] | None:
    try:
        return [(oracle_kind(sql, t), t.start, t.end + 1) for t in pg_scan(sql)]
    except ParseError:
        return None


def ours_scan(sql: str) -> list[tuple[Kind, int, int]] | None:
    tokens = scan(sql)
    return None if tokens is None else [(t.kind, t.start, t.end) for t in tokens]


# ---------------------------------------------------------------------------
# Generated cells: fragments of every construct the lexer knows, glued with
# and without whitespace so that they also run into each other.

_FRAGMENTS: list[str | Callable[[random.Random], str]] = [
    # words and keywords
    "SELECT", "select", "FROM", "x", "t", "x$y", "a$", "update", "share", "begin", "end",
    "case", "when", "then", "create", "CREATE", "or", "replace", "function", "procedure",
    "atomic", "prepare", "as", "é", "ünïcode", "ſelect", "_x1", "e", "E", "b", "n", "u", "U",
    # strings
    "'abc'", "'a''b'", "''", "'; $a -- /* $$'", "'x\\'", "'é;'", "'a'\n'b'", "'a' -- c\n 'b'",
    "'a' 'b'", "'a'\n-'b'", "'a'\n-- c\n'b'",
    "E'\\''", "E'\\\\'", "E'\\\\''", "e'a\\';b'", "E'\\x41\\101\\n'", "E'\\u00e9;'",
    "E'\\xc3\\xa9'", "E'a'\n'\\';'", "E'\\uD83D\\uDE00'",
    "U&'d\\0061t'", "U&'x' UESCAPE '!'", "u&'a''b'", 'U&"d!0061t"', "u&x",
    "B'0101'", "X'1F'", "b'01''10'", "x'1'\n'2'", "N'x'", "n'a;b'",
    # quoted identifiers
    '"q"', '"a""b"', '"$a;--"', '"select"', '""""',
    # comments
    "-- c; $a\n", "--x\n", "/* ; $a */", "/* a /* ; */ $b */", "/*/ x */", "/**/", "/*+*/",
    # dollar quotes
    "$$;$$", "$$ $a$ $$", "$a$ $$ ; $a$", "$tag$ $1 ; 'x $tag$", "$_1$ x $_1$", "$é$;$é$",
    "$a$x$ba$$a$", "$$\n$$",
    # parameters and $name
    "$1", "$23", "$1abc", "$1.5", "$a", "$user", "$ a", "$é", "$x_1", "$1$", "$", "$$$",
    # punctuation and operators
    ";", ";", ";", "(", ")", ",", ".", "[", "]", ":", "::", "::int", ":=", "..", "+", "-",
    "*", "/", "=-", "?-", "<=", "<>", "!=", "||", "@>", "~~*", "*/", "/-", "|/-", "=>", "@-",
    "+-", "--", "\\", "{", "}", "&",
    # numbers
    "1", "42", "1_000", "0x1F", "0o17", "0b101", "1.5e3", ".5", "5.", "1..2", "1.e5", "1e-5",
    # routine bodies, psql-style
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT $1; END",
    "CREATE OR REPLACE PROCEDURE p(int) LANGUAGE sql BEGIN ATOMIC "
    "SELECT CASE WHEN $1 > 0 THEN 1 END; END",
    "CREATE FUNCTION g(a int) RETURNS int LANGUAGE sql RETURN $1 + 1",
    "PREPARE q(int) AS SELECT $1",
    "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)",
    "BEGIN", "COMMIT", "END",
    # whitespace
    " ", "\n", "\t", "\r\n", "\v", "\f",
]  # fmt: skip

# Unterminated constructs and other lexical errors: the server's lexer refuses
# the whole text, so the cell goes to the server whole.
_ERRORS = [
    "'abc", "E'ab\\'", '"abc', "/* x", "$$ x", "$a$ x $b$", 'U&"x', "B'01", "/* /* */",
    "1abc", "0x", '""', "E'\\xff'", "E'\\u12'", "1_0$", "$99999999999",
]  # fmt: skip
_SOUP = "'\"$-/*;()eEbBxXnNuU&\\ \n01._a:+=<>!?@#%^|`~[]{}é"
_GLUE = ["", " ", " ", " ", "\n", "; ", ";\n", "\t", " -- c\n", "/**/"]


def generate(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(1, 24)):
        fragment = rng.choice(_FRAGMENTS)
        if callable(fragment):
            fragment = fragment(rng)
        elif rng.random() < 0.03:  # character soup
            fragment = "".join(rng.choice(_SOUP) for _ in range(rng.randint(1, 6)))
        parts.append(fragment)
        parts.append(rng.choice(_GLUE))
    if rng.random() < 0.1:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(_ERRORS))
    return "".join(parts)


def test_split_and_placeholders_match_postgres_lexer() -> None:
    rng = random.Random(SEED)
    texts = [generate(rng) for _ in range(TEXTS)]
    started = time.perf_counter()
    differences: list[str] = []
    refused = 0
    for text in texts:
        expected_tokens = oracle_scan(text)
        refused += expected_tokens is None
        if ours_scan(text) != expected_tokens:
            differences.append(f"scan {text!r}: {ours_scan(text)} != {expected_tokens}")
            continue
        ours = split(text)
        expected = oracle_split(text)
        if ours != expected:
            differences.append(f"split {text!r}: {ours} != {expected}")
            continue
        if placeholders(text) != oracle_placeholders(text):
            differences.append(f"placeholders {text!r}")
        for statement in ours:
            if placeholders(statement.text) != oracle_placeholders(statement.text):
                differences.append(f"placeholders {statement.text!r}")
    elapsed = time.perf_counter() - started
    print(f"\n{len(texts)} texts ({refused} refused by the lexer) compared in {elapsed:.1f} s")
    assert not differences, "\n".join(differences[:20])
    # Enough of both kinds of text to mean something.
    assert len(texts) // 10 < refused < len(texts) // 2


# ---------------------------------------------------------------------------
# Plain queries and client-side COPY, against the parse tree.


def oracle_copyable(sql: str) -> bool | None:
    """The previous parse-based check; None where the text does not parse."""
    try:
        statements = parse_sql(sql)
    except ParseError:
        return None
    if len(statements) != 1:
        return False
    node = statements[0].stmt
    return type(node).__name__ == "SelectStmt" and _oracle_plain_select(node)


def _oracle_plain_select(node: Any) -> bool:
    if getattr(node, "intoClause", None) is not None or getattr(node, "lockingClause", None):
        return False
    with_clause = getattr(node, "withClause", None)
    if with_clause is not None:
        for cte in with_clause.ctes or ():
            query = cte.ctequery
            if type(query).__name__ != "SelectStmt" or not _oracle_plain_select(query):
                return False
    for branch in (getattr(node, "larg", None), getattr(node, "rarg", None)):
        if branch is not None and not _oracle_plain_select(branch):
            return False
    return True


# Where is_plain_query may say False to a query the parse tree calls plain: each
# generated statement records which of these it used.
CONSERVATIVE = {
    "search-cycle",  # WITH ... SEARCH/CYCLE
    "lock-in-subquery",  # FROM (SELECT ... FOR UPDATE) s: the old check looked at the top only
    "into-in-subquery",  # FROM (SELECT 1 INTO x) s: likewise
    "dml-cte-in-subquery",  # FROM (WITH a AS (DELETE ...) SELECT ...) s: likewise
}


class Query:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.flags: set[str] = set()

    def kw(self, word: str) -> str:
        # keywords in any case, sometimes with a comment after
        rng = self.rng
        word = rng.choice([word, word.lower(), word.title()])
        return word + rng.choice(["", "", "", " /* c */", " -- c\n"])

    def column(self) -> str:
        rng = self.rng
        choice = rng.randrange(13)
        if choice < 4:
            return rng.choice(["a", "b", "t.a", '"Mixed"', "update", "share", "key", "no",
                               "delete", "insert", "merge", "search", "cycle", "materialized"])  # fmt: skip
        if choice < 6:
            return rng.choice(["1", "'x;y'", "$1", "$$z$$", "E'\\''", "1.5e3", "NULL"])
        if choice == 6:
            return "count(*) OVER (PARTITION BY a ORDER BY b)"
        if choice == 7:
            return f"CASE WHEN {self.column()} THEN {self.column()} ELSE 0 END"
        if choice == 8:
            return f"({self.select(depth=2, top=False)})"
        if choice == 9:
            return f"EXISTS ({self.select(depth=2, top=False)})"
        if choice == 10:
            word = rng.choice(["key", "share", "2", "2", "2", "2", "2", "no"])
            if word in ("key", "share", "no"):
                self.flags.add("for-keyword-expression")
            return f"substring(s FROM 1 {self.kw('FOR')} {word})"
        if choice == 11:
            return f"{self.column()}::{rng.choice(['int', 'text', 'timestamp WITH TIME ZONE'])}"
        return f"({rng.choice(['update', 'delete', 'insert'])} + 1)"

    def item(self) -> str:
        """A select-list item, sometimes with a label."""
        rng = self.rng
        if rng.random() < 0.8:
            return self.column()
        label = rng.choice(["x", "x", '"into"', "into", "update", "share", "key"])
        if label == "into":
            self.flags.add("into-label")
        return f"{self.column()} {self.kw('AS')} {label}"

    def from_item(self, depth: int) -> str:
        rng = self.rng
        choice = rng.randrange(6)
        if choice == 0:
            return "t"
        if choice == 1:
            return f"t {self.kw('JOIN')} u {self.kw('ON')} t.id = u.id"
        if choice == 2:
            return f"generate_series(1, 3) {self.kw('WITH')} ORDINALITY AS g(x, n)"
        if choice == 3 and depth < 3:
            return f"({self.select(depth + 1, top=False)}) s"
        if choice == 4:
            return "t, LATERAL (SELECT t.a) l"
        return '"from"'

    def select(
        self, depth: int = 0, top: bool = True, branch: bool = False, with_: bool = True
    ) -> str:
        """A query; ``top`` is False inside subqueries, which the parse-based
        check never looked into (for INTO and row locks); a set operation's
        ``branch`` takes no ORDER BY or row lock of its own; ``with_`` False
        after a WITH list, which takes no second one."""
        rng = self.rng
        choice = rng.randrange(10)
        if choice == 0:
            body = f"{self.kw('VALUES')} (1, 'a'), (2, $$b$$)"
        elif choice == 1:
            body = f"{self.kw('TABLE')} t"
        elif choice == 2 and depth < 3:
            return f"({self.select(depth + 1, top)})"
        elif choice == 3 and depth < 3:
            op = rng.choice(["UNION", "UNION ALL", "INTERSECT", "EXCEPT"])
            left = self.select(depth + 1, top, branch=True)
            body = f"{left} {self.kw(op)} {self.select(depth + 1, top, branch=True)}"
        elif choice == 4 and depth < 2 and with_:
            body = f"({self.with_query(depth + 1, top)})"
        else:
            columns = ", ".join(self.item() for _ in range(rng.randint(1, 3)))
            body = f"{self.kw('SELECT')} {columns}"
            if rng.random() < (0.1 if top else 0.03):
                body += f" {self.kw('INTO')} t2"
                if not top:
                    self.flags.add("into-in-subquery")
            if rng.random() < 0.8:
                body += f" {self.kw('FROM')} {self.from_item(depth)}"
            if rng.random() < 0.3:
                body += f" {self.kw('WHERE')} a = $1 AND b IN ({self.select(depth + 2, False)})"
        if branch:
            return body
        if rng.random() < 0.15:
            body += f" {self.kw('ORDER')} BY 1"
        if rng.random() < (0.1 if top else 0.03):
            body += " " + rng.choice([
                "FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE",
                "FOR UPDATE OF t NOWAIT", "FOR SHARE SKIP LOCKED", "FOR READ ONLY",
            ])  # fmt: skip
            if not top and not body.endswith("READ ONLY"):
                self.flags.add("lock-in-subquery")
        return body

    def cte_body(self, depth: int, top: bool = True) -> str:
        rng = self.rng
        choice = rng.randrange(8)
        if choice < 4 and not top:
            self.flags.add("dml-cte-in-subquery")
        if choice == 0:
            return f"{self.kw('INSERT')} {self.kw('INTO')} t VALUES (1) RETURNING *"
        if choice == 1:
            return f"{self.kw('UPDATE')} t SET a = 1 RETURNING *"
        if choice == 2:
            return f"{self.kw('DELETE')} {self.kw('FROM')} t RETURNING *"
        if choice == 3 and depth < 2:
            return f"{self.kw('WITH')} b AS (SELECT 1) UPDATE t SET a = 1 RETURNING *"
        return self.select(depth + 1, top)

    def with_query(self, depth: int = 0, top: bool = True, dml: bool = False) -> str:
        rng = self.rng
        ctes = []
        for i in range(rng.randint(1, 3)):
            name = rng.choice(["a{}", "b{}", "update{}", '"x y{}"', "share{}"]).format(i)
            columns = rng.choice(["", "(n)", "(n, m)"])
            modifier = rng.choice(["", "", "MATERIALIZED ", "NOT MATERIALIZED "])
            body = self.cte_body(depth, top)
            ctes.append(f"{name}{columns} {self.kw('AS')} {modifier}({body})")
        text = f"{self.kw('WITH')} {rng.choice(['', 'RECURSIVE '])}" + ", ".join(ctes)
        if rng.random() < 0.05:
            text += " SEARCH DEPTH FIRST BY n SET o"
            self.flags.add("search-cycle")
        main = rng.randrange(6) if dml else 5
        if main == 0:
            return text + f" {self.kw('INSERT')} {self.kw('INTO')} t SELECT * FROM a0"
        if main == 1:
            return text + f" {self.kw('DELETE')} {self.kw('FROM')} t"
        return text + " " + self.select(depth + 1, top, with_=False)

    def statement(self) -> str:
        rng = self.rng
        choice = rng.randrange(12)
        if choice < 5:
            sql = self.select()
        elif choice < 8:
            sql = self.with_query(dml=True)
        elif choice == 8:
            sql = rng.choice(["EXPLAIN ", "CREATE TABLE t2 AS ", "DECLARE c CURSOR FOR "])
            sql += self.select()
        elif choice == 9:
            sql = self.cte_body(0)
        elif choice == 10:
            sql = f"{self.select()}; {self.select()}"
        else:
            sql = rng.choice(["SHOW search_path", "SET x = 1", "COPY t TO STDOUT", "VACUUM t"])
        lead = rng.choice(["", "", "/* lead */ ", "-- lead\n"])
        return lead + sql + rng.choice(["", "", ";", " ;;", " -- end"])


def test_is_plain_query_against_parse_tree() -> None:
    rng = random.Random(SEED)
    counts = {"plain": 0, "not plain": 0, "conservative": 0, "unparsed": 0}
    wrong: list[str] = []
    for _ in range(4000):
        query = Query(rng)
        sql = query.statement()
        expected = oracle_copyable(sql)
        if expected is None:
            counts["unparsed"] += 1
            continue
        ours = is_plain_query(sql)
        if ours and not expected:
            wrong.append(f"said plain: {sql!r}")
        elif expected and not ours:
            if query.flags & CONSERVATIVE:
                counts["conservative"] += 1
            else:
                wrong.append(f"said not plain: {sql!r} (flags {query.flags})")
        else:
            counts["plain" if ours else "not plain"] += 1
    print(f"\nis_plain_query: {counts}")
    assert not wrong, "\n".join(wrong[:20])
    assert counts["plain"] > 500 and counts["not plain"] > 500
    assert counts["unparsed"] < 100


def test_hand_written_queries_against_parse_tree() -> None:
    from tests.sql.test_lexer import CONSERVATIVE as KNOWN_CONSERVATIVE
    from tests.sql.test_lexer import NOT_PLAIN, PLAIN

    assert all(oracle_copyable(sql) for sql in PLAIN + KNOWN_CONSERVATIVE)
    assert not any(oracle_copyable(sql) for sql in NOT_PLAIN)


def oracle_client_copy(sql: str) -> str | None:
    try:
        statements = parse_sql(sql)
    except ParseError:
        return None
    node: Any = statements[0].stmt if statements else None
    if type(node).__name__ != "CopyStmt" or node.filename is not None:
        return None
    return "from" if node.is_from else "to"


def generate_copy(rng: random.Random) -> str:
    lead = rng.choice(["", "", "/* c */ ", "-- c\n", "  "])
    copy = rng.choice(["COPY", "copy", "Copy"])
    target = rng.choice(
        ["t", "s.t", '"from"', "t (a, b)", "BINARY t", "(SELECT a FROM b WHERE c)",
         "(SELECT 'FROM STDIN')", "(VALUES (1)) ", "stdin", "to_t"]
    )  # fmt: skip
    direction = rng.choice(["FROM", "TO", "from", "to"])
    where = rng.choice(["STDIN", "STDOUT", "stdin", "'/tmp/x.csv'", "PROGRAM 'cat'"])
    options = rng.choice(["", " WITH (FORMAT csv)", " WITH CSV HEADER", " (FORMAT binary)"])
    if rng.random() < 0.1:
        return lead + rng.choice(["SELECT 'COPY t FROM STDIN'", "COPYING", "CALL copy()"])
    return f"{lead}{copy} {target} {direction} {where}{options}"


def test_client_copy_against_parse_tree() -> None:
    rng = random.Random(SEED)
    checked = 0
    wrong: list[str] = []
    for _ in range(2000):
        sql = generate_copy(rng)
        try:
            parse_sql(sql)
        except ParseError:
            continue  # not well-defined (COPY (query) FROM STDIN, ...)
        checked += 1
        if client_copy(sql) != oracle_client_copy(sql):
            wrong.append(f"{sql!r}: {client_copy(sql)} != {oracle_client_copy(sql)}")
    assert not wrong, "\n".join(wrong[:20])
    assert checked > 1000


def test_hand_written_copies_against_parse_tree() -> None:
    from tests.sql.test_lexer import COPIES

    for sql, expected in COPIES:
        if sql != "COPY t FROM STDIN 'oops":  # unterminated: the parser has no answer
            assert oracle_client_copy(sql) == expected, sql
