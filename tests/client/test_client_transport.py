"""The client's HTTP behaviour against a scripted server: retries, errors, keep-alive, headers.

A real StemeDB server cannot be told to answer 503 once or to drop a
connection mid-request, so these tests use a tiny in-process HTTP server
that plays a script, one entry per request, and records what it received.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from stemedb.client import ApiError, Client, ConnectionFailed
from stemedb.crypto import public_key_hex

SEED = bytes(range(32))
OK_WRITE = (201, {"hash": "ab" * 32, "seq": 1, "status": "created"}, {})


@dataclass
class Script:
    """Answers to play in order; "drop" closes the connection without answering,
    "close-after" answers then closes the socket while claiming keep-alive."""

    answers: list[Any] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    closed: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        script = self.server.script  # type: ignore[attr-defined]
        script.connections.add(self.client_address[1])
        script.requests.append(
            {"method": self.command, "path": self.path, "headers": self.headers, "body": body}
        )
        answer = script.answers.pop(0) if script.answers else (200, {}, {})
        if answer == "drop":
            self.close_connection = True
            return
        close_after = False
        if answer[0] == "close-after":
            close_after, answer = True, answer[1]
        status, payload, headers = answer
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        if close_after:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            script.closed.set()

    do_GET = do_POST = do_DELETE = _serve


@pytest.fixture
def scripted() -> Iterator[tuple[Script, str]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    script = Script()
    server.script = script  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield script, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fast(client: Client) -> Client:
    client.transport.backoff = 0.01
    return client


def test_get_is_retried_on_503_with_the_same_request_id(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [
        (503, {"error": {"code": "unavailable", "message": "x"}}, {}),
        (200, {"ok": 1}, {}),
    ]
    assert fast(Client(url)).admin_stats() == {"ok": 1}
    assert len(script.requests) == 2
    ids = {r["headers"]["X-Request-Id"] for r in script.requests}
    assert len(ids) == 1


@pytest.mark.parametrize("status", [400, 404, 409, 429])
def test_4xx_is_never_retried_and_raises_the_servers_error(
    scripted: tuple[Script, str], status: int
) -> None:
    script, url = scripted
    error = {
        "code": "invalid_request",
        "message": "bad",
        "details": [{"field": "f", "problem": "p"}],
    }
    script.answers = [(status, {"error": error}, {"X-Request-Id": "rid-1", "Retry-After": "3"})]
    with pytest.raises(ApiError) as info:
        fast(Client(url)).assertion("ab" * 32)
    assert len(script.requests) == 1
    exc = info.value
    assert (exc.status, exc.code, exc.message) == (status, "invalid_request", "bad")
    assert exc.details == [{"field": "f", "problem": "p"}]
    assert exc.request_id == "rid-1" and exc.retry_after == 3.0
    assert "rid-1" in str(exc)


def test_unsigned_write_is_not_retried_on_503(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [(503, {"error": {"code": "unavailable", "message": "down"}}, {}), OK_WRITE]
    with pytest.raises(ApiError) as info:
        fast(Client(url)).assert_("a/b", "p", "v", 0.5)
    assert info.value.status == 503 and len(script.requests) == 1


def test_signed_write_is_retried_with_identical_bytes(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [(503, {"error": {"code": "unavailable", "message": "x"}}, {}), OK_WRITE]
    result = fast(Client(url, seed=SEED)).assert_("a/b", "p", "v", 0.5)
    assert result["status"] == "created"
    assert len(script.requests) == 2
    assert script.requests[0]["body"] == script.requests[1]["body"]
    sent = json.loads(script.requests[0]["body"])
    assert sent["signatures"][0]["agent_id"] == public_key_hex(SEED)
    assert isinstance(sent["timestamp"], int)  # normalised before signing


def test_dropped_connection_retries_a_get_but_not_an_unsigned_write(
    scripted: tuple[Script, str],
) -> None:
    script, url = scripted
    script.answers = ["drop", (200, {"epochs": []}, {})]
    assert fast(Client(url)).epochs() == []
    script.requests.clear()
    script.answers = ["drop", OK_WRITE]
    with pytest.raises(ConnectionFailed) as info:
        fast(Client(url)).vote("ab" * 32, 1.0)
    assert info.value.status == 0
    assert "may or may not have been applied" in info.value.message
    assert len(script.requests) == 1


def test_retries_stop_after_the_configured_count(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    busy = (503, {"error": {"code": "unavailable", "message": "x"}}, {})
    script.answers = [busy] * 10
    with pytest.raises(ApiError) as info:
        fast(Client(url, retries=2)).epochs()
    assert info.value.code == "unavailable"
    assert len(script.requests) == 3


def test_retry_after_is_a_floor_for_the_backoff(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [
        (503, {"error": {"code": "unavailable", "message": "x"}}, {"Retry-After": "0.3"}),
        (200, {"epochs": []}, {}),
    ]
    started = time.monotonic()
    fast(Client(url)).epochs()
    assert time.monotonic() - started >= 0.3


def test_connection_refused_is_a_connection_failed_naming_the_cause() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = fast(Client(f"http://127.0.0.1:{port}", retries=1))
    with pytest.raises(ConnectionFailed) as info:
        client.epochs()
    assert "connection refused" in str(info.value)


def test_non_json_error_bodies_keep_their_status(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [(502, b"<html>bad gateway</html>", {"Content-Type": "text/html"})]
    with pytest.raises(ApiError) as info:
        fast(Client(url, retries=0)).epochs()
    assert (info.value.status, info.value.code) == (502, "http_502")
    assert "bad gateway" in info.value.message


def test_one_keep_alive_connection_serves_many_calls(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    client = Client(url)
    for _ in range(5):
        client.admin_stats()
    assert len(script.requests) == 5
    assert len(script.connections) == 1


def test_a_connection_closed_by_the_server_is_replaced_before_an_unsigned_write(
    scripted: tuple[Script, str],
) -> None:
    script, url = scripted
    script.answers = [("close-after", (200, {}, {})), OK_WRITE]
    client = fast(Client(url))
    client.admin_stats()
    assert script.closed.wait(5)  # the server has closed the socket; the client must notice
    assert client.vote("ab" * 32, 1.0)["status"] == "created"
    assert len(script.requests) == 2
    assert len(script.connections) == 2


def test_identity_and_api_key_headers(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    Client(url, seed=SEED, api_key="stemedb_k").admin_stats()
    Client(url, seed=SEED, agent_id="cd" * 32).admin_stats()
    Client(url).admin_stats()
    first, second, third = (r["headers"] for r in script.requests)
    assert first["X-Agent-Id"] == public_key_hex(SEED)
    assert first["X-API-Key"] == "stemedb_k"
    assert first["User-Agent"].startswith("stemedb-client/")
    assert second["X-Agent-Id"] == "cd" * 32
    assert third["X-Agent-Id"] is None and third["X-API-Key"] is None


def test_key_options_are_checked() -> None:
    with pytest.raises(ValueError):
        Client(seed=b"short")
    with pytest.raises(ValueError):
        Client(seed=SEED, key_file="/nonexistent")
    with pytest.raises(ValueError):
        Client("ftp://example.org")
    assert Client(seed=SEED.hex()).agent_id == public_key_hex(SEED)
    with pytest.raises(ValueError, match="no key"):
        Client().sign("assertion", {"subject": "a", "predicate": "p", "object": 1, "confidence": 1})


def test_query_params_encode_booleans_and_drop_nones(scripted: tuple[Script, str]) -> None:
    script, url = scripted
    script.answers = [(200, {"subject": "a/b", "claims": []}, {})]
    Client(url).skeptic("a/b", "p", include_superseded=True, as_of=None, decay="tier")
    path = script.requests[0]["path"]
    assert path.startswith("/v1/skeptic?")
    assert "include_superseded=true" in path and "as_of" not in path and "decay=tier" in path


def test_signing_a_timestamped_claim_is_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same claim, same explicit timestamp, signed at different moments: same bytes,
    so a re-run answers `exists` instead of writing a duplicate."""
    import stemedb.signing

    client = Client(seed=SEED)
    claim = {"subject": "a/b", "predicate": "p", "object": 1, "confidence": 1, "timestamp": 1000}
    monkeypatch.setattr(stemedb.signing, "_now", lambda: 2_000_000_000)
    first = client.sign("assertion", claim)
    monkeypatch.setattr(stemedb.signing, "_now", lambda: 2_000_000_999)
    assert client.sign("assertion", claim) == first
    assert first["timestamp"] == 1000
    assert set(first["signatures"][0]) == {"agent_id", "signature"}  # no entry timestamp
    untimed = {k: v for k, v in claim.items() if k != "timestamp"}
    assert client.sign("assertion", untimed)["timestamp"] == 2_000_000_999


def test_invalid_input_is_refused_before_sending() -> None:
    with pytest.raises(ApiError) as info:
        Client("http://127.0.0.1:9", seed=SEED).assert_("a//b", "p", "v", 0.5)
    assert (info.value.status, info.value.code) == (400, "invalid_request")
    assert info.value.details and info.value.details[0]["field"] == "subject"
