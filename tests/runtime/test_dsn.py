"""Where the database comes from, and that passwords never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgmagic.errors import ConnectError
from pgmagic.runtime.dsn import normalize, password_of, redact, resolve


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5433/db", "postgresql://u:p@h:5433/db"),
        ("postgres://u@h/db", "postgresql://u@h/db"),
        ("postgresql+asyncpg://u@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("postgresql+psycopg2://u@h/db", "postgresql://u@h/db"),
        ("  postgresql://h/db  ", "postgresql://h/db"),
        ("host=localhost dbname=app user=me", "postgresql://?host=localhost&database=app&user=me"),
        ("host=/tmp port=5433", "postgresql://?host=%2Ftmp&port=5433"),
        ("host = h password='it''s' ", None),
        (
            "dbname='my db' password='s3 cr\\'et'",
            "postgresql://?database=my%20db&password=s3%20cr%27et",
        ),
        ("service=prod", "postgresql://?service=prod"),
        ("postgresql:///?service=prod", "postgresql://?service=prod"),
        ("postgresql://h/", "postgresql://h"),
        ("postgresql:///db?service=prod", "postgresql:///db?service=prod"),
        ("postgresql://me:pa/ss@h/db", "postgresql://me:pa/ss@h/db"),
    ],
)
def test_normalize(given: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ConnectError):
            normalize(given)
    else:
        assert normalize(given) == expected


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "just words", "sqlite:///x.db"])
def test_normalize_rejects(bad: str) -> None:
    with pytest.raises(ConnectError) as info:
        normalize(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://me:s3cret@db/app", "postgresql://me:***@db/app"),
        ("postgresql://me@db/app", "postgresql://me@db/app"),
        (
            "postgresql://?host=h&password=s3cret&user=me",
            "postgresql://?host=h&password=***&user=me",
        ),
        ("host=h password=s3cret user=me", "host=h password=*** user=me"),
        ("host=h password='s3 cret' user=me", "host=h password=*** user=me"),
    ],
)
def test_redact(dsn: str, shown: str) -> None:
    assert redact(dsn) == shown
    assert "s3cret" not in redact(dsn) and "s3 cret" not in redact(dsn)


def test_password_of() -> None:
    assert password_of("postgresql://me:p%40ss@h/db") == "p@ss"
    assert password_of("postgresql://?password=zz&host=h") == "zz"
    assert password_of("postgresql://me@h/db") is None


def test_resolve_precedence() -> None:
    env = {
        "PGMAGIC_DSN": "postgresql://a@h/one",
        "DATABASE_URL": "postgresql://b@h/two",
        "PGHOST": "h",
    }
    assert resolve("postgresql://c@h/three", env).source == "%pg connect"
    assert resolve(None, env).source == "PGMAGIC_DSN"
    del env["PGMAGIC_DSN"]
    assert resolve(None, env).source == "DATABASE_URL"
    del env["DATABASE_URL"]
    target = resolve(None, env)
    assert (target.source, target.dsn, target.embedded) == ("PG* environment", None, False)
    target = resolve(None, {})
    assert target.embedded and target.source == "default"
    assert resolve("embedded", env).embedded
    assert resolve(None, {"PGMAGIC_DSN": "Embedded"}).embedded


def test_target_repr_hides_password() -> None:
    target = resolve("postgresql://me:hunter2@h/db", {})
    assert "hunter2" not in repr(target)
    assert "hunter2" not in target.describe()


SERVICE_FILE = "[prod]\nhost=db.example.com\ndbname=app\n\n[dev]\nhost=localhost\n"


@pytest.mark.parametrize(
    ("explicit", "env", "error"),
    [
        ("service=prod", {}, None),
        ("postgresql:///?service=dev", {}, None),
        (None, {"PGSERVICE": "prod"}, None),
        ("service=nope", {}, "service 'nope' is not defined in "),
        (None, {"PGSERVICE": "nope"}, "PGSERVICE: service 'nope' is not defined in "),
        ("service=prod", {"PGSERVICEFILE": "/nonexistent/pg_service.conf"}, "not defined in"),
    ],
)
def test_services_are_checked_against_the_service_file(
    tmp_path: Path, explicit: str | None, env: dict[str, str], error: str | None
) -> None:
    path = tmp_path / "pg_service.conf"
    path.write_text(SERVICE_FILE)
    environ = {"PGSERVICEFILE": str(path), **env}
    if error is None:
        target = resolve(explicit, environ)
        assert target.dsn is not None and "service=" in target.dsn and not target.embedded
    else:
        with pytest.raises(ConnectError, match=error):
            resolve(explicit, environ)


def test_an_unreadable_service_file_does_not_quote_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "pg_service.conf"
    path.write_text("password=hunter2-service\n[prod]\n")
    with pytest.raises(ConnectError) as info:
        resolve("service=prod", {"PGSERVICEFILE": str(path)})
    assert "hunter2" not in str(info.value) and "cannot read the service file" in str(info.value)
