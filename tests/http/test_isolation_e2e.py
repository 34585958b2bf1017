"""Health and ready never wait behind a large answer (issue 21, part 3), on a real server.

The event loop serves quick reads itself (stemedb/http/dispatch.py). A lens query
on a pair with thousands of candidates is a quick *route* but a large answer:
once the server has measured it (stemedb/http/cost.py) it goes to the worker
pool, and a health or ready probe sent while it is being built is answered
before it. Served on the loop, as before this change, the probe's answer would
come after the large one. The check is on order, not on time.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from urllib.parse import urlsplit

from e2ekit import Agent, RunningServer, ServerFactory, unique

CANDIDATES = 6000  # tens of ms to answer: far more than a probe's few GIL turns


def _large_pair(srv: RunningServer) -> str:
    agent, subject = Agent(), unique("big")
    records = [agent.assertion(subject, "p", i) for i in range(CANDIDATES)]
    for start in range(0, CANDIDATES, 1000):
        srv.api.batch_ok(records[start : start + 1000])
    return f"/v1/query?subject={subject}&predicate=p&lens=authority"


def _get(sock: socket.socket, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())


def _read_answer(sock: socket.socket) -> bytes:
    """One whole response (Content-Length framed); its status line."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed early"
        body += chunk
    return head.split(b"\r\n", 1)[0]


def _probe_during_large_answer(srv: RunningServer, large: str, probe: str) -> None:
    """Ask for the large answer, then (once the server has read it) for `probe`: the
    probe's whole answer must arrive while not one byte of the large one has."""
    parts = urlsplit(srv.url)
    address = (parts.hostname, parts.port)
    with (
        socket.create_connection(address, timeout=30) as big,
        socket.create_connection(address, timeout=30) as quick,
    ):
        _get(big, large)
        time.sleep(0.005)  # read by the loop and handed over (or, before: being computed)
        _get(quick, probe)
        assert _read_answer(quick).endswith(b"200 OK")
        ready, _, _ = select.select([big], [], [], 0)
        assert not ready, f"{probe} was answered only after the large answer"
        assert _read_answer(big).endswith(b"200 OK")


def test_health_and_ready_are_answered_while_a_large_answer_is_built(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory({"STEMEDB_RATE_LIMIT_READ": "0", "STEMEDB_RATE_LIMIT_WRITE": "0"})
    large = _large_pair(srv)
    body = srv.api.get_ok(large, timeout=30)  # the first one teaches the server its cost
    assert body["results"][0]["candidates_count"] == CANDIDATES
    for probe in ("/v1/health", "/v1/ready", "/v1/health"):
        _probe_during_large_answer(srv, large, probe)


def test_health_answers_while_clients_hammer_a_large_pair(server_factory: ServerFactory) -> None:
    srv = server_factory({"STEMEDB_RATE_LIMIT_READ": "0", "STEMEDB_RATE_LIMIT_WRITE": "0"})
    large = _large_pair(srv)
    srv.api.get_ok(large, timeout=30)
    stop, answered, errors = threading.Event(), [0], []
    parts = urlsplit(srv.url)

    def hammer() -> None:
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
                while not stop.is_set():
                    _get(sock, large)
                    assert _read_answer(sock).endswith(b"200 OK")
                    answered[0] += 1
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    clients = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        while answered[0] < 4:  # the load is on
            assert not errors, errors
            time.sleep(0.01)
        for _ in range(3):
            _probe_during_large_answer(srv, large, "/v1/health")
    finally:
        stop.set()
        for client in clients:
            client.join(60)
    assert not errors, errors
