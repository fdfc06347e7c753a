r"""A psql backslash command as typed: its name, its ``S`` and ``+`` modifiers, its arguments.

psql reads the arguments of a describe command as words separated by
whitespace; ``"..."`` stays in the word (it is part of the pattern: a quoted
name keeps its case), ``'...'`` is taken literally (``''`` is one quote).
Only the describe commands are read here; which answer the others get
is the front's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgmagic.catalog.patterns import translate
from pgmagic.errors import MetaCommandError

__all__ = ["MetaCommand", "command_name", "parse", "parts"]

# \dt, \dv, \dm, \di, \ds, \dE and their combinations (\dtv) list relations.
RELATION_LETTERS = "tvmisE"
# \df's letters choose kinds of routine: aggregates, normal, procedures, trigger, window.
FUNCTION_LETTERS = "anptw"

_NAME = re.compile(r"\\([A-Za-z_]+\+?|[?!])")


@dataclass(frozen=True, slots=True)
class MetaCommand:
    r"""One backslash command.

    Attributes
    ----------
    text : str
        The command as typed, backslash included (``\dt+``).
    kind : str
        The command without ``S``, ``+`` and type letters: ``d``, ``dn``,
        ``df``, ``dT``, ``dx``, ``du``, ``l``, ``conninfo``, ``list`` for the
        relation listings (``\dt``, ``\dv`` ...), or ``sf`` and ``sv`` (a
        function's or a view's definition).
    letters : str
        The type letters: ``tv`` for ``\dtv``, ``p`` for ``\dfp``.
    system : bool
        ``S``: include system objects.
    verbose : bool
        ``+``: more columns.
    pattern : str or None
        The argument, as psql reads it (double quotes kept); for ``\sf``
        and ``\sv`` the rest of the line (``plp(int, text)``).
    """

    text: str
    kind: str
    letters: str = ""
    system: bool = False
    verbose: bool = False
    pattern: str | None = None


def parts(kind: str) -> int:
    """How many dotted names a pattern of this kind of command may have, as psql counts them.

    Parameters
    ----------
    kind : str
        :attr:`MetaCommand.kind`.

    Returns
    -------
    int
        3 for what lives in a schema (``db.schema.name``), 2 for schemas,
        1 for databases, roles and extensions.
    """
    return 3 if kind in ("d", "list", "df", "dT") else 2 if kind == "dn" else 1


def command_name(line: str) -> str:
    r"""The command word of a backslash line (``\dt+`` of ``\dt+ public.*``).

    Parameters
    ----------
    line : str
        Starting with a backslash.

    Returns
    -------
    str
    """
    match = _NAME.match(line.strip())
    return match.group(0) if match else line.strip()[:2]


def _words(text: str) -> list[str]:
    """The argument words as psql reads them: ``"..."`` kept, ``'...'`` literal."""
    words: list[str] = []
    i, size = 0, len(text)
    while True:
        while i < size and text[i].isspace():
            i += 1
        if i >= size:
            return words
        parts: list[str] = []
        while i < size and not text[i].isspace():
            char = text[i]
            if char in "\"'":
                close = i + 1
                while True:
                    close = text.find(char, close)
                    if close < 0:
                        raise MetaCommandError(f"unterminated quoted string: {text.strip()}")
                    if text[close + 1 : close + 2] != char:
                        break
                    close += 2
                body = text[i + 1 : close]
                parts.append(f'"{body}"' if char == '"' else body.replace("''", "'"))
                i = close + 1
            else:
                parts.append(char)
                i += 1
        words.append("".join(parts))


def _split_name(name: str) -> tuple[str, str, bool, bool] | None:
    """``dtS+`` -> (kind, letters, system, verbose); None when it is no describe command."""
    verbose = name.endswith("+")
    base = name.rstrip("+")
    if base in ("conninfo", "l", "list"):
        return ("conninfo" if base == "conninfo" else "l"), "", False, verbose
    if base in ("sf", "sv"):
        return base, "", False, verbose
    system = "S" in base
    letters = base.replace("S", "")
    if letters in ("d", "dn", "dT", "dx", "du", "dg"):
        return ("du" if letters == "dg" else letters), "", system, verbose
    if letters.startswith("df") and all(c in FUNCTION_LETTERS for c in letters[2:]):
        return "df", letters[2:], system, verbose
    if letters.startswith("d") and all(c in RELATION_LETTERS for c in letters[1:]):
        return "list", letters[1:], system, verbose
    return None


def parse(line: str) -> MetaCommand | None:
    r"""Read a describe command; None when the line holds another backslash command.

    Parameters
    ----------
    line : str
        ``\dt+ public.*``, ``\d "Mixed Case"``.

    Returns
    -------
    MetaCommand or None

    Raises
    ------
    MetaCommandError
        More arguments than the command takes, an unclosed quote, or a
        pattern with too many dotted names.

    Examples
    --------
    >>> found = parse(r"\dtS+ public.*")
    >>> found.kind, found.letters, found.system, found.verbose, found.pattern
    ('list', 't', True, True, 'public.*')
    """
    text = line.strip()
    name = command_name(text)
    found = _split_name(name[1:])
    if found is None:
        return None
    kind, letters, system, verbose = found
    if kind in ("sf", "sv"):
        # psql reads the whole line: a signature has spaces (plp(int, text)).
        whole = text[len(name) :].strip()
        if not whole:
            what = "function" if kind == "sf" else "view"
            raise MetaCommandError(f"{name}: {what} name is required")
        return MetaCommand(name, kind, verbose=verbose, pattern=whole)
    words = _words(text[len(name) :])
    takes = 0 if kind == "conninfo" else 1
    if len(words) > takes:
        extra = words[takes]
        raise MetaCommandError(
            f'{name}: extra argument "{extra}" (pgmagic takes '
            + ("no argument here)" if not takes else "one pattern; quote a name with spaces)")
        )
    if words:
        # Too many dots is an error before any I/O, so a cell stops before it runs.
        translate(words[0], parts=parts(kind))
    return MetaCommand(name, kind, letters, system, verbose, words[0] if words else None)
