r"""How a ``%pg`` line splits into words: shell-like quoting and ``#`` comments.

One set of rules for every option and subcommand, as a POSIX shell reads a
command line: words are separated by whitespace; ``'...'`` keeps everything
inside as is; ``"..."`` keeps everything but ``\"`` and ``\\``; a backslash
outside quotes keeps the next character; an unquoted ``#`` at the start of a
word begins a comment that runs to the end of the line.  Quoted parts join
the word around them (``--to="my file.csv"``).

Words are read lazily (:func:`iter_words`), so a caller can stop where SQL
begins: SQL follows its own rules (``#`` is an operator there, and
``'O''Brien'`` is one literal), and the rest of the line is handed on verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pgmagic.errors import OptionError

__all__ = ["Word", "iter_words", "split"]

_WORD_END = re.compile(r"""[\s'"\\]""")


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a line.

    Attributes
    ----------
    text : str
        The word with its quotes and escapes removed.
    start, end : int
        Where it stands in the line (quotes included).
    quoted : bool
        Whether any part of it was quoted or escaped (a quoted ``#`` or
        ``--x`` is text, never a comment or an option).
    """

    text: str
    start: int
    end: int
    quoted: bool


def iter_words(line: str, start: int = 0) -> Iterator[Word]:
    """The words of ``line`` from ``start``, up to a comment or the end.

    Parameters
    ----------
    line : str
    start : int
        Where to begin reading.

    Yields
    ------
    Word

    Raises
    ------
    OptionError
        A quote is not closed (raised when the reader gets there).
    """
    position, size = start, len(line)
    while True:
        while position < size and line[position].isspace():
            position += 1
        if position >= size or line[position] == "#":
            return
        begin, parts, quoted = position, [], False
        while position < size and not line[position].isspace():
            char = line[position]
            if char == "'":
                close = line.find("'", position + 1)
                if close < 0:
                    raise _unclosed("'", position)
                parts.append(line[position + 1 : close])
                position, quoted = close + 1, True
            elif char == '"':
                position, text = _double_quoted(line, position)
                parts.append(text)
                quoted = True
            elif char == "\\":
                parts.append(line[position + 1 : position + 2])
                position, quoted = position + 2, True
            else:
                match = _WORD_END.search(line, position)
                stop = match.start() if match else size
                parts.append(line[position:stop])
                position = stop
        yield Word("".join(parts), begin, position, quoted)


def _double_quoted(line: str, position: int) -> tuple[int, str]:
    """Read ``"..."`` at ``position``; return where it ends and its text."""
    opened = position
    parts: list[str] = []
    position += 1
    while position < len(line):
        char = line[position]
        if char == '"':
            return position + 1, "".join(parts)
        if char == "\\" and line[position + 1 : position + 2] in ('"', "\\"):
            parts.append(line[position + 1])
            position += 2
        else:
            parts.append(char)
            position += 1
    raise _unclosed('"', opened)


def _unclosed(quote: str, position: int) -> OptionError:
    # Where, not what: the line may hold a password (%pg connect).
    return OptionError(f"no closing {quote} for the quote at character {position + 1}")


def split(line: str) -> list[Word]:
    """All the words of ``line``, up to a comment.

    Parameters
    ----------
    line : str

    Returns
    -------
    list of Word

    Raises
    ------
    OptionError
        A quote is not closed.
    """
    return list(iter_words(line))
