"""``%config PgMagics.<name> = value``: the configuration traits, checked when set.

Connection settings keep their defaults in one place,
:class:`pgmagic.runtime.connect.Settings`; the traits start from those and
hand every change to the kernel's connections, which share one ``Settings``.
:attr:`Configuration.runtime` is the connection a magic call runs on.
"""

from __future__ import annotations

import inspect
from typing import Any

from IPython.core.magic import Magics
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Int, TraitError, Unicode, observe, validate
from traitlets import Callable as CallableTrait

from pgmagic.errors import ConnectError, OptionError, ParameterError
from pgmagic.live.listener import listener_for
from pgmagic.results.cell import DtypeBackend, FrameKind
from pgmagic.runtime import dsn as dsn_module
from pgmagic.runtime.connect import Settings
from pgmagic.runtime.connections import Connections
from pgmagic.runtime.history import DEFAULT_LIMIT
from pgmagic.runtime.loop import Runtime

__all__ = ["Configuration"]

_CONNECTION = (
    "pool_min_size",
    "pool_max_size",
    "max_inactive_connection_lifetime",
    "command_timeout",
    "connect_timeout",
    "init",
)
_AT_LEAST_ONE = ("pool_max_size", "connect_timeout", "notify_history", "history_size")


class _SecretDsn(str):
    """A DSN whose repr hides its password: ``%config PgMagics`` prints reprs."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(dsn_module.redact(self))


class Configuration(Magics):
    """The traits of ``PgMagics``; see ``%config PgMagics``."""

    displaylimit = Int(
        20,
        allow_none=True,
        help="Rows shown in a result's table (None: all; the DataFrame holds all).",
    ).tag(config=True)
    # Any value reaches the check below, which refuses it in one line and
    # forgets it (a type check of the trait's own would keep it in the config).
    frame = AnyTrait(
        "pandas",
        help="What a query's rows become: 'pandas' (a DataFrame), 'arrow' (a pyarrow.Table) "
        "or 'polars' (a polars.DataFrame; pip install 'pgmagic[polars]'); "
        "--pandas, --arrow and --polars choose per cell.",
    ).tag(config=True)
    dtype_backend = AnyTrait(
        "numpy_nullable",
        help="The dtypes of pandas DataFrames, as pandas' read_sql names them: "
        "'numpy_nullable' (Int64, Decimal objects, ...) or 'pyarrow' (pandas.ArrowDtype "
        "columns over the Arrow result, no Python object per value); "
        "--dtype-backend chooses per cell.",
    ).tag(config=True)
    numeric_as_float = Bool(
        False, help="Give numeric columns as float64 instead of Decimal objects."
    ).tag(config=True)
    pool_min_size = Int(
        Settings.pool_min_size, help="Connections the pool keeps open at least."
    ).tag(config=True)
    pool_max_size = Int(Settings.pool_max_size, help="Connections the pool opens at most.").tag(
        config=True
    )
    max_inactive_connection_lifetime = Float(
        Settings.max_inactive_connection_lifetime, help="Seconds an idle pool connection lives."
    ).tag(config=True)
    command_timeout = Float(
        Settings.command_timeout,
        allow_none=True,
        help="Seconds before a statement is cancelled (None: no limit).",
    ).tag(config=True)
    connect_timeout = Float(Settings.connect_timeout, help="Seconds to wait for a connection.").tag(
        config=True
    )
    init = CallableTrait(
        Settings.init,
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

    listen_dsn = Unicode(
        None,
        allow_none=True,
        help="Where LISTEN connects instead of the default connection's target (None: "
        "the target): a direct DSN for when the target is a transaction pooler such as "
        "pgbouncer, which loses notifications.  Shown with its password hidden.",
    ).tag(config=True)

    history = Bool(
        True,
        help="Record every statement (time, cell, SQL, parameter names, rows, duration, "
        "status) in the query history, kept across restarts: %pg history.",
    ).tag(config=True)
    history_size = Int(
        DEFAULT_LIMIT,
        help="Statements the query history keeps, every kernel's together; the oldest go first.",
    ).tag(config=True)

    def __init__(self, shell: Any, connections: Connections, **kwargs: Any) -> None:
        # Set first: configuration made earlier with %config is applied while the
        # base class initialises, and the observers below hand it to the runtime.
        self.connections = connections
        # The connection this magic call named (@name, --conn), None between calls.
        self._named: Runtime | None = None
        super().__init__(shell, **kwargs)
        self._sync_settings()
        connections.on_open(self._configure)

    @property
    def runtime(self) -> Runtime:
        """The connection the running magic call uses: the one it named, else the current one."""
        return self._named or self.connections.current

    def run_on(self, name: str | None) -> None:
        """Run the rest of this magic call on connection ``name`` (None: the current one).

        Parameters
        ----------
        name : str or None
            From ``@name`` or ``--conn name``; naming two different ones is a
            mistake.
        """
        if name is None:
            return
        runtime = self.connections.get(name)
        if self._named is not None and self._named is not runtime:
            raise OptionError(f"two connections named: @{self._named.connection_name()} and {name}")
        self._named = runtime

    def call_ended(self) -> None:
        """Forget the connection the call named; the next one uses the current."""
        self._named = None

    @property
    def namespace(self) -> dict[str, Any]:
        """The notebook's variables, where ``$name`` looks."""
        assert self.shell is not None
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    def evaluate(self, expression: str) -> Any:
        """A Python expression's value in the notebook; one line if it fails."""
        try:
            return eval(expression, self.namespace)
        except Exception as error:
            raise ParameterError(
                f"cannot evaluate {expression!r}: {type(error).__name__}: {error}"
            ) from None

    def _configure(self, runtime: Runtime) -> None:
        # Each connection's listener and history follow the traits too; but
        # listen_dsn is a way past the default connection's pooler, and
        # would take a named connection's listener to another database.
        if runtime is self.connections.default:
            listener_for(runtime).default_dsn = self.listen_dsn
        listener_for(runtime).log.resize(self.notify_history)
        runtime.history.enabled = self.history
        runtime.history.limit = self.history_size

    @observe(*_CONNECTION)
    def _settings_changed(self, change: Any) -> None:
        self._sync_settings()

    @validate(
        *_CONNECTION,
        "displaylimit",
        "max_rows",
        "stream_idle_timeout",
        "notify_history",
        "history_size",
    )
    def _check(self, proposal: Any) -> Any:
        name, value = proposal["trait"].name, proposal["value"]
        if name == "init":
            if value is not None and not inspect.iscoroutinefunction(value):
                self._refuse(name, "must be an async function: async def init(conn): ...")
            return value
        if value is None:
            return value
        smallest = 1 if name in _AT_LEAST_ONE else 0
        if value < smallest:
            self._refuse(name, f"must be at least {smallest}, got {value}")
        return value

    @validate("frame")
    def _check_frame(self, proposal: Any) -> str:
        value = proposal["value"]
        kinds = [k.value for k in FrameKind]
        if value not in kinds:
            self._refuse("frame", f"must be one of {', '.join(map(repr, kinds))}, got {value!r}")
        return str(value)

    @validate("dtype_backend")
    def _check_dtype_backend(self, proposal: Any) -> str:
        value = proposal["value"]
        backends = [b.value for b in DtypeBackend]
        if value not in backends:
            self._refuse(
                "dtype_backend", f"must be one of {', '.join(map(repr, backends))}, got {value!r}"
            )
        return str(value)

    def backend_for(self, chosen: DtypeBackend | None, frame: FrameKind) -> DtypeBackend:
        """The dtypes of a cell's pandas DataFrame: its own option, else ``PgMagics.dtype_backend``.

        Parameters
        ----------
        chosen : DtypeBackend or None
            ``--dtype-backend``, if given.
        frame : FrameKind
            What the cell's rows become (:meth:`frame_for`).

        Returns
        -------
        DtypeBackend

        Raises
        ------
        OptionError
            ``--dtype-backend`` was given for rows that are not pandas.
        """
        if chosen is not None and frame is not FrameKind.PANDAS:
            raise OptionError(
                f"--dtype-backend shapes pandas DataFrames; PgMagics.frame is {frame.value!r} "
                "(add --pandas)"
            )
        return chosen if chosen is not None else DtypeBackend(self.dtype_backend)

    def frame_for(self, chosen: FrameKind | None) -> FrameKind:
        """What a cell's rows become: its own option, else ``PgMagics.frame``.

        Parameters
        ----------
        chosen : FrameKind or None
            ``--pandas``, ``--arrow`` or ``--polars``, if given.

        Returns
        -------
        FrameKind
        """
        return chosen if chosen is not None else FrameKind(self.frame)

    def _refuse(self, name: str, reason: str) -> None:
        # %config stores a value in the shell's configuration before handing it
        # over; a refused one must not stay there, or every later %load_ext of
        # pgmagic would fail on it.
        for config in (self.config, getattr(self.shell, "config", None)):
            section = config.get("PgMagics") if config is not None else None
            if section is not None and name in section:
                del section[name]
        raise TraitError(f"PgMagics.{name} {reason}")

    @validate("listen_dsn")
    def _check_listen_dsn(self, proposal: Any) -> str | None:
        value = proposal["value"]
        if value is None or not value.strip():
            return None
        try:
            dsn_module.normalize(value)
        except ConnectError as error:
            # The message names the accepted forms, never the value.
            self._refuse("listen_dsn", str(error))
        return _SecretDsn(value)

    @observe("listen_dsn")
    def _listen_dsn_changed(self, change: Any) -> None:
        # Used from the listener's next start; a running one keeps its connection.
        if hasattr(self, "connections"):
            listener_for(self.connections.default).default_dsn = change["new"]

    @observe("notify_history")
    def _notify_history_changed(self, change: Any) -> None:
        # Configuration loaded by __init__ arrives before self.runtime exists;
        # the extension's load hands that value to the log.
        if hasattr(self, "connections"):
            for runtime in self.connections.runtimes():
                listener_for(runtime).log.resize(change["new"])

    @observe("history", "history_size")
    def _history_changed(self, change: Any) -> None:
        if hasattr(self, "connections"):
            for runtime in self.connections.runtimes():
                runtime.history.enabled = self.history
                runtime.history.limit = self.history_size

    def _sync_settings(self) -> None:
        if (
            self.pool_min_size < 0
            or self.pool_max_size < 1
            or self.pool_min_size > self.pool_max_size
        ):
            raise OptionError("need 0 <= pool_min_size <= pool_max_size and pool_max_size >= 1")
        settings = self.connections.settings
        for name in _CONNECTION:
            setattr(settings, name, getattr(self, name))
        settings.command_timeout = self.command_timeout or None
