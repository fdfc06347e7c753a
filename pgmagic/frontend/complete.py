"""Tab completion in ``%pg`` lines and ``%%pg`` cells, by IPython's own completer.

Every front end asks it through IPython's completer while the kernel is
idle; pgmagic's JupyterLab extension also asks :func:`complete_code` over the
panel comm (:mod:`~pgmagic.frontend.feed`), on a kernel subshell's thread, so
Tab works there while a cell runs.  It completes what ``%pg?`` lists
(subcommands in the first word, the options of the cell or of the subcommand after a ``-``); psql's
describe commands after a backslash (instead of IPython's LaTeX names) and the
relation names they take, on a ``%pg`` line or a line of a ``%%pg`` cell; and
in the SQL: tables, columns, join conditions, functions and keywords from a
catalog snapshot (:mod:`pgmagic.catalog.suggest`), and ``$name`` from the
notebook's variables.  The snapshot is read on first use, dropped after a
cell that ran DDL or ``SET`` (:func:`forget_after`), and kept at most 30 s
besides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from IPython import get_ipython
from IPython.core.completer import CompletionContext, SimpleCompletion, context_matcher

from pgmagic.catalog import snapshot as catalog
from pgmagic.catalog.suggest import Suggestion, needed, suggest
from pgmagic.errors import OptionError
from pgmagic.frontend.commands import COMMANDS
from pgmagic.frontend.options import FLAGS, connection_prefix, sql_offset
from pgmagic.frontend.psql import DESCRIBE_COMMANDS
from pgmagic.runtime.connections import default_connections, default_runtime
from pgmagic.runtime.loop import Runtime
from pgmagic.sql import params
from pgmagic.sql.scope import Clause, context_at

__all__ = ["forget_after", "register", "sql_suggestions", "unregister"]


# The options each subcommand takes (the cell options are FLAGS).
_SUBCOMMAND_FLAGS: dict[str, tuple[str, ...]] = {
    "connect": ("--pooler", "--embedded"),
    "listen": ("--dsn",),
    "unlisten": ("--all",),
    "load": ("--create", "--append", "--replace", "-q", "--quiet"),
    "history": ("-n", "--all", "--clear"),
}


def candidates(line: str, symbol: str) -> list[str]:
    """What may complete ``symbol``, the word under the cursor of a ``%pg`` line.

    Parameters
    ----------
    line : str
        The line up to the cursor, starting with ``%pg`` or ``%%pg``.
    symbol : str
        The word being typed (may be empty).

    Returns
    -------
    list of str
        Sorted; empty when pgmagic has nothing to offer there.
    """
    words = line.split()
    cell = bool(words) and words[0] == "%%pg"
    before = words[1 : len(words) - (1 if symbol and line.endswith(symbol) else 0)]
    if before[:1] and before[0].startswith("@"):
        before = before[1:]  # %pg @prod ...: the rest is as on any line
    command = before[0].lower() if before and before[0].lower() in COMMANDS else None
    offered: Sequence[str]
    if symbol.startswith("@") and not before:
        offered = [f"@{name}" for name in _connection_names()]
    elif command in ("use", "close") and len(before) == 1 and not symbol.startswith("-"):
        offered = _connection_names()
    elif command is not None:
        offered = _SUBCOMMAND_FLAGS.get(command, ()) if symbol.startswith("-") else ()
    elif symbol.startswith("-"):
        offered = FLAGS
    elif not before and not cell and symbol.startswith("\\"):
        offered = DESCRIBE_COMMANDS
    elif not before and not cell:
        offered = tuple(COMMANDS)
    else:
        offered = ()
    return sorted(c for c in offered if c.startswith(symbol))


def _connection_names() -> list[str]:
    connections = default_connections(create=False)
    return [] if connections is None or connections.closed else connections.names()


def _named(options: str, runtime: Runtime) -> Runtime:
    """The connection a magic's options name (``@prod``, ``--conn prod``), else ``runtime``."""
    try:
        name, rest = connection_prefix(options)
    except OptionError:
        return runtime
    if name is None:
        found = _CONN_RE.search(rest)
        name = found.group(1) if found else None
    connections = default_connections(create=False)
    if name is None or connections is None or connections.closed:
        return runtime
    try:
        # A Tab never opens a declared connection (nor reads the file).
        return connections.get(name, declared=False)
    except OptionError:
        return runtime  # not a connection (yet): complete from the current one


