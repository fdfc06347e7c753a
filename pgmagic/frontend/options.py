"""The ``%pg`` / ``%%pg`` options: declared once, parsed into one :class:`Options`.

The declarations below make the ``%pg?`` help (IPython's ``magic_arguments``)
and tell the splitter which options take a value, so a line's leading options
are told apart from its SQL without reading argparse's internals.
"""

from __future__ import annotations

import functools
import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from IPython.core import magic_arguments as _magic_arguments

from pgmagic.errors import OptionError
from pgmagic.frontend.lines import iter_words, split
from pgmagic.results.cell import DtypeBackend, FrameKind, Mode
from pgmagic.runtime.connections import is_name

__all__ = [
    "FLAGS",
    "Options",
    "channel_name",
    "connection_prefix",
    "declare",
    "no_arguments",
    "parse",
    "sql_of",
    "variable_name",
]

F = TypeVar("F", bound=Callable[..., Any])

# (flags, argparse keywords), in the order %pg? lists them.
_DECLARED: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("-o", "--out"), {"metavar": "NAME", "help": "Also store the result in this variable."}),
    (
        ("-p", "--params"),
        {
            "metavar": "EXPR",
            "help": "Values for $1, $2, ...: a Python expression giving a sequence.",
        },
    ),
    (
        ("--one",),
        {"action": "store_true", "help": "Give the single row as a record (None if no row)."},
    ),
    (("--scalar",), {"action": "store_true", "help": "Give the single value."}),
    (
        ("--explain",),
        {
            "action": "store_true",
            "help": "Give the plan of the (last) statement as a tree, without running it.",
        },
    ),
    (
        ("--explain-analyze",),
        {
            "action": "store_true",
            "help": "Run the (last) statement, measured, and give its plan; "
            "what it changes is rolled back.",
        },
    ),
    (
        ("--arrow",),
        {
            "action": "store_true",
            "help": "Give the rows as a pyarrow.Table (types: the README's Arrow table).",
        },
    ),
    (
        ("--polars",),
        {
            "action": "store_true",
            "help": "Give the rows as a polars.DataFrame (pip install 'pgmagic[polars]').",
        },
    ),
    (
        ("--pandas",),
        {
            "action": "store_true",
            "help": "Give the rows as a pandas DataFrame, whatever PgMagics.frame says.",
        },
    ),
    (
        ("--dtype-backend",),
        {
            "metavar": "BACKEND",
            "help": "The pandas DataFrame's dtypes: numpy_nullable or pyarrow "
            "(pandas.ArrowDtype), whatever PgMagics.dtype_backend says.",
        },
    ),
    (("-q", "--quiet"), {"action": "store_true", "help": "Do not print command tags or notes."}),
    (
        ("--conn",),
        {
            "metavar": "NAME",
            "help": "Run on the connection NAME (%%pg connect NAME DSN), not the current "
            "one; @NAME as the first word says the same.",
        },
    ),
    (
        ("--bg",),
        {
            "action": "store_true",
            "help": "Run in the background on a pool connection: the cell returns at once "
            "and a live handle (with Cancel) shows the job; -o NAME gets the rows when it "
            "ends. pgmagic.jobs() lists jobs.",
        },
    ),
    (
        ("--stream",),
        {
            "action": "store_true",
            "help": "Give an iterator of DataFrames over a server-side cursor "
            "(one chunk in memory).",
        },
    ),
    (
        ("--chunksize",),
        {
            "type": int,
            "metavar": "ROWS",
            "help": "Rows per DataFrame with --stream, per Parquet row group / batch with --to.",
        },
    ),
    (
        ("--to",),
        {
            "metavar": "FILE",
            "help": "Stream the result to FILE (.parquet, .csv, .csv.gz, .jsonl) "
            "instead of a DataFrame.",
        },
    ),
    (("--format",), {"metavar": "FMT", "help": "Export format when FILE's suffix does not say."}),
    (
        ("--many",),
        {
            "metavar": "EXPR",
            "help": "Run the statement once per row of EXPR "
            "(a DataFrame, or a list of tuples or dicts).",
        },
    ),
    (
        ("--refresh-on",),
        {
            "metavar": "CHANNEL",
            "action": "append",
            "help": "Re-run on a pool connection and update the output when CHANNEL is "
            "notified (repeatable; %%pg stop ends it).",
        },
    ),
    (
        ("--watch",),
        {
            "metavar": "SECONDS",
            "type": float,
            "help": "Re-run on a pool connection every SECONDS and update the output.",
        },
    ),
)
#: Every option flag, short and long, as %pg? lists them.
FLAGS = tuple(flag for flags, _ in _DECLARED for flag in flags)
_FLAG_ACTIONS = ("store_true", "store_false")
_TAKES_VALUE = {
    flag: spec.get("action") not in _FLAG_ACTIONS for flags, spec in _DECLARED for flag in flags
}


