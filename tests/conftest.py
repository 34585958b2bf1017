"""Shared fixtures: free ports, settings under tmp_path, and real server processes.

`run_server_process(env)` starts `python -m stemedb.cli.main serve` (or any
argv) with its data under the test's tmp_path, waits until `/v1/health`
answers 200 (or the process exits), and always kills it at teardown. HTTP in
tests uses only the standard library (`http_json`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from e2ekit import RunningServer, ServerFactory
from serverkit import SERVE_ARGV, ServerProcess, StartServer, http_json, server_env

from stemedb.api.app import create_app
from stemedb.api.routing import Route
from stemedb.config import Settings
from stemedb.metrics import Metrics

__all__ = ["SERVE_ARGV", "ServerProcess", "StartServer", "http_json", "server_env"]


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


def _server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """`start(env=None, base=None)`: a ready `stemedb serve` process (port 0).

    Every process started through it is stopped when the fixture's scope ends;
    call `.proc.stop()` / `.proc.kill()` earlier to end one sooner. Passing the
    `base` of an earlier server restarts on the same data.
    """
    started: list[Any] = []

    def start(
        env: Mapping[str, str] | None = None, *, base: Path | None = None, timeout: float = 60.0
    ) -> RunningServer:
        base = base or tmp_path_factory.mktemp("server")
        index = len(started)
        log_path = base / f"server-{index}.log"
        full_env = server_env(base, env)
        proc = ServerProcess(SERVE_ARGV, full_env, base, log_path)
        started.append(proc)
        if not proc.wait_ready("/v1/ready", timeout):
            raise AssertionError(f"server exited at start:\n{proc.output}")
        return RunningServer(proc, base, env or {}, index)

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Real servers that live for one test (nothing lives for the whole session)."""
    yield from _server_factory(tmp_path_factory)


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Real servers shared by the tests of one module, stopped after it."""
    yield from _server_factory(tmp_path_factory)
