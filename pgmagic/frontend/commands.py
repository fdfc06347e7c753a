"""The ``%pg`` subcommands: ``connect``, ``use``, ``status``, ``load``, ``listen``, ``history``, ...

Each takes the magics object (for the shell's namespace and the runtime) and
the rest of the line, and prints what psql would print.  :data:`COMMANDS`
maps a subcommand's name to its function; :func:`find` also sends a line
starting with a backslash to psql's commands (:mod:`pgmagic.frontend.psql`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from pgmagic.bulk import load as loading
from pgmagic.bulk.sources import arrow_frames
from pgmagic.catalog import snapshot as catalog
from pgmagic.errors import ConnectError, OptionError, ParameterError
from pgmagic.frontend import feed, progress, psql, terminal
from pgmagic.frontend import tables as shown
from pgmagic.frontend.lines import Word, split
from pgmagic.frontend.options import channel_name, no_arguments
from pgmagic.frontend.output import print_message
from pgmagic.live import jobs as background_jobs
from pgmagic.live import refresh
from pgmagic.live.listener import listener_for, unlisten
from pgmagic.live.send import send
from pgmagic.results import history as recorded
from pgmagic.runtime import dsn as dsn_module
from pgmagic.runtime.connections import is_name
from pgmagic.runtime.loop import Runtime

if TYPE_CHECKING:
    from pgmagic.frontend.magics import PgMagics

__all__ = ["COMMANDS", "find"]

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_\u0080-\U0010ffff][\w$]*)'
_TABLE_RE = re.compile(rf"{_NAME}(?:\.{_NAME})?")
_VARIABLE_RE = re.compile(r"\$[A-Za-z_]\w*")


def _variable(magics: PgMagics, token: str) -> Any:
    name = token[1:]
    if name not in magics.namespace:
        raise ParameterError(f"variable not defined in the notebook: ${name}")
    return magics.namespace[name]


async def _status(runtime: Runtime) -> dict[str, Any]:
    session = await runtime.session()
    return await session.status()


_CONNECT_USAGE = (
    "usage: %pg connect [--pooler] <dsn> | $variable | --embedded "
    "(named: %pg connect NAME <dsn>; switch: %pg connect NAME)"
)


def connect(magics: PgMagics, rest: str) -> None:
    """``%pg connect [NAME] [--pooler] DSN | $variable | --embedded``, or ``%pg connect NAME``.

    Without a name the default connection gets the new target (as before
    named connections); with one, that connection is added or pointed
    elsewhere.  Either becomes current.  A lone name switches to it.
    """
    found = split(rest)
    flags: list[str] = []
    name: str | None = None
    while found and not found[0].quoted:
        text = found[0].text
        if text.startswith("--"):
            if text not in ("--pooler", "--embedded"):
                raise OptionError(f"unknown option {text} for %pg connect")
            flags.append(found.pop(0).text)
        elif name is None and is_name(text) and text.lower() != dsn_module.EMBEDDED:
            name = found.pop(0).text
        else:
            break
    pooler = "--pooler" in flags
    if name is not None and not flags and not found:
        use(magics, name)
        return
    dsn: str | None
    if "--embedded" in flags:
        if pooler:
            raise OptionError("--pooler needs a DSN: the embedded server has no pooler")
        if found:
            raise OptionError("--embedded takes no DSN")
        dsn = "embedded"
    elif not found:
        raise OptionError(_CONNECT_USAGE)
    elif len(found) == 1:
        word = found[0]
        dsn = word.text
        if not word.quoted and _VARIABLE_RE.fullmatch(dsn):
            dsn = str(_variable(magics, dsn))
    elif "://" in found[0].text or not all("=" in word.text for word in found):
        # Counted, not quoted: the text may hold a password.
        more = len(found) - 1
        raise OptionError(
            f"unexpected text after the DSN ({more} more word{'s' if more > 1 else ''}); "
            'quote a libpq keyword string whose values have spaces: "host=h dbname=d"'
        )
    else:
        # A libpq keyword string (host=... dbname=...), its quoting as libpq reads it.
        dsn = rest[found[0].start : found[-1].end]
    if not dsn.strip():
        raise OptionError(_CONNECT_USAGE)
    runtime = magics.connections.open(name, dsn, pooler=pooler)
    info = runtime.run(_status(runtime), on_message=print_message)
    named = "" if name is None else f"{runtime.connection_name()}: "
    print(
        f"{named}connected to {info['target']} ({info['server']}, database {info['database']}, "
        f"user {info['user']})"
    )


def use(magics: PgMagics, rest: str) -> None:
    """``%pg use NAME``: later cells run on connection NAME."""
    found = split(rest)
    if len(found) != 1:
        raise OptionError("usage: %pg use NAME (%pg connections lists them)")
    runtime = magics.connections.use(found[0].text)
    print(f"using {runtime.connection_name()} ({runtime.describe_target()})")


async def _facts(runtime: Runtime) -> dict[str, Any]:
    """One row of ``%pg connections``; no connection is opened for it."""
    row: dict[str, Any] = {
        "name": runtime.connection_name(),
        "target": runtime.describe_target(),
        "server": None,
        "database": None,
        "user": None,
        "backend pid": None,
        "transaction": None,
    }
    if runtime.session_if_open() is None:
        row["server"] = "not connected"
        return row
    try:
        info = await (await runtime.session()).status()
    except ConnectError as error:
        row["server"] = f"unreachable: {error}"
        return row
    for key in ("server", "database", "user", "backend pid", "transaction"):
        row[key] = info[key]
    return row


def connections(magics: PgMagics, rest: str) -> pd.DataFrame:
    """``%pg connections``: each connection's target, server, session pid and transaction."""
    no_arguments("connections", rest)
    current = magics.connections.current
    rows = []
    for runtime in magics.connections.runtimes():
        row = runtime.run(_facts(runtime), on_message=print_message)
        row["current"] = "*" if runtime is current else ""
        rows.append(row)
    declarations = magics.connections.declarations()
    if declarations is not None:
        opened = {row["name"] for row in rows}
        for name in declarations.dsns:
            if name not in opened:
                row = dict.fromkeys(rows[0])
                row.update(
                    name=name,
                    target=declarations.describe(name),
                    server=f"declared in {declarations.path}; opens when named",
                    current="",
                )
                rows.append(row)
    frame = pd.DataFrame(rows)
    shown.remember(frame, shown.ResultInfo(None, None))
    return frame


