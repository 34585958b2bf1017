"""Server steps in-process: directory checks, cleanup on failure, stop from another thread."""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, ClassVar

import falcon
import pytest
from serverkit import http_json

from stemedb.api.routing import Route
from stemedb.server import RUNBOOK, Server, StepFailed


class FakeStore:
    instances: ClassVar[list[FakeStore]] = []

    def __init__(self, settings: Any, metrics: Any) -> None:
        self.closed = False
        FakeStore.instances.append(self)

    def open_journal(self) -> str:
        return "journal"

    def open_projections(self) -> str:
        return "projections"

    def start_writer(self) -> str:
        return "writer"

    def stats(self) -> dict[str, Any]:
        return {"journal_seq": 3}

    def close(self) -> None:
        self.closed = True


def health_routes(settings: Any, store: Any, metrics: Any) -> list[Route]:
    def health(req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "healthy"}

    return [Route("GET", "/v1/health", health, auth="public")]


def make_server(tmp_path: Path, routes: Any = health_routes, **env: str) -> Server:
    environ = {
        "STEMEDB_BIND_ADDR": "127.0.0.1:0",
        "STEMEDB_DB_DIR": str(tmp_path / "db"),
        "STEMEDB_WAL_DIR": str(tmp_path / "wal"),
        **env,
    }
    return Server(
        environ=environ, store_factory=FakeStore, routes_factory=routes, configure_logging=False
    )


def test_serve_until_stopped_from_another_thread(tmp_path: Path) -> None:
    server = make_server(tmp_path, STEMEDB_THREADS="2")
    server.start()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(server.serve()))
    thread.start()
    try:
        status, _, body = http_json("GET", server.url + "/v1/health")
        assert (status, body) == (200, {"status": "healthy"})
        status, _, text = http_json("GET", server.url + "/metrics")
        assert "stemedb_journal_seq 3.0" in text  # gauges bound to the store
    finally:
        server.request_stop("test")
        thread.join(15)
    assert result == [0]
    assert FakeStore.instances[-1].closed


def test_overrides_win_over_environment(tmp_path: Path) -> None:
    server = Server(
        {"STEMEDB_THREADS": "3"},
        environ={
            "STEMEDB_THREADS": "9",
            "STEMEDB_DB_DIR": str(tmp_path / "db"),
            "STEMEDB_WAL_DIR": str(tmp_path / "wal"),
            "STEMEDB_BIND_ADDR": "127.0.0.1:0",
        },
        store_factory=FakeStore,
        routes_factory=health_routes,
        configure_logging=False,
    )
    server.start()
    try:
        assert server.settings is not None and server.settings.threads == 3
    finally:
        server.request_stop()
        server.serve()


def test_unknown_override_is_a_config_error(tmp_path: Path) -> None:
    server = Server({"STEMEDB_THREDS": "3"}, environ={}, configure_logging=False)
    with pytest.raises(StepFailed, match="STEMEDB_THREDS: unknown setting"):
        server.start()


def test_directory_owned_by_someone_else_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "db").mkdir()
    real_uid = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: real_uid + 4242)
    server = make_server(tmp_path)
    with caplog.at_level(logging.WARNING, logger="stemedb.server"):
        server.start()
    server.request_stop()
    server.serve()
    warning = next(r.getMessage() for r in caplog.records if "owned by" in r.getMessage())
    assert str(tmp_path / "db") in warning and "§5" in warning


@pytest.mark.parametrize(
    ("error", "section"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "§5"),
        (OSError(errno.ENOSPC, "No space left on device"), "§4"),
    ],
)
def test_unwritable_directory_fails_step_4_with_path_and_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, section: str
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(StepFailed) as info:
        make_server(tmp_path).start()
    assert str(tmp_path / "db") in info.value.cause
    assert info.value.runbook == f"{RUNBOOK} {section}"


def test_failure_after_store_opened_closes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_routes(settings: Any, store: Any, metrics: Any) -> list[Route]:
        raise RuntimeError("endpoint wiring bug")

    with caplog.at_level(logging.ERROR, logger="stemedb.server"), pytest.raises(StepFailed) as info:
        make_server(tmp_path, broken_routes).start()
    assert "endpoint wiring bug" in info.value.cause
    assert FakeStore.instances[-1].closed
    record = next(
        r for r in caplog.records if "[8/10] build the Falcon app: FAILED" in r.getMessage()
    )
    assert record.exc_info is not None  # unexpected: the traceback goes to the log
