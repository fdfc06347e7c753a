"""Connections declared in a file beside the notebook, by name: a DSN or a service.

The nearest of these, from the notebook's working folder upward, declares them::

    # pgmagic.toml                      # or pyproject.toml
    [connections]                       # [tool.pgmagic.connections]
    prod = "service=prod"
    dev = "postgresql://me@localhost/dev"

``%%pg @prod`` (or ``%pg connect prod``) opens a declared connection when it is
first named.  The file is meant to be committed, so it may not hold a
password: the secret comes from ``.pgpass``, a service file or the
environment, as libpq's own clients read them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgmagic.errors import ConnectError
from pgmagic.runtime import dsn as dsn_module

__all__ = ["Declared", "find", "is_name"]

# Each folder's files, nearest first, and where in each the table is.
_FILES = (
    ("pgmagic.toml", ("connections",)),
    ("pyproject.toml", ("tool", "pgmagic", "connections")),
)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Names the kernel's own default connection answers to.
_RESERVED = ("default", dsn_module.EMBEDDED)


def is_name(text: str) -> bool:
    """Whether ``text`` can name a connection: a letter or ``_``, then letters, digits, ``_ -``.

    Parameters
    ----------
    text : str

    Returns
    -------
    bool

    Examples
    --------
    >>> is_name("prod"), is_name("host=db"), is_name("postgresql://db")
    (True, False, False)
    """
    return _NAME_RE.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Declared:
    """The connections one file declares.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    dsns : dict
        Name to DSN (never shown: use :meth:`describe`).
    """

    path: Path
    dsns: dict[str, str] = field(repr=False)

    def describe(self, name: str) -> str:
        """Where ``name`` connects, as ``%pg connections`` shows a target."""
        value = self.dsns[name]
        if value.strip().lower() == dsn_module.EMBEDDED:
            return dsn_module.Target(None, str(self.path), embedded=True).describe()
        return dsn_module.Target(dsn_module.normalize(value), str(self.path)).describe()


def find(start: Path | None = None) -> Declared | None:
    """The declared connections nearest to ``start``, looking upward.

    Parameters
    ----------
    start : pathlib.Path, optional
        Default: the working folder (a notebook's own, in Jupyter).

    Returns
    -------
    Declared or None
        None when no ``pgmagic.toml`` or ``pyproject.toml`` on the way up
        declares connections.

    Raises
    ------
    ConnectError
        The nearest such file cannot be read, or declares a name, a value or
        a password it should not.

    Examples
    --------
    >>> find(Path("/nonexistent")) is None
    True
    """
    folder = (start or Path.cwd()).absolute()
    for directory in (folder, *folder.parents):
        for filename, keys in _FILES:
            path = directory / filename
            if not path.is_file():
                continue
            table = _table(path, keys)
            if table is not None:
                return Declared(path, _checked(path, table))
    return None


def _table(path: Path, keys: tuple[str, ...]) -> dict[str, Any] | None:
    try:
        data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        # tomllib says where (line, column), never what the line holds.
        raise ConnectError(f"cannot read {path}: {error}") from None
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConnectError(f"{path}: [{'.'.join(keys)}] must be a table of name = DSN")
    return data


def _checked(path: Path, table: dict[str, Any]) -> dict[str, str]:
    dsns: dict[str, str] = {}
    for name, value in table.items():
        if not is_name(name) or name in _RESERVED:
            raise ConnectError(
                f"{path}: cannot name a connection {name!r} (a name such as prod or dev_2; "
                "default and embedded are the kernel's own)"
            )
        if not isinstance(value, str):
            raise ConnectError(
                f'{path}: connection {name} must be a string: "service=NAME" or a DSN'
            )
        if value.strip().lower() == dsn_module.EMBEDDED:
            dsns[name] = value
            continue
        try:
            url = dsn_module.normalize(value)
        except ConnectError as error:
            raise ConnectError(f"{path}: connection {name}: {error}") from None
        if dsn_module.password_of(url):
            raise ConnectError(
                f"{path}: connection {name} holds a password; keep it in ~/.pgpass "
                "(PGPASSFILE) or a service file, not in a file beside the notebook"
            )
        dsns[name] = value
    return dsns
