"""PostgreSQL's lexical rules in Python: tokens, and the three questions pgmagic asks of them.

The rules are those of the server's own scanner (``src/backend/parser/scan.l``)
with ``standard_conforming_strings`` on (the default since 9.1) and a UTF-8
database, so that a ``;`` or a ``$name`` counts exactly where the server would
count it:

* ``'...'`` with ``''`` doubling; ``E'...'`` with backslash escapes; ``U&'...'``;
  ``B'...'`` and ``X'...'`` (no doubling there); ``N'...'`` is the keyword
  ``NCHAR`` followed by a string.  A string goes on past whitespace holding a
  newline when another quote follows (``'a'`` newline ``'b'`` is one constant).
* ``"..."`` and ``U&"..."`` identifiers with ``""`` doubling.
* ``--`` comments to the end of the line; ``/* ... */`` comments, nested.
* ``$$...$$`` and ``$tag$...$tag$`` (the tag is an identifier without ``$``);
  ``$1`` is a parameter; any other ``$`` is a token of its own, so ``$name`` is
  ``$`` followed by the word ``name``.  Words may hold ``$`` after their first
  character: ``x$y`` is one word.  Every non-ASCII character is a word character.
* numbers: ``1_000``, ``0x1F``, ``0o17``, ``0b101``, ``1.5e3``, ``.5``, and
  ``1..2`` is ``1``, ``..``, ``2``.
* operators: the longest run of ``~!@#^&|`?+-*/%<>=``, cut before ``--`` or
  ``/*``, and without trailing ``+`` or ``-`` unless the run holds one of
  ``~!@#^&|`?%`` (``=-1`` is ``=``, ``-``, ``1``).

:func:`scan` returns None where the server's scanner reports an error: an
unterminated quote, quoted identifier, dollar quote or comment above all, but
also an identifier character right after a number (``1abc``), an empty quoted
identifier, a bad escape in ``E''`` or an operator of 64 characters or more.
Callers then send the text as it is and let the server word the error.

Imports nothing of pgmagic; no I/O.
"""

from __future__ import annotations

import enum
import re
from typing import Literal, NamedTuple

__all__ = ["Kind", "Token", "client_copy", "is_plain_query", "scan"]


class Kind(enum.Enum):
    """What a token is."""

    WORD = "word"
    """A keyword or an unquoted identifier; its text is upper-cased (ASCII letters only)."""
    QUOTED = "quoted"
    """A quoted identifier, ``"..."`` or ``U&"..."``."""
    STRING = "string"
    """A string constant of any form, dollar quotes included."""
    NUMBER = "number"
    """A numeric constant."""
    PARAM = "param"
    """A positional parameter, ``$1``."""
    OPERATOR = "operator"
    """An operator: ``+``, ``<=``, ``::``, ``..``, ``:=``, ``@@`` ..."""
    PUNCT = "punct"
    """One of ``, ( ) [ ] . ; :``."""
    OTHER = "other"
    """Any other single character, ``$`` above all."""
    COMMENT = "comment"
    """A ``--`` or a ``/* */`` comment."""


class Token(NamedTuple):
    """One token of SQL text.

    Attributes
    ----------
    kind : Kind
    start : int
        Index of the token's first character.
    end : int
        Index just past the token's last character.
    text : str
        The token as written, except for a :attr:`Kind.WORD`, which is
        upper-cased for matching keywords (``N'x'`` gives the word ``NCHAR``).
    """

    kind: Kind
    start: int
    end: int
    text: str


# Character classes of scan.l, for text already decoded from UTF-8: the server
# counts every byte of a multibyte character as an identifier character.
_SPACE = " \t\n\r\f\v"
_ID_START = "A-Za-z_\u0080-\U0010ffff"
_ID_CONT = _ID_START + "0-9$"
_TAG_CONT = _ID_START + "0-9"
_OP_CHARS = r"~!@#^&|`?+\-*/%<>="
_DEC = "[0-9](?:_?[0-9])*"
_DECIMAL = rf"(?:{_DEC}(?:\.(?:{_DEC})?)?|\.{_DEC})(?:[eE][-+]?{_DEC})?"
# Whitespace holding a newline, then a quote: the string before goes on.
_CONTINUE = rf"(?:[ \t\f\v]|--[^\n\r]*+)*+[\n\r](?:[{_SPACE}]|--[^\n\r]*+[\n\r])*+'"

