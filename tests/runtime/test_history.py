"""The history store: redaction, bounds, restarts, other kernels, an unwritable folder."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pgmagic.runtime import history as module
from pgmagic.runtime.history import MAX_SQL, History, Status, redact, rows_of


@pytest.mark.parametrize(
    ("sql", "shown"),
    [
        ("SELECT 1", "SELECT 1"),
        ("ALTER ROLE app PASSWORD 's3cret'", "ALTER ROLE app PASSWORD '***'"),
        (
            "alter role app with encrypted password 'it''s'",
            "alter role app with encrypted password '***'",
        ),
        ("CREATE ROLE app LOGIN PASSWORD E'a\\'b'", "CREATE ROLE app LOGIN PASSWORD '***'"),
        ("CREATE ROLE app PASSWORD $pw$x'y$pw$", "CREATE ROLE app PASSWORD '***'"),
        (
            "CREATE USER MAPPING FOR me SERVER s OPTIONS (user 'me', password 'pw')",
            "CREATE USER MAPPING FOR me SERVER s OPTIONS (user 'me', password '***')",
        ),
        (
            "SELECT dblink_connect('host=db user=me password=pw dbname=x')",
            "SELECT dblink_connect('host=db user=me password=*** dbname=x')",
        ),
        (
            "SELECT dblink('postgresql://me:pw@db/x', 'SELECT 1')",
            "SELECT dblink('postgresql://me:***@db/x', 'SELECT 1')",
        ),
        # A placeholder is no secret; the column compared to it keeps its name.
        ("SELECT * FROM users WHERE password = $1", "SELECT * FROM users WHERE password = $1"),
        ("SELECT * FROM users WHERE password = 'pw'", "SELECT * FROM users WHERE password = '***'"),
        ("ALTER ROLE app PASSWORD NULL", "ALTER ROLE app PASSWORD NULL"),
    ],
)
def test_passwords_are_redacted(sql: str, shown: str) -> None:
    assert redact(sql) == shown


@pytest.mark.parametrize(
    ("tag", "rows"),
    [("SELECT 3", 3), ("INSERT 0 5", 5), ("UPDATE 0", 0), ("CREATE TABLE", None), ("", None)],
)
def test_rows_of_a_command_tag(tag: str, rows: int | None) -> None:
    assert rows_of(tag) == rows


def _record(history: History, sql: str, cell: int | None = None) -> None:
    with history.recording(cell).start(sql, ("$a",), pid=42) as pending:
        pending.rows = 1


def test_an_entry_holds_what_ran(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3", connection_name=lambda: "embedded")
    _record(history, "SELECT $a", cell=7)
    try:
        with history.recording(8).start("SELECT 1/0"):
            raise sqlite3.Error("stand-in") from None
    except sqlite3.Error:
        pass
    first, second = history.read()
    assert (first.sql, first.params, first.rows, first.cell, first.pid) == (
        "SELECT $a",
        ("$a",),
        1,
        7,
        42,
    )
    assert (first.status, first.connection, first.kernel) == (Status.OK, "embedded", module.KERNEL)
    assert first.started.tzinfo is not None and first.seconds >= 0
    assert (second.status, second.rows, second.cell) == (Status.ERROR, None, 8)
    history.close()


def test_only_the_newest_are_kept(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3", limit=5)
    for n in range(12):
        _record(history, f"SELECT {n}")
    assert [e.sql for e in history.read()] == [f"SELECT {n}" for n in range(7, 12)]
    assert [e.sql for e in history.read(last=2)] == ["SELECT 10", "SELECT 11"]
    history.close()


def test_long_text_is_cut(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    sql = "SELECT '" + "x" * (MAX_SQL * 2) + "'"
    _record(history, sql)
    [entry] = history.read()
    assert entry.sql.startswith(sql[:MAX_SQL])
    assert entry.sql.endswith(f"\n-- cut: {len(sql) - MAX_SQL:,} more characters")
    history.close()


def test_the_history_survives_a_restart_and_tells_kernels_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h.sqlite3"
    before = History(path)
    monkeypatch.setattr(module, "KERNEL", "an-earlier-kernel")
    _record(before, "SELECT 'before the restart'")
    before.close()
    monkeypatch.undo()
    after = History(path)
    _record(after, "SELECT 'after'")
    assert [e.sql for e in after.read()] == ["SELECT 'after'"]
    every = after.read(every_kernel=True)
    assert [(e.sql, e.kernel) for e in every] == [
        ("SELECT 'before the restart'", "an-earlier-kernel"),
        ("SELECT 'after'", module.KERNEL),
    ]
    assert [e.sql for e in after.read(pattern="RESTART", every_kernel=True)] == [
        "SELECT 'before the restart'"
    ]
    assert after.clear() == 1
    assert len(after.read(every_kernel=True)) == 1
    after.close()


def test_kernels_write_side_by_side(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    kernels = [History(path) for _ in range(3)]

    def write(history: History, k: int) -> None:
        for n in range(200):
            _record(history, f"SELECT {k}, {n}")
        history.flush()

    threads = [threading.Thread(target=write, args=(h, k)) for k, h in enumerate(kernels)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kernels[0].read(every_kernel=True)) == 600
    for history in kernels:
        history.close()


def _file_as_folder(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "h.sqlite3"


def _read_only_folder(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "h.sqlite3"


@pytest.mark.parametrize("unwritable", [_file_as_folder, _read_only_folder])
def test_an_unwritable_folder_keeps_the_history_in_memory_and_says_so_once(
    tmp_path: Path, unwritable: Callable[[Path], Path]
) -> None:
    notes: list[str] = []
    history = History(unwritable(tmp_path), note=notes.append)
    for n in range(3):
        _record(history, f"SELECT {n}")
    assert len(history.read()) == 3
    assert history.in_memory
    assert len(notes) == 1 and "\n" not in notes[0]
    assert notes[0].startswith("pgmagic: query history kept in memory only: cannot write ")
    history.close()


def test_off_records_nothing_and_closed_drops(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    history.enabled = False
    _record(history, "SELECT 'off'")
    history.enabled = True
    _record(history, "SELECT 'on'")
    history.close()
    _record(history, "SELECT 'after close'")
    assert [e.sql for e in History(tmp_path / "h.sqlite3").read()] == ["SELECT 'on'"]


@pytest.mark.parametrize(("held", "in_memory"), [(0.15, False), (2.0, True)])
def test_a_file_another_kernel_holds_is_waited_for_then_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: float, in_memory: bool
) -> None:
    monkeypatch.setattr(module, "_BUSY_SECONDS", 0.1)
    path = tmp_path / "h.sqlite3"
    notes: list[str] = []
    history = History(path, note=notes.append)
    _record(history, "SELECT 'first'")
    history.flush()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(held, other.execute, args=("COMMIT",))
    release.start()
    _record(history, "SELECT 'while held'")
    history.flush()
    release.join()
    other.close()
    assert history.in_memory is in_memory
    assert len(notes) == int(in_memory)
    if not in_memory:
        assert [e.sql for e in history.read()] == ["SELECT 'first'", "SELECT 'while held'"]
    else:
        # Nothing lost: what could not reach the file is in memory.
        assert [e.sql for e in history.read()] == ["SELECT 'while held'"]
    history.close()
