"""Logs cannot be forged (issue 14, item 12).

An unauthenticated `GET /v1/assertions/x%0A<text>` used to write a whole
forged line into the text log. Every control and line-separator character
of request data is now escaped in both log formats, so a reader sees exactly
one line per event. Checked on a real server's output in both formats, and
on the formatters directly (tracebacks and extras included).
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
from collections.abc import Iterator

import pytest
from e2ekit import RunningServer, poll
from rightskit import AUTH_ENV
from serverkit import SERVE_ARGV, ServerProcess, http_json, server_env

from stemedb.logs import JsonFormatter, TextFormatter, setup_logging

EVENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+ ")
FORGED = "2026-01-01T00:00:00Z ERROR stemedb.store FORGED"
# (what the client sends in the path, the character the server decodes it to)
SEPARATORS = [
    ("%0A", "\n"),
    ("%0D", "\r"),
    ("%0D%0A", "\r\n"),
    ("%1B%5B2J", "\x1b[2J"),
    ("%00", "\x00"),
    ("%0B", "\x0b"),
    ("%0C", "\x0c"),
    ("%1C", "\x1c"),
    ("%7F", "\x7f"),
    ("%C2%85", "\x85"),
    ("%C2%9B", "\x9b"),
    ("%E2%80%A8", "\u2028"),
    ("%E2%80%A9", "\u2029"),
    ("%E2%80%AE", "\u202e"),
]
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _raw_get(server: RunningServer, target: str, headers: dict[str, str]) -> bytes:
    """A request sent byte for byte (http.client would refuse some of these headers)."""
    head = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection((server.api.host, server.api.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module", params=["text", "json"])
def logged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, RunningServer]]:
    """A real server logging in `text` or `json` (started here: the shared helpers
    find the URL in a text log only)."""
    base = tmp_path_factory.mktemp(f"log-{request.param}")
    port = _free_port()
    env = {
        **AUTH_ENV,
        "STEMEDB_LOG_FORMAT": request.param,
        "STEMEDB_BIND_ADDR": f"127.0.0.1:{port}",
    }
    proc = ServerProcess(SERVE_ARGV, server_env(base, env), base, base / "server.log")
    proc.url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.returncode is None, proc.output
        try:
            return http_json("GET", proc.url + "/v1/ready", timeout=2)[0] == 200
        except OSError:
            return False

    try:
        poll(ready, timeout=60)
        yield request.param, RunningServer(proc, base, env, 0)
    finally:
        proc.kill()


def test_request_data_cannot_forge_a_log_line(logged: tuple[str, RunningServer]) -> None:
    fmt, server = logged
    for n, (encoded, _) in enumerate(SEPARATORS):
        marker = f"{FORGED}-{n}-end".replace(" ", "%20")
        target = f"/v1/assertions/x{encoded}{marker}?q=a{encoded}{marker}"
        answer = _raw_get(
            server,
            target,
            {
                # what HTTP lets through in a header value: obs-text (C1 bytes) and tabs
                "X-Request-Id": f"r{n}\x85\x9b\t{FORGED}",
                "X-Agent-Id": f"a\x85\x9b\t{FORGED}",
                "User-Agent": f"ua\x85\t{FORGED}",
            },
        )
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    last = f"{FORGED}-{len(SEPARATORS) - 1}-end"
    poll(lambda: last in server.proc.output, timeout=10)
    output = server.proc.output
    lines = output.split("\n")
    for line in lines:
        assert not line.startswith(FORGED), line
        assert not any(ch in line for ch in LINE_BREAKS if ch != "\n"), repr(line)
        assert "\x1b" not in line and "\x00" not in line and "\x9b" not in line
    for n, (_, decoded) in enumerate(SEPARATORS):
        carrying = [line for line in lines if f"{FORGED}-{n}-end" in line]
        assert len(carrying) == 1, (n, carrying)  # one event, one line
        if fmt == "text":
            assert EVENT.match(carrying[0]), carrying[0]
            assert "401 GET /v1/assertions/x" in carrying[0]
        else:
            event = json.loads(carrying[0])
            assert event["level"] == "INFO"
            # JSON escaping is lossless: the reader gets the very characters sent
            assert f"/v1/assertions/x{decoded}{FORGED}-{n}-end" in event["msg"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_formatters_keep_tracebacks_and_extras_on_one_line(
    fmt: str, restore_root_logging: None
) -> None:
    stream = io.StringIO()
    setup_logging("info", fmt, stream)
    log = logging.getLogger("stemedb.api")
    evil = f"x\n{FORGED}\r\u2028\x85\x1b[0m\ud800"
    try:
        raise ValueError(evil)
    except ValueError:
        log.exception("failed on %s", evil, extra={"request_id": evil, "agent": evil})
    log.warning("after")
    out = stream.getvalue()
    lines = out.split("\n")
    assert lines[-1] == "" and len(lines) == 3, lines  # two events, two lines
    assert not any(line.startswith(FORGED) for line in lines)
    assert all(ch not in out for ch in "\r\u2028\x85\x1b\ud800")
    if fmt == "json":
        event = json.loads(lines[0])
        assert event["msg"] == f"failed on {evil}"
        assert event["agent"] == evil and f"ValueError: {evil}" in event["exc"]
    else:
        assert EVENT.match(lines[0]) and "exc=Traceback (most recent call last):\\n" in lines[0]
        assert "\\x1b[0m" in lines[0] and "\\u2028" in lines[0]


def test_the_escaping_is_exact() -> None:
    record = logging.makeLogRecord({"msg": "a\tb\x7fc\u202ed", "levelname": "INFO"})
    assert TextFormatter().format(record).endswith(" a\\tb\\x7fc\\u202ed")
    assert json.loads(JsonFormatter().format(record))["msg"] == "a\tb\x7fc\u202ed"
    plain = logging.makeLogRecord({"msg": "naïve café ok", "levelname": "INFO"})
    assert TextFormatter().format(plain).endswith(" naïve café ok")


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
