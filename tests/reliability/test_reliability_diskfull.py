"""A full disk under concurrent writers: 507, reads keep working, health degraded, writes resume.

Two ways to fill the disk, both against the real server process:

* `ext4` — a real filesystem: a 32 MiB ext4 image, loop-mounted at the
  server's STEMEDB_DB_DIR, filled to the last block by a ballast file, then
  freed by deleting it. Needs root and loop devices (the CI container has both).
* `page_limit` — where mounting is not permitted: `PRAGMA max_page_count` on
  the writer's connection through a test-only route (pagelimit_server.py).

The single-client tmpfs twin is tests/e2e/test_endpoints_diskfull.py and the
in-process one tests/store/test_store_writes.py; this one adds concurrent
clients, a ledger of every answer (acknowledged present, refused absent,
byte for byte), a degraded state that must hold while the disk stays full,
and `verify --full` after the recovery.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from crash_harness import ACK, REFUSED, CrashHarness, StartServer
from rel_support import RELIABILITY_ENV, http_json

PAGELIMIT_ARGV = (sys.executable, str(Path(__file__).with_name("pagelimit_server.py")))
WRITER_PROBE_INTERVAL_S = 2.0  # stemedb.store.writer.PROBE_INTERVAL_S


class Filler(Protocol):
    name: str
    db_dir: Path | None
    argv: tuple[str, ...] | None

    def fill(self, url: str) -> None: ...
    def free(self, url: str) -> None: ...


class Ext4Filler:
    name = "ext4"
    argv: tuple[str, ...] | None = None

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.db_dir: Path | None = mount / "db"
        self.ballast = mount / "ballast"

    def fill(self, url: str) -> None:
        """Write the ballast until ENOSPC, in ever smaller pieces: not one block left."""
        chunk = b"\xa5" * (1 << 20)
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 1 << 12, 1 << 9):
                while True:
                    try:
                        os.write(fd, chunk[:size])
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC, exc
                        break
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)
        assert shutil.disk_usage(self.mount).free < (64 << 10)

    def free(self, url: str) -> None:
        self.ballast.unlink()


class PageLimitFiller:
    name = "page_limit"
    db_dir: Path | None = None
    argv: tuple[str, ...] | None = PAGELIMIT_ARGV

    def fill(self, url: str) -> None:
        status, _, body = http_json("POST", url + "/_test/page-limit", {"spare_pages": 4})
        assert status == 200, body

    def free(self, url: str) -> None:
        status, _, body = http_json("POST", url + "/_test/page-limit", {"spare_pages": None})
        assert status == 200, body


def _mount_ext4(tmp_path: Path) -> tuple[Path, Path] | str:
    """Mount a fresh ext4 image; return (mount point, image) or why it is not possible."""
    if os.geteuid() != 0:
        return "not root"
    if not (shutil.which("mkfs.ext4") and shutil.which("mount")):
        return "mkfs.ext4 or mount(8) missing"
    image, mount = tmp_path / "disk.img", tmp_path / "small"
    mount.mkdir()
    with open(image, "wb") as out:
        out.truncate(32 << 20)
    for argv in (
        ["mkfs.ext4", "-q", "-F", "-m", "0", str(image)],
        ["mount", "-o", "loop", str(image), str(mount)],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"{' '.join(argv[:2])}: {done.stderr.strip()}"
    return mount, image


@pytest.fixture(params=["ext4", "page_limit"])
def filler(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Filler]:
    if request.param == "page_limit":
        yield PageLimitFiller()
        return
    mounted = _mount_ext4(tmp_path)
    if isinstance(mounted, str):
        pytest.skip(f"cannot mount a small ext4 here ({mounted}); the page_limit case covers it")
    mount, image = mounted
    try:
        yield Ext4Filler(mount)
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
        image.unlink(missing_ok=True)


def _post_one(harness: CrashHarness, url: str, path: str = "/v1/assert") -> tuple[int, Any, Any]:
    """One signed write outside the client threads, recorded in the ledger."""
    record = harness.factory.next()
    harness.ledger.sent([record])
    payload = record.payload if path == "/v1/assert" else [record.payload]
    status, headers, body = http_json("POST", url + path, payload)
    assert status in (200, 201, 507), (path, status, body)
    if path != "/v1/assert" and status == 200:
        assert body["results"][0]["status"] == "created", body
    if status == 507:
        harness.ledger.answer([record], REFUSED, f"507 {body['error']['code']}")
    else:
        harness.ledger.answer([record], ACK, str(status))
    return status, headers, body


def _write_until_507(harness: CrashHarness, url: str, path: str) -> tuple[int, Any, Any]:
    for _ in range(50):
        status, headers, body = _post_one(harness, url, path)
        if status == 507:
            return status, headers, body
    raise AssertionError(f"{path}: 50 writes on a full disk and never a 507")


def _poll(fn: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = fn()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


def test_full_disk_under_load_is_507_reads_work_health_degraded_writes_resume(
    filler: Filler, run_server_process: StartServer, tmp_path: Path
) -> None:
    env = {**RELIABILITY_ENV, "STEMEDB_VERIFY_TAIL": "64", "STEMEDB_THREADS": "8"}
    if filler.db_dir is not None:
        env["STEMEDB_DB_DIR"] = str(filler.db_dir)

    def start(extra: Any = None, **kw: Any) -> Any:
        if filler.argv is not None:
            kw.setdefault("argv", filler.argv)
        return run_server_process({**env, **(extra or {})}, **kw)

    harness = CrashHarness(tmp_path, start, seed=507, env=env, clients=4)
    if filler.db_dir is not None:
        harness.db_path = filler.db_dir / "stemedb.db"
    server = start()
    url = server.url
    harness.load(server, 1.0)
    acked_before = harness.ledger.count(ACK)
    assert acked_before > 0

    filler.fill(url)
    for _ in range(40):  # the WAL may still have room for a few batches
        harness.load(server, 0.25)
        if any(s.startswith("507") for s in harness.ledger.statuses):
            break
    statuses = dict(harness.ledger.statuses)
    assert "507 insufficient_storage" in statuses, statuses
    assert not any(s.startswith(("5", "4")) and not s.startswith("507") for s in statuses), statuses

    # The documented answer, for single and batch writes. On a real disk a small write
    # can still fit in WAL space allocated earlier, so it may take a few tries; every
    # answer meanwhile is 2xx (durable, checked by the ledger) or 507.
    for path in ("/v1/assert/batch", "/v1/assert"):
        status, headers, body = _write_until_507(harness, url, path)
        assert set(body) == {"error"} and body["error"]["code"] == "insufficient_storage"
        assert "disk is full" in body["error"]["message"] and headers["X-Request-Id"]

    # Health says why, and stays degraded while the disk stays full (past the writer's
    # probe, which must not mistake WAL slack for free space).
    for check in range(3):  # at once, then after one and after two probes
        if check:
            time.sleep(WRITER_PROBE_INTERVAL_S + 0.5)
        status, _, health = http_json("GET", url + "/v1/health")
        assert status == 503, (check, health)
        assert (health["status"], health["reason"]) == ("degraded", "disk_full"), health

    # Reads keep working.
    acked = [e.record for e in harness.ledger.entries.values() if e.state == ACK]
    sample = acked[len(acked) // 2]
    status, _, body = http_json("GET", f"{url}/v1/assertions/{sample.hash}")
    assert status == 200 and body["hash"] == sample.hash
    status, _, body = http_json("GET", f"{url}/v1/query?subject={sample.subject}")
    assert status == 200 and sample.hash in {a["hash"] for a in body["assertions"]}
    status, _, body = http_json(
        "POST", url + "/v1/query", {"subject": sample.subject, "lens": "recency"}
    )
    assert status == 200, body

    # Space returns: writes succeed again by themselves, without a restart.
    filler.free(url)
    _poll(lambda: _post_one(harness, url)[0] == 201, timeout=15)
    _poll(lambda: http_json("GET", url + "/v1/health")[0] == 200, timeout=10)
    harness.load(server, 1.0)
    assert harness.ledger.count(ACK) > acked_before
    harness.check(server)  # ledger vs file and API, on the live server
    assert server.stop(signal.SIGTERM) == 0
    report = harness.final_check()  # restart, check again, verify --full
    print(f"DISKFULL-REPORT[{filler.name}]", report.as_dict())
    assert report.refused >= 2