def close(magics: PgMagics, rest: str) -> None:
    """``%pg close NAME``: close a connection's session, pool and listener."""
    found = split(rest)
    if len(found) != 1:
        raise OptionError("usage: %pg close NAME (%pg connections lists them)")
    name = found[0].text
    connections = magics.connections
    try:
        closing = connections.get(name, declared=False)
    except OptionError as error:
        # %pg CLOSE my_cursor reaches here too: say where SQL's CLOSE goes.
        raise OptionError(f"{error} (SQL's CLOSE: run it in a %%pg cell)") from None
    before = connections.current
    after = connections.close_one(name)
    if closing is connections.default:
        print(f"{closing.connection_name()}: disconnected; the next statement reconnects")
    elif after is not before:
        print(f"closed {name}; using {after.connection_name()} ({after.describe_target()})")
    else:
        print(f"closed {name}")


def disconnect(magics: PgMagics, rest: str) -> None:
    """``%pg disconnect``."""
    no_arguments("disconnect", rest)
    magics.runtime.disconnect()
    print("disconnected; the next statement reconnects")


def status(magics: PgMagics, rest: str) -> None:
    """``%pg status``: the session's facts, the pool's and the listener's."""
    no_arguments("status", rest)
    runtime = magics.runtime
    try:
        info = runtime.run(_status(runtime), on_message=print_message)
    except ConnectError as error:
        # What a user runs when things are broken: say what is known.
        info = {"target": runtime.describe_target(), "server": f"unreachable: {error}"}
        pool = runtime.pool_if_open()
        info["pool"] = "not started" if pool is None else f"{pool.get_size()} open"
    info = {"connection": runtime.connection_name(), **info}
    listener = listener_for(runtime)
    state = listener.status
    if state.channels:
        info["listener"] = (
            f"{state.state.value} on {', '.join(sorted(state.channels))} "
            f"(backend pid {listener.backend_pid})"
        )
    else:
        info["listener"] = "not listening"
    store = runtime.history
    if not store.enabled:
        info["history"] = "off (%config PgMagics.history = True records)"
    else:
        info["history"] = "in memory only" if store.in_memory else str(store.path)
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")


