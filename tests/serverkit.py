"""Plain helpers for tests that run real server processes (no fixtures here).

Import them by name (`from serverkit import http_json, ServerProcess`): a
uniquely named module, unlike `conftest`, which several test folders have.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

SERVE_ARGV = (sys.executable, "-m", "stemedb.cli.main", "serve")
# Every metric operations.md requires (plus the admission gauge), checked in process
# (tests/api/test_api_metrics.py) and on a live /metrics (tests/e2e/test_endpoints_ops.py).
REQUIRED_METRICS = (
    "stemedb_build_info",
    "stemedb_uptime_seconds",
    "stemedb_http_requests_total",
    "stemedb_http_request_duration_seconds",
    "stemedb_assertions_total",
    "stemedb_assertions_ingested_total",
    "stemedb_assertions_rejected_total",
    "stemedb_queries_total",
    "stemedb_query_latency_seconds",
    "stemedb_journal_seq",
    "stemedb_journal_commit_seconds",
    "stemedb_journal_batch_size",
    "stemedb_write_queue_depth",
    "stemedb_requests_waiting",
    "stemedb_db_size_bytes",
    "stemedb_archive_lag_frames",
    "stemedb_last_backup_timestamp_seconds",
    "stemedb_rate_limited_total",
)
_LISTENING = re.compile(r"listening on (http://\S+)")


def http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, http.client.HTTPMessage, Any]:
    """One request; a dict/list body is sent as JSON. Returns (status, headers, json or text)."""
    parts = urllib.parse.urlsplit(url)
    sent = dict(headers or {})
    data: bytes | None
    if body is None or isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path or "/", body=data, headers=sent)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    text = raw.decode("utf-8", errors="replace")
    if (resp.headers.get("Content-Type") or "").startswith("application/json"):
        return resp.status, resp.headers, json.loads(text) if text else None
    return resp.status, resp.headers, text


class ServerProcess:
    """A server subprocess whose combined output goes to `log_path`."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path):
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in _reap
        self.proc = subprocess.Popen(
            self.argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the test runner does not hit it
        )
        self.url = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def wait_for_output(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            if self.proc.poll() is not None:
                match = re.search(pattern, self.output)
                if match:
                    return match
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in server output:\n{self.output}")

    def wait_ready(self, path: str = "/v1/health", timeout: float = 30.0) -> bool:
        """True once `path` answers 200; False if the process exited first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reap()
                return False
            match = _LISTENING.search(self.output)
            if match:
                self.url = match.group(1)
                try:
                    status, _, _ = http_json("GET", self.url + path, timeout=2)
                    if status == 200:
                        return True
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output}")

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                self._reap()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig` and wait for the exit code (SIGKILL after `timeout`, then fail)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"server ignored signal {sig} for {timeout} s:\n{self.output}"
            ) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reap()

    def _reap(self) -> None:
        if not self._log.closed:
            self._log.close()


def server_env(tmp_path: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parent's environment minus STEMEDB_*/NOTIFY_SOCKET, data under tmp_path, port 0."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    base.pop("NOTIFY_SOCKET", None)
    base.update(
        PYTHONUNBUFFERED="1",
        STEMEDB_BIND_ADDR="127.0.0.1:0",
        STEMEDB_DB_DIR=str(tmp_path / "db"),
        STEMEDB_WAL_DIR=str(tmp_path / "wal"),
        STEMEDB_BACKUP_DIR=str(tmp_path / "backups"),
    )
    base.update(env or {})
    return base


StartServer = Callable[..., ServerProcess]


def truncate_wal(db: Path, within_s: float = 2.0) -> tuple[int, int, int]:
    """`PRAGMA wal_checkpoint(TRUNCATE)` from a connection of our own, retried for up to
    `within_s`: (busy, log frames, checkpointed frames), the first result with busy 0.

    The server's own checkpointer runs a PASSIVE checkpoint every 0.25 s, and a
    checkpoint that meets it (or a commit in flight) answers busy although nothing is
    pinned; a snapshot someone holds makes every attempt busy."""
    deadline = time.monotonic() + within_s
    while True:
        conn = sqlite3.connect(db, timeout=10)
        try:
            busy, log, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
        if busy == 0 or time.monotonic() >= deadline:
            return int(busy), int(log), int(done)
        time.sleep(0.02)