_MASTER = re.compile(
    rf"""[{_SPACE}]*+(?:
      (?P<word>(?![eEbBxXnN]'|[uU]&['"])[{_ID_START}][{_ID_CONT}]*+)
    | (?P<string>'[^']*+(?:''[^']*+)*+'(?!{_CONTINUE}))
    | (?P<number>
          0[xX](?:_?[0-9A-Fa-f])++(?![{_ID_CONT}])
        | 0[oO](?:_?[0-7])++(?![{_ID_CONT}])
        | 0[bB](?:_?[01])++(?![{_ID_CONT}])
        | (?>{_DEC})(?=\.\.)
        | (?>{_DECIMAL})(?![{_ID_START}$])
      )
    | (?P<number_dollar>(?>{_DECIMAL})(?=\$))
    | (?P<punct>[,()\[\];]|\.(?![.0-9])|:(?![:=]))
    | (?P<line>--[^\n\r]*+)
    | (?P<block>/\*)
    | (?P<operator>[{_OP_CHARS}]++|::|:=|\.\.)
    | (?P<prefixed>[eEbBxXnN]'|[uU]&['"])
    | (?P<quote>')
    | (?P<quoted>"[^"]*+(?:""[^"]*+)*+")
    | (?P<param>\$[0-9]++)
    | (?P<dollar>\$(?:[{_ID_START}][{_TAG_CONT}]*+)?\$)
    | (?P<error>[0-9."])
    | (?P<other>[^{_SPACE}])
    | (?P<end>\Z)
    )""",
    re.VERBOSE,
)
_G = _MASTER.groupindex
_WORD, _BLOCK, _OPERATOR, _PREFIXED = _G["word"], _G["block"], _G["operator"], _G["prefixed"]
_QUOTE, _QUOTED, _PARAM, _DOLLAR = _G["quote"], _G["quoted"], _G["param"], _G["dollar"]
_END, _NUMBER_DOLLAR = _G["end"], _G["number_dollar"]
# Groups whose match is the whole token.
_SIMPLE = {
    _G["punct"]: Kind.PUNCT,
    _G["number"]: Kind.NUMBER,
    _G["string"]: Kind.STRING,
    _G["line"]: Kind.COMMENT,
    _G["other"]: Kind.OTHER,
}

# The rest of a string after its opening quote, up to and including the quote
# that closes it (continuations are looked for afterwards).
_PLAIN_BODY = re.compile(r"[^']*+(?:''[^']*+)*+'")  # '...', U&'...'
_ESCAPE_BODY = re.compile(r"[^\\']*+(?:(?:''|\\[\s\S])[^\\']*+)*+'")  # E'...'
_BIT_BODY = re.compile(r"[^']*+'")  # B'...', X'...': '' ends the string
_CONTINUATION = re.compile(_CONTINUE)
# The server's lexer also tries a number's head followed by an identifier, and
# an identifier may hold "$": "1_0$" is "1" and "_0$", longer than "1_0", so an
# error; "1.5$" is "1.5" and "$".
_JUNK_BEFORE_DOLLAR = re.compile(r"[_eE][^.+-]*\Z")
_QUOTED_BODY = re.compile(r'"[^"]*+(?:""[^"]*+)*+"')
_COMMENT_MARK = re.compile(r"/\*|\*/")
_BACKSLASH = re.compile(
    r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|([uU])|x([0-9A-Fa-f]{1,2})|([0-7]{1,3})|([\s\S]))"
)
_NAMEDATALEN = 64
_INT4_MAX = 2**31 - 1
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_KEEPS_SIGN = frozenset("~!@#^&|`?%")


