"""Tab completion of ``%pg`` subcommands and options, by IPython's own completer.

This is the kernel-side completer, which front ends without pgmagic's
JupyterLab extension use (terminal IPython, VS Code, Notebook 7) while the
kernel is idle.  It completes what ``%pg?`` lists: subcommands in the first
word, and the options of the cell or of the subcommand after a ``-``; psql's
describe commands after a backslash (instead of IPython's LaTeX names), on
a ``%pg`` line or a line of a ``%%pg`` cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from IPython.core.completer import CompletionContext, SimpleCompletion, context_matcher

from pgmagic.frontend.commands import COMMANDS
from pgmagic.frontend.options import FLAGS
from pgmagic.frontend.psql import DESCRIBE_COMMANDS

__all__ = ["register", "unregister"]

# The options each subcommand takes (the cell options are FLAGS).
_SUBCOMMAND_FLAGS: dict[str, tuple[str, ...]] = {
    "connect": ("--pooler", "--embedded"),
    "listen": ("--dsn",),
    "unlisten": ("--all",),
    "load": ("--create", "--append", "--replace", "-q", "--quiet"),
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
    command = before[0].lower() if before and before[0].lower() in COMMANDS else None
    offered: Sequence[str]
    if command is not None:
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


_LINE_RE = re.compile(r"^(?:\s*[A-Za-z_]\w*\s*=)?\s*(%%?pg)(\s.*)?$")


@context_matcher()  # type: ignore[untyped-decorator]
def _matcher(context: CompletionContext) -> dict[str, Any]:
    # The line under the cursor: in a cell, the %%pg line; after "df = " too.
    line = context.text_until_cursor.rsplit("\n", 1)[-1]
    match = _LINE_RE.match(line)
    if match is None and context.full_text.lstrip().startswith("%%pg"):
        # A backslash line of a %%pg cell is a command, as on a %pg line.
        match = _LINE_RE.match("%pg " + line.lstrip()) if line.lstrip()[:1] == "\\" else None
    if match is None:
        return {"completions": []}
    symbol = "" if line.endswith((" ", "\t")) else line.split()[-1]
    found = candidates(match.group(1) + (match.group(2) or ""), symbol) if match.group(2) else []
    # Ours alone when we have something (Python names are no %pg option);
    # otherwise IPython's own completers answer (file names, variables).
    return {
        "completions": [SimpleCompletion(text, type="pgmagic") for text in found],
        "suppress": bool(found),
        "matched_fragment": symbol,
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
