"""The server as a real process: the ten steps, failures that explain themselves, clean stops.

Most tests run this very file as the server program (`__main__` below): the
real `stemedb.server.run_server` with a small fake store and fake routes, so
the lifecycle is tested without depending on the database. The last tests
run the real `stemedb serve` end to end.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

FAKE_ARGV = (sys.executable, __file__)
RUNBOOK = "docs/operations/runbooks/server-wont-start.md"


# ---- the fake server program ------------------------------------------------------


def _fake_main() -> int:
    import falcon

    from stemedb.api.routing import Route
    from stemedb.server import run_server
    from stemedb.store import StartupError

    fail_at = os.environ.get("FAKE_FAIL", "")

    class FakeStore:
        def __init__(self, settings: Any, metrics: Any) -> None:
            self.closed = False

        def open_journal(self) -> str:
            if fail_at == "journal":
                raise StartupError("journal header magic mismatch", f"{RUNBOOK} §3")
            return "fake journal ok"

        def open_projections(self) -> str:
            return "fake projections ok"

        def start_writer(self) -> str:
            return "fake writer started"

        def stats(self) -> dict[str, Any]:
            return {"assertion_count": 7, "journal_seq": 9, "queue_depth": 0}

        def close(self) -> None:
            print("fake store closed (writer flushed)", flush=True)

    def routes(settings: Any, store: Any, metrics: Any) -> list[Route]:
        def health(req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"status": "healthy", "fake": True}

        def slow(req: falcon.Request, resp: falcon.Response) -> None:
            print("slow request started", flush=True)
            time.sleep(float(req.get_param("s") or 1))
            resp.media = {"slept": True}

        return [
            Route("GET", "/v1/health", health, auth="public"),
            Route("GET", "/v1/slow", slow),
        ]

    return run_server(store_factory=FakeStore, routes_factory=routes)


if __name__ == "__main__":
    sys.exit(_fake_main())

# Only under pytest (conftest is not on the path of the fake server program).
from serverkit import SERVE_ARGV, StartServer, http_json  # noqa: E402

# ---- lifecycle --------------------------------------------------------------------


def test_start_logs_ten_numbered_steps_in_order_then_sigterm_exits_0(
    run_server_process: StartServer,
) -> None:
    server = run_server_process(argv=FAKE_ARGV)
    status, headers, body = http_json("GET", server.url + "/v1/health")
    assert (status, body["fake"]) == (200, True)
    assert headers["X-Request-Id"]
    steps = [int(n) for n in re.findall(r"\[(\d+)/10\]", server.output)]
    assert steps == list(range(1, 11))
    assert "[5/10] open the journal: fake journal ok" in server.output
    assert server.stop(signal.SIGTERM) == 0
    out = server.output
    assert out.index("fake store closed") < out.index("stopped")
    assert out.rstrip().endswith("stopped")


def test_sigint_also_stops_cleanly(run_server_process: StartServer) -> None:
    server = run_server_process(argv=FAKE_ARGV)
    assert server.stop(signal.SIGINT) == 0
    assert "stopped" in server.output


def test_sigterm_lets_an_in_flight_request_finish(run_server_process: StartServer) -> None:
    server = run_server_process(argv=FAKE_ARGV)
    result: dict[str, Any] = {}

    def call() -> None:
        result["answer"] = http_json("GET", server.url + "/v1/slow?s=1.5")

    thread = threading.Thread(target=call)
    thread.start()
    server.wait_for_output("slow request started")  # the request is inside the handler now
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    thread.join(5)
    assert result["answer"][0] == 200 and result["answer"][2] == {"slept": True}
    assert time.monotonic() - started >= 0.5  # it waited for the request
    with pytest.raises(OSError):  # and no longer accepts connections
        http_json("GET", server.url + "/v1/health", timeout=2)


def test_ready_and_stopping_are_sent_to_notify_socket(
    run_server_process: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        server = run_server_process({"NOTIFY_SOCKET": str(path)}, argv=FAKE_ARGV)
        ready = sock.recv(4096).decode()
        assert ready.splitlines()[0] == "READY=1"
        assert server.url in ready
        assert server.stop() == 0
        assert sock.recv(4096).decode() == "STOPPING=1"


# ---- failures: one clear line, exit 1, no traceback -------------------------------


def _failed(run_server_process: StartServer, env: dict[str, str]) -> str:
    server = run_server_process(env, argv=FAKE_ARGV)
    assert server.wait(30) == 1, server.output
    assert "Traceback" not in server.output
    return server.output


def test_port_in_use_is_reported_as_such(run_server_process: StartServer) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        out = _failed(run_server_process, {"STEMEDB_BIND_ADDR": f"127.0.0.1:{port}"})
    expected = (
        f"[9/10] bind the listener: FAILED: address 127.0.0.1:{port} is already in use "
        f"(another stemedb-api? find it with: lsof -i :{port}). See {RUNBOOK} §1"
    )
    assert expected in out
    assert "fake store closed" in out  # steps 5-7 are undone


def test_bad_config_value_names_the_variable(run_server_process: StartServer) -> None:
    out = _failed(run_server_process, {"STEMEDB_THREADS": "lots"})
    assert (
        "[3/10] configuration: FAILED: STEMEDB_THREADS: expected an integer, got 'lots'. "
        "See docs/operations/configuration.md"
    ) in out
    assert "[4/10]" not in out


def test_non_loopback_without_auth_is_refused_with_the_fix(
    run_server_process: StartServer,
) -> None:
    out = _failed(run_server_process, {"STEMEDB_BIND_ADDR": "0.0.0.0:0"})
    line = next(line for line in out.splitlines() if "FAILED" in line)
    assert line.split(" ", 2)[2].startswith("stemedb.server [3/10] configuration: FAILED:")
    assert "STEMEDB_AUTH_ENABLED=true" in line
    assert "STEMEDB_ALLOW_UNAUTHENTICATED_REMOTE=true" in line


def test_non_loopback_starts_when_explicitly_allowed(run_server_process: StartServer) -> None:
    server = run_server_process(
        {"STEMEDB_BIND_ADDR": "0.0.0.0:0", "STEMEDB_ALLOW_UNAUTHENTICATED_REMOTE": "true"},
        argv=FAKE_ARGV,
        ready_path="/v1/health",
    )
    assert server.returncode is None, server.output
    assert "WITHOUT authentication" in server.output
    assert server.stop() == 0


def test_data_dir_that_is_a_file_fails_step_4_naming_the_path(
    run_server_process: StartServer, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    out = _failed(run_server_process, {"STEMEDB_DB_DIR": str(blocker)})
    assert f"[4/10] data directories: FAILED: {blocker} exists but is not a directory" in out
    assert f"{RUNBOOK} §5" in out


def test_missing_data_dirs_are_created(run_server_process: StartServer, tmp_path: Path) -> None:
    db_dir = tmp_path / "deep" / "db"
    server = run_server_process({"STEMEDB_DB_DIR": str(db_dir)}, argv=FAKE_ARGV)
    assert db_dir.is_dir()
    assert f"{db_dir} created" in server.output
    assert server.stop() == 0


def test_store_startup_error_prints_its_runbook_section(run_server_process: StartServer) -> None:
    out = _failed(run_server_process, {"FAKE_FAIL": "journal"})
    assert (
        f"[5/10] open the journal: FAILED: journal header magic mismatch. See {RUNBOOK} §3"
    ) in out


# ---- the real server ----------------------------------------------------------------


def test_real_server_serves_the_runbook_checks_and_stops_cleanly(
    run_server_process: StartServer,
) -> None:
    server = run_server_process()
    assert server.returncode is None, server.output
    status, _, body = http_json("GET", server.url + "/v1/health")
    assert status == 200 and body["status"] == "healthy" and body["assertion_count"] == 0
    status, _, body = http_json(
        "POST", server.url + "/v1/query", {"concept_path": "test/health", "lens": "recency"}
    )
    assert status == 200, body
    status, headers, text = http_json("GET", server.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'stemedb_http_requests_total{method="POST",route="/v1/query",status="200"} 1.0' in text
    assert "stemedb_journal_seq 0.0" in text
    status, _, spec = http_json("GET", server.url + "/openapi.json")
    assert status == 200 and spec["openapi"] == "3.1.0" and "/v1/assert" in spec["paths"]
    assert http_json("GET", server.url + "/docs")[0] == 200
    assert server.stop() == 0
    assert "stopped" in server.output


def test_stemedb_api_flag_overrides_the_environment(run_server_process: StartServer) -> None:
    argv = (*SERVE_ARGV, "--threads", "many")
    server = run_server_process({"STEMEDB_THREADS": "4"}, argv=argv)
    assert server.wait(30) == 1
    assert "STEMEDB_THREADS: expected an integer, got 'many'" in server.output
