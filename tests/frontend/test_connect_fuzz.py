"""Generated %pg connect lines with a password in them: one line each, and never the password."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.frontend.test_option_fuzz import shown

SECRET = "Sekr3t:p@ss/w%rd"
ENCODED = urllib.parse.quote(SECRET, safe="")
# Hosts that fail fast here: refused, malformed, or not resolvable without a network.
HOSTS = [
    "127.0.0.1", "localhost", "", "[::1]", "[::1", "bad host", "ünïcode", "h%zz", "a:b:c",
    "127.0.0.1,127.0.0.2", "/tmp", "%2Ftmp", "xn--", "-",
]  # fmt: skip
PORTS = ["", ":1", ":0", ":99999", ":-5", ":abc", ":", ":5432:1", ":１２"]
PASSWORDS = [ENCODED, SECRET, ENCODED + "%", ENCODED + "%zz", f"{ENCODED}é"]
OPTIONS = [
    "", "?sslmode=bogus", "?options=-c%20x", "?host=", "?port=abc", "?connect_timeout=x",
    "?%zz=1", "?a=1&&b", "#frag", "?application_name=ü",
]  # fmt: skip
KEYWORDS = ["host", "port", "dbname", "user", "sslmode", "options", "bogus", "connect_timeout"]
KEY_VALUES = ["127.0.0.1", "1", "abc", "''", "'unclosed", "a b", "ü", "=", "\\'"]

url = st.builds(
    lambda scheme, host, port, password, option: (
        f"{scheme}://me:{password}@{host}{port}/app{option}"
    ),
    st.sampled_from(["postgresql", "postgres", "postgresql+asyncpg", "pg", "http"]),
    st.sampled_from(HOSTS),
    st.sampled_from(PORTS),
    st.sampled_from(PASSWORDS),
    st.sampled_from(OPTIONS),
)
keyword_string = st.builds(
    lambda pairs, password, quote: " ".join(
        [*(f"{k}={v}" for k, v in pairs), f"password={quote}{SECRET}{quote}"]
    ),
    st.lists(st.tuples(st.sampled_from(KEYWORDS), st.sampled_from(KEY_VALUES)), max_size=4),
    st.sampled_from(PASSWORDS),
    st.sampled_from(["", "'"]),
)


@pytest.fixture
def shell(ip: Any) -> Any:
    ip.run_cell("%config PgMagics.connect_timeout = 2")
    return ip


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(target=st.one_of(url, keyword_string), quoted=st.booleans())
def test_connect_errors_are_one_line_without_the_password(
    shell: Any, capsys: Any, target: str, quoted: bool
) -> None:
    shell.user_ns["fuzzed_dsn"] = target
    line = "%pg connect $fuzzed_dsn" if quoted else f"%pg connect {target}"
    capsys.readouterr()
    result = shell.run_cell(line)
    captured = capsys.readouterr()
    error = result.error_in_exec or result.error_before_exec
    seen = captured.out + captured.err
    if error is not None:
        lines = shown(error)
        assert lines is not None, f"{line!r} printed a traceback: {type(error).__name__}: {error}"
        assert len(lines) == 1 and "\n" not in lines[0], (line, lines)
        seen += lines[0] + repr(error) + str(error.args)
    for secret in (SECRET, ENCODED, SECRET.split(":")[1]):
        assert secret not in seen, (line, seen)
    # The old connection stays when the new one fails.
    assert shell.run_cell("%pg --scalar SELECT 1").result == 1
