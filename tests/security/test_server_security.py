"""The security layer on real server processes: wiring, CLI keys next to a running
server, rate limits over HTTP, CORS, and the headers every response carries."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from securekit import Agent, Resp

from stemedb.cli.main import main

ROOT = "fedcba9876543210fedcba9876543210-root"
AUTH_ENV = {"STEMEDB_AUTH_ENABLED": "true", "STEMEDB_ROOT_API_KEY": ROOT}
JSON = {"Content-Type": "application/json"}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """`stemedb keys ...` on this test's database (in this process: the server is another)."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(["keys", *args, "--db-dir", str(tmp_path / "db")])
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


def test_auth_end_to_end_and_cli_keys_next_to_a_running_server(
    run_server_process: Callable[..., Any], http: Callable[..., Resp], cli: Callable[..., CliResult]
) -> None:
    server = run_server_process(AUTH_ENV)
    url = server.url
    assert http(url, "GET", "/v1/epochs").status == 401
    assert http(url, "GET", "/v1/epochs", headers={"X-API-Key": ROOT}).status == 200
    assert http(url, "GET", "/metrics").status == 200

    created = cli("create", "--role", "reader", "--name", "ci", "--expires", "1d")
    assert created.returncode == 0, created.stderr
    out = json.loads(created.stdout)
    secret, key_id = out["api_key"], out["key"]["id"]
    assert out["key"]["expires_ms"] > time.time() * 1000
    key = {"X-API-Key": secret}
    assert http(url, "GET", "/v1/epochs", headers=key).status == 200
    assert http(url, "POST", "/v1/assert", Agent().assertion("cli/x"), headers=key).status == 403

    listed = cli("list")
    assert listed.returncode == 0 and secret.split("_")[2] not in listed.stdout
    assert key_id in {k["id"] for k in json.loads(listed.stdout)["keys"]}

    revoked = cli("revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    done = time.monotonic()
    while http(url, "GET", "/v1/epochs", headers=key).status == 200:
        assert time.monotonic() - done < 1.5, "a CLI revocation must take effect within 1 s"
        time.sleep(0.05)
    resp = http(url, "GET", "/v1/epochs", headers=key)
    assert resp.status == 401 and "revoked" in resp.error["message"]


def test_cli_keys_usage_errors(cli: Callable[..., CliResult]) -> None:
    missing = cli("list")
    assert missing.returncode == 1 and "no database at" in missing.stderr  # and none made
    bad_scope = cli("create", "--role", "reader", "--scope", "drugs")
    assert bad_scope.returncode == 2 and "only writer keys can be scoped" in bad_scope.stderr
    bad_expiry = cli("create", "--role", "reader", "--expires", "tomorrow")
    assert bad_expiry.returncode == 2 and "--expires" in bad_expiry.stderr
    unknown = cli("revoke", "abcdefabcdef")
    assert unknown.returncode == 1 and "no API key" in unknown.stderr
    table = cli("create", "--role", "writer", "--scope", "drugs/", "--format", "table")
    assert table.returncode == 0 and "drugs" in table.stdout
    assert re.search(r"^stemedb_[0-9a-f]{12}_[0-9a-f]{64}$", table.stdout, re.M), table.stdout


def test_rate_limits_over_http(
    run_server_process: Callable[..., Any], http: Callable[..., Resp]
) -> None:
    server = run_server_process(
        {"STEMEDB_RATE_LIMIT_WRITE": "2/s", "STEMEDB_REQUIRE_SIGNATURES": "false"}
    )
    record = {"subject": "rl/a", "predicate": "p", "object": "v", "confidence": 0.5}
    record["timestamp"] = int(time.time()) - 10  # the same record each time
    answers = [http(server.url, "POST", "/v1/assert", record) for _ in range(3)]
    assert [a.status for a in answers[:2]] == [201, 200]
    assert answers[0].headers["ratelimit-limit"] == "2"
    assert answers[1].headers["ratelimit-remaining"] == "0"
    assert answers[2].status == 429
    assert answers[2].error["code"] == "rate_limited"
    assert answers[2].headers["retry-after"] == "1"
    time.sleep(0.6)
    assert http(server.url, "POST", "/v1/assert", record).status == 200  # refilled
    health = http(server.url, "GET", "/v1/health")
    assert "ratelimit-limit" not in health.headers
    metrics = http(server.url, "GET", "/metrics").body.decode()
    assert 'stemedb_rate_limited_total{route="/v1/assert"} 1.0' in metrics


@pytest.fixture
def cors_server(run_server_process: Callable[..., Any]) -> Any:
    return run_server_process(
        {
            **AUTH_ENV,
            "STEMEDB_ALLOWED_ORIGINS": "https://app.example.com",
            "STEMEDB_RATE_LIMIT_WRITE": "1/m",
        }
    )


def test_cors_only_for_the_allow_list(cors_server: Any, http: Callable[..., Resp]) -> None:
    url = cors_server.url
    good = http(url, "GET", "/v1/health", headers={"Origin": "https://app.example.com"})
    assert good.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "RateLimit-Remaining" in good.headers["access-control-expose-headers"]
    evil = http(url, "GET", "/v1/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type",
    }
    ok = http(url, "OPTIONS", "/v1/assert", headers=preflight)
    assert ok.status == 204  # a preflight carries no key and must not need one
    assert "POST" in ok.headers["access-control-allow-methods"]
    refused = http(url, "OPTIONS", "/v1/assert", headers={**preflight, "Origin": "https://evil.x"})
    assert "access-control-allow-origin" not in refused.headers


def test_every_response_carries_security_headers_and_no_stack_trace(
    cors_server: Any, http: Callable[..., Resp]
) -> None:
    url = cors_server.url
    key = {"X-API-Key": ROOT}
    record = Agent().assertion("hdr/x")
    answers = {
        200: http(url, "GET", "/v1/health"),
        201: http(url, "POST", "/v1/assert", record, headers=key),
        400: http(url, "POST", "/v1/admin/keys", b"{]", headers={**key, **JSON}),
        401: http(url, "GET", "/v1/epochs"),
        404: http(url, "GET", "/v1/nothing-here", headers=key),
        405: http(url, "PUT", "/v1/health"),
        413: http(url, "POST", "/v1/admin/keys", b"x" * (1 << 21), headers={**key, **JSON}),
        415: http(
            url, "POST", "/v1/admin/keys", b"a", headers={**key, "Content-Type": "text/plain"}
        ),
        429: http(url, "POST", "/v1/assert", record, headers=key),
    }
    for status, resp in answers.items():
        assert resp.status == status, (status, resp.body[:200])
        for name, value in SECURITY_HEADERS.items():
            assert resp.headers.get(name) == value, (status, name)
        assert "content-security-policy" in resp.headers
        assert resp.headers.get("x-request-id")
        assert b"Traceback" not in resp.body and b'File "' not in resp.body
        if status >= 400:
            assert set(resp.json) == {"error"}, resp.body[:200]
            assert set(resp.error) <= {"code", "message", "details"}
    assert "retry-after" in answers[429].headers


def test_scoped_batches_and_quotas_over_http(
    run_server_process: Callable[..., Any], http: Callable[..., Resp]
) -> None:
    """The body is looked at before the handler (scope, signer for the quota) and must
    reach the handler intact through waitress's input stream, for JSON and NDJSON."""
    server = run_server_process(
        {**AUTH_ENV, "STEMEDB_QUOTA_ENABLED": "true", "STEMEDB_QUOTA_TOKENS_PER_HOUR": "1000"}
    )
    admin = {"X-API-Key": ROOT}
    created = http(
        server.url, "POST", "/v1/admin/keys", {"role": "writer", "scope": "drugs"}, admin
    )
    scoped = {"X-API-Key": created.json["api_key"]}
    alice = Agent()
    inside = [alice.assertion(f"drugs/d{i}", value="x" * 900) for i in range(6)]
    resp = http(server.url, "POST", "/v1/assert/batch", inside, scoped)
    assert resp.status == 200 and resp.json["created"] == 6, resp.body[:300]
    body_kib = len(json.dumps(inside)) // 1024
    assert int(resp.headers["x-quota-remaining"]) in range(
        1000 - 60 - body_kib, 1000 - 59 - body_kib + 1
    )
    ndjson = "\n".join(json.dumps(alice.assertion(f"drugs/n{i}")) for i in range(3)).encode()
    resp = http(
        server.url,
        "POST",
        "/v1/assert/batch",
        ndjson,
        {**scoped, "Content-Type": "application/x-ndjson"},
    )
    assert resp.status == 200 and resp.json["created"] == 3, resp.body[:300]
    outside = [*inside[:2], alice.assertion("devices/x")]
    resp = http(server.url, "POST", "/v1/assert/batch", outside, scoped)
    assert resp.status == 200  # checked per record: the outside one alone is refused
    assert [r["status"] for r in resp.json["results"]] == ["exists", "exists", "rejected"]
    assert resp.json["results"][2]["error"]["details"] == [
        {"field": "subject", "problem": "'devices/x' is outside this key's scope 'drugs'"}
    ]
    left = int(resp.headers["x-quota-remaining"])
    # Another signer, same key: the key pays (a fresh signing key is no fresh quota).
    bob = http(server.url, "POST", "/v1/assert", Agent().assertion("drugs/bob"), scoped)
    assert bob.status == 201
    assert int(bob.headers["x-quota-remaining"]) in (left - 10, left - 9)
