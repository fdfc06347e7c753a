r"""psql's backslash commands: ``%pg \dt``, ``%pg \d orders``, and command lines in ``%%pg`` cells.

The describe commands run on the session (:mod:`pgmagic.catalog`) and show
what psql shows: a listing is a titled table whose value is its DataFrame;
``\d NAME`` is psql's layout (HTML in Jupyter, psql's exact text in a
terminal) whose value is the DataFrame of the columns.  Every other psql
command gets one line saying what pgmagic offers instead, and one psql does
not know gets psql's ``invalid command``.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython import display as _display

from pgmagic.catalog import run as catalog
from pgmagic.catalog.describe import Description
from pgmagic.catalog.listings import Listing
from pgmagic.catalog.meta import MetaCommand, command_name, parse
from pgmagic.catalog.source import Definition
from pgmagic.errors import DATABASE_ERRORS, MetaCommandError, OptionError, render
from pgmagic.frontend import tables
from pgmagic.frontend.output import CellOutput
from pgmagic.results.cell import Mode, bind_cell, run_cell
from pgmagic.sql import script

if TYPE_CHECKING:
    from pgmagic.frontend.magics import PgMagics
    from pgmagic.frontend.options import Options

__all__ = [
    "ANSWERS",
    "DESCRIBE_COMMANDS",
    "Layout",
    "Source",
    "command",
    "in_cell",
    "run_cell_with_commands",
    "run_line",
]

show: Callable[..., None] = _display.display

# What Tab offers after a backslash.
DESCRIBE_COMMANDS = (
    r"\conninfo",
    r"\d",
    r"\dE",
    r"\df",
    r"\dg",
    r"\di",
    r"\dm",
    r"\dn",
    r"\ds",
    r"\dT",
    r"\dt",
    r"\du",
    r"\dv",
    r"\dx",
    r"\l",
    r"\sf",
    r"\sv",
)
SUPPORTED = (
    r"\d [NAME], \dt, \dv, \dm, \di, \ds, \dE, \dn, \df, \dT, \dx, \du (\dg), \l, "
    r"\conninfo, \sf NAME, \sv NAME; S adds system objects, + more columns"
)
_OUTPUT = "results are DataFrames: df.to_csv(...), df.to_html(...), or %%pg --to FILE"
_SQL_HELP = "see https://www.postgresql.org/docs/current/sql-commands.html"
# psql's other commands, and what to use here instead (one line each).
ANSWERS = {
    "?": f"pgmagic runs {SUPPORTED}; %pg? shows the rest",
    "!": "use IPython's own: !command",
    "a": _OUTPUT,
    "bind": "bind values with $name (a notebook variable) or -p EXPR",
    "c": "use %pg connect DSN to connect elsewhere",
    "connect": "use %pg connect DSN to connect elsewhere",
    "C": _OUTPUT,
    "cd": "use IPython's %cd",
    "copy": "use %pg load DATAFRAME|FILE INTO table to copy in, %%pg --to FILE to copy out",
    "copyright": "PostgreSQL is released under the PostgreSQL License",
    "crosstabview": "pivot the DataFrame: df.pivot(index=..., columns=..., values=...)",
    "e": "edit the cell: there is no editor to start",
    "edit": "edit the cell: there is no editor to start",
    "ef": "see a function with \\sf NAME; edit it with CREATE OR REPLACE FUNCTION",
    "ev": "see a view with \\sv NAME; edit it with CREATE OR REPLACE VIEW",
    "echo": "use print() in Python",
    "qecho": "use print() in Python",
    "warn": "use print() in Python",
    "encoding": "pgmagic always talks UTF-8 to the server",
    "errverbose": "errors already show DETAIL, HINT and CONTEXT",
    "f": _OUTPUT,
    "g": "a %%pg cell runs its SQL itself; -o NAME keeps the result",
    "gx": "a %%pg cell runs its SQL itself; -o NAME keeps the result",
    "gdesc": "the column types are under each column's name in the result",
    "gexec": "build the statements in Python and run them with %pg or pgmagic.execute",
    "gset": "use row = %pg --one SELECT ... (a record) or n = %pg --scalar SELECT ...",
    "getenv": "use os.environ or IPython's %env",
    "setenv": "use os.environ or IPython's %env",
    "h": f"SQL syntax: {_SQL_HELP}",
    "help": f"SQL syntax: {_SQL_HELP}",
    "H": _OUTPUT,
    "i": "paste the file into a %%pg cell, or run pgmagic.execute(open(PATH).read())",
    "include": "paste the file into a %%pg cell, or run pgmagic.execute(open(PATH).read())",
    "ir": "paste the file into a %%pg cell, or run pgmagic.execute(open(PATH).read())",
    "if": "use Python's if around %pg",
    "elif": "use Python's if around %pg",
    "else": "use Python's if around %pg",
    "endif": "use Python's if around %pg",
    "lo_export": "use the server's lo_export() in SQL, or read the bytes with SELECT lo_get(oid)",
    "lo_import": "use the server's lo_import() in SQL, or lo_from_bytea(0, $data) with bytes",
    "lo_list": "query pg_catalog.pg_largeobject_metadata",
    "lo_unlink": "use SELECT lo_unlink(oid)",
    "o": "use %%pg --to FILE (CSV, Parquet, JSON lines), or df.to_csv(...)",
    "out": "use %%pg --to FILE (CSV, Parquet, JSON lines), or df.to_csv(...)",
    "w": "the cell is the query buffer: save the notebook, or %%writefile",
    "write": "the cell is the query buffer: save the notebook, or %%writefile",
    "p": "the cell is the query buffer",
    "print": "the cell is the query buffer",
    "r": "the cell is the query buffer",
    "reset": "the cell is the query buffer",
    "s": "IPython keeps the history: %history",
    "password": "use ALTER ROLE name PASSWORD '...' (the server stores it hashed)",
    "prompt": "use input() in Python",
    "pset": _OUTPUT,
    "q": "nothing to quit: %pg disconnect closes the connection, %unload_ext pgmagic all of it",
    "quit": "nothing to quit: %pg disconnect closes the connection, %unload_ext pgmagic all of it",
    "set": "use Python variables: $name binds a notebook variable's value",
    "unset": "use Python variables: $name binds a notebook variable's value",
    "t": _OUTPUT,
    "T": _OUTPUT,
    "timing": "every result's footer says how long it took",
    "watch": "use %%pg --watch SECONDS (or --refresh-on CHANNEL) to re-run a cell",
    "x": "results are DataFrames: df.T turns one around, %pg --one gives one row as a record",
    "z": "use \\dp-like SQL: SELECT relname, relacl FROM pg_class",
}


def command(line: str) -> MetaCommand:
    r"""The describe command of a backslash line.

    Parameters
    ----------
    line : str
        ``\dt+ public.*``.

    Returns
    -------
    MetaCommand

    Raises
    ------
    MetaCommandError
        Another psql command (with what to use instead), one psql does not
        know (``invalid command \foo``), or a bad argument.
    """
    found = parse(line)
    if found is not None:
        return found
    name = command_name(line)
    answer = ANSWERS.get(name[1:].rstrip("+"))
    if answer is None and name[1:2] == "d":
        answer = f"not a describe command pgmagic has; it has {SUPPORTED}"
    if answer is None:
        raise MetaCommandError(f"invalid command {name}")
    raise MetaCommandError(f"{name}: {answer}")


class Layout:
    r"""One relation as ``\d`` shows it: psql's text, or an HTML table with its footers.

    Parameters
    ----------
    description : Description
    """

    def __init__(self, description: Description) -> None:
        self.description = description

    def frame(self) -> pd.DataFrame:
        r"""The columns as a DataFrame (``\d NAME``'s value)."""
        d = self.description
        return pd.DataFrame(d.rows, columns=list(d.columns), dtype=object)

    def _repr_html_(self) -> str:
        d = self.description
        return tables.html(
            self.frame(), tables.ResultInfo(None, None), title=d.title, notes=d.footers
        )

    def __repr__(self) -> str:
        d = self.description
        return tables.aligned(d.title, d.columns, d.rows, d.footers, d.right)


class Source:
    r"""A definition as ``\sf`` and ``\sv`` print it; ``str()`` gives the bare SQL.

    Parameters
    ----------
    definition : Definition
    """

    def __init__(self, definition: Definition) -> None:
        self.definition = definition

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.definition.text)}</pre>"

    def __repr__(self) -> str:
        return self.definition.text.rstrip("\n")

    def __str__(self) -> str:
        return self.definition.sql


