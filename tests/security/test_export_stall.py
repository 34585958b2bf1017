"""Item 10: a client that stops reading an export pins nothing.

Exports read the journal in seq-ranged chunks, each its own short read
transaction, so a stalled reader holds no snapshot: writes stay fast and a
TRUNCATE checkpoint completes (busy=0) from another connection while the
exports are stalled. Only `STEMEDB_EXPORTS` exports may hold a worker thread
(the others get 429), and a connection whose client takes no data for
`STEMEDB_SEND_TIMEOUT` seconds is closed: its buffers and temporary files go,
and the server's open file descriptors return to where they were.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest
from serverkit import http_json, truncate_wal
from test_hostile_readers import metric, timed, wait_until

from stemedb.store import schema

RECORDS = 480  # x 60 KB of text: an export of ~29 MB, far more than any buffer
TEXT = 60_000
STALLED = 2  # STEMEDB_EXPORTS
SEND_TIMEOUT = 8


def _fill(url: str) -> None:
    for start in range(0, RECORDS, 60):
        batch = [
            {
                "subject": f"stall/r{n}",
                "predicate": "p",
                "object": f"{n:06d}" + "x" * TEXT,
                "confidence": 0.5,
            }
            for n in range(start, start + 60)
        ]
        status, _, body = http_json("POST", url + "/v1/assert/batch", batch, timeout=120)
        assert status == 200 and body["created"] == 60, str(body)[:300]


def _open_export(url: str) -> socket.socket:
    """Ask for the whole export over a socket with a tiny receive window, read the
    status line only, and never read again."""
    parts = urllib.parse.urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((parts.hostname, parts.port))
    sock.sendall(b"GET /v1/export HTTP/1.1\r\nHost: t\r\n\r\n")
    return sock


def _status(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "connection closed before a status line"
        head += chunk
    return head.split(b" ")[1]


def _fds(pid: int) -> list[str]:
    out = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except FileNotFoundError:
            continue
    return out


def _sockets(pid: int) -> int:
    return sum(1 for target in _fds(pid) if target.startswith("socket:"))


def _deleted_temp_files(pid: int) -> int:
    return sum(1 for target in _fds(pid) if target.endswith("(deleted)"))


def test_stalled_exports_pin_no_snapshot_no_thread_and_are_closed(
    run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    server = run_server_process(
        {
            "STEMEDB_THREADS": "4",
            "STEMEDB_EXPORTS": str(STALLED),
            "STEMEDB_SEND_TIMEOUT": str(SEND_TIMEOUT),
            "STEMEDB_REQUIRE_SIGNATURES": "false",
        }
    )
    db = tmp_path / "db" / "stemedb.db"
    _fill(server.url)
    assert truncate_wal(db)[0] == 0
    fds_before = len(_fds(server.pid))
    sockets_before = _sockets(server.pid)

    # As many exports as worker threads: two stream (and stall), two are refused.
    socks = [_open_export(server.url) for _ in range(4)]
    try:
        statuses = [_status(sock) for sock in socks]
        assert sorted(statuses) == [b"200", b"200", b"429", b"429"], statuses
        for sock, status in zip(socks, statuses, strict=True):
            if status == b"429":
                sock.close()  # refused at once; only the two streaming ones stay open
        wait_until(
            lambda: metric(server.url, "stemedb_exports_active") == STALLED,
            what="both exports to be streaming",
        )
        stalled_at = time.monotonic()

        # Writes stay fast while the exports are stalled...
        for n in range(20):
            record = {"subject": f"stall/w{n}", "predicate": "p", "object": n, "confidence": 0.5}
            took = timed(lambda record=record: http_json("POST", server.url + "/v1/assert", record))
            assert took < 2.0, f"write {n} took {took:.1f} s next to stalled exports"
        # ...and nothing pins the WAL: a full checkpoint completes from another connection.
        busy, _, _ = truncate_wal(db)
        assert busy == 0, "a stalled export still holds a read snapshot"
        assert time.monotonic() - stalled_at < SEND_TIMEOUT, "the check ran too late to prove it"
        assert os.path.getsize(f"{db}-wal") < 4 * 1024 * 1024
        # Buffering per stalled connection is bounded: at most one temporary file each.
        assert _deleted_temp_files(server.pid) <= 2 * STALLED, _fds(server.pid)

        # After the send timeout both connections are closed and everything is freed.
        wait_until(
            lambda: (
                metric(server.url, "stemedb_slow_readers_closed_total", reason="send_timeout")
                == STALLED
            ),
            timeout=SEND_TIMEOUT + 15,
            what="the stalled connections to be closed",
        )
        wait_until(
            lambda: metric(server.url, "stemedb_exports_active") == 0,
            what="the export lane to empty",
        )
        assert _deleted_temp_files(server.pid) == 0
        wait_until(
            lambda: _sockets(server.pid) <= sockets_before,
            what=f"open sockets back to {sockets_before}",
        )
        # Other descriptors: at most the read connections the extra load added to the pool.
        assert len(_fds(server.pid)) <= fds_before + 6, _fds(server.pid)
        assert "STEMEDB_SEND_TIMEOUT" in server.output
    finally:
        for sock in socks:
            sock.close()
    assert truncate_wal(db)[0] == 0
    status, _, _ = http_json("GET", server.url + "/v1/health")
    assert status == 200


def test_an_export_is_gap_free_up_to_the_head_at_its_start(
    run_server_process: Callable[..., Any],
) -> None:
    """Chunked reads still give every frame once, in order, and stop at the start's head."""
    server = run_server_process({"STEMEDB_REQUIRE_SIGNATURES": "false"})
    records = [
        {"subject": f"chunk/r{n}", "predicate": "p", "object": n, "confidence": 0.5}
        for n in range(1234)
    ]
    status, _, body = http_json("POST", server.url + "/v1/assert/batch", records)
    assert status == 200 and body["created"] == 1234
    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set():
            record = {"subject": f"chunk/late{n}", "predicate": "p", "object": n, "confidence": 0.5}
            http_json("POST", server.url + "/v1/assert", record)
            n += 1

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        _, _, text = http_json("GET", server.url + "/v1/export?kinds=assertion", timeout=60)
        _, _, csv_text = http_json("GET", server.url + "/v1/export?format=csv", timeout=60)
    finally:
        stop.set()
        writer.join(timeout=10)
    lines = str(text).splitlines()
    subjects = [line.split('"subject":"')[1].split('"')[0] for line in lines]
    assert subjects[:1234] == [f"chunk/r{n}" for n in range(1234)]
    assert len(set(subjects)) == len(subjects)
    rows = str(csv_text).splitlines()
    assert rows[0].startswith("hash,seq,subject")
    seqs = [int(row.split(",")[1]) for row in rows[1:]]
    assert seqs == sorted(set(seqs)) and len(seqs) >= 1234


