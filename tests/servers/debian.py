"""Debian's PostgreSQL 15 and a pgbouncer in front of it, private to one test session.

``start()`` installs the packages when their binaries are missing (``apt-get``,
root only), then starts a throwaway cluster in a temporary folder and a
pgbouncer in transaction pooling mode, both listening on free ports of
127.0.0.1.  Everything is stopped and removed by ``Servers.stop()`` (also
registered with ``atexit``).  No pytest here: ``python -m tests.servers.debian``
starts both and prints their DSNs, for trying things by hand.

Roles: ``postgres`` is the superuser, reached through the unix socket with
trust auth (setup only); ``pgmagic`` is an ordinary role with a password
(scram-sha-256 over TCP), owner of the database ``pgmagic``.  pgbouncer knows
``pgmagic``'s password from its auth file and serves every database of the
cluster.

Errors: ``Unavailable`` when the packages are missing and apt cannot install
them (the caller may skip); ``ServerError`` when anything fails after that,
with the command's output and the logs' tails (always a bug to look at).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["PACKAGES", "ServerError", "Servers", "Unavailable", "ensure_installed", "start"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PGBOUNCER = Path("/usr/sbin/pgbouncer")
# Debian package -> a binary it installs; a package counts as installed when its binary exists.
PACKAGES = {"postgresql-15": PG_BIN / "postgres", "pgbouncer": PGBOUNCER}
# postgres refuses to run as root; as root, the servers run as the user the package creates.
OWNER = "postgres"
USER = "pgmagic"
DATABASE = "pgmagic"

APT_UPDATE_TIMEOUT = 600.0
APT_INSTALL_TIMEOUT = 1200.0
# Another apt or dpkg (an engineer, a second test session) may hold the lock for a while.
APT_LOCK_TIMEOUT = 600
INITDB_TIMEOUT = 120.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
PORT_ATTEMPTS = 3

INITDB_OPTIONS = (
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
)
PG_CTL_STOP = ("-m", "immediate", "-w", "-t", str(int(STOP_TIMEOUT)))

# What the cluster needs to be quick and private; it lives for one test session.
POSTGRES_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
"""

# A stock pgbouncer 1.18, but for the ignored startup parameters (what psycopg and JDBC
# send).  asyncpg sends client_encoding and pgmagic application_name, which pgbouncer
# tracks itself.  pgmagic's client_connection_check_interval is deliberately not
# ignored: pgbouncer refuses it ("unsupported startup parameter"), as it does for users,
# and pgmagic must cope with that (see pgmagic/runtime/connect.py).
PGBOUNCER_INI = """
[databases]
* = host=127.0.0.1 port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {auth_file}
pool_mode = transaction
ignore_startup_parameters = extra_float_digits,options
max_client_conn = 400
default_pool_size = 40
logfile = {log}
"""


class Unavailable(RuntimeError):
    """The packages are missing and cannot be installed here (no apt, not root, apt failed)."""


class ServerError(RuntimeError):
    """A server could not be set up or started; the message carries the output and logs."""


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return f"--- last lines of {path} ---\n{_tail(path.read_text(errors='replace'), lines)}"
    except OSError as error:
        return f"--- {path}: {error} ---"


def _run(
    command: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    what: str,
    error: type[RuntimeError] = ServerError,
    logs: Sequence[Path] = (),
    env: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
) -> str:
    """Run a command to completion; raise ``error`` with its output and logs if it fails.

    ``owner`` is ``as_owner(folder)``, for the commands that must not run as root.
    """
    args = [str(a) for a in command]
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
            check=False,
            **(owner or {}),
        )
    except subprocess.TimeoutExpired as expired:
        output = expired.output or b""
        text = output.decode(errors="replace") if isinstance(output, bytes) else output
        reason = f"did not finish within {timeout:.0f} s"
    except OSError as oserror:
        text, reason = "", str(oserror)
    else:
        if done.returncode == 0:
            return done.stdout
        text, reason = done.stdout, f"exit status {done.returncode}"
    parts = [f"{what} failed ({reason}): {' '.join(args)}", _tail(text)]
    parts += [_log_tail(log) for log in logs]
    raise error("\n".join(p for p in parts if p))