def scan(sql: str) -> list[Token] | None:
    """Cut SQL text into tokens the way the server's lexer does.

    Parameters
    ----------
    sql : str
        Any SQL text, one statement or many.

    Returns
    -------
    list of Token or None
        The tokens in order, comments included and whitespace left out; None
        when the server's lexer would report an error (an unterminated quote or
        comment, trailing junk after a number, ...).

    Examples
    --------
    >>> [(t.kind.value, t.text) for t in scan("select $x -- c")]
    [('word', 'SELECT'), ('other', '$'), ('word', 'X'), ('comment', '-- c')]
    """
    tokens: list[Token] = []
    append = tokens.append
    match = _MASTER.match
    new = tuple.__new__  # a third of the time of Token(...), on big cells
    word_kind = Kind.WORD
    simple = _SIMPLE.get
    pos = 0
    while True:
        found = match(sql, pos)
        if found is None:  # pragma: no cover - the last branches match anything
            return None
        group = found.lastindex or _END  # every branch is a group: never None
        start, pos = found.span(group)
        if group == _WORD:
            word = sql[start:pos]
            upper = word.upper() if word.isascii() else _upper(word)
            append(new(Token, (word_kind, start, pos, upper)))
            continue
        kind = simple(group)
        if kind is not None:
            append(new(Token, (kind, start, pos, sql[start:pos])))
            continue
        if group == _END:
            return tokens
        if group == _OPERATOR:
            pos = _operator_end(sql, start, pos)
            kind = Kind.OPERATOR
        elif group == _QUOTE:
            pos = _string_end(sql, pos, _PLAIN_BODY)
            kind = Kind.STRING
        elif group == _PREFIXED:
            pos = _prefixed(sql, start, tokens)
            if pos < 0:
                return None
            continue
        elif group == _BLOCK:
            pos = _comment_end(sql, pos)
            kind = Kind.COMMENT
        elif group == _QUOTED:
            if pos - start == 2:  # "" names nothing
                return None
            kind = Kind.QUOTED
        elif group == _PARAM:
            if int(sql[start + 1 : pos]) > _INT4_MAX:
                return None
            kind = Kind.PARAM
        elif group == _NUMBER_DOLLAR:
            if _JUNK_BEFORE_DOLLAR.search(sql, start, pos):
                return None
            kind = Kind.NUMBER
        elif group == _DOLLAR:
            close = sql.find(sql[start:pos], pos)
            pos = close + pos - start if close >= 0 else -1
            kind = Kind.STRING
        else:  # a malformed number, or an unterminated quoted identifier
            return None
        if pos < 0:
            return None
        append(Token(kind, start, pos, sql[start:pos]))


def _upper(word: str) -> str:
    # The server folds ASCII letters only when it looks up keywords.
    return word.translate(_UPPER)


def _operator_end(sql: str, start: int, end: int) -> int:
    run = sql[start:end]
    length = len(run)
    if length > 1:
        # A comment start ends the operator (it cannot open it: see _MASTER).
        for mark in ("/*", "--"):
            at = run.find(mark)
            if 0 < at < length:
                length = at
        # '=-' is '=' then '-'; '?-' stays whole.
        if run[length - 1] in "+-" and _KEEPS_SIGN.isdisjoint(run[: length - 1]):
            while length > 1 and run[length - 1] in "+-":
                length -= 1
    if length >= _NAMEDATALEN:
        return -1
    return start + length


def _prefixed(sql: str, start: int, tokens: list[Token]) -> int:
    letter = sql[start]
    if letter in "uU":
        if sql[start + 2] == '"':
            found = _QUOTED_BODY.match(sql, start + 2)
            if found is None or found.end() - start == 4:
                return -1
            end = found.end()
            tokens.append(Token(Kind.QUOTED, start, end, sql[start:end]))
            return end
        end = _string_end(sql, start + 3, _PLAIN_BODY)
    elif letter in "nN":
        # The server reads N'x' as the keyword NCHAR and then the string 'x'.
        tokens.append(Token(Kind.WORD, start, start + 1, "NCHAR"))
        start += 1
        end = _string_end(sql, start + 1, _PLAIN_BODY)
    elif letter in "eE":
        segments: list[str] = []
        end = _string_end(sql, start + 2, _ESCAPE_BODY, segments)
        if end >= 0 and "\\" in sql[start:end] and not _escapes_valid(segments):
            return -1
    else:
        end = _string_end(sql, start + 2, _BIT_BODY)
    if end >= 0:
        tokens.append(Token(Kind.STRING, start, end, sql[start:end]))
    return end


def _string_end(
    sql: str, pos: int, body: re.Pattern[str], segments: list[str] | None = None
) -> int:
    while True:
        found = body.match(sql, pos)
        if found is None:
            return -1
        end = found.end()
        if segments is not None:
            segments.append(sql[pos : end - 1])
        more = _CONTINUATION.match(sql, end)
        if more is None:
            return end
        pos = more.end()


def _comment_end(sql: str, pos: int) -> int:
    depth = 0
    search = _COMMENT_MARK.search
    while True:
        found = search(sql, pos)
        if found is None:
            return -1
        pos = found.end()
        if sql[pos - 1] == "*":
            depth += 1
        elif depth:
            depth -= 1
        else:
            return pos


