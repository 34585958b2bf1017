"""Quick reads served on the event loop (`STEMEDB_INLINE_READS`), on a real server.

With one worker thread held by a long poll, quick reads must still answer
(the loop serves them itself) while, with inline reads off, they wait for
the pool like everything else. Pipelined requests that mix loop-served reads
and pool-served writes must be answered in order.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from e2ekit import Agent, RunningServer, ServerFactory, unique, wait_for_metric


def _park_the_only_worker(srv: RunningServer, wait_s: int) -> threading.Thread:
    """A feed long poll on the single worker thread (it gives back its slot, not its thread).

    Returns once the server counts the poll as parked: `/metrics` is served on the
    event loop, so it answers while the only worker is held.
    """
    head = srv.api.get_ok("/v1/feed", {"after": 0, "limit": 1000})["next_after"]
    poller = threading.Thread(
        target=lambda: srv.api.get("/v1/feed", {"after": head, "wait": wait_s}), daemon=True
    )
    poller.start()
    wait_for_metric(srv.api, "stemedb_long_polls_active", 1)
    return poller


def _seed(srv: RunningServer) -> tuple[str, str]:
    agent = Agent()
    subject = unique("disp")
    written = srv.api.write("/v1/assert", agent.assertion(subject, "p", 1))
    return subject, str(written["hash"])


def test_quick_reads_answer_while_the_worker_pool_is_busy(server_factory: ServerFactory) -> None:
    srv = server_factory({"STEMEDB_THREADS": "1"})
    subject, digest = _seed(srv)
    poller = _park_the_only_worker(srv, 8)

    started = time.monotonic()
    body = srv.api.ok(
        "POST", "/v1/query", {"subject": subject, "predicate": "p", "lens": "authority"}, timeout=5
    )
    assert body["results"][0]["winner"]["hash"] == digest
    assert srv.api.get_ok(f"/v1/assertions/{digest}", timeout=5)["hash"] == digest
    assert srv.api.get_ok("/v1/skeptic", {"subject": subject, "predicate": "p"}, timeout=5)
    assert srv.api.get_ok("/v1/health", timeout=5)["status"] == "healthy"
    assert srv.api.call("HEAD", "/v1/health", timeout=5).status == 200
    assert time.monotonic() - started < 5

    assert poller.is_alive()  # still holding the only worker: the loop answered all that
    poller.join(15)


def test_with_inline_reads_off_reads_wait_for_a_worker(server_factory: ServerFactory) -> None:
    srv = server_factory({"STEMEDB_THREADS": "1", "STEMEDB_INLINE_READS": "false"})
    subject, _ = _seed(srv)
    head = srv.api.get_ok("/v1/feed", {"after": 0, "limit": 1000})["next_after"]
    poller = threading.Thread(
        target=lambda: srv.api.get("/v1/feed", {"after": head, "wait": 8}), daemon=True
    )
    poller.start()
    # With inline reads off nothing (not even /metrics) can show the poll parked, so
    # the proof is the wait itself: once the worker holds the poll, a query waits. A
    # query that slipped in before the poll reached the worker is answered; try again.
    query = {"subject": subject, "predicate": "p", "lens": "authority"}
    for _ in range(5):
        try:
            srv.api.post("/v1/query", query, timeout=1.5)
        except TimeoutError:
            break
    else:
        raise AssertionError("a query was answered while the only worker held a long poll")
    poller.join(15)
    body = srv.api.ok(
        "POST", "/v1/query", {"subject": subject, "predicate": "p", "lens": "authority"}, timeout=5
    )
    assert body["results"][0]["candidates_count"] == 1


def _request(method: str, path: str, body: Any = None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(payload)}\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    return head.encode() + b"\r\n" + payload


def _read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, Any]]]:
    buf, out = b"", []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        length = int(headers["content-length"])
        while len(buf) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            buf += chunk
        body, buf = buf[:length], buf[length:]
        out.append((int(lines[0].split()[1]), json.loads(body) if body else {}))
    return out


def test_pipelined_reads_and_writes_are_answered_in_order(server_factory: ServerFactory) -> None:
    srv = server_factory()
    agent = Agent()
    subject = unique("pipe")
    record = agent.assertion(subject, "p", 7)
    parts = urlsplit(srv.url)
    requests = [
        _request("GET", "/v1/health"),  # the loop
        _request("POST", "/v1/assert", record),  # a worker (waits for its commit)
        _request(
            "POST", "/v1/query", {"subject": subject, "predicate": "p", "lens": "authority"}
        ),  # the loop again
        _request("POST", "/v1/assert", {"subject": subject}),  # refused: names the field
        _request("GET", "/v1/query?subject=" + subject + "&predicate=p&lens=recency"),
    ]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"".join(requests))  # one packet: all five pipelined
        answers = _read_responses(sock, len(requests))
    statuses = [status for status, _ in answers]
    assert statuses == [200, 201, 200, 400, 200]
    written = answers[1][1]["hash"]
    assert answers[2][1]["results"][0]["winner"]["hash"] == written  # after the write, in order
    assert answers[3][1]["error"]["code"] in {"validation_error", "invalid_request"}
    assert answers[4][1]["results"][0]["winner"]["hash"] == written