def declare(func: F) -> F:
    """Give a magic the options above: its argparse parser and its ``%pg?`` help.

    Parameters
    ----------
    func : callable
        The magic method.

    Returns
    -------
    callable
        The same function, with ``parser`` and the help in its docstring.
    """
    argument = cast(Callable[..., Callable[[F], F]], _magic_arguments.argument)
    for flags, spec in reversed(_DECLARED):
        func = argument(*flags, **spec)(func)
    magic_arguments = cast(Callable[[], Callable[[F], F]], _magic_arguments.magic_arguments)
    return magic_arguments()(func)


#: Rows per chunk when --chunksize is not given.
CHUNKSIZE = 50_000


@dataclass(frozen=True, slots=True)
class Options:
    """The options of one ``%pg`` / ``%%pg`` run, checked.

    Attributes mirror the declarations above; ``mode`` folds ``--one``,
    ``--scalar``, ``--explain`` and ``--explain-analyze``; ``frame`` folds
    ``--pandas``, ``--arrow`` and ``--polars`` (None: ``PgMagics.frame``);
    ``dtype_backend`` is ``--dtype-backend`` (None: ``PgMagics.dtype_backend``).
    """

    out: str | None = None
    params: str | None = None
    mode: Mode = Mode.FRAME
    frame: FrameKind | None = None
    dtype_backend: DtypeBackend | None = None
    quiet: bool = False
    stream: bool = False
    chunksize: int = CHUNKSIZE
    to: str | None = None
    format: str | None = None
    many: str | None = None
    refresh_on: tuple[str, ...] = ()
    watch: float | None = None
    conn: str | None = None
    background: bool = False

    @property
    def bulk(self) -> bool:
        """Whether this is a ``--stream``, ``--to`` or ``--many`` run."""
        return bool(self.stream or self.to or self.many)

    @property
    def live(self) -> bool:
        """Whether this is a ``--refresh-on`` or ``--watch`` run."""
        return bool(self.refresh_on) or self.watch is not None


_LONG = {flags[0]: flags[-1] for flags, _ in _DECLARED}


def sql_offset(line: str) -> int | None:
    """Where the SQL of a ``%pg`` line (without ``%pg``) starts, for completion.

    Parameters
    ----------
    line : str

    Returns
    -------
    int or None
        None while the line holds only options, or wrong ones.
    """
    try:
        _, rest = _split(line)
    except OptionError:
        return None
    return len(line) - len(rest) if rest else None


_AT_RE = re.compile(r"\s*@(\S*)")


def connection_prefix(line: str) -> tuple[str | None, str]:
    """The connection a line names with ``@name`` as its first word, and the line after it.

    Parameters
    ----------
    line : str
        What follows ``%pg`` / ``%%pg``: ``@prod -o df``, ``@prod SELECT 1``.

    Returns
    -------
    (str or None, str)
        The name (None without ``@``) and the rest of the line.

    Raises
    ------
    OptionError
        ``@`` without a name after it.

    Examples
    --------
    >>> connection_prefix("@prod SELECT 1")
    ('prod', ' SELECT 1')
    """
    match = _AT_RE.match(line)
    if match is None:
        return None, line
    name = match.group(1)
    if not is_name(name):
        raise OptionError(f"@ needs a connection name, as in %%pg @prod; got @{name}")
    return name, line[match.end() :]


def _split(line: str) -> tuple[list[str], str]:
    """Leading options, as ``--name=value`` for argparse, and the rest of the line verbatim.

    The options follow :mod:`pgmagic.frontend.lines`; the first word that is
    not an option starts the SQL, which is left as written (``#`` is an
    operator in SQL, not a comment).
    """
    tokens: list[str] = []
    rest = ""
    words = iter_words(line)
    for word in words:
        name, equals, value = word.text.partition("=")
        # "-- comment", "-1" and words that begin with a quote are SQL, not options.
        raw = line[word.start : word.start + 3]
        if not raw.startswith("-") or not raw.lstrip("-")[:1].isalpha():
            rest = line[word.start :]
            break
        if name not in _TAKES_VALUE:
            raise OptionError(f"unknown option {name} (see %pg?)")
        name = _LONG.get(name, name)
        if not _TAKES_VALUE[name]:
            if equals:
                raise OptionError(f"option {name} takes no value")
            tokens.append(name)
            continue
        given = None if equals else next(words, None)
        if not equals:
            # "--" and "--name" are never values: "-o -- comment" lacks the name.
            if given is None or (not given.quoted and given.text.startswith("--")):
                raise OptionError(f"option {word.text} needs a value")
            value = given.text
        if value == "--":
            raise OptionError(f"option {word.text.split('=', 1)[0]} needs a value, not --")
        if name == "--refresh-on":
            quoted = word.quoted or (given is not None and given.quoted)
            value = channel_name(value, quoted=quoted)
        # One token, so that a value starting with "-" is not taken for an option.
        tokens.append(f"{name}={value}")
    return tokens, rest


