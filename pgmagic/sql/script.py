r"""A cell as psql reads it: SQL, and lines that are backslash commands (``\d orders``).

A line whose first non-blank character is a backslash is a command when it
starts outside any string, quoted identifier, comment or dollar quote of
the SQL before it; the command runs to the end of its line, as psql's do,
and ends the statement before it (a statement needs no ``;`` before a
command, as it needs none at the end of a cell).  Everything else is SQL,
split into statements by :func:`pgmagic.sql.params.split`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgmagic.sql.lexer import scan

__all__ = ["Piece", "has_commands", "only", "split"]

_CANDIDATE = re.compile(r"^[ \t]*\\", re.MULTILINE)
_NOT_NEWLINE = re.compile(r"[^\n]")


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of SQL, or one command line, of a cell.

    Attributes
    ----------
    text : str
        The SQL as written, or the command line without its indentation.
    start, end : int
        Where it stands in the cell.
    command : bool
        Whether this is a backslash command.
    """

    text: str
    start: int
    end: int
    command: bool


def split(cell: str) -> list[Piece]:
    r"""Cut a cell into SQL and command lines, in order.

    Parameters
    ----------
    cell : str

    Returns
    -------
    list of Piece
        SQL pieces holding only blanks are left out.

    Examples
    --------
    >>> [(p.command, p.text) for p in split("SELECT 1;\n\\dt\nSELECT 2")]
    [(False, 'SELECT 1;\n'), (True, '\\dt'), (False, '\nSELECT 2')]
    """
    pieces: list[Piece] = []
    start = 0
    for match in _CANDIDATE.finditer(cell):
        line = match.start()
        if line < start:
            continue
        before = cell[start:line]
        # Lexing the SQL before it to its end means the line starts outside
        # any quote or comment (an unclosed one makes scan give None).
        if scan(before) is None:
            continue
        end = cell.find("\n", line)
        end = len(cell) if end < 0 else end
        if before.strip():
            pieces.append(Piece(before, start, line, False))
        pieces.append(Piece(cell[line:end].strip(), line, end, True))
        start = end
    if cell[start:].strip():
        pieces.append(Piece(cell[start:], start, len(cell), False))
    return pieces


def has_commands(cell: str) -> bool:
    """Whether a cell holds a backslash command line.

    Parameters
    ----------
    cell : str

    Returns
    -------
    bool
    """
    return "\\" in cell and any(piece.command for piece in split(cell))


def only(cell: str, piece: Piece) -> str:
    """The cell with everything but ``piece`` blanked out, newlines kept.

    Errors in the piece's SQL then point at the cell's own lines and
    columns.

    Parameters
    ----------
    cell : str
    piece : Piece

    Returns
    -------
    str
    """
    before = _NOT_NEWLINE.sub(" ", cell[: piece.start])
    after = _NOT_NEWLINE.sub(" ", cell[piece.end :])
    return before + cell[piece.start : piece.end] + after
