"""The IPython front: ``%pg`` / ``%%pg``, configuration traits, display hooks.

Each magic parses its arguments, calls one function below it, and displays the
result.  This is the only module that imports IPython.
"""

from __future__ import annotations

import contextlib
import inspect
import keyword
import os
import re
import shlex
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import pandas as pd
from IPython import display as _display
from IPython.core import magic as _magic
from IPython.core import magic_arguments as _magic_arguments
from IPython.core.magic import Magics, magics_class, no_var_expand
from traitlets import Bool, Float, Int, TraitError, observe, validate
from traitlets import Callable as CallableTrait

from pgmagic import display, export, feed, notify, progress, query, refresh, streaming
from pgmagic import load as loading
from pgmagic.errors import OptionError, ParameterError
from pgmagic.runtime import Message, MessageKind, Runtime

__all__ = ["PgMagics", "load", "unload"]

F = TypeVar("F", bound=Callable[..., Any])
# IPython's decorators are untyped; these aliases give them the types they have.
magic_arguments: Callable[[], Callable[[F], F]] = _magic_arguments.magic_arguments
argument: Callable[..., Callable[[F], F]] = _magic_arguments.argument
line_cell_magic = cast(Callable[[F], F], _magic.line_cell_magic)
show: Callable[..., None] = _display.display
new_display_handle: Callable[[], Any] = _display.DisplayHandle

