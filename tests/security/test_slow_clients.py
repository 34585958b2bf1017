"""Slowloris: clients trickling a request byte by byte neither block others nor stay forever."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from securekit import Resp

HEAD = (
    b"POST /v1/assert HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b"Content-Length: 4000\r\n\r\n"
)


def _connect(url: str) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def _trickle(sock: socket.socket, first: bytes, every: float, stop: threading.Event) -> None:
    """Send `first`, then one byte every `every` seconds until the server hangs up."""
    try:
        sock.sendall(first)
        while not stop.wait(every):
            sock.sendall(b" ")
    except OSError:
        pass  # closed by the server: what we are waiting for


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_slow_bodies_and_headers_are_cut_off_without_blocking_other_clients(
    run_server_process: Callable[..., Any], http: Callable[..., Resp]
) -> None:
    server = run_server_process({"STEMEDB_REQUEST_TIMEOUT": "2", "STEMEDB_THREADS": "2"})
    stop = threading.Event()
    # More slow clients than worker threads; half trickle a body, half their headers.
    slow = [_connect(server.url) for _ in range(8)]
    firsts = [HEAD if i % 2 == 0 else b"GET /v1/health HTTP/1.1\r\nHo" for i in range(len(slow))]
    threads = [
        threading.Thread(target=_trickle, args=(sock, first, 0.7, stop), daemon=True)
        for sock, first in zip(slow, firsts, strict=True)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        # Meanwhile everybody else is served at once.
        for _ in range(10):
            t0 = time.monotonic()
            assert http(server.url, "GET", "/v1/health").status == 200
            assert time.monotonic() - t0 < 0.5
            time.sleep(0.1)
        answers = [_read_all(sock) for sock in slow]
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for sock in slow:
            sock.close()
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:200]
        assert b'"code": "request_timeout"' in answer
        assert b"X-Content-Type-Options: nosniff" in answer
    # 2 s plus 1 s per 500 bytes received (a few dozen here), checked every loop turn.
    assert 1.9 < elapsed < 6, elapsed
    assert "408: request from" in server.output


def test_a_slow_but_steady_upload_is_not_cut_off(
    run_server_process: Callable[..., Any],
) -> None:
    """A 3 KB body over 3 s (1 KB/s) stays within 1 + 3000/500 s: it must get through."""
    server = run_server_process(
        {"STEMEDB_REQUEST_TIMEOUT": "1", "STEMEDB_REQUIRE_SIGNATURES": "false"}
    )
    record = (
        b'{"subject": "slow/ok", "predicate": "p", "object": "v", "confidence": 0.5, '
        b'"source": "https://example.org/' + b"x" * 1900 + b'"}'
    )
    sock = _connect(server.url)
    try:
        sock.sendall(
            b"POST /v1/assert HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(record)).encode() + b"\r\n\r\n"
        )
        for i in range(0, len(record), 700):
            sock.sendall(record[i : i + 700])
            time.sleep(0.7)
        answer = _read_all(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", b"400", "invalid_request"),
        (
            b"GET /v1/health HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
            b"400",
            "invalid_request",
        ),
        (
            b"GET /v1/health HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"501",
            "not_implemented",
        ),
    ],
)
def test_protocol_errors_from_waitress_use_the_error_shape(
    run_server_process: Callable[..., Any], request_bytes: bytes, status: bytes, code: str
) -> None:
    server = run_server_process()
    sock = _connect(server.url)
    try:
        sock.sendall(request_bytes)
        answer = _read_all(sock)  # waitress closes the connection after such an error
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == status, answer[:300]
    assert b"Content-Type: application/json" in head
    assert b"X-Content-Type-Options: nosniff" in head
    assert json.loads(body)["error"]["code"] == code