def missing_packages() -> list[str]:
    """The packages whose binaries are not on this machine."""
    return [name for name, binary in PACKAGES.items() if not binary.exists()]


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    # Two test sessions on one machine must not both run apt; dpkg would refuse one.
    with open(os.path.join(tempfile.gettempdir(), "pgmagic-apt.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_installed() -> float:
    """Install ``postgresql-15`` and ``pgbouncer`` with apt when their binaries are missing.

    Returns
    -------
    float
        Seconds spent installing (0 when nothing was missing).

    Raises
    ------
    Unavailable
        When something is missing and apt cannot install it.
    """
    if not missing_packages():
        return 0.0
    began = time.monotonic()
    with _install_lock():
        missing = missing_packages()
        if not missing:
            return time.monotonic() - began
        hint = f"apt-get install -y --no-install-recommends {' '.join(missing)}"
        if shutil.which("apt-get") is None:
            raise Unavailable(f"{', '.join(missing)} missing and no apt-get here: install them")
        if os.geteuid() != 0:
            raise Unavailable(f"{', '.join(missing)} missing and not root: run `sudo {hint}`")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock = f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}"
        _run(
            ["apt-get", "-o", lock, "-o", "Acquire::Retries=3", "update"],
            timeout=APT_UPDATE_TIMEOUT,
            what="apt-get update",
            error=Unavailable,
            env=env,
        )
        _run(
            ["apt-get", "-o", lock, "install", "-y", "--no-install-recommends", *missing],
            timeout=APT_INSTALL_TIMEOUT,
            what="apt-get install",
            error=Unavailable,
            env=env,
        )
        still = missing_packages()
        if still:
            raise Unavailable(f"apt-get installed {', '.join(missing)} but {still} still missing")
    return time.monotonic() - began


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def as_owner(folder: Path) -> dict[str, Any]:
    """``subprocess`` arguments that run a command as the servers' owner, inside ``folder``."""
    # Popen's own user switch rather than runuser: the process stays our direct child, and
    # runuser waits 2 s after forwarding a signal.
    if os.geteuid() != 0:
        return {"cwd": folder}
    return {"cwd": folder, "user": OWNER, "group": OWNER, "extra_groups": []}


def _dsn(user: str, password: str | None, host: str, port: int, database: str) -> str:
    secret = f":{quote(password, safe='')}" if password else ""
    if host.startswith("/"):
        return f"postgresql://{user}@/{database}?host={quote(host, safe='/')}&port={port}"
    return f"postgresql://{user}{secret}@{host}:{port}/{database}"


@dataclass
class Servers:
    """A running PostgreSQL 15 cluster and the pgbouncer in front of it.

    Attributes
    ----------
    folder : pathlib.Path
        The temporary folder holding the cluster, sockets, configuration and logs.
    pg_port, pgbouncer_port : int
        TCP ports on 127.0.0.1.
    password : str
        ``pgmagic``'s password (random for each session).
    install_seconds, start_seconds : float
        How long installing the packages and starting both servers took.
    """

    folder: Path
    pg_port: int
    pgbouncer_port: int
    password: str = field(repr=False)
    install_seconds: float = 0.0
    start_seconds: float = 0.0
    _pgbouncer: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _postgres_started: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    @property
    def postgres_log(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def pgbouncer_log(self) -> Path:
        return self.folder / "pgbouncer.log"

    def pg15_dsn(self, database: str = DATABASE) -> str:
        """``pgmagic`` with its password, over TCP, straight to PostgreSQL 15."""
        return _dsn(USER, self.password, "127.0.0.1", self.pg_port, database)

    def pgbouncer_dsn(self, database: str = DATABASE) -> str:
        """``pgmagic`` with its password, through pgbouncer (transaction pooling)."""
        return _dsn(USER, self.password, "127.0.0.1", self.pgbouncer_port, database)

    def superuser_dsn(self, database: str = "postgres") -> str:
        """The ``postgres`` superuser over the unix socket (trust auth), for setup."""
        return _dsn(OWNER, None, str(self.socket_dir), self.pg_port, database)

    def psql(self, *sql: str, database: str = "postgres") -> str:
        """Run statements as the superuser, each in its own transaction; return psql's output."""
        args = [PG_BIN / "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        args += ["-d", self.superuser_dsn(database)]
        for statement in sql:
            args += ["-c", statement]
        return _run(args, timeout=START_TIMEOUT, what="psql", logs=[self.postgres_log])

    def create_database(self, name: str) -> None:
        """A fresh database owned by ``pgmagic`` (dropped first if it exists)."""
        self.psql(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}" OWNER {USER}',
        )

    def drop_database(self, name: str) -> None:
        """Drop a database, closing pgbouncer's server connections to it first."""
        # pgbouncer keeps idle server connections; FORCE ends them, pgbouncer reconnects lazily.
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def logs(self, lines: int = 40) -> str:
        """The tails of both servers' logs, for failure messages."""
        return "\n".join(_log_tail(p, lines) for p in (self.postgres_log, self.pgbouncer_log))

    def _start_postgres(self) -> None:
        _run(
            [PG_BIN / "initdb", "-D", self.data_dir, "-U", OWNER, *INITDB_OPTIONS],
            timeout=INITDB_TIMEOUT,
            what="initdb",
            owner=as_owner(self.folder),
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(POSTGRES_CONF.format(socket_dir=self.socket_dir))
        pg_ctl_start = [PG_BIN / "pg_ctl", "start", "-D", self.data_dir, "-l", self.postgres_log]
        pg_ctl_start += ["-w", "-t", str(int(START_TIMEOUT))]
        for attempt in range(PORT_ATTEMPTS):
            self.pg_port = free_port()
            try:
                _run(
                    [*pg_ctl_start, "-o", f"-p {self.pg_port}"],
                    timeout=START_TIMEOUT + 10,
                    what="pg_ctl start",
                    logs=[self.postgres_log],
                    owner=as_owner(self.folder),
                )
                break
            except ServerError:
                # Another process may have taken the port between our check and the bind.
                if attempt + 1 == PORT_ATTEMPTS or "already in use" not in self._read(
                    self.postgres_log
                ):
                    raise
        self._postgres_started = True
        self.psql(
            f"CREATE ROLE {USER} LOGIN PASSWORD '{self.password}'",
            f"CREATE DATABASE {DATABASE} OWNER {USER}",
        )

    def _start_pgbouncer(self) -> None:
        auth_file = self.folder / "userlist.txt"
        auth_file.write_text(f'"{USER}" "{self.password}"\n')
        config = self.folder / "pgbouncer.ini"
        for attempt in range(PORT_ATTEMPTS):
            self.pgbouncer_port = free_port()
            config.write_text(
                PGBOUNCER_INI.format(
                    pg_port=self.pg_port,
                    port=self.pgbouncer_port,
                    auth_file=auth_file,
                    log=self.pgbouncer_log,
                )
            )
            self._chown(auth_file, config)
            with (self.folder / "pgbouncer.out").open("ab") as out:
                self._pgbouncer = subprocess.Popen(
                    [PGBOUNCER, config],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    # Its own session: a Ctrl-C meant for the tests is not pgbouncer's.
                    start_new_session=True,
                    **as_owner(self.folder),
                )
            if self._wait_for_pgbouncer():
                break
            assert self._pgbouncer is not None
            status = self._pgbouncer.poll()
            self._stop_pgbouncer()
            log = self._read(self.pgbouncer_log) + self._read(self.folder / "pgbouncer.out")
            if attempt + 1 == PORT_ATTEMPTS or "already in use" not in log:
                why = f"exited with status {status}" if status is not None else "is not listening"
                raise ServerError(
                    f"pgbouncer {why} (127.0.0.1:{self.pgbouncer_port}, waited up to "
                    f"{START_TIMEOUT:.0f} s)\n{self.logs()}\n"
                    + _log_tail(self.folder / "pgbouncer.out")
                )
        # A real query through pgbouncer: checks its auth file and its way to the server.
        _run(
            [PG_BIN / "psql", "-X", "-q", "-A", "-t", "-d", self.pgbouncer_dsn(), "-c", "SELECT 1"],
            timeout=START_TIMEOUT,
            what="a query through pgbouncer",
            logs=[self.pgbouncer_log, self.postgres_log],
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )

    def _wait_for_pgbouncer(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._pgbouncer is not None
            if self._pgbouncer.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.pgbouncer_port), timeout=1).close()
                return True
            time.sleep(0.05)
        return False

    def _stop_pgbouncer(self) -> None:
        process, self._pgbouncer = self._pgbouncer, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop(self) -> None:
        """Stop pgbouncer and PostgreSQL and remove the folder; safe to call twice."""
        self._stop_pgbouncer()
        if self._postgres_started:
            self._postgres_started = False
            with contextlib.suppress(ServerError):
                _run(
                    [PG_BIN / "pg_ctl", "stop", "-D", self.data_dir, *PG_CTL_STOP],
                    timeout=STOP_TIMEOUT + 10,
                    what="pg_ctl stop",
                    owner=as_owner(self.folder),
                )
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    @staticmethod
    def _chown(*paths: Path) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam(OWNER)
            for path in paths:
                os.chown(path, owner.pw_uid, owner.pw_gid)


def start() -> Servers:
    """Install the packages if needed, then start PostgreSQL 15 and pgbouncer.

    Returns
    -------
    Servers
        Running; stop it with ``stop()`` (also done at exit).

    Raises
    ------
    Unavailable
        The packages are missing and cannot be installed.
    ServerError
        Installed, but something failed while starting; the message has the logs.
    """
    install_seconds = ensure_installed()
    began = time.monotonic()
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OWNER)
        except KeyError:
            raise ServerError(f"no {OWNER!r} user, which postgresql-15 creates") from None
    folder = Path(tempfile.mkdtemp(prefix="pgmagic-pg15-"))
    servers = Servers(folder, 0, 0, secrets.token_hex(16), install_seconds=install_seconds)
    atexit.register(servers.stop)
    try:
        servers.socket_dir.mkdir()
        servers._chown(folder, servers.socket_dir)
        servers._start_postgres()
        servers._start_pgbouncer()
    except BaseException:
        servers.stop()
        raise
    servers.start_seconds = time.monotonic() - began
    return servers


if __name__ == "__main__":
    # Stop (through atexit) on Ctrl-C or kill, also when started in the background, where
    # the shell leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    running = start()
    print(f"installed in {running.install_seconds:.1f} s, started in {running.start_seconds:.1f} s")
    print(f"PostgreSQL 15:  {running.pg15_dsn()}")
    print(f"pgbouncer:      {running.pgbouncer_dsn()}")
    print(f"superuser:      {running.superuser_dsn()}")
    print(f"folder:         {running.folder}")
    with contextlib.suppress(KeyboardInterrupt):
        print("Ctrl-C stops both.")
        signal.pause()