_LOAD_USAGE = "usage: %pg load DATAFRAME|FILE INTO table [--create | --append | --replace] [-q]"
_LOAD_FLAGS = ("--create", "--append", "--replace", "-q", "--quiet")


def load(magics: PgMagics, rest: str) -> None:
    """``%pg load DATAFRAME|FILE INTO table [--create | --append | --replace] [-q]``."""
    found = split(rest)
    into = next((i for i, w in enumerate(found) if not w.quoted and w.text.lower() == "into"), None)
    if not into or into + 1 >= len(found):
        raise OptionError(_LOAD_USAGE)
    source_words, table_word = found[:into], found[into + 1]
    # The table as SQL writes it: "Mixed Case".orders keeps its double quotes.
    table = rest[table_word.start : table_word.end]
    if not _TABLE_RE.fullmatch(table):
        raise OptionError(f"not a table name: {table!r} ({_LOAD_USAGE[7:]})")
    flags = [w.text for w in found[into + 2 :]]
    unknown = [f for f in flags if f not in _LOAD_FLAGS]
    if unknown:
        raise OptionError(f"unknown option {unknown[0]} for %pg load")
    modes = [f[2:] for f in flags if f in ("--create", "--append", "--replace")]
    if len(modes) > 1:
        raise OptionError("choose one of --create, --append, --replace")
    quiet = "-q" in flags or "--quiet" in flags
    source = _load_source(magics, source_words, rest)
    if quiet:
        magics.runtime.printer = None
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


_PATH_RE = re.compile(r"[/\\~]|\.(csv|tsv|txt|parquet|pq|gz|jsonl?)$", re.IGNORECASE)


def _load_source(magics: PgMagics, found: list[Word], rest: str) -> Any:
    """What ``%pg load`` reads: a file (quoted, or existing) or a Python expression's frame."""
    if len(found) == 1 and found[0].quoted:
        return found[0].text  # a quoted file name, spaces and all
    text = rest[found[0].start : found[-1].end]
    if os.path.exists(os.path.expanduser(text)):
        return text
    namespace = magics.namespace
    # A variable, or an expression such as df.head(1000) or df[df.day > cutoff].
    try:
        source = namespace[text] if text in namespace else eval(text, namespace)
    except NameError as error:
        if _PATH_RE.search(text):
            raise OptionError(f"no such file: {text}") from None
        raise ParameterError(f"no such file or variable: {text} ({error})") from None
    except Exception as error:
        if _PATH_RE.search(text) and isinstance(error, SyntaxError):
            raise OptionError(f"no such file: {text}") from None
        raise ParameterError(f"cannot evaluate {text!r}: {type(error).__name__}: {error}") from None
    if isinstance(source, str) and not os.path.exists(os.path.expanduser(source)):
        raise OptionError(f"no such file: {source} (the value of {text})")
    if not isinstance(source, pd.DataFrame | str) and arrow_frames(source) is None:
        raise OptionError(
            f"{text} is a {type(source).__name__}; load takes a DataFrame (pandas or polars), "
            "an Arrow table or a file"
        )
    return source


def help_(magics: PgMagics, rest: str) -> None:
    """``%pg help``: the same text as ``%pg?``."""
    no_arguments("help", rest)
    print(type(magics).pg.__doc__)


_LISTEN_USAGE = "usage: %pg listen [--dsn DSN] CHANNEL [CHANNEL ...]"


