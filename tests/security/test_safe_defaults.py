"""Safe defaults, asserted on real `stemedb serve` processes: an unsafe start is refused
with a message saying how to fix it, and the safe variants start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

ROOT = "0123456789abcdef0123456789abcdef-root"


def _refused(run_server_process: Callable[..., Any], env: dict[str, str]) -> str:
    proc = run_server_process(env)
    assert proc.returncode == 1, proc.output
    output: str = proc.output
    assert "Traceback" not in output
    return output


def test_non_loopback_without_auth_is_refused_saying_how_to_fix_it(
    run_server_process: Callable[..., Any],
) -> None:
    out = _refused(run_server_process, {"STEMEDB_BIND_ADDR": "0.0.0.0:0"})
    assert (
        "[3/10] configuration: FAILED: STEMEDB_BIND_ADDR: refusing to listen on non-loopback" in out
    )
    for fix in (
        "STEMEDB_AUTH_ENABLED=true",
        "STEMEDB_ALLOW_UNAUTHENTICATED_REMOTE=true",
        "127.0.0.1",
    ):
        assert fix in out
    assert "[9/10]" not in out  # never bound


def test_non_loopback_with_auth_starts(run_server_process: Callable[..., Any]) -> None:
    proc = run_server_process(
        {
            "STEMEDB_BIND_ADDR": "0.0.0.0:0",
            "STEMEDB_AUTH_ENABLED": "true",
            "STEMEDB_ROOT_API_KEY": ROOT,
        }
    )
    assert proc.returncode is None, proc.output
    assert "root API key root-" in proc.output


def test_non_loopback_without_auth_starts_only_when_allowed_and_warns(
    run_server_process: Callable[..., Any],
) -> None:
    proc = run_server_process(
        {"STEMEDB_BIND_ADDR": "0.0.0.0:0", "STEMEDB_ALLOW_UNAUTHENTICATED_REMOTE": "true"}
    )
    assert proc.returncode is None, proc.output
    assert "WITHOUT authentication" in proc.output


def test_tls_enabled_is_refused_pointing_at_the_nginx_site(
    run_server_process: Callable[..., Any],
) -> None:
    out = _refused(run_server_process, {"STEMEDB_TLS_ENABLED": "true"})
    assert "STEMEDB_TLS_ENABLED: waitress does not terminate TLS" in out
    assert "packaging/nginx/stemedb.conf" in out


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"STEMEDB_ROOT_API_KEY": "tiny-secret-xyz"}, "STEMEDB_ROOT_API_KEY: must be at least 32"),
        ({"STEMEDB_TRUSTED_PROXY": "my-proxy"}, "STEMEDB_TRUSTED_PROXY: 'my-proxy' is not an IP"),
        ({"STEMEDB_REQUEST_TIMEOUT": "0"}, "STEMEDB_REQUEST_TIMEOUT: must be a finite number >= 1"),
    ],
)
def test_bad_security_settings_stop_the_start_naming_the_variable(
    run_server_process: Callable[..., Any], env: dict[str, str], says: str
) -> None:
    out = _refused(run_server_process, env)
    assert says in out
    assert "tiny-secret-xyz" not in out  # a secret is never echoed


def test_auth_on_without_any_key_warns_that_everything_will_be_401(
    run_server_process: Callable[..., Any],
) -> None:
    proc = run_server_process({"STEMEDB_AUTH_ENABLED": "true"})
    assert proc.returncode is None
    assert "no API key is active" in proc.output
