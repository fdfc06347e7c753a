"""Where the database comes from, and how a DSN is shown without its password.

First match wins:

1. ``%pg connect <dsn>`` (a URL, a SQLAlchemy-style URL or a libpq keyword string);
2. the ``PGMAGIC_DSN`` environment variable;
3. the ``DATABASE_URL`` environment variable;
4. ``PGSERVICE``: that service of the service file;
5. libpq's ``PG*`` variables (``PGHOST``, ``PGDATABASE``, ...) and ``.pgpass``, as
   asyncpg reads them;
6. otherwise the embedded server (see :mod:`pgmagic.embedded`).

The word ``embedded`` in place of a DSN picks the embedded server explicitly.
A DSN may name a service (``service=prod``, ``postgresql:///?service=prod``):
asyncpg reads it from ``PGSERVICEFILE`` or ``~/.pg_service.conf``, and the
password from ``.pgpass`` (``PGPASSFILE``), so it never enters the notebook.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from pgmagic.errors import ConnectError

__all__ = ["EMBEDDED", "Target", "normalize", "password_of", "redact", "resolve"]

EMBEDDED = "embedded"

_LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
_KEYWORD_RE = re.compile(
    r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)""",
)
_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class Target:
    """A database to connect to.

    Attributes
    ----------
    dsn : str or None
        A ``postgresql://`` URL for asyncpg; ``None`` lets asyncpg read libpq's
        environment variables; ignored when ``embedded``.
    source : str
        Where it came from (``"%pg connect"``, ``"PGMAGIC_DSN"``, ...), for messages.
    embedded : bool
        Use the embedded server.
    """

    dsn: str | None
    source: str
    embedded: bool = False

    def __repr__(self) -> str:
        shown = EMBEDDED if self.embedded else redact(self.dsn or "libpq environment")
        return f"Target({shown!r}, source={self.source!r})"

    def describe(self) -> str:
        """A one-line description that never shows a password."""
        if self.embedded:
            return "embedded PostgreSQL"
        return redact(self.dsn) if self.dsn else "libpq environment (PG* variables)"


def _unquote_keyword(value: str) -> str:
    if value.startswith("'") and value.endswith("'") and len(value) >= 2:
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _keywords_to_url(text: str) -> str:
    pairs: list[tuple[str, str]] = []
    position = 0
    stripped = text.strip()
    while position < len(stripped):
        match = _KEYWORD_RE.match(stripped, position)
        if match is None:
            raise ConnectError(
                "cannot read the connection string: expected key=value pairs "
                "such as 'host=localhost dbname=mydb'"
            )
        key = "database" if match.group(1) == "dbname" else match.group(1)
        pairs.append((key, _unquote_keyword(match.group(2))))
        position = match.end()
        while position < len(stripped) and stripped[position].isspace():
            position += 1
    return "postgresql://?" + urlencode(pairs, quote_via=quote)


def normalize(dsn: str) -> str:
    """Turn any accepted DSN form into a URL asyncpg understands.

    Parameters
    ----------
    dsn : str
        ``postgresql://...``, ``postgres://...``, ``postgresql+asyncpg://...``
        (any SQLAlchemy driver suffix), or a libpq keyword string
        (``host=localhost dbname=mydb user=me``).

    Returns
    -------
    str

    Raises
    ------
    ConnectError
        The text is none of the accepted forms.

    Examples
    --------
    >>> normalize("postgresql+psycopg2://u@h/db")
    'postgresql://u@h/db'
    >>> normalize("host=/tmp dbname=x")
    'postgresql://?host=%2Ftmp&database=x'
    >>> normalize("postgresql:///?service=prod")
    'postgresql://?service=prod'
    """
    text = dsn.strip()
    match = re.match(r"([A-Za-z][A-Za-z0-9.+-]*)://", text)
    if match:
        scheme = match.group(1).lower()
        base = scheme.split("+", 1)[0]
        if base not in _SCHEMES:
            raise ConnectError(
                f"unsupported URL scheme {scheme!r}: use postgresql://, postgres:// "
                "or postgresql+<driver>://"
            )
        # An empty database ("postgresql:///?service=x") is no database to
        # libpq, but asyncpg takes "" as one, which hides the service's dbname.
        rest = re.sub(r"^([^/?#]*)/(?=[?#]|$)", r"\1", text[match.end() :])
        return "postgresql://" + rest
    if "=" in text:
        return _keywords_to_url(text)
    raise ConnectError(
        "cannot read the connection string: give a postgresql:// URL, "
        "a libpq keyword string (host=... dbname=...), or 'embedded'"
    )


