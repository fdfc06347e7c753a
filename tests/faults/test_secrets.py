"""A password never appears in anything pgmagic prints, raises or saves.

Every way of giving a password (a URL, a libpq keyword string, PGPASSWORD,
a .pgpass file) against PostgreSQL 15 with a password-protected role, then
everything a user does that prints facts or fails: status, errors, %config,
reprs, a wrong password, a lost server.  Every line of output is scanned, and
the query history's file.
"""

from __future__ import annotations

import os
import pathlib
import urllib.parse
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient


def _parts(dsn: str) -> urllib.parse.SplitResult:
    return urllib.parse.urlsplit(dsn)


def _secrets(password: str) -> list[str]:
    return [password, urllib.parse.quote(password, safe="")]


def _scan(text: str, password: str) -> None:
    for secret in _secrets(password):
        assert secret not in text, f"the password appeared in: {text[:400]!r}"


def _everything(ip: Any, capsys: Any, target: str) -> str:
    """Run what prints facts or fails; return all of it, as the user saw it."""
    seen: list[str] = []
    cells = [
        "%pg connect $target",
        "%pg status",
        "%pg --scalar SELECT current_user",
        "%pg SELECT nope",
        "%config PgMagics",
        "from pgmagic.runtime.connections import default_runtime\nprint(repr(default_runtime()))",
        "print(default_runtime().describe_target())",
        "%pg disconnect",
        "%pg --scalar SELECT 1",
        "%pg connect named $target",
        "%pg @named --scalar SELECT current_user",
        "%pg @named SELECT nope",
        "%pg connections",
        "from pgmagic.runtime.connections import default_connections\n"
        "print(repr(default_connections()))",
        "print(repr(default_runtime()))",
        "%pg use named",
        "%pg status",
        "%pg close named",
        "%pg history --all -n 1000",
    ]
    ip.user_ns["target"] = target
    for cell in cells:
        result = ip.run_cell(cell)
        error = result.error_in_exec or result.error_before_exec
        if error is not None:
            render = getattr(error, "_render_traceback_", None)
            seen.append("\n".join(render()) if render else repr(error))
        if result.result is not None:
            seen.append(repr(result.result))
    captured = capsys.readouterr()
    return "\n".join([*seen, captured.out, captured.err, _history_file()])


def _history_file() -> str:
    """The query history as written on disk (the WAL too)."""
    from pgmagic.runtime.connections import default_runtime

    runtime = default_runtime(create=False)
    assert runtime is not None
    runtime.history.flush()
    path = runtime.history.path
    files = [path, path.with_name(path.name + "-wal")]
    return "".join(f.read_bytes().decode("utf-8", "replace") for f in files if f.exists())


@pytest.fixture
def password(pg15_dsn: str) -> str:
    secret = _parts(pg15_dsn).password
    assert secret
    return urllib.parse.unquote(secret)


@pytest.fixture
def clean_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("PGPASSWORD", "PGPASSFILE")}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _without_password(dsn: str) -> str:
    parts = _parts(dsn)
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def test_url_password(ip: Any, capsys: Any, pg15_dsn: str, password: str) -> None:
    out = _everything(ip, capsys, pg15_dsn)
    assert "'pgmagic'" in out  # the session really ran as the role
    assert "named: connected to" in out and "closed named" in out  # and the named one too
    _scan(out, password)


def test_keyword_password(ip: Any, capsys: Any, pg15_dsn: str, password: str) -> None:
    parts = _parts(pg15_dsn)
    keywords = (
        f"host={parts.hostname} port={parts.port} user={parts.username} "
        f"password={password} dbname={parts.path.lstrip('/')}"
    )
    _scan(_everything(ip, capsys, keywords), password)


def test_pgpassword(ip: Any, capsys: Any, pg15_dsn: str, password: str, clean_env: None) -> None:
    os.environ["PGPASSWORD"] = password
    _scan(_everything(ip, capsys, _without_password(pg15_dsn)), password)


def test_pgpass_file(
    ip: Any, capsys: Any, pg15_dsn: str, password: str, clean_env: None, tmp_path: pathlib.Path
) -> None:
    parts = _parts(pg15_dsn)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{parts.hostname}:{parts.port}:*:{parts.username}:{password}\n")
    pgpass.chmod(0o600)
    os.environ["PGPASSFILE"] = str(pgpass)
    _scan(_everything(ip, capsys, _without_password(pg15_dsn)), password)


def test_service_and_pgpass_files(
    ip: Any, capsys: Any, pg15_dsn: str, password: str, clean_env: None, tmp_path: pathlib.Path
) -> None:
    # The notebook names a service; the host is in the service file, the secret in .pgpass.
    parts = _parts(pg15_dsn)
    (tmp_path / "pg_service.conf").write_text(
        f"[faults]\nhost={parts.hostname}\nport={parts.port}\n"
        f"user={parts.username}\ndbname={parts.path.lstrip('/')}\n"
    )
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"{parts.hostname}:{parts.port}:*:{parts.username}:{password}\n")
    pgpass.chmod(0o600)
    saved = os.environ.get("PGSERVICEFILE")
    os.environ["PGSERVICEFILE"] = str(tmp_path / "pg_service.conf")
    os.environ["PGPASSFILE"] = str(pgpass)
    try:
        out = _everything(ip, capsys, "service=faults")
        assert "'pgmagic'" in out and "named: connected to" in out
        _scan(out, password)
    finally:
        if saved is None:
            os.environ.pop("PGSERVICEFILE", None)
        else:
            os.environ["PGSERVICEFILE"] = saved


def test_a_wrong_password_is_not_shown_either(ip: Any, capsys: Any, pg15_dsn: str) -> None:
    wrong = "Wr0ng-Secret:@/x"
    parts = _parts(pg15_dsn)
    netloc = f"{parts.username}:{urllib.parse.quote(wrong, safe='')}@{parts.hostname}:{parts.port}"
    ip.user_ns["bad"] = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    result = ip.run_cell("%pg connect $bad")
    error = result.error_in_exec
    assert error is not None
    text = "\n".join(error._render_traceback_()) + "\n" + capsys.readouterr().out
    assert "password authentication failed" in text
    _scan(text, wrong)


def test_a_saved_notebook_holds_no_password(
    pg15_dsn: str, password: str, tmp_path: pathlib.Path
) -> None:
    os.environ["PGMAGIC_FAULT_DSN"] = pg15_dsn
    try:
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [
            nbformat.v4.new_code_cell(c)
            for c in (
                "%load_ext pgmagic",
                "import os\ndsn = os.environ['PGMAGIC_FAULT_DSN']",
                "%pg connect $dsn",
                "%pg connect prod $dsn",
                "%pg connections",
                "%pg status",
                "%pg SELECT current_user, 1 AS n",
                "%pg SELECT nope",
                "%config PgMagics",
            )
        ]
        NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True).execute()
        saved = tmp_path / "run.ipynb"
        nbformat.write(notebook, saved)
    finally:
        os.environ.pop("PGMAGIC_FAULT_DSN", None)
    text = saved.read_text()
    select = nbformat.read(saved, as_version=4).cells[6]
    assert any("pgmagic" in str(o.get("data", {})) for o in select.outputs), select.outputs
    _scan(text, password)
