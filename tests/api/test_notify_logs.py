"""sd_notify datagrams and the two log formats."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stemedb import notify
from stemedb.logs import setup_logging


def test_notify_sends_a_datagram_to_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        assert notify.ready("serving", {"NOTIFY_SOCKET": str(path)})
        assert sock.recv(100) == b"READY=1\nSTATUS=serving"


def test_notify_supports_abstract_sockets() -> None:
    name = f"stemedb-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify.stopping({"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"STOPPING=1"


def test_startup_progress_extends_the_timeout_at_most_every_so_often(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        env = {"NOTIFY_SOCKET": str(path)}
        progress = notify.StartupProgress("rebuilding", env, every_s=3600, extend_s=90)
        progress(0, 2_000_000)
        progress(1000, 2_000_000)  # too soon: nothing sent
        assert (
            sock.recv(200)
            == b"EXTEND_TIMEOUT_USEC=90000000\nSTATUS=rebuilding: 0 of 2,000,000 frames"
        )
        with pytest.raises(BlockingIOError):
            sock.recv(200)
        often = notify.StartupProgress("rebuilding", env, every_s=0)
        often(0, 5)
        often(5, 5)
        assert sock.recv(200).endswith(b"0 of 5 frames")
        assert sock.recv(200).endswith(b"5 of 5 frames")


def test_notify_without_socket_is_a_no_op(tmp_path: Path) -> None:
    assert notify.notify("READY=1", {}) is False
    assert notify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "missing")}) is False
    assert notify.notify("READY=1", {"NOTIFY_SOCKET": "relative"}) is False


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_text_format(restore_root_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("info", "text", stream)
    logging.getLogger("stemedb.server").info("[5/10] open the journal: %s", "ok")
    logging.getLogger("stemedb.server").debug("hidden")
    line = stream.getvalue().strip()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO stemedb.server \[5/10\] open the journal: ok", line
    )


def test_json_format_one_object_per_line_with_extras(restore_root_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("debug", "json", stream)
    log = logging.getLogger("stemedb.api")
    log.debug("first", extra={"request_id": "r-1"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("second")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "first" and first["level"] == "DEBUG" and first["request_id"] == "r-1"
    assert first["ts"].endswith("Z") and first["logger"] == "stemedb.api"
    assert "ValueError: boom" in second["exc"]


def test_waitress_logs_go_through_our_handler_once(restore_root_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("info", "text", stream)
    setup_logging("info", "text", stream)  # a second call replaces, never duplicates
    logging.getLogger("waitress.queue").warning("Task queue depth is 3")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and " WARNING waitress.queue Task queue depth is 3" in lines[0]
