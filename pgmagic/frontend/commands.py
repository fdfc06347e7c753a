"""The ``%pg`` subcommands: ``connect``, ``status``, ``load``, ``listen``, ...

Each takes the magics object (for the shell's namespace and the runtime) and
the rest of the line, and prints what psql would print.  :data:`COMMANDS`
maps a subcommand's name to its function.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd
from IPython import display as _display

from pgmagic.bulk import load as loading
from pgmagic.errors import OptionError, ParameterError
from pgmagic.frontend import feed, progress
from pgmagic.frontend.options import TOKEN_RE, no_arguments, unquote, words
from pgmagic.frontend.output import print_message
from pgmagic.live import refresh
from pgmagic.live.listener import listener_for, unlisten
from pgmagic.live.send import send
from pgmagic.runtime.loop import Runtime

if TYPE_CHECKING:
    from pgmagic.frontend.magics import PgMagics

__all__ = ["COMMANDS"]

show: Callable[..., None] = _display.display

_NAME = r'(?:"(?:[^"]|"")+"|[^\s."]+)'
_LOAD_RE = re.compile(
    rf"(?P<source>.+?)\s+into\s+(?P<table>{_NAME}(?:\.{_NAME})?)"
    r"(?P<flags>(?:\s+-{1,2}\w+)*)\s*\Z",
    re.IGNORECASE | re.DOTALL,
)
_VARIABLE_RE = re.compile(r"\$[A-Za-z_]\w*")


def _variable(magics: PgMagics, token: str) -> Any:
    name = token[1:]
    if name not in magics.namespace:
        raise ParameterError(f"variable not defined in the notebook: ${name}")
    return magics.namespace[name]


async def _status(runtime: Runtime) -> dict[str, Any]:
    session = await runtime.session()
    return await session.status()


_CONNECT_USAGE = "usage: %pg connect [--pooler] <dsn> | $variable | --embedded"


def connect(magics: PgMagics, rest: str) -> None:
    """``%pg connect [--pooler] DSN | $variable | --embedded``."""
    tokens = rest.strip()
    pooler = tokens == "--pooler" or tokens.startswith("--pooler ")
    if pooler:
        tokens = tokens[len("--pooler") :].strip()
        if tokens.startswith("--embedded"):
            raise OptionError("--pooler needs a DSN: the embedded server has no pooler")
    if tokens.startswith("--embedded"):
        if tokens.split(None, 1)[1:]:
            raise OptionError("--embedded takes no DSN")
        dsn: str | None = "embedded"
    elif not tokens:
        raise OptionError(_CONNECT_USAGE)
    elif "://" in tokens.split()[0] and len(tokens.split()) > 1:
        raise OptionError(f"unexpected text after the DSN: {' '.join(tokens.split()[1:])!r}")
    elif _VARIABLE_RE.fullmatch(tokens):
        dsn = str(_variable(magics, tokens))
    else:
        dsn = tokens.strip("'\"")
        if not dsn.strip():
            raise OptionError(_CONNECT_USAGE)
    runtime = magics.runtime
    runtime.set_target(dsn, pooler=pooler)
    info = runtime.run(_status(runtime), on_message=print_message)
    print(
        f"connected to {info['target']} ({info['server']}, database {info['database']}, "
        f"user {info['user']})"
    )


def disconnect(magics: PgMagics, rest: str) -> None:
    """``%pg disconnect``."""
    no_arguments("disconnect", rest)
    magics.runtime.disconnect()
    print("disconnected; the next statement reconnects")


def status(magics: PgMagics, rest: str) -> None:
    """``%pg status``: the session's facts, the pool's and the listener's."""
    no_arguments("status", rest)
    runtime = magics.runtime
    info = runtime.run(_status(runtime), on_message=print_message)
    listener = listener_for(runtime)
    state = listener.status
    if state.channels:
        info["listener"] = (
            f"{state.state.value} on {', '.join(sorted(state.channels))} "
            f"(backend pid {listener.backend_pid})"
        )
    else:
        info["listener"] = "not listening"
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")


