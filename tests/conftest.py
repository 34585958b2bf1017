"""Shared fixtures: free ports, settings under tmp_path, and real server processes.

`run_server_process(env)` starts `python -m stemedb.cli.main serve` (or any
argv) with its data under the test's tmp_path, waits until `/v1/health`
answers 200 (or the process exits), and always kills it at teardown. HTTP in
tests uses only the standard library (`http_json`).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from stemedb.api.app import create_app
from stemedb.api.routing import Route
from stemedb.config import Settings
from stemedb.metrics import Metrics

SERVE_ARGV = (sys.executable, "-m", "stemedb.cli.main", "serve")
_LISTENING = re.compile(r"listening on (http://\S+)")


@pytest.fixture
def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (prefer port 0 + `ServerProcess.url`)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    """Default Settings with every directory under tmp_path (not created yet)."""
    return Settings(
        db_dir=tmp_path / "db",
        wal_dir=tmp_path / "wal",
        backup_dir=tmp_path / "backups",
        bind_port=0,
    )


@pytest.fixture
def make_client(tmp_settings: Settings) -> Callable[..., falcon.testing.TestClient]:
    """`make_client(routes, **settings_changes)`: an in-process app; `.metrics` is its Metrics."""

    def make(
        routes: Sequence[Route], *, extra_middleware: Sequence[object] = (), **changes: Any
    ) -> falcon.testing.TestClient:
        metrics = Metrics("0.0.0-test")
        settings = tmp_settings.with_overrides(**changes)
        app = create_app(settings, routes, metrics, extra_middleware=extra_middleware)
        client = falcon.testing.TestClient(app)
        client.metrics = metrics  # type: ignore[attr-defined]
        return client

    return make


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


@pytest.fixture
def run_server_process(tmp_path: Path) -> Iterator[StartServer]:
    """Factory: `run_server_process(env, argv=None, wait=True) -> ServerProcess`.

    With `wait=True` it returns once /v1/health is 200 or the process has
    exited (check `.returncode`). Every process is killed at teardown.
    """
    started: list[ServerProcess] = []

    def start(
        env: Mapping[str, str] | None = None,
        *,
        argv: Sequence[str] = SERVE_ARGV,
        wait: bool = True,
        ready_path: str = "/v1/health",
        timeout: float = 60.0,
    ) -> ServerProcess:
        log_path = tmp_path / f"server-{len(started)}.log"
        proc = ServerProcess(argv, server_env(tmp_path, env), tmp_path, log_path)
        started.append(proc)
        if wait:
            proc.wait_ready(ready_path, timeout)
        return proc

    yield start
    for proc in started:
        proc.kill()