def _listing(listing: Listing, info: tables.ResultInfo, last: bool) -> pd.DataFrame | None:
    """Print a listing's title and show it, unless it is the cell's value; return its frame."""
    if listing.missing is not None:
        print(listing.missing)
        return None
    frame = pd.DataFrame(listing.rows, columns=list(listing.columns), dtype=object)
    print(listing.title)
    tables.remember(frame, info)
    if not last:
        show(frame)
        tables.mark_shown_above(frame)
    return frame


def _run(magics: PgMagics, found: MetaCommand, last: bool) -> Any:
    """Run a command on the session, show what it found, return its value."""
    started = time.perf_counter()
    try:
        outcome = catalog.run(magics.runtime, found)
    except DATABASE_ERRORS as error:
        # As psql shows them: a bad regular expression, a failed transaction.
        raise render(error) from None
    info = tables.ResultInfo(time.perf_counter() - started, magics.displaylimit)
    if isinstance(outcome, str):
        print(outcome)
        return None
    if isinstance(outcome, Listing):
        return _listing(outcome, info, last)
    if isinstance(outcome, Definition):
        source = Source(outcome)
        if not last:
            show(source)
        return source
    frames: dict[str, pd.DataFrame | None] = {}
    for item in outcome:
        if isinstance(item, Listing):  # \dx+: one per extension
            frames[item.name] = _listing(item, info, last=False)
            continue
        layout = Layout(item)
        show(layout)
        frames[item.name] = frame = layout.frame()
        tables.remember(frame, info)
        tables.mark_shown_above(frame)
    return next(iter(frames.values())) if len(frames) == 1 else frames


