"""Which thread serves a request (stemedb.http.dispatch) and the route predicate behind it."""

from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from waitress.adjustments import Adjustments

from stemedb import admission
from stemedb.api.routing import Route, inline_matcher
from stemedb.http.dispatch import LoopDispatcher, LoopServedChannel


def _noop(req: Any, resp: Any, **params: Any) -> None:
    pass


ROUTES = [
    Route("GET", "/v1/query", _noop, inline=True),
    Route("POST", "/v1/query", _noop, inline=True),
    Route("GET", "/v1/assertions/{hash}", _noop, inline=True),
    Route("GET", "/v1/aliases/{path:path}", _noop, inline=True),
    Route("POST", "/v1/assert", _noop),
    Route("GET", "/v1/feed", _noop),
]


@pytest.mark.parametrize(
    ("method", "path", "quick"),
    [
        ("GET", "/v1/query", True),
        ("POST", "/v1/query", True),
        ("HEAD", "/v1/query", True),  # HEAD runs the GET handler
        ("PUT", "/v1/query", False),
        ("GET", "/v1/query/extra", False),
        ("GET", "/v1/queryx", False),
        ("GET", "/v1/assertions/ab12", True),
        ("GET", "/v1/assertions/ab/12", False),  # a plain field never spans a slash
        ("GET", "/v1/assertions/", False),
        ("GET", "/v1/aliases/a/b/c", True),  # a `:path` field does
        ("POST", "/v1/assert", False),
        ("GET", "/v1/feed", False),
        ("GET", "/nowhere", False),
    ],
)
def test_inline_matcher(method: str, path: str, quick: bool) -> None:
    assert inline_matcher(ROUTES)(method, path) is quick


def test_no_inline_routes_match_nothing() -> None:
    matches = inline_matcher([r for r in ROUTES if not r.inline])
    assert not matches("GET", "/v1/query")


def _channel(method: str, path: str, error: object = None) -> Any:
    served: list[int] = []
    request = SimpleNamespace(command=method, path=path, error=error)
    channel = SimpleNamespace(requests=[request], served=served)
    channel.service = lambda: served.append(threading.get_ident())
    return channel


def _dispatcher() -> LoopDispatcher:
    previous = admission.current()
    admission.configure(1)
    try:
        dispatcher = LoopDispatcher(0, inline_matcher(ROUTES))  # no pool threads: queue only
        dispatcher.bind_loop_thread()
    finally:
        admission._process = previous  # this test thread must not stay exempt elsewhere
    return dispatcher


def test_quick_reads_from_the_loop_thread_are_served_there_in_order() -> None:
    dispatcher = _dispatcher()
    first, second = _channel("POST", "/v1/query"), _channel("GET", "/v1/assertions/ab")
    dispatcher.add_task(first)
    dispatcher.add_task(second)
    assert not dispatcher.queue  # nothing went to the pool
    assert first.served == [] and second.served == []  # queued, not run inside received()
    assert dispatcher.run_inline() == 2
    assert first.served == [threading.get_ident()] == second.served
    assert dispatcher.run_inline() == 0


def test_everything_else_goes_to_the_pool() -> None:
    dispatcher = _dispatcher()
    write = _channel("POST", "/v1/assert")
    refused = _channel("POST", "/v1/query", error=object())  # waitress's own 400/413 ...
    dispatcher.add_task(write)
    dispatcher.add_task(refused)
    from_worker = _channel("GET", "/v1/query")  # pipelined, added by a worker thread
    t = threading.Thread(target=dispatcher.add_task, args=(from_worker,))
    t.start()
    t.join()
    assert list(dispatcher.queue) == [write, refused, from_worker]
    assert dispatcher.run_inline() == 0


def test_inline_off_sends_everything_to_the_pool() -> None:
    dispatcher = LoopDispatcher(0, None)
    dispatcher.bind_loop_thread()
    query = _channel("GET", "/v1/query")
    dispatcher.add_task(query)
    assert list(dispatcher.queue) == [query]


def test_an_error_while_serving_inline_does_not_stop_the_loop() -> None:
    dispatcher = _dispatcher()
    broken, fine = _channel("GET", "/v1/query"), _channel("GET", "/v1/query")

    def boom() -> None:
        raise RuntimeError("bug")

    broken.service = boom
    dispatcher.add_task(broken)
    dispatcher.add_task(fine)
    assert dispatcher.run_inline() == 2
    assert fine.served
    assert broken.serving_inline is False


def test_the_loop_never_waits_for_itself_to_drain_a_huge_answer() -> None:
    """A worker blocks until the loop drains a big answer; served inline, the answer
    must overflow to a buffer instead (or the loop would wait for itself forever)."""
    ours, peer = socket.socketpair()
    adj = Adjustments(outbuf_high_watermark=64 * 1024, outbuf_overflow=1024 * 1024)
    server = SimpleNamespace(active_channels={}, pull_trigger=lambda: None)
    channel = LoopServedChannel(server, ours, ("test", 0), adj, map={})
    chunk = b"x" * (256 * 1024)  # far beyond what the socket buffers take
    done = threading.Event()

    def write() -> None:
        channel.serving_inline = True
        for _ in range(8):
            channel.write_soon(chunk)
        done.set()

    try:
        t = threading.Thread(target=write, daemon=True)
        t.start()
        t.join(10)
        assert done.is_set(), "write_soon blocked on the loop thread"
        assert channel.total_outbufs_len > adj.outbuf_high_watermark  # held, to be sent later
    finally:
        for buf in channel.outbufs:
            buf.close()
        ours.close()
        peer.close()


def _listener(connection_limit: int) -> Any:
    from waitress.server import create_server

    return create_server(
        lambda environ, start_response: [],
        host="127.0.0.1",
        port=0,
        threads=1,
        connection_limit=connection_limit,
    )


def _accepted(listener: Any) -> int:
    from waitress.channel import HTTPChannel

    return sum(isinstance(obj, HTTPChannel) for obj in listener._map.values())


@pytest.mark.parametrize(("limit", "burst", "expected"), [(100, 64, 10), (100, 4, 4), (6, 64, 4)])
def test_one_loop_turn_accepts_every_waiting_connection(
    limit: int, burst: int, expected: int
) -> None:
    from stemedb.http.dispatch import accept_in_bursts

    listener = _listener(limit)
    clients = []
    try:
        accept_in_bursts(listener, burst)
        port = listener.socket.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
        time.sleep(0.2)  # all ten are in the kernel's accept queue now
        listener.handle_accept()  # one turn of the loop
        assert _accepted(listener) == expected  # waitress alone takes one per turn
        # (with limit 6: the map also holds the listener and its trigger)
    finally:
        for client in clients:
            client.close()
        listener.close()
        listener.task_dispatcher.shutdown(timeout=1)


def test_without_bursts_waitress_takes_one_connection_per_turn() -> None:
    listener = _listener(100)
    clients = []
    try:
        port = listener.socket.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(0.2)
        listener.handle_accept()
        assert _accepted(listener) == 1
    finally:
        for client in clients:
            client.close()
        listener.close()
        listener.task_dispatcher.shutdown(timeout=1)