_CONN_RE = re.compile(r"(?:^|\s)--conn(?:=|\s+)([A-Za-z_][\w-]*)")
_LINE_RE = re.compile(r"^(?:\s*[A-Za-z_]\w*\s*=)?\s*(%%?pg)(\s.*)?$")


def sql_suggestions(
    runtime: Runtime, sql: str, pos: int, namespace: Mapping[str, Any]
) -> tuple[str, list[Suggestion]]:
    """The completions at ``pos`` in a cell's SQL, and the word they replace.

    Parameters
    ----------
    runtime : Runtime
    sql : str
    pos : int
    namespace : mapping
        The notebook's variables, for ``$name``.

    Returns
    -------
    (str, list of Suggestion)
    """
    context = context_at(sql, pos)
    if context is None:
        return "", []
    if context.clause is Clause.VARIABLE:
        return context.prefix, [
            Suggestion(name, "variable", type(value).__name__)
            for name, value in namespace.items()
            if name.isidentifier()
            and not name.startswith("_")
            and name.startswith(context.prefix)
            and not callable(value)
            and type(value).__name__ != "module"
        ]
    if not runtime.has_connected:
        # Before the first cell: keywords only, rather than start a server
        # (and print its notes) from a Tab press.
        return context.prefix, suggest(context, catalog.Snapshot([], [], [], []))
    snapshot = catalog.current(runtime)
    wanted = needed(context, snapshot)
    if wanted:
        catalog.columns_of(runtime, snapshot, wanted)
    return context.prefix, suggest(context, snapshot)


def forget_after(cell: str) -> bool:
    """Drop the catalog snapshots when a cell may have changed the catalog.

    Parameters
    ----------
    cell : str
        The raw cell text (``post_run_cell``).

    Returns
    -------
    bool
        Whether the snapshots were dropped.
    """
    lines = cell.lstrip().splitlines()
    if not lines:
        return False
    if lines[0].startswith("%%pg"):
        statements = [s.text for s in params.split("\n".join(lines[1:]))]
    else:
        statements = [_line_sql(m.group(2) or "") for m in map(_LINE_RE.match, lines) if m]
    connects = any(s.split()[:1] == ["connect"] for s in statements)
    if connects or catalog.changes_catalog(statements):
        catalog.forget()
        return True
    return False


def _line_sql(rest: str) -> str:
    """A %pg line past its options (a subcommand stays as it is)."""
    try:
        rest = connection_prefix(rest)[1].strip()
    except OptionError:
        rest = rest.strip()
    offset = sql_offset(rest)
    return rest[offset:] if offset is not None else rest