def redact(dsn: str) -> str:
    """Hide the password in a DSN.

    Parameters
    ----------
    dsn : str
        A URL or keyword string.

    Returns
    -------
    str
        The same DSN with any password replaced by ``***``.

    Examples
    --------
    >>> redact("postgresql://me:s3cret@db.example.com/app")
    'postgresql://me:***@db.example.com/app'
    """
    text = dsn.strip()
    if "://" not in text:
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)", r"\1***", text)
    scheme, rest = text.split("://", 1)
    # Everything up to the last "@" is user information, even when a password
    # holds "/", "?", "#" or "@" that were not percent-encoded (a URL parser
    # would then misplace it, and show part of it).
    if "@" in rest:
        userinfo, host = rest.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        rest = f"{userinfo}@{host}"
    rest = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", rest)
    return f"{scheme}://{rest}"


def password_of(dsn: str) -> str | None:
    """The password a URL carries, if any (to scrub it from messages).

    Parameters
    ----------
    dsn : str
        A URL as produced by :func:`normalize`.

    Returns
    -------
    str or None
    """
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return None
    if parts.password:
        return unquote(parts.password)
    for key, value in parse_qsl(parts.query):
        if key == "password" and value:
            return value
    return None


def resolve(explicit: str | None, environ: Mapping[str, str] | None = None) -> Target:
    """Pick the database, first match wins (see the module docstring).

    Parameters
    ----------
    explicit : str or None
        The DSN given to ``%pg connect``, if any.
    environ : mapping, optional
        Environment to read; defaults to ``os.environ``.

    Returns
    -------
    Target
    """
    env = os.environ if environ is None else environ
    candidates = [
        ("%pg connect", explicit),
        ("PGMAGIC_DSN", env.get("PGMAGIC_DSN")),
        ("DATABASE_URL", env.get("DATABASE_URL")),
    ]
    service = env.get("PGSERVICE")
    if service and service.strip():
        # asyncpg reads the service file only for a DSN that names the service.
        candidates.append(("PGSERVICE", "postgresql://?" + urlencode({"service": service})))
    for source, value in candidates:
        if value and value.strip():
            if value.strip().lower() == EMBEDDED:
                return Target(None, source, embedded=True)
            try:
                url = normalize(value)
                _check_service(url, env)
            except ConnectError as error:
                raise ConnectError(f"{source}: {error}") from None
            return Target(url, source)
    if any(env.get(name) for name in _LIBPQ_ENV):
        return Target(None, "PG* environment")
    return Target(None, "default", embedded=True)


def _check_service(url: str, env: Mapping[str, str]) -> None:
    """Refuse a service the service file does not define (asyncpg would ignore it).

    Without this, a misspelt service connects to the defaults (a local
    server, the OS user) and fails with a message that does not say why.
    """
    try:
        query = parse_qsl(urlsplit(url).query)
    except ValueError:
        return  # asyncpg's own message says what is wrong with the URL
    names = [value for key, value in query if key == "service"]
    if not names:
        return
    name = names[-1]
    given = env.get("PGSERVICEFILE")
    path = Path(given).expanduser() if given else Path.home() / ".pg_service.conf"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        found = bool(parser.read(path)) and parser.has_section(name)
    except configparser.Error as error:
        # Not the parser's message: it quotes the file's lines, passwords included.
        raise ConnectError(f"cannot read the service file {path}: {type(error).__name__}") from None
    if not found:
        where = "PGSERVICEFILE" if given else "no PGSERVICEFILE set"
        raise ConnectError(f"service {name!r} is not defined in {path} ({where})")