def in_cell(cell: str) -> bool:
    r"""Whether a ``%%pg`` cell holds backslash command lines (``\d orders``).

    Parameters
    ----------
    cell : str

    Returns
    -------
    bool
    """
    return script.has_commands(cell)


def run_line(magics: PgMagics, line: str) -> Any:
    r"""``%pg \dt``, ``%pg \d orders``: run one command, show it, return its value.

    Parameters
    ----------
    magics : PgMagics
    line : str

    Returns
    -------
    DataFrame, dict of DataFrame, or None
    """
    return _run(magics, command(line), last=True)


def run_cell_with_commands(
    magics: PgMagics, opts: Options, cell: str, positional: tuple[Any, ...]
) -> Any:
    r"""A ``%%pg`` cell holding command lines: each piece in order, results shown as they come.

    Commands are read and every statement bound before anything runs, so a
    typo or a missing variable never leaves half a cell run.  The value is
    the last piece's: its query's DataFrame (of the kind ``--arrow``,
    ``--polars`` or ``PgMagics.frame`` asks for), or its command's.

    Parameters
    ----------
    magics : PgMagics
    opts : Options
    cell : str
    positional : tuple

    Returns
    -------
    object
    """
    if opts.mode is not Mode.FRAME or opts.bulk or opts.live:
        raise OptionError(r"a cell with \d lines takes only -o NAME, -q and -p")
    pieces = script.split(cell)
    commands = {i: command(p.text) for i, p in enumerate(pieces) if p.command}
    texts = {i: script.only(cell, p) for i, p in enumerate(pieces) if not p.command}
    for text in texts.values():
        # Only to fail before any I/O: run_cell binds each piece again when it runs.
        bind_cell(text, magics.namespace, positional)
    kind = magics.frame_for(opts.frame)
    backend = magics.backend_for(opts.dtype_backend, kind)
    shown = CellOutput(magics.displaylimit, magics.numeric_as_float, kind, backend)
    value: Any = None
    for i in range(len(pieces)):
        last = i == len(pieces) - 1
        if i in commands:
            value = _run(magics, commands[i], last)
            continue
        result = run_cell(
            magics.runtime,
            texts[i],
            magics.namespace,
            positional,
            numeric_as_float=magics.numeric_as_float,
            quiet=opts.quiet,
            on_message=None if opts.quiet else shown,
            max_rows=magics.max_rows,
            frame=kind,
            dtype_backend=backend,
        )
        value = result.value
        if value is not None and result.shown is not None:
            tables.remember(value, shown.info(result.shown, result.elapsed))
            if not last:
                show(value)
                tables.mark_shown_above(value)
    if opts.out:
        magics.namespace[opts.out] = value
    return value