def test_the_wal_shrinks_back_once_a_pinning_snapshot_is_gone(
    secure_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever made the WAL grow (a long snapshot), it returns to its size limit after
    the next checkpoint: the store sets `journal_size_limit` (64 MiB; 1 MiB here)."""
    monkeypatch.setattr(schema, "WAL_SIZE_LIMIT", 1 << 20)
    app = secure_app(STEMEDB_REQUIRE_SIGNATURES="false")
    wal = Path(f"{app.store.path}-wal")
    pin = apsw.Connection(str(app.store.path))
    pin.execute("BEGIN")
    pin.execute("SELECT count(*) FROM journal").fetchall()  # holds a snapshot

    def write(prefix: str, count: int, text: int) -> None:
        records = [
            {
                "subject": f"wal/{prefix}{n}",
                "predicate": "p",
                "object": "x" * text,
                "confidence": 0.5,
            }
            for n in range(count)
        ]
        resp = app.client.simulate_post("/v1/assert/batch", json=records)
        assert resp.status_code == 200 and resp.json["created"] == count

    write("big", 100, TEXT)
    assert wal.stat().st_size > 4 * 1024 * 1024  # pinned: nothing could be checkpointed
    pin.execute("COMMIT")
    pin.close()
    rounds = iter(range(10_000))
    wait_until(
        lambda: write(f"small{next(rounds)}-", 1, 10) is None and wal.stat().st_size <= 1 << 20,
        what="the WAL to shrink back to journal_size_limit",
    )


def test_unread_large_answers_are_bounded_in_total(
    run_server_process: Callable[..., Any],
) -> None:
    """Many large query answers nobody reads: past STEMEDB_SEND_BUFFER_TOTAL of unsent
    output the largest stalled ones are closed at once, long before the send timeout,
    and their temporary files go with them."""
    server = run_server_process(
        {
            "STEMEDB_SEND_BUFFER_TOTAL": str(1024 * 1024),
            "STEMEDB_SEND_TIMEOUT": "600",
            "STEMEDB_REQUIRE_SIGNATURES": "false",
        }
    )
    batch = [
        {"subject": "unread/s", "predicate": f"p{n}", "object": "y" * 10_000, "confidence": 0.5}
        for n in range(400)
    ]
    status, _, body = http_json("POST", server.url + "/v1/assert/batch", batch, timeout=120)
    assert status == 200 and body["created"] == 400
    parts = urllib.parse.urlsplit(server.url)
    socks = []
    try:
        for _ in range(6):  # six answers of ~4.5 MB each, none read
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((parts.hostname, parts.port))
            sock.sendall(b"GET /v1/query?subject=unread/s&limit=400 HTTP/1.1\r\nHost: t\r\n\r\n")
            socks.append(sock)
        wait_until(
            lambda: (
                metric(server.url, "stemedb_slow_readers_closed_total", reason="send_buffer_total")
                == 6
            ),
            what="every unread answer over the total budget to be closed",
        )
        wait_until(lambda: _deleted_temp_files(server.pid) == 0, what="the temporary files to go")
        assert "STEMEDB_SEND_BUFFER_TOTAL" in server.output
        status, _, _ = http_json("GET", server.url + "/v1/health")
        assert status == 200
    finally:
        for sock in socks:
            sock.close()