_TOKEN_RE = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\S+)""")
_SUBCOMMANDS = (
    "connect",
    "disconnect",
    "status",
    "help",
    "listen",
    "unlisten",
    "notify",
    "stop",
    "load",
)
_NAME = r'(?:"(?:[^"]|"")+"|[^\s."]+)'
_LOAD_RE = re.compile(
    rf"(?P<source>.+?)\s+into\s+(?P<table>{_NAME}(?:\.{_NAME})?)"
    r"(?P<flags>(?:\s+-{1,2}\w+)*)\s*\Z",
    re.IGNORECASE | re.DOTALL,
)


def _print_message(message: Message) -> None:
    stream = sys.stdout
    if message.kind is MessageKind.SERVER and message.severity not in (
        "NOTICE",
        "INFO",
        "LOG",
        "DEBUG",
    ):
        stream = sys.stderr
    print(message.text, file=stream)


@magics_class
class PgMagics(Magics):
    """PostgreSQL magics: ``%%pg`` cells and ``%pg`` lines.

    Configure with ``%config PgMagics.<name> = value``.
    """

    displaylimit = Int(
        20,
        allow_none=True,
        help="Rows shown in a result's table (None: all; the DataFrame holds all).",
    ).tag(config=True)
    numeric_as_float = Bool(
        False, help="Give numeric columns as float64 instead of Decimal objects."
    ).tag(config=True)
    pool_min_size = Int(0, help="Connections the pool keeps open at least.").tag(config=True)
    pool_max_size = Int(4, help="Connections the pool opens at most.").tag(config=True)
    max_inactive_connection_lifetime = Float(
        300.0, help="Seconds an idle pool connection lives."
    ).tag(config=True)
    command_timeout = Float(
        None, allow_none=True, help="Seconds before a statement is cancelled (None: no limit)."
    ).tag(config=True)
    connect_timeout = Float(10.0, help="Seconds to wait for a connection.").tag(config=True)
    init = CallableTrait(
        None,
        allow_none=True,
        help="async def init(conn): run on every new connection (e.g. set_type_codec).",
    ).tag(config=True)
    max_rows = Int(
        0,
        help="Stop a %%pg result that would exceed this many rows, pointing to --stream "
        "and --to (0: no limit).",
    ).tag(config=True)
    stream_idle_timeout = Float(
        300.0,
        help="Seconds a --stream cursor may sit unread before the server ends its "
        "transaction (0: never).",
    ).tag(config=True)
    notify_history = Int(
        10_000,
        help="Notifications kept for the feed, the panel and notification_log(); "
        "older ones are dropped, and counted.",
    ).tag(config=True)

    def __init__(self, shell: Any, runtime: Runtime, **kwargs: Any) -> None:
        # Set first: configuration made earlier with %config is applied while the
        # base class initialises, and the observers below hand it to the runtime.
        self.runtime = runtime
        super().__init__(shell, **kwargs)
        self._sync_settings()

    @observe(
        "pool_min_size",
        "pool_max_size",
        "max_inactive_connection_lifetime",
        "command_timeout",
        "connect_timeout",
        "init",
    )
    def _settings_changed(self, change: Any) -> None:
        self._sync_settings()

    @validate(
        "pool_min_size",
        "pool_max_size",
        "displaylimit",
        "max_rows",
        "connect_timeout",
        "command_timeout",
        "stream_idle_timeout",
        "max_inactive_connection_lifetime",
        "notify_history",
        "init",
    )
    def _check(self, proposal: Any) -> Any:
        name, value = proposal["trait"].name, proposal["value"]
        if name == "init":
            if value is not None and not inspect.iscoroutinefunction(value):
                self._refuse(name, "must be an async function: async def init(conn): ...")
            return value
        if value is None:
            return value
        smallest = 1 if name in ("pool_max_size", "connect_timeout", "notify_history") else 0
        if value < smallest:
            self._refuse(name, f"must be at least {smallest}, got {value}")
        return value

    def _refuse(self, name: str, reason: str) -> None:
        # %config stores a value in the shell's configuration before handing it
        # over; a refused one must not stay there, or every later %load_ext of
        # pgmagic would fail on it.
        for config in (self.config, getattr(self.shell, "config", None)):
            section = config.get("PgMagics") if config is not None else None
            if section is not None and name in section:
                del section[name]
        raise TraitError(f"PgMagics.{name} {reason}")

    @observe("notify_history")
    def _notify_history_changed(self, change: Any) -> None:
        # Configuration loaded by __init__ arrives before self.runtime exists;
        # load() hands that value to the log.
        if hasattr(self, "runtime"):
            notify.listener_for(self.runtime).log.resize(change["new"])

    def _sync_settings(self) -> None:
        settings = self.runtime.settings
        if (
            self.pool_min_size < 0
            or self.pool_max_size < 1
            or self.pool_min_size > self.pool_max_size
        ):
            raise OptionError("need 0 <= pool_min_size <= pool_max_size and pool_max_size >= 1")
        settings.pool_min_size = self.pool_min_size
        settings.pool_max_size = self.pool_max_size
        settings.max_inactive_connection_lifetime = self.max_inactive_connection_lifetime
        settings.command_timeout = self.command_timeout or None
        settings.connect_timeout = self.connect_timeout
        settings.init = self.init

    # ----------------------------------------------------------------- parsing
    def _split_options(self, line: str, parser: Any) -> tuple[list[str], str]:
        """Leading option tokens, and the rest of the line verbatim (the SQL)."""
        actions = parser._option_string_actions
        tokens: list[str] = []
        position = 0
        expect_value = False
        while True:
            match = _TOKEN_RE.match(line, position)
            if match is None:
                break
            token = match.group(1)
            if expect_value:
                tokens.append(token)
                position = match.end()
                expect_value = False
                continue
            name = token.split("=", 1)[0]
            # "-- comment", "-1" and the like are SQL, not options.
            if not token.startswith("-") or not token.lstrip("-")[:1].isalpha():
                break
            if name not in actions:
                raise OptionError(f"unknown option {name} (see %pg?)")
            tokens.append(token)
            position = match.end()
            expect_value = "=" not in token and actions[name].nargs != 0
        if expect_value:
            raise OptionError(f"option {tokens[-1]} needs a value")
        return tokens, line[position:]

    @property
    def _parser(self) -> Any:
        return vars(PgMagics.pg)["parser"]

    def _namespace(self) -> dict[str, Any]:
        assert self.shell is not None
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    def _evaluate(self, expression: str) -> Any:
        try:
            return eval(expression, self._namespace())
        except Exception as error:
            raise ParameterError(
                f"cannot evaluate {expression!r}: {type(error).__name__}: {error}"
            ) from None

    # ------------------------------------------------------------------ magics
    @no_var_expand
    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="Also store the result in this variable.")
    @argument(
        "-p",
        "--params",
        metavar="EXPR",
        help="Values for $1, $2, ...: a Python expression giving a sequence.",
    )
    @argument(
        "--one", action="store_true", help="Give the single row as a record (None if no row)."
    )
    @argument("--scalar", action="store_true", help="Give the single value.")
    @argument("-q", "--quiet", action="store_true", help="Do not print command tags or notes.")
    @argument(
        "--stream",
        action="store_true",
        help="Give an iterator of DataFrames over a server-side cursor (one chunk in memory).",
    )
    @argument(
        "--chunksize",
        type=int,
        default=50_000,
        metavar="ROWS",
        help="Rows per DataFrame with --stream, per Parquet row group / batch with --to.",
    )
    @argument(
        "--to",
        metavar="FILE",
        help="Stream the result to FILE (.parquet, .csv, .csv.gz, .jsonl) instead of a DataFrame.",
    )
    @argument("--format", metavar="FMT", help="Export format when FILE's suffix does not say.")
    @argument(
        "--many",
        metavar="EXPR",
        help="Run the statement once per row of EXPR (a DataFrame, or a list of tuples or dicts).",
    )
    @argument(
        "--refresh-on",
        metavar="CHANNEL",
        action="append",
        help="Re-run on a pool connection and update the output when CHANNEL is notified "
        "(repeatable; %%pg stop ends it).",
    )
    @argument(
        "--watch",
        metavar="SECONDS",
        type=float,
        help="Re-run on a pool connection every SECONDS and update the output.",
    )
    @line_cell_magic
    def pg(self, line: str, cell: str | None = None) -> Any:
        """Run SQL on PostgreSQL; ``$name`` binds the notebook variable ``name``.

        ::

            %%pg [-o NAME] [--one | --scalar] [-p EXPR] [-q]
            SELECT * FROM users WHERE score > $min_score

            df = %pg SELECT count(*) AS n FROM users
            %pg connect postgresql://user@host/db     (or $dsn, or --embedded)
            %pg status | disconnect | help
            %%pg --stream [--chunksize N] -o chunks      (iterate: for df in chunks)
            %%pg --to FILE.parquet|.csv|.csv.gz|.jsonl   (stream to a file)
            %%pg --many rows                              (executemany over rows)
            %pg load DATAFRAME|FILE INTO table [--create | --append | --replace]
            %%pg --refresh-on CHANNEL | --watch SECONDS   (live output; %pg stop ends it)
            %pg listen CHANNEL ... | unlisten CHANNEL ... | unlisten --all
            %pg notify CHANNEL [PAYLOAD | $variable]

        A cell may hold several statements; each non-query statement prints its
        command tag and the last query's result is shown and returned as a
        DataFrame (dtypes follow the column types).  Values are sent as
        server-side parameters, never pasted into the SQL.
        """
        first = line.strip().split(None, 1)
        if cell is None and first and first[0].lower() in _SUBCOMMANDS:
            return self._subcommand(first[0].lower(), first[1] if len(first) > 1 else "")
        options, rest = self._split_options(line, self._parser)
        args = self._parser.parse_args(options)
        self.runtime.printer = None if args.quiet else _print_message
        if args.out is not None:
            _variable_name(args.out)  # before any I/O: "-o SELECT 1" lost its name
        if cell is None:
            sql = rest
            if not sql.strip() and not options:
                raise OptionError(
                    "nothing to run: %pg SELECT ... for one line, %%pg for a cell (see %pg?)"
                )
        else:
            if rest.strip():
                raise OptionError(
                    f"unexpected text after the %%pg options: {rest.strip()!r} "
                    "(put SQL in the cell body)"
                )
            sql = cell
        if args.one and args.scalar:
            raise OptionError("--one and --scalar cannot be combined")
        mode = (
            query.Mode.ONE if args.one else query.Mode.SCALAR if args.scalar else query.Mode.FRAME
        )
        positional: tuple[Any, ...] = ()
        if args.params is not None:
            values = self._evaluate(args.params)
            positional = tuple(values) if isinstance(values, list | tuple) else (values,)
        if args.refresh_on or args.watch is not None:
            if args.out or args.one or args.scalar:
                raise OptionError(
                    "--refresh-on and --watch cannot be combined with -o, --one, --scalar"
                )
            handle = new_display_handle()
            refresh.start(
                self.runtime,
                sql,
                self._namespace(),
                positional,
                channels=[_unquote(c) for c in args.refresh_on or []],
                every=args.watch,
                show=lambda bundle, first: (handle.display if first else handle.update)(
                    bundle, raw=True
                ),
                limit=self.displaylimit,
                numeric_as_float=self.numeric_as_float,
                on_message=_print_message,
            )
            return None
        if args.stream or args.to or args.many:
            return self._bulk(args, sql, positional)
        with progress.Bar("fetching", quiet=args.quiet) as bar:
            outcome = query.run_cell(
                self.runtime,
                sql,
                self._namespace(),
                positional,
                mode=mode,
                numeric_as_float=self.numeric_as_float,
                quiet=args.quiet,
                on_message=None if args.quiet else _print_message,
                max_rows=self.max_rows,
                on_progress=bar.update,
            )
        value = outcome.value
        if isinstance(value, pd.DataFrame) and outcome.shown is not None:
            types = tuple((c.name, c.type_name) for c in outcome.shown.columns or ())
            display.remember(value, display.ResultInfo(outcome.elapsed, self.displaylimit, types))
        if args.out:
            self._store(args.out, value)
        return value

    def _bulk(self, args: Any, sql: str, positional: tuple[Any, ...]) -> Any:
        """--stream, --to and --many: the big-result paths."""
        if sum(bool(x) for x in (args.stream, args.to, args.many)) > 1:
            raise OptionError("--stream, --to and --many cannot be combined")
        if args.one or args.scalar:
            raise OptionError("--one and --scalar do not combine with --stream, --to or --many")
        if args.many:
            outcome = query.run_many(
                self.runtime,
                sql,
                self._evaluate(args.many),
                quiet=args.quiet,
                on_message=None if args.quiet else _print_message,
            )
            if not args.quiet:
                print(outcome)
            return None
        bound = query.bind_one(sql, self._namespace(), positional)
        if args.stream:
            stream = streaming.Stream(
                self.runtime,
                bound,
                chunksize=args.chunksize,
                numeric_as_float=self.numeric_as_float,
                idle_timeout=self.stream_idle_timeout,
            ).open()
            if args.out:
                # Not also the cell's value: the output history would keep the
                # stream (and its transaction) alive after the user drops it.
                self._store(args.out, stream)
                if not args.quiet:
                    print(f"{args.out}: {stream!r}")
                return None
            return stream
        with progress.Bar(f"→ {args.to}", quiet=args.quiet) as bar:
            result = export.export(
                self.runtime,
                bound,
                args.to,
                fmt=args.format,
                chunksize=args.chunksize,
                numeric_as_float=self.numeric_as_float,
                on_tick=bar.update,
            )
        if not args.quiet:
            print(result.summary())
        return None

    def _store(self, name: str, value: Any) -> None:
        self._namespace()[_variable_name(name)] = value

    # ------------------------------------------------------------- subcommands
    def _subcommand(self, name: str, rest: str) -> Any:
        self.runtime.printer = _print_message
        handler: Callable[[str], Any] = getattr(self, f"_cmd_{name}")
        return handler(rest)

    def _cmd_connect(self, rest: str) -> None:
        tokens = rest.strip()
        if tokens.startswith("--embedded"):
            if tokens.split(None, 1)[1:]:
                raise OptionError("--embedded takes no DSN")
            dsn: str | None = "embedded"
        elif not tokens:
            raise OptionError("usage: %pg connect <dsn> | $variable | --embedded")
        elif "://" in tokens.split()[0] and len(tokens.split()) > 1:
            raise OptionError(f"unexpected text after the DSN: {' '.join(tokens.split()[1:])!r}")
        elif re.fullmatch(r"\$[A-Za-z_]\w*", tokens):
            name = tokens[1:]
            if name not in self._namespace():
                raise ParameterError(f"variable not defined in the notebook: ${name}")
            dsn = str(self._namespace()[name])
        else:
            dsn = tokens.strip("'\"")
        self.runtime.set_target(dsn)
        info = self.runtime.run(_status(self.runtime), on_message=_print_message)
        print(
            f"connected to {info['target']} ({info['server']}, database {info['database']}, "
            f"user {info['user']})"
        )

    def _cmd_disconnect(self, rest: str) -> None:
        _no_arguments("disconnect", rest)
        self.runtime.disconnect()
        print("disconnected; the next statement reconnects")

    def _cmd_status(self, rest: str) -> None:
        _no_arguments("status", rest)
        info = self.runtime.run(_status(self.runtime), on_message=_print_message)
        listener = notify.listener_for(self.runtime)
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

    def _cmd_load(self, rest: str) -> None:
        match = _LOAD_RE.match(rest.strip())
        if match is None:
            raise OptionError(
                "usage: %pg load DATAFRAME|FILE INTO table [--create | --append | --replace] [-q]"
            )
        flags = match.group("flags").split()
        unknown = [
            f for f in flags if f not in ("--create", "--append", "--replace", "-q", "--quiet")
        ]
        if unknown:
            raise OptionError(f"unknown option {unknown[0]} for %pg load")
        modes = [f[2:] for f in flags if f in ("--create", "--append", "--replace")]
        if len(modes) > 1:
            raise OptionError("choose one of --create, --append, --replace")
        quiet = "-q" in flags or "--quiet" in flags
        if quiet:
            self.runtime.printer = None
        token = match.group("source").strip().strip("'\"")
        source: Any = token
        if not os.path.exists(os.path.expanduser(token)):
            namespace = self._namespace()
            # A variable, or an expression such as df.head(1000) or df[["a", "b"]].
            with contextlib.suppress(Exception):
                source = namespace[token] if token in namespace else eval(token, namespace)
        if not isinstance(source, pd.DataFrame | str):
            raise OptionError(
                f"{token} is a {type(source).__name__}; load takes a DataFrame or a file"
            )
        with progress.Bar(f"→ {match.group('table').strip()}", quiet=quiet) as bar:
            result = loading.load(
                self.runtime,
                source,
                match.group("table").strip(),
                mode=modes[0] if modes else "create",
                on_tick=bar.update,
            )
        if not quiet:
            print(result.summary())

    def _cmd_help(self, rest: str) -> None:
        print(self.pg.__doc__)

    def _cmd_listen(self, rest: str) -> None:
        if type(self.shell).__name__ == "TerminalInteractiveShell":
            # Terminal IPython shows no widgets: print the notifications instead.
            feed.listen_as_text(self.runtime, _words(rest), on_message=_print_message)
            return
        show(feed.listen(self.runtime, _words(rest), on_message=_print_message))

    def _cmd_unlisten(self, rest: str) -> None:
        words = _words(rest)
        if not words or ("--all" in words and len(words) > 1):
            raise OptionError("usage: %pg unlisten CHANNEL [CHANNEL ...] | --all")
        stopped = notify.unlisten(self.runtime, None if words == ["--all"] else words)
        print(f"stopped listening on {', '.join(stopped)}" if stopped else "was not listening")

    def _cmd_notify(self, rest: str) -> None:
        match = _TOKEN_RE.match(rest)
        if match is None:
            raise OptionError("usage: %pg notify CHANNEL [PAYLOAD | $variable]")
        channel, payload = _unquote(match.group(1)), rest[match.end() :].strip()
        value: Any = _unquote(payload) if payload else None
        if re.fullmatch(r"\$[A-Za-z_]\w*", payload):
            if payload[1:] not in self._namespace():
                raise ParameterError(f"variable not defined in the notebook: {payload}")
            value = self._namespace()[payload[1:]]
        if notify.send(self.runtime, channel, value, on_message=_print_message):
            print("NOTIFY queued: the server delivers it when the transaction commits")

    def _cmd_stop(self, rest: str) -> None:
        stopped = refresh.stop_all(self.runtime)
        print(f"stopped {stopped} refresh{'' if stopped == 1 else 'es'}")


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as error:
        raise OptionError(f"{error} in {text.strip()!r}") from None


def _unquote(text: str) -> str:
    if text[:1] not in ("'", '"'):
        return text
    words = _words(text)
    if len(words) != 1:
        raise OptionError(f"quote the whole value once: {text!r}")
    return words[0]


_SQL_WORDS = frozenset(
    [
        "SELECT",
        "WITH",
        "INSERT",
        "UPDATE",
        "DELETE",
        "VALUES",
        "TABLE",
        "CREATE",
        "DROP",
        "ALTER",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "EXPLAIN",
        "SHOW",
        "SET",
        "CALL",
        "DO",
        "COPY",
        "TRUNCATE",
        "GRANT",
        "MERGE",
    ]
)


def _variable_name(name: str) -> str:
    if name.upper() in _SQL_WORDS:
        raise OptionError(f"-o needs a variable name before the SQL: %pg -o df {name} ...")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise OptionError(f"-o needs a Python variable name, got {name!r}")
    return name


def _no_arguments(command: str, rest: str) -> None:
    if rest.strip():
        raise OptionError(f"%pg {command} takes no arguments, got {rest.strip()!r}")


async def _status(runtime: Runtime) -> dict[str, Any]:
    session = await runtime.session()
    return await session.status()


def load(shell: Any) -> None:
    """Register the magics and the result formatters on a shell.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell
    """
    from pgmagic.runtime import default_runtime

    runtime = default_runtime()
    assert runtime is not None
    magics = PgMagics(shell, runtime)
    shell.register_magics(magics)
    formatters = shell.display_formatter.formatters
    html_formatter = formatters["text/html"]
    text_formatter = formatters["text/plain"]
    previous_html = html_formatter.type_printers.get(pd.DataFrame)
    previous_text = text_formatter.type_printers.get(pd.DataFrame)

    def as_html(frame: pd.DataFrame) -> str | None:
        info = display.info_for(frame)
        if info is not None:
            return display.html(frame, info)
        if previous_html is not None:
            chained: str | None = previous_html(frame)
            return chained
        untyped: Any = frame  # pandas-stubs reads _repr_html_ as a column name
        html: str | None = untyped._repr_html_()
        return html

    def as_text(frame: pd.DataFrame, printer: Any, cycle: bool) -> None:
        info = display.info_for(frame)
        if info is not None:
            printer.text(display.text(frame, info))
        elif previous_text is not None:
            previous_text(frame, printer, cycle)
        else:
            printer.text(repr(frame))

    html_formatter.for_type(pd.DataFrame, as_html)
    text_formatter.for_type(pd.DataFrame, as_text)
    _loaded[id(shell)] = (magics, previous_html, previous_text)
    feed.open_panel(runtime, shell.user_ns, history=magics.notify_history)


_loaded: dict[int, tuple[PgMagics, Any, Any]] = {}


def unload(shell: Any) -> None:
    """Close the runtime and restore the formatters.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell
    """
    entry = _loaded.pop(id(shell), None)
    if entry is None:
        return
    magics, previous_html, previous_text = entry
    formatters = shell.display_formatter.formatters
    for mime, previous in (("text/html", previous_html), ("text/plain", previous_text)):
        formatter = formatters[mime]
        formatter.type_printers.pop(pd.DataFrame, None)
        if previous is not None:
            formatter.for_type(pd.DataFrame, previous)
    feed.close_panel(magics.runtime)
    magics.runtime.close()
    # register_magics also made it a configurable of the shell; an unloaded
    # instance must not keep answering %config.
    if magics in shell.configurables:
        shell.configurables.remove(magics)
    shell.magics_manager.magics["line"].pop("pg", None)
    shell.magics_manager.magics["cell"].pop("pg", None)