def listen(magics: PgMagics, rest: str) -> None:
    """``%pg listen [--dsn DSN | $variable] CHANNEL ...``: a live feed (lines in a terminal).

    ``--dsn`` connects the listener past a transaction pooler; without it the
    listener uses ``PgMagics.listen_dsn`` (the listener reads it) or the target.
    """
    found = split(rest)
    dsn: str | None = None
    if found and not found[0].quoted and found[0].text.split("=", 1)[0] == "--dsn":
        flag = found.pop(0)
        if "=" in flag.text:
            given, quoted = flag.text.split("=", 1)[1], flag.quoted
        elif found:
            word = found.pop(0)
            given, quoted = word.text, word.quoted
        else:
            raise OptionError(_LISTEN_USAGE)
        dsn = (
            str(_variable(magics, given)) if not quoted and _VARIABLE_RE.fullmatch(given) else given
        )
        if not dsn.strip():
            raise OptionError(_LISTEN_USAGE)
    if not found or any(not w.quoted and w.text.startswith("-") for w in found):
        raise OptionError(_LISTEN_USAGE)
    channels = [channel_name(w.text, quoted=w.quoted) for w in found]
    if type(magics.shell).__name__ == "TerminalInteractiveShell":
        # Terminal IPython shows no widgets: print the notifications instead.
        terminal.listen_as_text(magics.runtime, channels, on_message=print_message, dsn=dsn)
        return
    feed.listen(magics.runtime, channels, on_message=print_message, dsn=dsn).display()


def unlisten_(magics: PgMagics, rest: str) -> None:
    """``%pg unlisten CHANNEL ... | --all``."""
    found = split(rest)
    every = [w for w in found if not w.quoted and w.text == "--all"]
    if not found or (every and len(found) > 1):
        raise OptionError("usage: %pg unlisten CHANNEL [CHANNEL ...] | --all")
    channels = None if every else [channel_name(w.text, quoted=w.quoted) for w in found]
    stopped = unlisten(magics.runtime, channels)
    print(f"stopped listening on {', '.join(stopped)}" if stopped else "was not listening")


def notify(magics: PgMagics, rest: str) -> None:
    """``%pg notify CHANNEL [PAYLOAD | $variable]``."""
    found = split(rest)
    if not found:
        raise OptionError("usage: %pg notify CHANNEL [PAYLOAD | $variable]")
    channel = channel_name(found[0].text, quoted=found[0].quoted)
    words = found[1:]
    value: Any = None
    if len(words) == 1:
        value = words[0].text
        if not words[0].quoted and _VARIABLE_RE.fullmatch(value):
            value = _variable(magics, value)
    elif words:
        # Several words: the payload as written ({"id": 1} keeps its quotes).
        value = rest[words[0].start : words[-1].end]
    if send(magics.runtime, channel, value, on_message=print_message):
        print("NOTIFY queued: the server delivers it when the transaction commits")


def stop(magics: PgMagics, rest: str) -> None:
    """``%pg stop``: end every ``--refresh-on`` and ``--watch``, on every connection."""
    no_arguments("stop", rest)
    stopped = sum(refresh.stop_all(runtime) for runtime in magics.connections.runtimes())
    print(f"stopped {stopped} refresh{'' if stopped == 1 else 'es'}")


def tables(magics: PgMagics, rest: str) -> Any:
    r"""``%pg tables [PATTERN]``: psql's ``\dt``, for those who do not know psql."""
    return psql.run_line(magics, "\\dt " + rest)


def describe(magics: PgMagics, rest: str) -> Any:
    r"""``%pg describe NAME``: psql's ``\d NAME``."""
    if not rest.strip():
        raise OptionError("usage: %pg describe NAME (the same as \\d NAME; \\d alone lists)")
    return psql.run_line(magics, "\\d " + rest)


_HISTORY_USAGE = "usage: %pg history [-n N] [--all] [PATTERN] | history --clear [--all]"
# Statements %pg history shows without -n: a screenful, the newest.
_HISTORY_SHOWN = 20