def complete_code(
    code: str, pos: int, namespace: Mapping[str, Any], runtime: Runtime | None = None
) -> tuple[int, list[Suggestion]] | None:
    """What completes the word at ``pos`` of a cell's code, and where that word starts.

    The kernel's completer and the JupyterLab extension (over pgmagic's comm,
    while a cell runs) both ask this.

    Parameters
    ----------
    code : str
        The whole cell.
    pos : int
        The cursor's offset into ``code``.
    namespace : mapping
        The notebook's variables, for ``$name``.
    runtime : Runtime, optional
        The default runtime if None.

    Returns
    -------
    (int, list of Suggestion) or None
        None where pgmagic has nothing to say (Python code, no runtime).
    """
    runtime = runtime or default_runtime()
    if runtime is None:
        return None
    line_start = code.rfind("\n", 0, pos) + 1
    line_end = code.find("\n", pos)
    line = code[line_start : len(code) if line_end < 0 else line_end]
    first = code.split("\n", 1)[0]
    before = code[line_start:pos]
    if re.match(r"\s*%%pg\b", first) and line_start > 0:
        runtime = _named(first.split("%%pg", 1)[1], runtime)
        if before.lstrip().startswith("\\"):
            # A backslash line of a %%pg cell is a command, as on a %pg line.
            return _backslash(runtime, before.lstrip(), pos)
        body = len(first) + 1
        prefix, found = sql_suggestions(runtime, code[body:], pos - body, namespace)
        return pos - len(prefix), found
    match = _LINE_RE.match(before)
    if match is None or not match.group(2):
        return None
    if match.group(2).lstrip().startswith("\\"):
        return _backslash(runtime, match.group(2).lstrip(), pos)
    symbol = "" if before.endswith((" ", "\t")) else before.split()[-1]
    options = candidates(match.group(1) + match.group(2), symbol)
    if options or match.group(1) == "%%pg":
        return pos - len(symbol), [Suggestion(o, "pgmagic") for o in options]
    runtime = _named(match.group(2), runtime)
    rest = before[match.start(2) :]
    try:
        skipped = len(rest) - len(connection_prefix(rest)[1])  # past "@prod"
    except OptionError:
        return None
    offset = sql_offset(rest[skipped:])
    if offset is None or rest[skipped + offset :].split(None, 1)[0].lower() in COMMANDS:
        return None
    sql_start = line_start + match.start(2) + skipped + offset
    prefix, found = sql_suggestions(
        runtime, line[sql_start - line_start :], pos - sql_start, namespace
    )
    return pos - len(prefix), found


def _backslash(runtime: Runtime, command: str, pos: int) -> tuple[int, list[Suggestion]]:
    r"""``\d ord|``: the command's name first, then the relation it takes."""
    symbol = "" if command.endswith((" ", "\t")) else command.split()[-1]
    if len(command.split()) <= 1 and symbol:
        names = sorted(c for c in DESCRIBE_COMMANDS if c.startswith(symbol))
        return pos - len(symbol), [Suggestion(c, "psql") for c in names]
    # A pattern names relations, as after FROM (psql completes it the same way).
    prefix, found = sql_suggestions(runtime, "TABLE " + symbol, 6 + len(symbol), {})
    return pos - len(prefix), found


def _namespace() -> Mapping[str, Any]:
    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


@context_matcher()  # type: ignore[untyped-decorator]
def _matcher(context: CompletionContext) -> dict[str, Any]:
    lines = context.full_text.split("\n")
    row = min(context.cursor_line, len(lines) - 1)
    pos = sum(len(line) + 1 for line in lines[:row]) + context.cursor_position
    try:
        found = complete_code(context.full_text, pos, _namespace())
    except Exception:  # completion must never raise into the editor
        found = None
    if found is None:
        return {"completions": []}
    start, suggestions = found
    # Ours alone when we have something (Python names are no SQL and no
    # %pg option); otherwise IPython's own completers answer (file names).
    return {
        "completions": [
            SimpleCompletion(s.text, type=s.kind + (f": {s.detail}" if s.detail else ""))
            for s in suggestions
        ],
        "suppress": bool(suggestions),
        "matched_fragment": context.full_text[start:pos],
    }


def register(shell: Any) -> None:
    """Add the completer for ``%pg`` and ``%%pg`` lines.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell
    """
    matchers = shell.Completer.custom_matchers
    if _matcher not in matchers:
        matchers.append(_matcher)


def unregister(shell: Any) -> None:
    """Remove what :func:`register` added.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell
    """
    matchers = shell.Completer.custom_matchers
    if _matcher in matchers:
        matchers.remove(_matcher)
