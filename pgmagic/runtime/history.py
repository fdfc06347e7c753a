r"""The query history: every statement pgmagic runs for the user, kept per kernel on disk.

One :class:`History` per runtime.  Where a statement runs, the caller takes a
:class:`Recording` (which cell it belongs to, read in the caller's thread),
starts a :class:`Pending` before sending the statement and finishes it with
the outcome; :meth:`Pending.finish` is the one place an :class:`Entry` is
made.  Entries are written by a writer thread of their own, so a cell never
waits on the disk: recording costs a queue put.

What is recorded: cells (each statement of a cell separately), ``%pg`` lines,
the Python API, ``--many`` (once, with its row count), streams and exports
(once each, when they end), loads (their ``COPY``), refreshes and watches
(each run), and psql's describe commands as the user typed them (``\d
orders``), not the catalog queries behind them.  Not recorded: pgmagic's own
queries (completion's catalog snapshot, ``%pg status``, connection set-up,
``LISTEN`` on the listener's connection).

The file is ``history.sqlite3`` in the per-user data folder (or
``$PGMAGIC_HISTORY_FILE``), in WAL mode so kernels write to it side by side.
It keeps the newest :attr:`History.limit` statements (all kernels together)
and at most :data:`MAX_SQL` characters of each statement's text.  Parameter
values are never recorded, only their names; passwords in the text (``PASSWORD
'...'``, ``password=`` and ``user:password@`` inside string constants) are
replaced by ``***``.  A folder that cannot be written (read-only, full disk)
costs one line, once, and the history is then kept in memory only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import enum
import os
import queue
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import platformdirs

__all__ = [
    "DEFAULT_LIMIT",
    "KERNEL",
    "MAX_SQL",
    "Entry",
    "History",
    "Pending",
    "Recording",
    "Status",
    "history_path",
    "redact",
]

DEFAULT_LIMIT = 10_000
"""Statements kept, all kernels together (``PgMagics.history_size``)."""
MAX_SQL = 64 * 1024
"""Characters of a statement's text kept; longer text is cut, and says so."""
KERNEL = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
"""This process's id in the history: a restarted kernel is a new one."""