def history(magics: PgMagics, rest: str) -> pd.DataFrame | None:
    """``%pg history [-n N] [--all] [PATTERN]``: the statements run, newest last.

    PATTERN is found anywhere in the SQL, ignoring case; ``--all`` shows
    every kernel's statements, not only this kernel's; ``--clear`` forgets them.
    """
    found = split(rest)
    last, every, clear, words = _HISTORY_SHOWN, False, False, []
    while found:
        word = found.pop(0)
        if word.quoted or not word.text.startswith("-"):
            words.append(word)
        elif word.text == "--all":
            every = True
        elif word.text == "--clear":
            clear = True
        elif word.text.startswith("-n"):
            value = word.text[2:].lstrip("=") or (found.pop(0).text if found else "")
            if not value.isdigit() or int(value) < 1:
                raise OptionError(f"-n needs a number of statements, at least 1, got {value!r}")
            last = int(value)
        else:
            raise OptionError(f"unknown option {word.text} for %pg history ({_HISTORY_USAGE})")
    store = magics.runtime.history
    if clear:
        if words or last != _HISTORY_SHOWN:
            raise OptionError(f"--clear takes only --all ({_HISTORY_USAGE})")
        forgotten = store.clear(every_kernel=every)
        print(f"forgot {forgotten:,} statement{'' if forgotten == 1 else 's'}")
        return None
    pattern = " ".join(word.text for word in words) or None
    for runtime in magics.connections.runtimes():
        # Each connection writes the shared file from a thread of its own.
        runtime.history.flush()
    frame = recorded.read(store, last=last, pattern=pattern, every_kernel=every)
    # The line that says the file could not be written, if it just was.
    magics.runtime.drain(print_message)
    if not magics.history:
        print("the history is off: %config PgMagics.history = True records again")
    shown.remember(frame, shown.ResultInfo(None, None))
    return frame


def refresh_catalog(magics: PgMagics, rest: str) -> None:
    """``%pg refresh``: read the catalog that completion uses again, now."""
    no_arguments("refresh", rest)
    started = time.perf_counter()
    try:
        snapshot = catalog.current(magics.runtime, fresh=True)
    except TimeoutError:
        raise ConnectError(
            "the catalog did not answer within 2 s; completion keeps what it had"
        ) from None
    print(
        f"catalog read: {len(snapshot.relations):,} relations in {len(snapshot.schemas)} schemas, "
        f"{len(snapshot.functions):,} functions ({time.perf_counter() - started:.2f} s)"
    )


def jobs(magics: PgMagics, rest: str) -> pd.DataFrame:
    """``%pg jobs``: the background jobs of this kernel (``%%pg --bg``), oldest first."""
    no_arguments("jobs", rest)
    frame = background_jobs.frame()
    shown.remember(frame, shown.ResultInfo(None, None))
    return frame


def cancel(magics: PgMagics, rest: str) -> None:
    """``%pg cancel JOB ...``: cancel background jobs on the server, by number or name."""
    found = split(rest)
    if not found:
        raise OptionError("usage: %pg cancel JOB ... (a number or a name from %pg jobs)")
    for word in found:
        job = background_jobs.find(word.text)
        job.cancel()
        print(f"cancelling {job.name} (job {job.number}, {job.state.value})")


COMMANDS: dict[str, Callable[[PgMagics, str], Any]] = {
    "connect": connect,
    "disconnect": disconnect,
    "status": status,
    "help": help_,
    "listen": listen,
    "unlisten": unlisten_,
    "notify": notify,
    "stop": stop,
    "load": load,
    "tables": tables,
    "describe": describe,
    "refresh": refresh_catalog,
    "history": history,
    "use": use,
    "connections": connections,
    "close": close,
    "jobs": jobs,
    "cancel": cancel,
}


def find(line: str) -> Callable[[PgMagics], Any] | None:
    r"""The subcommand a ``%pg`` line runs, or None when the line is SQL (or options).

    Parameters
    ----------
    line : str
        ``status``, ``load df INTO t``, ``\dt public.*``.

    Returns
    -------
    callable or None
        Takes the magics object.
    """
    if line.lstrip().startswith("\\"):
        return lambda magics: psql.run_line(magics, line)
    first = line.strip().split(None, 1)
    if not first or first[0].lower() not in COMMANDS:
        return None
    run, rest = COMMANDS[first[0].lower()], first[1] if len(first) > 1 else ""
    return lambda magics: run(magics, rest)