def _escapes_valid(segments: list[str]) -> bool:
    """Whether the escapes of an ``E''`` string are ones the server takes.

    ``segments`` are the pieces between quotes (more than one when the string
    goes on past a newline); whatever separates them is no part of the value.
    """
    raw = False  # an escape made a NUL or non-ASCII byte: the bytes must be UTF-8
    for inside in segments:
        pending = -1  # where a second UTF-16 surrogate half must follow a first one
        for found in _BACKSLASH.finditer(inside):
            short, long_, bad, hexa, octal, _ = found.groups()
            code = int(short or long_, 16) if short or long_ else -1
            if pending >= 0:
                if found.start() != pending or not 0xDC00 <= code <= 0xDFFF:
                    return False
                pending = -1
            elif bad or 0xDC00 <= code <= 0xDFFF or code == 0 or code > 0x10FFFF:
                return False
            elif 0xD800 <= code <= 0xDBFF:
                pending = found.end()
            elif hexa or octal:
                byte = int(hexa, 16) if hexa else int(octal, 8) & 0xFF
                raw = raw or byte == 0 or byte >= 0x80
        if pending >= 0:
            return False
    return not raw or _decodes(segments)


def _decodes(segments: list[str]) -> bool:
    # Rebuild the constant's bytes; the server rejects a NUL and what is not UTF-8.
    data = bytearray()
    for inside in segments:
        cursor = 0
        high = 0
        for found in _BACKSLASH.finditer(inside):
            data += inside[cursor : found.start()].replace("''", "'").encode(errors="surrogatepass")
            cursor = found.end()
            short, long_, _, hexa, octal, char = found.groups()
            if short or long_:
                code = int(short or long_, 16)
                if 0xD800 <= code <= 0xDBFF:
                    high = code
                    continue
                if high:
                    code = 0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00)
                    high = 0
                data += chr(code).encode()
            elif hexa or octal:
                data.append(int(hexa, 16) if hexa else int(octal, 8) & 0xFF)
            else:
                data += char.encode(errors="surrogatepass")
        data += inside[cursor:].replace("''", "'").encode(errors="surrogatepass")
    if 0 in data:
        return False
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _code(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t.kind is not Kind.COMMENT]


def _is(token: Token, punct: str) -> bool:
    return token.kind is Kind.PUNCT and token.text == punct


def _word(tokens: list[Token], i: int) -> str:
    return tokens[i].text if i < len(tokens) and tokens[i].kind is Kind.WORD else ""


_QUERY_HEADS = frozenset({"SELECT", "VALUES", "TABLE", "WITH"})
# FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE
_LOCK_WORDS = frozenset({"UPDATE", "NO", "SHARE", "KEY"})


def is_plain_query(sql: str) -> bool:
    """Whether a statement is a plain query, one that can run inside ``COPY (...) TO STDOUT``.

    Plain means SELECT, VALUES, TABLE or WITH (parenthesised or not) without
    ``INTO``, without row locks (``FOR UPDATE``, ``FOR NO KEY UPDATE``, ``FOR
    SHARE``, ``FOR KEY SHARE``) and without data-modifying common table
    expressions, and exactly one statement.  The answer errs towards False,
    which costs speed, never correctness.  These plain queries say False:

    * a row lock in a subquery (``FROM (SELECT ... FOR UPDATE) s``);
    * ``SELECT ... INTO`` or a data-modifying WITH in a subquery (both of
      which the server refuses anyway);
    * ``FOR`` then ``UPDATE``, ``NO``, ``SHARE`` or ``KEY`` in parentheses that
      open with a subquery (``substring((SELECT s) FOR key)``);
    * WITH lists with ``SEARCH`` or ``CYCLE`` clauses.

    Parameters
    ----------
    sql : str
        One statement (``$n`` placeholders allowed).

    Returns
    -------
    bool

    Examples
    --------
    >>> is_plain_query("SELECT update, share FROM t"), is_plain_query("SELECT 1 FOR UPDATE")
    (True, False)
    """
    tokens = scan(sql)
    if tokens is None:
        return False
    code = _code(tokens)
    first, last = 0, len(code)
    while first < last and _is(code[first], ";"):
        first += 1
    while last > first and _is(code[last - 1], ";"):
        last -= 1
    code = code[first:last]
    # One entry per open parenthesis: whether it holds a query (a row lock can
    # stand there) or an expression (substring(s FOR key) is no lock).
    queries: list[bool] = []
    for i, token in enumerate(code):
        if token.kind is Kind.PUNCT:
            if token.text == "(":
                queries.append(_query_at(code, i + 1))
            elif token.text == ")":
                if not queries:
                    return False
                queries.pop()
            elif token.text == ";":
                return False
        elif token.kind is Kind.WORD:
            word = token.text
            if word == "INTO" and (i == 0 or _word(code, i - 1) != "AS"):  # AS into: a label
                return False
            in_query = not queries or queries[-1]
            if word == "FOR" and in_query and _word(code, i + 1) in _LOCK_WORDS:
                return False
            # A WITH list starts a statement or a parenthesised query; WITH
            # elsewhere is WITH ORDINALITY, WITH TIME ZONE, WITH TIES ...
            if word == "WITH" and (i == 0 or _is(code[i - 1], "(")) and not _with_ok(code, i + 1):
                return False
    return not queries and _query_at(code, 0)


