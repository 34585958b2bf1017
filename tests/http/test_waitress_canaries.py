"""Canaries: each waitress internal that stemedb/http relies on, checked on its own.

The inventory (what is used and why) is the docstring of stemedb/http/__init__.py.
A failure here names the symbol: re-read it in the new waitress against the
module that uses it before taking the release (docs/architecture.md, "Taking a
waitress release"). Run against the newest release with `make test-waitress-latest`.

Two kinds of check: behaviour (the attribute exists and does what we rely on,
on real sockets), and, for the methods we replace, override or bypass, a
fingerprint of their source, so that any change to them, even one keeping the
signature, is read by a person before it ships.
"""

from __future__ import annotations

import hashlib
import inspect
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from typing import Any

import pytest
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server
from waitress.task import ErrorTask, Task, ThreadedTaskDispatcher
from waitress.utilities import BadRequest

WAITRESS = version("waitress")

# Methods stemedb replaces, overrides or works around, by the source they had when it
# was last reviewed (waitress 3.0.2). Where each is used: stemedb/http/__init__.py.
FINGERPRINTS = {
    "waitress.server.BaseWSGIServer.run": ("listener.Listener.serve", "82caaaa44ac3a80e"),
    "waitress.server.BaseWSGIServer.close": ("listener.Listener.drain", "3e2de5398659a737"),
    "waitress.server.BaseWSGIServer.handle_accept": (
        "dispatch.accept_in_bursts",
        "1dc8c2ca47aacdf7",
    ),
    "waitress.channel.HTTPChannel._flush_outbufs_below_high_watermark": (
        "dispatch.LoopServedChannel",
        "2a1809da7a8efc23",
    ),
    "waitress.channel.HTTPChannel.write_soon": (
        "channel.HardenedChannel._time_out",
        "0f3146666e8a64da",
    ),
    "waitress.channel.HTTPChannel.received": (
        "channel.HardenedChannel.received",
        "88e4f14ad908fa2e",
    ),
    "waitress.channel.HTTPChannel.handle_close": (
        "channel.HardenedChannel.close_stalled",
        "cf813f3184a40013",
    ),
    "waitress.channel.HTTPChannel.service": (
        "dispatch.LoopDispatcher.run_inline",
        "b627ee8c1d60bca1",
    ),
    "waitress.task.ErrorTask.execute": ("channel.JsonErrorTask.execute", "ae2839497012a40a"),
}

_OWNERS: dict[str, Any] = {
    "waitress.server.BaseWSGIServer": BaseWSGIServer,
    "waitress.channel.HTTPChannel": HTTPChannel,
    "waitress.task.ErrorTask": ErrorTask,
}


def fingerprint(func: Callable[..., Any]) -> str:
    source = textwrap.dedent(inspect.getsource(func))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_replaced_and_overridden_methods_are_unchanged(name: str) -> None:
    owner, attribute = name.rsplit(".", 1)
    func = getattr(_OWNERS[owner], attribute, None)
    used_by, expected = FINGERPRINTS[name]
    assert func is not None, f"waitress {WAITRESS} has no {name} (used by stemedb/http/{used_by})"
    actual = fingerprint(func)
    assert actual == expected, (
        f"waitress {WAITRESS} changed {name} (fingerprint {actual}, reviewed {expected}): "
        f"re-read it against stemedb/http/{used_by}, then update FINGERPRINTS"
    )


# ---- behaviour -------------------------------------------------------------------------


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


class RecordingDispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """No worker threads: tasks are kept for the test to run."""

    def __init__(self) -> None:
        super().__init__()
        self.set_thread_count(0)
        self.added: list[Any] = []

    def add_task(self, task: Any) -> None:
        self.added.append(task)


@pytest.fixture
def server() -> Iterator[Any]:
    dispatcher = RecordingDispatcher()
    srv = create_server(_app, host="127.0.0.1", port=0, threads=1, _dispatcher=dispatcher)
    try:
        yield srv
    finally:
        wasyncore.close_all(srv._map, ignore_all=True)
        dispatcher.shutdown(cancel_pending=True, timeout=1)