def parse(line: str, parser: Any) -> tuple[Options, list[str], str]:
    """Split a magic line into its options and its SQL, and check the options.

    Parameters
    ----------
    line : str
        What follows ``%pg`` / ``%%pg``.
    parser : argparse.ArgumentParser
        The magic's parser (made by :func:`declare`).

    Returns
    -------
    (Options, list of str, str)
        The options, the option tokens as given, and the rest of the line.

    Raises
    ------
    OptionError
        An unknown option, a missing value, or options that do not combine.
    """
    options, tokens, rest = _parse(line, parser)
    return options, list(tokens), rest


# Cached: a cell run in a loop parses the same line each time, and argparse
# costs a tenth of a one-row lookup.  The answer depends on the line alone
# (a line that fails raises again, uncached); Options is frozen.
@functools.lru_cache(maxsize=128)
def _parse(line: str, parser: Any) -> tuple[Options, tuple[str, ...], str]:
    tokens, rest = _split(line)
    args = parser.parse_args(tokens)
    chosen = [
        m
        for m, on in zip(
            _MODES, (args.one, args.scalar, args.explain, args.explain_analyze), strict=True
        )
        if on
    ]
    if len(chosen) > 1:
        raise OptionError(f"{' and '.join(f'--{m.value}' for m in chosen)} cannot be combined")
    mode = chosen[0] if chosen else Mode.FRAME
    kinds = [
        k for k, on in zip(FrameKind, (args.pandas, args.arrow, args.polars), strict=True) if on
    ]
    if len(kinds) > 1:
        raise OptionError(f"{' and '.join(f'--{k.value}' for k in kinds)} cannot be combined")
    options = Options(
        out=variable_name(args.out) if args.out is not None else None,
        params=args.params,
        mode=mode,
        frame=kinds[0] if kinds else None,
        dtype_backend=_dtype_backend(args.dtype_backend),
        quiet=args.quiet,
        stream=args.stream,
        chunksize=CHUNKSIZE if args.chunksize is None else args.chunksize,
        to=args.to,
        format=args.format,
        many=args.many,
        refresh_on=tuple(args.refresh_on or ()),
        watch=args.watch,
        conn=args.conn,
        background=args.bg,
    )
    if mode.explains:
        _check_explain(options, args)
    if options.chunksize < 1:
        raise OptionError(f"--chunksize must be at least 1, got {options.chunksize}")
    # Options that only shape --stream or --to would otherwise be ignored silently.
    if args.chunksize is not None and not (options.stream or options.to):
        raise OptionError("--chunksize goes with --stream or --to")
    if options.format is not None and not options.to:
        raise OptionError("--format goes with --to FILE")
    if options.live and (options.out or mode is not Mode.FRAME):
        raise OptionError("--refresh-on and --watch cannot be combined with -o, --one, --scalar")
    if kinds and (mode is not Mode.FRAME or options.live or options.to or options.many):
        # What else a cell gives (a record, a plan, a file, a live table) has no frame kind.
        raise OptionError(
            f"--{kinds[0].value} shapes a query's rows (alone or with --stream); it does not "
            "combine with --one, --scalar, --explain, --to, --many, --watch or --refresh-on"
        )
    if options.background:
        _check_background(options)
    if options.dtype_backend is not None:
        if kinds and kinds[0] is not FrameKind.PANDAS:
            raise OptionError(f"--dtype-backend shapes pandas DataFrames, not --{kinds[0].value}")
        if mode is not Mode.FRAME or options.live or options.to or options.many:
            raise OptionError(
                "--dtype-backend shapes a query's rows (alone or with --stream); it does not "
                "combine with --one, --scalar, --explain, --to, --many, --watch or --refresh-on"
            )
    if options.bulk:
        if sum(bool(x) for x in (options.stream, options.to, options.many)) > 1:
            raise OptionError("--stream, --to and --many cannot be combined")
        if mode is not Mode.FRAME:
            raise OptionError("--one and --scalar do not combine with --stream, --to or --many")
    return options, tuple(tokens), rest


_MODES = (Mode.ONE, Mode.SCALAR, Mode.EXPLAIN, Mode.EXPLAIN_ANALYZE)


