"""A real full disk over HTTP: the database on a small tmpfs, filled until writes get
507 insufficient_storage; health says degraded (503), reads keep working, and writes
resume by themselves once space returns. Needs permission to mount a tmpfs (root in
the CI container); skipped otherwise. The store-level twin with PRAGMA max_page_count
is tests/store/test_store_writes.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import Agent, poll, unique


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount(8) for a tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_is_507_reads_work_and_writes_resume(
    small_disk: Path, server_factory: Any
) -> None:
    server = server_factory({"STEMEDB_DB_DIR": str(small_disk / "db")})
    api = server.api
    agent = Agent()
    subject = f"{unique('full')}/disk"
    first = api.write("/v1/assert", agent.assertion(subject, "p", "before", 0.5))
    # Leave a little room, then fill it with big claims until the disk is full.
    free = shutil.disk_usage(small_disk).free
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * max(0, free - 400_000))
    statuses: list[int] = []
    full = None
    for i in range(200):
        resp = api.post("/v1/assert", agent.assertion(subject, "p", f"{i}" + "x" * 60000, 0.5))
        statuses.append(resp.status)
        if resp.status != 201:
            full = resp
            break
    assert full is not None, f"never filled up: {statuses}"
    assert full.status == 507, full
    assert full.error["code"] == "insufficient_storage"
    assert full.header("X-Request-Id")

    health = api.get("/v1/health")
    assert health.status == 503 and health.json["status"] == "degraded"
    seq_when_full = health.json["journal_seq"]
    # Reads keep working.
    assert api.get(f"/v1/assertions/{first['hash']}").status == 200
    listed = api.query(subject=subject)
    assert listed["count"] == statuses.count(201) + 1
    assert api.post("/v1/query", {"subject": subject, "lens": "recency"}).status == 200
    # Still full: still 507, nothing half-written.
    again = api.post("/v1/assert", agent.assertion(subject, "p", "y" * 60000, 0.5))
    assert again.status == 507
    assert api.get("/v1/health").json["journal_seq"] == seq_when_full

    filler.unlink()  # space returns
    created = poll(
        lambda: (lambda r: r if r.status == 201 else None)(
            api.post("/v1/assert", agent.assertion(subject, "p", unique("after"), 0.5))
        ),
        timeout=15,
    )
    assert created.json["seq"] == seq_when_full + 1
    health = poll(
        lambda: (lambda r: r if r.status == 200 else None)(api.get("/v1/health")), timeout=10
    )
    assert health.json["status"] == "healthy"
    report = api.ok("POST", "/v1/admin/verify")
    assert report["ok"] is True, report
    server.proc.kill()