def _turn_until(srv: Any, done: Callable[[], bool], timeout: float = 5.0) -> None:
    """Run loop turns over the server's socket map until `done()` (or fail)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "waitress's loop never got there"
        wasyncore.loop(timeout=0.05, map=srv._map, use_poll=True, count=1)


def _channels(srv: Any) -> list[HTTPChannel]:
    return [obj for obj in srv._map.values() if isinstance(obj, HTTPChannel)]


def test_create_server_takes_our_dispatcher_and_keeps_its_sockets_in_map(server: Any) -> None:
    assert "_dispatcher" in inspect.signature(create_server).parameters
    assert isinstance(server.task_dispatcher, RecordingDispatcher)
    assert isinstance(server, BaseWSGIServer)
    assert isinstance(server._map, dict) and server in server._map.values()
    # The listener's URL is built from these (the port is numeric text).
    assert server.effective_host == "127.0.0.1"
    assert int(server.effective_port) == server.socket.getsockname()[1]
    assert server.adj.connection_limit == Adjustments().connection_limit


def test_several_sockets_share_one_map_and_our_dispatcher() -> None:
    dispatcher = RecordingDispatcher()
    srv = create_server(_app, listen="127.0.0.1:0 127.0.0.1:0", _dispatcher=dispatcher)
    try:
        assert isinstance(srv, MultiSocketServer) and isinstance(srv.map, dict)
        listeners = [o for o in srv.map.values() if isinstance(o, BaseWSGIServer)]
        assert len(listeners) == 2
        assert all(o.task_dispatcher is dispatcher and o._map is srv.map for o in listeners)
    finally:
        wasyncore.close_all(srv.map, ignore_all=True)
        dispatcher.shutdown(cancel_pending=True, timeout=1)


def test_the_loop_calls_handle_accept_and_channel_class_from_the_instance(server: Any) -> None:
    calls: list[int] = []
    accept_one = server.handle_accept

    def handle_accept() -> None:
        calls.append(1)
        accept_one()

    class Marked(HTTPChannel):  # type: ignore[misc]
        pass

    server.handle_accept = handle_accept
    server.channel_class = Marked
    with socket.create_connection(("127.0.0.1", server.effective_port)):
        _turn_until(server, lambda: bool(_channels(server)))
    assert calls and all(type(ch) is Marked for ch in _channels(server))


def test_a_complete_request_reaches_add_task_on_the_loop_thread(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.effective_port), timeout=5) as client:
        client.sendall(b"GET /x?y=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        dispatcher = server.task_dispatcher
        _turn_until(server, lambda: bool(dispatcher.added))
        channel = dispatcher.added[0]
        request = channel.requests[0]
        assert (request.command, request.path, request.error) == ("GET", "/x", None)
        assert request.query == "y=1"  # dispatch keys learned costs on it (http/cost.py)
        channel.service()  # on this (the loop's) thread: writes the answer
        _turn_until(server, lambda: not channel.total_outbufs_len)
        assert client.recv(4096).startswith(b"HTTP/1.1 200 OK")


def test_protocol_errors_carry_code_reason_body_for_the_error_task(server: Any) -> None:
    error = BadRequest("bad header")
    assert (error.code, error.reason, error.body) == (400, "Bad Request", "bad header")
    assert ErrorTask.__mro__[1] is Task
    for name in ("set_close_on_finish", "write"):
        assert callable(getattr(Task, name))
    assert HTTPChannel.error_task_class is ErrorTask
    with socket.create_connection(("127.0.0.1", server.effective_port), timeout=5) as client:
        client.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\nBad Header Line\r\n\r\n")
        _turn_until(server, lambda: bool(server.task_dispatcher.added))
        assert server.task_dispatcher.added[0].requests[0].error.code == 400


def _socket_channel(**adjustments: Any) -> tuple[HTTPChannel, socket.socket, socket.socket]:
    ours, peer = socket.socketpair()
    server = type("Srv", (), {"active_channels": {}, "pull_trigger": lambda self: None})()
    channel = HTTPChannel(server, ours, ("test", 0), Adjustments(**adjustments), map={})
    return channel, ours, peer


def test_write_soon_waits_in_flush_below_high_watermark() -> None:
    assert list(inspect.signature(HTTPChannel._flush_outbufs_below_high_watermark).parameters) == [
        "self"
    ]
    calls: list[int] = []
    channel, ours, peer = _socket_channel()
    channel._flush_outbufs_below_high_watermark = lambda: calls.append(1)
    try:
        channel.write_soon(b"x")
        assert calls == [1]
    finally:
        ours.close()
        peer.close()


def test_output_appended_to_outbufs_by_hand_is_sent_and_closes_when_flushed() -> None:
    """What HardenedChannel._time_out does for its 408, and what the sweep reads."""
    channel, ours, peer = _socket_channel()
    try:
        assert isinstance(channel.outbufs, list)
        assert isinstance(channel.outbuf_lock, type(threading.Condition()))
        assert channel.total_outbufs_len == 0 and channel.current_outbuf_count == 0
        assert channel.request is None and channel.requests == [] and channel.connected
        assert "do_close" in inspect.signature(HTTPChannel.send).parameters
        payload = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"
        with channel.outbuf_lock:
            channel.outbufs[-1].append(payload)
            channel.total_outbufs_len += len(payload)
            channel.current_outbuf_count += len(payload)
        channel.close_when_flushed = True
        assert channel.writable()
        channel.handle_write()
        assert peer.recv(4096) == payload
        assert channel.total_outbufs_len == 0 and channel.will_close
    finally:
        ours.close()
        peer.close()


def test_handle_close_frees_the_buffers_and_wakes_a_waiting_writer() -> None:
    channel, ours, peer = _socket_channel()
    woke = threading.Event()
    try:
        channel.outbufs[-1].append(b"y" * 1000)
        channel.total_outbufs_len = 1000

        def wait() -> None:
            with channel.outbuf_lock:
                channel.outbuf_lock.wait(10)
            woke.set()

        waiter = threading.Thread(target=wait, daemon=True)
        with channel.outbuf_lock:
            waiter.start()  # it waits once we release the lock
        deadline = time.monotonic() + 5
        while not woke.is_set():
            channel.handle_close()  # (again, if the waiter was not waiting yet)
            woke.wait(0.05)
            assert time.monotonic() < deadline
        assert channel.total_outbufs_len == 0 and not channel.connected
    finally:
        ours.close()
        peer.close()


def test_loop_and_close_helpers_keep_their_signatures() -> None:
    loop = inspect.signature(wasyncore.loop).parameters
    assert {"timeout", "use_poll", "map", "count"} <= set(loop)
    assert "ignore_all" in inspect.signature(wasyncore.close_all).parameters
    assert issubclass(BaseWSGIServer, wasyncore.dispatcher)
    shutdown = inspect.signature(ThreadedTaskDispatcher.shutdown).parameters
    assert {"cancel_pending", "timeout"} <= set(shutdown)
    for name in ("set_thread_count", "add_task"):
        assert callable(getattr(ThreadedTaskDispatcher, name))
    assert isinstance(ThreadedTaskDispatcher().queue, object)
    for name in ("service", "cancel", "received", "handle_close"):
        assert callable(getattr(HTTPChannel, name))