# How long a reader waits for the writer to catch up, and a writer for a
# lock another kernel holds.
_FLUSH_SECONDS = 5.0
_BUSY_SECONDS = 2.0
_BATCH_SECONDS = 0.05
# Writes a busy file gets (each waits _BUSY_SECONDS) before memory takes over.
_ATTEMPTS = 3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS statements (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    kernel TEXT NOT NULL,
    connection TEXT NOT NULL,
    cell INTEGER,
    sql TEXT NOT NULL,
    params TEXT NOT NULL,
    rows INTEGER,
    seconds REAL NOT NULL,
    status TEXT NOT NULL,
    sqlstate TEXT,
    pid INTEGER
)
"""
_COLUMNS = "started, kernel, connection, cell, sql, params, rows, seconds, status, sqlstate, pid"
# Statement timeouts read as the server reports its own: query_canceled.
_TIMEOUT_SQLSTATE = "57014"
_TAG_ROWS = re.compile(r"\s(\d+)$")


class Status(enum.Enum):
    """How a statement ended."""

    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Entry:
    """One statement as the history keeps it.

    Attributes
    ----------
    started : datetime.datetime
        When it was sent (UTC).
    kernel : str
        The kernel (process) that ran it (:data:`KERNEL`).
    connection : str
        Where it ran: ``embedded``, or the target without its password.
    cell : int or None
        The cell's execution count (None outside a cell).
    sql : str
        The text as written, ``$name`` and all; passwords redacted, cut at :data:`MAX_SQL`.
    params : tuple of str
        The parameters' names (``$name``, ``$1``); never their values.
    rows : int or None
        Rows returned or affected (None when the command tag gives no count).
    seconds : float
    status : Status
    sqlstate : str or None
        The error's SQLSTATE (``57014`` for a timeout).
    pid : int or None
        The server process that ran it.
    """

    started: dt.datetime
    kernel: str
    connection: str
    cell: int | None
    sql: str
    params: tuple[str, ...]
    rows: int | None
    seconds: float
    status: Status
    sqlstate: str | None = None
    pid: int | None = None


_PASSWORD = re.compile(
    r"(?i)\b(password\s*=?\s*)(E'(?:[^'\\]|''|\\.)*'|'(?:[^']|'')*'|\$(\w*)\$.*?\$\3\$)", re.S
)
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_KEYWORD = re.compile(r"(?i)\b(password\s*=\s*)(?!\*\*\*)[^\s'&]+")
_USERINFO = re.compile(r"(\w://[^:/@\s']*:)(?!\*\*\*@)[^@\s']+@")


def redact(sql: str) -> str:
    """Hide passwords in SQL text: ``PASSWORD '...'``, and DSNs inside string constants.

    Parameters
    ----------
    sql : str

    Returns
    -------
    str

    Examples
    --------
    >>> redact("ALTER ROLE app PASSWORD 's3cret'")
    "ALTER ROLE app PASSWORD '***'"
    >>> redact("SELECT dblink_connect('host=db password=s3cret')")
    "SELECT dblink_connect('host=db password=***')"
    """
    if "assword" not in sql and "ASSWORD" not in sql and "://" not in sql:
        return sql  # the usual case, without a regular expression
    sql = _PASSWORD.sub(r"\1'***'", sql)

    def inside(literal: re.Match[str]) -> str:
        return _USERINFO.sub(r"\1***@", _KEYWORD.sub(r"\1***", literal.group(0)))

    return _LITERAL.sub(inside, sql)


def _cut(sql: str) -> str:
    if len(sql) <= MAX_SQL:
        return sql
    return f"{sql[:MAX_SQL]}\n-- cut: {len(sql) - MAX_SQL:,} more characters"


def rows_of(status: str) -> int | None:
    """The row count a command tag gives (``INSERT 0 5`` is 5, ``CREATE TABLE`` none).

    Parameters
    ----------
    status : str

    Returns
    -------
    int or None
    """
    found = _TAG_ROWS.search(status)
    return int(found.group(1)) if found else None


_CANCELLED = (
    KeyboardInterrupt,
    GeneratorExit,
    asyncio.CancelledError,
    concurrent.futures.CancelledError,
)


def _outcome(error: BaseException | None) -> tuple[Status, str | None]:
    if error is None:
        return Status.OK, None
    # KeyboardInterrupt covers QueryCancelled (Ctrl-C in a magic or a worker).
    if isinstance(error, _CANCELLED):
        return Status.CANCELLED, None
    if isinstance(error, TimeoutError):
        return Status.ERROR, _TIMEOUT_SQLSTATE
    sqlstate = getattr(error, "sqlstate", None)
    return Status.ERROR, sqlstate if isinstance(sqlstate, str) else None


def history_path() -> Path:
    """Where the history is kept.

    Returns
    -------
    pathlib.Path
        ``$PGMAGIC_HISTORY_FILE`` if set, else ``<user data dir>/pgmagic/history.sqlite3``.
    """
    override = os.environ.get("PGMAGIC_HISTORY_FILE")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("pgmagic") / "history.sqlite3"


class Pending:
    """A statement on its way: started now, made an :class:`Entry` by :meth:`finish`.

    Also a context manager: the block is the statement, and an exception
    leaving it is its outcome.  Set :attr:`rows` before the block ends.
    """

    __slots__ = ("_clock", "_recording", "_sql", "_started", "params", "pid", "rows")

    def __init__(
        self, recording: Recording, sql: str, params: Sequence[str], pid: int | None
    ) -> None:
        self._recording: Recording | None = recording
        self._sql = sql
        self.params = tuple(params)
        self.pid = pid
        self.rows: int | None = None
        self._started = dt.datetime.now(dt.UTC)
        self._clock = time.perf_counter()

    def finish(self, error: BaseException | None = None) -> None:
        """Record the statement's outcome (once; nothing when the history is off).

        Parameters
        ----------
        error : BaseException, optional
            What it ended with; None for success.
        """
        recording, self._recording = self._recording, None
        if recording is None or not recording.history.enabled:
            return
        status, sqlstate = _outcome(error)
        history = recording.history
        history.add(
            Entry(
                self._started,
                KERNEL,
                history.connection_name(),
                recording.cell,
                _cut(redact(self._sql)),
                self.params,
                self.rows if status is Status.OK else None,
                time.perf_counter() - self._clock,
                status,
                sqlstate,
                self.pid,
            )
        )

    def __enter__(self) -> Pending:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.finish(error)


@dataclass(frozen=True, slots=True)
class Recording:
    """Where statements are recorded and for which cell.

    Take one with :meth:`History.recording` in the thread the user's cell
    runs in; a refresh keeps the one of the cell that started it.

    Attributes
    ----------
    history : History
    cell : int or None
    """

    history: History
    cell: int | None

    def start(self, sql: str, params: Sequence[str] = (), *, pid: int | None = None) -> Pending:
        """A statement starts now.

        Parameters
        ----------
        sql : str
            Its text as the user wrote it.
        params : sequence of str
            The names of its parameters (``$name``, ``$1``).
        pid : int, optional
            The server process that runs it.

        Returns
        -------
        Pending
        """
        return Pending(self, sql, params, pid)


def parameter_names(names: Sequence[str]) -> tuple[str, ...]:
    """``$name`` for each bound variable and ``$n`` for positional ones.

    Parameters
    ----------
    names : sequence of str
        :attr:`pgmagic.sql.params.BoundStatement.names` (``""`` for ``$n``).

    Returns
    -------
    tuple of str
    """
    return tuple(f"${name or index}" for index, name in enumerate(names, 1))


_STOP = object()


class History:
    """The statements of every kernel, newest kept, written off the hot path.

    Parameters
    ----------
    path : pathlib.Path, optional
        The SQLite file (default: :func:`history_path`, read when first written).
    limit : int
        Statements kept, all kernels together.
    note : callable, optional
        Receives the one line that says the file cannot be written.
    connection_name : callable, optional
        Names the connection statements run on, when they end.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
        note: Callable[[str], None] | None = None,
        connection_name: Callable[[], str] | None = None,
    ) -> None:
        self._path = path
        self.limit = limit
        self.enabled = True
        self._note = note
        self.connection_name: Callable[[], str] = connection_name or (lambda: "")
        # Set by the IPython front: the running cell's execution count.
        self.cell_number: Callable[[], int | None] = lambda: None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._in_memory = False
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def path(self) -> Path:
        """The file the history is kept in (even when it could not be written)."""
        return self._path or history_path()

    @property
    def in_memory(self) -> bool:
        """Whether the file could not be written, so the history lives in memory only."""
        return self._in_memory

    def recording(self, cell: int | None = None) -> Recording:
        """Record for the running cell (read now, in the caller's thread).

        Parameters
        ----------
        cell : int, optional
            The cell's number; default: the front's running cell, if any.

        Returns
        -------
        Recording
        """
        return Recording(self, self.cell_number() if cell is None else cell)

    def add(self, entry: Entry) -> None:
        """Queue an entry for the writer thread (any thread, never blocks).

        Parameters
        ----------
        entry : Entry
        """
        if self._closed:
            return
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._write_forever, name="pgmagic-history", daemon=True
                    )
                    self._thread.start()
        self._queue.put(entry)

    def _write_forever(self) -> None:
        while True:
            batch = [self._queue.get()]
            if isinstance(batch[0], Entry):
                # Statements come in bursts (a cell, a loop of API calls): one
                # transaction for a burst costs the cells less than one each.
                time.sleep(_BATCH_SECONDS)
            with contextlib.suppress(queue.Empty):
                while len(batch) < 1000:
                    batch.append(self._queue.get_nowait())
            entries = [item for item in batch if isinstance(item, Entry)]
            if entries:
                try:
                    self._write(entries)
                except Exception as error:
                    # Whatever went wrong, the writer lives on: a dead one would
                    # let the queue grow for the rest of the kernel's life.
                    with self._lock:
                        self._give_up_on_file(error)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if _STOP in batch:
                return

    def _write(self, entries: list[Entry]) -> None:
        rows = [
            (
                e.started.isoformat(timespec="microseconds"),
                e.kernel,
                e.connection,
                e.cell,
                e.sql,
                " ".join(e.params),
                e.rows,
                e.seconds,
                e.status.value,
                e.sqlstate,
                e.pid,
            )
            for e in entries
        ]
        with self._lock:
            attempts = 0
            while True:
                db = self._database()
                try:
                    with db:
                        db.executemany(
                            f"INSERT INTO statements ({_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                            rows,
                        )
                        # Ids count up by one per statement, so this keeps the
                        # newest `limit` in one index probe (fewer after a --clear).
                        db.execute(
                            "DELETE FROM statements WHERE id <= "
                            "(SELECT max(id) FROM statements) - ?",
                            (max(self.limit, 1),),
                        )
                    return
                except (sqlite3.Error, OSError) as error:
                    attempts += 1
                    if self._in_memory:
                        return  # memory failing too: nothing is left to try
                    if "locked" in str(error) and attempts < _ATTEMPTS:
                        continue  # another kernel writing for long: wait again
                    # A full disk or a file made read-only under us: memory from now on.
                    self._give_up_on_file(error)

    def _database(self) -> sqlite3.Connection:
        """The open database, opening the file on first use (under the lock)."""
        if self._db is not None:
            return self._db
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=_BUSY_SECONDS, check_same_thread=False)
            try:
                # WAL lets kernels write side by side; a file system without
                # shared memory (some network mounts) keeps the default journal.
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA journal_mode=WAL")
                # No fsync per statement: a crash may lose the last few
                # entries, never the file.
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(_SCHEMA)
            except BaseException:
                db.close()
                raise
        except (sqlite3.Error, OSError) as error:
            self._give_up_on_file(error)
            assert self._db is not None
            return self._db
        self._db = db
        return db

    def _give_up_on_file(self, error: BaseException) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(_SCHEMA)
        if not self._in_memory:
            self._in_memory = True
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            if self._note is not None:
                self._note(
                    f"pgmagic: query history kept in memory only: cannot write "
                    f"{self.path} ({reason})"
                )

    def flush(self, timeout: float = _FLUSH_SECONDS) -> None:
        """Wait (bounded) until every entry queued so far is written.

        Parameters
        ----------
        timeout : float
        """
        if self._thread is None or not self._thread.is_alive():
            return
        written = threading.Event()
        self._queue.put(written)
        written.wait(timeout)

    def read(
        self,
        *,
        last: int | None = None,
        pattern: str | None = None,
        every_kernel: bool = False,
    ) -> list[Entry]:
        """Recorded statements, oldest first.

        Parameters
        ----------
        last : int, optional
            Only the newest this many.
        pattern : str, optional
            Only statements whose text holds this, ignoring case.
        every_kernel : bool
            Every kernel's statements, not only this kernel's.

        Returns
        -------
        list of Entry
        """
        self.flush()
        where: list[str] = []
        args: list[Any] = []
        if not every_kernel:
            where.append("kernel = ?")
            args.append(KERNEL)
        if pattern:
            where.append("pgmagic_contains(sql, ?)")
            args.append(pattern.casefold())
        query = f"SELECT {_COLUMNS} FROM statements"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY started DESC, id DESC"
        if last is not None:
            query += " LIMIT ?"
            args.append(last)
        with self._lock:
            db = self._database()
            # SQLite's lower() folds ASCII only; Python folds every script.
            db.create_function(
                "pgmagic_contains", 2, lambda s, p: p in s.casefold(), deterministic=True
            )
            try:
                found = db.execute(query, args).fetchall()
            except sqlite3.Error as error:
                self._give_up_on_file(error)
                found = []
        return [_entry(row) for row in reversed(found)]

    def clear(self, *, every_kernel: bool = False) -> int:
        """Forget this kernel's statements (or every kernel's).

        Parameters
        ----------
        every_kernel : bool

        Returns
        -------
        int
            How many were forgotten.
        """
        self.flush()
        with self._lock:
            db = self._database()
            try:
                with db:
                    if every_kernel:
                        return db.execute("DELETE FROM statements").rowcount
                    return db.execute("DELETE FROM statements WHERE kernel = ?", (KERNEL,)).rowcount
            except sqlite3.Error as error:
                self._give_up_on_file(error)
                return 0

    def close(self) -> None:
        """Write what is queued (bounded wait) and close the file; later entries are dropped."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(_FLUSH_SECONDS)
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None


def _entry(row: tuple[Any, ...]) -> Entry:
    started, kernel, connection, cell, sql, params, rows, seconds, status, sqlstate, pid = row
    return Entry(
        dt.datetime.fromisoformat(started),
        kernel,
        connection,
        cell,
        sql,
        tuple(params.split()),
        rows,
        seconds,
        Status(status),
        sqlstate,
        pid,
    )