def load(magics: PgMagics, rest: str) -> None:
    """``%pg load DATAFRAME|FILE INTO table [--create | --append | --replace] [-q]``."""
    match = _LOAD_RE.match(rest.strip())
    if match is None:
        raise OptionError(
            "usage: %pg load DATAFRAME|FILE INTO table [--create | --append | --replace] [-q]"
        )
    flags = match.group("flags").split()
    unknown = [f for f in flags if f not in ("--create", "--append", "--replace", "-q", "--quiet")]
    if unknown:
        raise OptionError(f"unknown option {unknown[0]} for %pg load")
    modes = [f[2:] for f in flags if f in ("--create", "--append", "--replace")]
    if len(modes) > 1:
        raise OptionError("choose one of --create, --append, --replace")
    quiet = "-q" in flags or "--quiet" in flags
    if quiet:
        magics.runtime.printer = None
    token = match.group("source").strip().strip("'\"")
    source: Any = token
    if not os.path.exists(os.path.expanduser(token)):
        namespace = magics.namespace
        # A variable, or an expression such as df.head(1000) or df[["a", "b"]].
        with contextlib.suppress(Exception):
            source = namespace[token] if token in namespace else eval(token, namespace)
    if not isinstance(source, pd.DataFrame | str):
        raise OptionError(f"{token} is a {type(source).__name__}; load takes a DataFrame or a file")
    table = match.group("table").strip()
    with progress.Bar(f"→ {table}", quiet=quiet) as bar:
        result = loading.load(
            magics.runtime,
            source,
            table,
            mode=modes[0] if modes else "create",
            on_tick=bar.update,
        )
    if not quiet:
        print(result.summary())


def help_(magics: PgMagics, rest: str) -> None:
    """``%pg help``: the same text as ``%pg?``."""
    print(type(magics).pg.__doc__)


def listen(magics: PgMagics, rest: str) -> None:
    """``%pg listen [--dsn DSN | $variable] CHANNEL ...``: a live feed (lines in a terminal).

    ``--dsn`` connects the listener past a transaction pooler; without it the
    listener uses ``PgMagics.listen_dsn`` (the listener reads it) or the target.
    """
    found = words(rest)
    dsn: str | None = None
    if found and (found[0] == "--dsn" or found[0].startswith("--dsn=")):
        given = found[0][len("--dsn=") :] if "=" in found[0] else None
        if given is None:
            if len(found) < 2:
                raise OptionError("usage: %pg listen [--dsn DSN] CHANNEL [CHANNEL ...]")
            given, found = found[1], found[2:]
        else:
            found = found[1:]
        dsn = str(_variable(magics, given)) if _VARIABLE_RE.fullmatch(given) else given
        if not dsn.strip():
            raise OptionError("usage: %pg listen [--dsn DSN] CHANNEL [CHANNEL ...]")
    if any(word.startswith("--") for word in found):
        raise OptionError("usage: %pg listen [--dsn DSN] CHANNEL [CHANNEL ...]")
    if type(magics.shell).__name__ == "TerminalInteractiveShell":
        # Terminal IPython shows no widgets: print the notifications instead.
        feed.listen_as_text(magics.runtime, found, on_message=print_message, dsn=dsn)
        return
    show(feed.listen(magics.runtime, found, on_message=print_message, dsn=dsn))


def unlisten_(magics: PgMagics, rest: str) -> None:
    """``%pg unlisten CHANNEL ... | --all``."""
    found = words(rest)
    if not found or ("--all" in found and len(found) > 1):
        raise OptionError("usage: %pg unlisten CHANNEL [CHANNEL ...] | --all")
    stopped = unlisten(magics.runtime, None if found == ["--all"] else found)
    print(f"stopped listening on {', '.join(stopped)}" if stopped else "was not listening")


def notify(magics: PgMagics, rest: str) -> None:
    """``%pg notify CHANNEL [PAYLOAD | $variable]``."""
    match = TOKEN_RE.match(rest)
    if match is None:
        raise OptionError("usage: %pg notify CHANNEL [PAYLOAD | $variable]")
    channel, payload = unquote(match.group(1)), rest[match.end() :].strip()
    value: Any = unquote(payload) if payload else None
    if _VARIABLE_RE.fullmatch(payload):
        value = _variable(magics, payload)
    if send(magics.runtime, channel, value, on_message=print_message):
        print("NOTIFY queued: the server delivers it when the transaction commits")


def stop(magics: PgMagics, rest: str) -> None:
    """``%pg stop``: end every ``--refresh-on`` and ``--watch``."""
    stopped = refresh.stop_all(magics.runtime)
    print(f"stopped {stopped} refresh{'' if stopped == 1 else 'es'}")


COMMANDS: dict[str, Callable[[PgMagics, str], None]] = {
    "connect": connect,
    "disconnect": disconnect,
    "status": status,
    "help": help_,
    "listen": listen,
    "unlisten": unlisten_,
    "notify": notify,
    "stop": stop,
    "load": load,
}