def _query_at(code: list[Token], i: int) -> bool:
    while i < len(code) and _is(code[i], "("):
        i += 1
    return _word(code, i) in _QUERY_HEADS


def _after_group(code: list[Token], i: int) -> int:
    # code[i] is "(": the index after its ")".
    depth = 0
    for j in range(i, len(code)):
        if _is(code[j], "("):
            depth += 1
        elif _is(code[j], ")"):
            depth -= 1
            if not depth:
                return j + 1
    return len(code)


def _with_ok(code: list[Token], i: int) -> bool:
    """Whether the WITH list from ``i`` on holds only queries, and a query follows it."""
    if _word(code, i) == "RECURSIVE":
        i += 1
    while True:
        if i >= len(code) or code[i].kind not in (Kind.WORD, Kind.QUOTED):
            return False
        i += 1
        if i < len(code) and _is(code[i], "("):  # column names
            i = _after_group(code, i)
        if _word(code, i) != "AS":
            return False
        i += 1
        if _word(code, i) == "NOT":
            i += 1
        if _word(code, i) == "MATERIALIZED":
            i += 1
        if i >= len(code) or not _is(code[i], "(") or not _query_at(code, i + 1):
            return False
        i = _after_group(code, i)
        if i < len(code) and _is(code[i], ","):
            i += 1
            continue
        # SEARCH and CYCLE clauses land here too, and say False.
        return _query_at(code, i)


def first_word(sql: str) -> str:
    """The statement's first keyword, upper case, past comments ("" if none).

    Parameters
    ----------
    sql : str
        One statement.

    Returns
    -------
    str

    Examples
    --------
    >>> first_word("/* note */ listen orders"), first_word("'x'")
    ('LISTEN', '')
    """
    head = sql.lstrip()
    if not head.startswith(("--", "/*")):
        # No comment in front: the first word is plain text; no scan of what
        # may be a large statement (this runs for every statement of a cell).
        match = _LEADING_WORD.match(head)
        return match.group(0).upper() if match else ""
    tokens = scan(sql)
    return _word(_code(tokens), 0) if tokens else ""


_LEADING_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def client_copy(sql: str) -> Literal["from", "to"] | None:
    """Whether a statement is a ``COPY`` that needs the client to send or take rows.

    Parameters
    ----------
    sql : str
        One statement.

    Returns
    -------
    {"from", "to"} or None
        ``"from"`` for ``COPY ... FROM STDIN``, ``"to"`` for ``COPY ... TO
        STDOUT``; None for anything else, a ``COPY`` with a file or a program
        included.

    Examples
    --------
    >>> client_copy("COPY t (a, b) FROM STDIN"), client_copy("COPY (SELECT 1) TO '/tmp/x'")
    ('from', None)
    """
    if first_word(sql) != "COPY":
        return None
    tokens = scan(sql)
    if tokens is None:
        return None
    code = _code(tokens)
    depth = 0
    for i, token in enumerate(code):
        if token.kind is Kind.PUNCT:
            if token.text == "(":
                depth += 1
            elif token.text == ")":
                depth -= 1
            elif token.text == ";":
                return None
        elif not depth and token.text in ("FROM", "TO") and token.kind is Kind.WORD:
            if _word(code, i + 1) in ("STDIN", "STDOUT"):
                return "from" if token.text == "FROM" else "to"
            return None
    return None