def _check_background(options: Options) -> None:
    """--bg gives rows later (-o) or a file (--to): what else a cell gives has no later."""
    others = [
        flag
        for flag, on in (
            ("--stream", options.stream),
            ("--many", options.many),
            ("--refresh-on", options.refresh_on),
            ("--watch", options.watch is not None),
            (f"--{options.mode.value}", options.mode is not Mode.FRAME),
        )
        if on
    ]
    if others:
        raise OptionError(
            f"--bg does not combine with {', '.join(others)} "
            "(it takes -o NAME, --to FILE, -p EXPR, -q, --conn and a frame kind)"
        )


def _dtype_backend(value: str | None) -> DtypeBackend | None:
    if value is None:
        return None
    try:
        return DtypeBackend(value)
    except ValueError:
        backends = " or ".join(b.value for b in DtypeBackend)
        raise OptionError(f"--dtype-backend must be {backends}, got {value!r}") from None


def _check_explain(options: Options, args: Any) -> None:
    """--explain gives a plan: options about rows or where they go make no sense with it."""
    others = [
        flag
        for flag, on in (
            ("--stream", options.stream),
            ("--to", options.to),
            ("--many", options.many),
            ("--refresh-on", options.refresh_on),
            ("--watch", options.watch is not None),
            ("--chunksize", args.chunksize is not None),
            ("--format", options.format),
        )
        if on
    ]
    if others:
        raise OptionError(
            f"--{options.mode.value} gives a plan; it does not combine with {', '.join(others)} "
            "(it takes -o NAME, -p EXPR and -q)"
        )


# PostgreSQL's unquoted identifier: a letter (any non-ASCII character counts)
# or underscore, then letters, digits, underscores and dollar signs.
_IDENTIFIER_RE = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")


def channel_name(text: str, *, quoted: bool) -> str:
    """A channel as PostgreSQL reads it: ``orders`` and ``Orders`` are one; quote to keep case.

    Parameters
    ----------
    text : str
        The word, without its quotes.
    quoted : bool
        Whether it was quoted: then it is taken exactly, as ``"Mixed Case"``
        is by ``LISTEN``.

    Returns
    -------
    str
        The name ``pg_notify`` must be given to reach it.

    Raises
    ------
    OptionError
        Not an identifier (``orders,`` or ``orders;``), or empty.
    """
    if quoted:
        if not text:
            raise OptionError("a channel name cannot be empty")
        return text
    if not _IDENTIFIER_RE.fullmatch(text):
        raise OptionError(
            f"not a channel name: {text!r} (a name such as orders, channels separated "
            'by spaces, or a quoted name such as "Order Events")'
        )
    # PostgreSQL folds unquoted identifiers to lower case, ASCII letters only.
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


_SQL_WORDS = frozenset(
    {
        "SELECT",
        "WITH",
        "INSERT",
        "UPDATE",
        "DELETE",
        "VALUES",
        "TABLE",
        "CREATE",
        "DROP",
        "ALTER",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "EXPLAIN",
        "SHOW",
        "SET",
        "CALL",
        "DO",
        "COPY",
        "TRUNCATE",
        "GRANT",
        "MERGE",
    }
)


def variable_name(name: str) -> str:
    """Check a ``-o`` name before any I/O (``-o SELECT 1`` lost its name).

    Parameters
    ----------
    name : str

    Returns
    -------
    str
        ``name``, when it is a Python identifier.
    """
    if name.upper() in _SQL_WORDS:
        raise OptionError(f"-o needs a variable name before the SQL: %pg -o df {name} ...")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise OptionError(f"-o needs a Python variable name, got {name!r}")
    return name


def sql_of(rest: str, tokens: list[str], cell: str | None) -> str:
    """The SQL to run: the rest of a ``%pg`` line, or the body of a ``%%pg`` cell.

    Parameters
    ----------
    rest : str
        What follows the options on the magic's line.
    tokens : list of str
        The options given.
    cell : str or None
        The cell's body (None for a ``%pg`` line).

    Returns
    -------
    str
    """
    if cell is None:
        if not rest.strip() and not tokens:
            raise OptionError("nothing to run: %pg SELECT ... for one line, %%pg for a cell")
        return rest
    if rest.strip():
        raise OptionError(
            f"unexpected text after the %%pg options: {rest.strip()!r} (put SQL in the cell body)"
        )
    return cell


def no_arguments(command: str, rest: str) -> None:
    """Refuse text after a subcommand that takes none.

    Parameters
    ----------
    command : str
    rest : str
    """
    found = split(rest)
    if found:
        extra = rest[found[0].start : found[-1].end]
        raise OptionError(f"%pg {command} takes no arguments, got {extra!r}")
