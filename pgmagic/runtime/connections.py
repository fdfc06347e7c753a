"""Named connections: a runtime per name, every one on the kernel's single loop thread.

The connection a kernel starts with is the *default connection*.  It has no
name of its own: it is ``embedded`` while it uses the embedded server and
``default`` otherwise, and ``%pg connect DSN`` (without a name) points it
elsewhere, closing what it had, as before named connections existed.  A named
connection (``%pg connect prod DSN``) is another runtime beside it, with its
own target, pool, session, listener and catalog snapshot; they share the
:class:`~pgmagic.runtime.connect.Settings` (the ``PgMagics`` traits) and the
loop thread.  Closing a named connection leaves the loop running; closing
:class:`Connections` stops it.

The current connection is where cells run unless they name another
(``%%pg @prod``); it is the one last connected to or chosen with
``%pg use``.  When it is closed, the default connection is current again.

A name no connection has yet may be declared in a file
(:mod:`~pgmagic.runtime.declared`): naming it opens it.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable

from pgmagic.errors import OptionError
from pgmagic.runtime.connect import Settings
from pgmagic.runtime.declared import Declared, find, is_name
from pgmagic.runtime.dsn import EMBEDDED
from pgmagic.runtime.loop import LoopThread, Runtime

__all__ = ["DEFAULT", "Connections", "default_connections", "default_runtime", "is_name"]

#: The default connection's name while it does not use the embedded server.
DEFAULT = "default"


class Connections:
    """The kernel's connections by name, and which one is current.

    Parameters
    ----------
    settings : Settings, optional
        Shared by every connection.
    declarations : callable, optional
        Finds the connections declared in a file (read when a name is not
        open yet); default: :func:`pgmagic.runtime.declared.find` from the
        working folder.

    Examples
    --------
    >>> connections = Connections()  # doctest: +SKIP
    >>> connections.open("prod", "service=prod").connection_name()  # doctest: +SKIP
    'prod'
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        declarations: Callable[[], Declared | None] = find,
    ) -> None:
        self.settings = settings or Settings()
        self.declarations = declarations
        self._thread = LoopThread()
        self._default = Runtime(self.settings, thread=self._thread)
        self._named: dict[str, Runtime] = {}
        self._current = self._default
        self._on_open: list[Callable[[Runtime], None]] = []
        # The kernel's thread changes the mapping; the panel's completion reads it.
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.close)

    @property
    def current(self) -> Runtime:
        """Where cells run unless they name another connection."""
        if self._current.closed and self._current is not self._default:
            # Closed behind our back (runtime.close()): as %pg close would leave it.
            self.close_one(self._current.connection_name())
        return self._current

    @property
    def default(self) -> Runtime:
        """The default connection (``embedded`` or ``default``)."""
        return self._default

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran (or the default connection was closed directly)."""
        return self._closed or self._default.closed

    def runtimes(self) -> list[Runtime]:
        """Every connection, the default first, then by name."""
        with self._lock:
            return [self._default, *(self._named[name] for name in sorted(self._named))]

    def names(self) -> list[str]:
        """Every connection's name, in :meth:`runtimes` order."""
        return [runtime.connection_name() for runtime in self.runtimes()]

    def get(self, name: str, *, declared: bool = True) -> Runtime:
        """The connection called ``name``.

        Parameters
        ----------
        name : str
            A name given to :meth:`open`, or the default connection's name.
        declared : bool
            Open a connection declared in a file if none of that name is open.

        Returns
        -------
        Runtime

        Raises
        ------
        OptionError
            No connection has that name; the message lists those there are.
        ConnectError
            A declared connection of that name could not be opened.
        """
        if name == self._default.connection_name() or name == DEFAULT:
            return self._default
        with self._lock:
            found = self._named.get(name)
        if found is not None:
            return found
        declarations = self.declarations() if declared else None
        if declarations is not None and name in declarations.dsns:
            # Declared in a file: opened when first named, not made current.
            current = self._current
            try:
                return self.open(name, declarations.dsns[name])
            finally:
                self._current = current
        known = f"connections: {', '.join(self.names())}"
        if declarations is not None:
            shown = ", ".join(declarations.dsns) or "none"
            known += f"; declared in {declarations.path}: {shown}"
        raise OptionError(f"no connection named {name!r}; {known}")

    def on_open(self, configure: Callable[[Runtime], None]) -> None:
        """Call ``configure`` on every connection now open and each one opened later.

        The front uses it to hand its configuration (the listener's, the
        history's) to every connection.

        Parameters
        ----------
        configure : callable
        """
        self._on_open.append(configure)
        for runtime in self.runtimes():
            configure(runtime)

    def open(self, name: str | None, dsn: str | None, *, pooler: bool = False) -> Runtime:
        """Connect ``name`` to ``dsn`` and make it current (``%pg connect``).

        The new target is tried first: on failure nothing changes, neither the
        connection of that name (if it exists) nor which one is current.

        Parameters
        ----------
        name : str or None
            None or ``default``: the default connection, whose old target's
            session, pool and listener are closed.  Another name adds that
            connection, or replaces its target.
        dsn : str or None
            As :meth:`Runtime.set_target` takes it.
        pooler : bool
            Treat the target as a transaction pooler.

        Returns
        -------
        Runtime

        Raises
        ------
        OptionError
            ``name`` is not a name, or is ``embedded`` (the default
            connection's name for the embedded server).
        ConnectError
            The target cannot be reached.
        """
        if name is None or name == DEFAULT:
            self._default.set_target(dsn, pooler=pooler)
            self._current = self._default
            return self._default
        if not is_name(name) or name == EMBEDDED:
            raise OptionError(
                f"cannot name a connection {name!r}: use a name such as prod or dev_2 "
                f"({EMBEDDED!r} is the default connection's name on the embedded server)"
            )
        with self._lock:
            runtime = self._named.get(name)
        if runtime is not None:
            runtime.set_target(dsn, pooler=pooler)
        else:
            runtime = Runtime(self.settings, thread=self._thread, name=name)
            try:
                runtime.set_target(dsn, pooler=pooler)
            except BaseException:
                runtime.close()
                raise
            for configure in self._on_open:
                configure(runtime)
            with self._lock:
                self._named[name] = runtime
        self._current = runtime
        return runtime

    def use(self, name: str) -> Runtime:
        """Make ``name`` the current connection (``%pg use``).

        Parameters
        ----------
        name : str

        Returns
        -------
        Runtime
        """
        self._current = self.get(name)
        return self._current

    def close_one(self, name: str) -> Runtime:
        """Close the connection ``name`` (``%pg close``); return the current one after.

        A named connection goes away, with its session, pool and listener; if
        it was current, the default connection is current again.  The default
        connection cannot go: it is disconnected, and reconnects when next used.

        Parameters
        ----------
        name : str

        Returns
        -------
        Runtime
        """
        runtime = self.get(name, declared=False)
        if runtime is self._default:
            runtime.disconnect()
            return self._current
        with self._lock:
            self._named.pop(runtime.connection_name(), None)
        if self._current is runtime:
            self._current = self._default
        runtime.close()
        return self._current

    def close(self) -> None:
        """Close every connection and stop the loop thread.  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for runtime in reversed(self.runtimes()):
            runtime.close()
        with self._lock:
            self._named.clear()
        self._current = self._default
        self._thread.stop()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        current = self._current.connection_name()
        return f"<pgmagic.Connections {state} {', '.join(self.names())} current={current}>"


_kernel: Connections | None = None
_kernel_lock = threading.Lock()


def default_connections(create: bool = True) -> Connections | None:
    """The kernel's connections, shared by the magics and the Python API.

    Parameters
    ----------
    create : bool
        Create them if there are none (or they were closed).

    Returns
    -------
    Connections or None
    """
    global _kernel
    with _kernel_lock:
        if (_kernel is None or _kernel.closed) and create:
            if _kernel is not None:
                _kernel.close()  # its default connection was closed alone: stop the rest
            _kernel = Connections()
        return _kernel


def default_runtime(create: bool = True) -> Runtime | None:
    """The runtime of the kernel's current connection, shared by the magics and the API.

    Parameters
    ----------
    create : bool
        Create the kernel's connections if there are none (or they were closed).

    Returns
    -------
    Runtime or None
    """
    connections = default_connections(create)
    return None if connections is None else connections.current
