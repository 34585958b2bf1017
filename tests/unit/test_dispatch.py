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
from stemedb.http.cost import CostModel, metered, request_key
from stemedb.http.dispatch import LoopDispatcher, LoopServedChannel


def _noop(req: Any, resp: Any, **params: Any) -> None:
    pass


ROUTES = [
    Route("GET", "/v1/health", _noop, inline=True, urgent=True),
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


def test_urgent_routes_are_known_by_path_and_take_no_fields() -> None:
    matcher = inline_matcher(ROUTES)
    assert matcher.urgent_paths == frozenset({"/v1/health"})
    with pytest.raises(ValueError, match="no path fields"):
        inline_matcher([Route("GET", "/v1/x/{id}", _noop, inline=True, urgent=True)])


def test_no_inline_routes_match_nothing() -> None:
    matches = inline_matcher([r for r in ROUTES if not r.inline])
    assert not matches("GET", "/v1/query")


def _channel(method: str, path: str, error: object = None, query: str = "") -> Any:
    served: list[int] = []
    request = SimpleNamespace(command=method, path=path, query=query, error=error)
    channel = SimpleNamespace(requests=[request], served=served)
    channel.service = lambda: served.append(threading.get_ident())
    return channel


def _dispatcher(cost: CostModel | None = None) -> LoopDispatcher:
    previous = admission.current()
    admission.configure(1)
    try:
        dispatcher = LoopDispatcher(0, inline_matcher(ROUTES), cost)  # no pool: queue only
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
    del refused.requests[0].path  # a request line it could not parse has no path
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


def _wait_for_accept_queue(listener: Any, count: int) -> None:
    """Poll until `count` connections wait in the kernel's accept queue. For a listening
    socket Linux reports the queue's length in tcp_info's `unacked` field (offset 24)."""
    deadline = time.monotonic() + 10
    while True:
        info = listener.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
        waiting = int.from_bytes(info[24:28], "little")
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"only {waiting} of {count} connections queued"
        time.sleep(0.005)


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
        _wait_for_accept_queue(listener, 10)
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
        _wait_for_accept_queue(listener, 3)
        listener.handle_accept()
        assert _accepted(listener) == 1
    finally:
        for client in clients:
            client.close()
        listener.close()
        listener.task_dispatcher.shutdown(timeout=1)


def test_an_expensive_key_goes_to_the_pool_and_comes_back_once_cheap() -> None:
    cost = CostModel(budget_s=0.002)
    dispatcher = _dispatcher(cost)
    big = request_key("GET", "/v1/query", "subject=s&predicate=big")
    cost.record(big, 0.005)  # learned: 5 ms
    large = _channel("GET", "/v1/query", query="subject=s&predicate=big")
    small = _channel("GET", "/v1/query", query="subject=s&predicate=small")
    dispatcher.add_task(large)
    dispatcher.add_task(small)
    assert list(dispatcher.queue) == [large]  # the pool builds the large answer
    assert dispatcher.run_inline() == 1 and small.served and not large.served
    assert cost.deferred == 1
    cost.record(big, 0.0015)  # above half the budget: still expensive (no flapping)
    assert not cost.cheap(big)
    cost.record(big, 0.0005)  # the pair shrank (or was cached): back on the loop
    again = _channel("GET", "/v1/query", query="subject=s&predicate=big")
    dispatcher.add_task(again)
    assert dispatcher.run_inline() == 1 and again.served


def test_health_is_answered_first_and_never_deferred() -> None:
    cost = CostModel(budget_s=0.002)
    cost.record(request_key("GET", "/v1/health", ""), 1.0)  # even if it once was slow
    dispatcher = _dispatcher(cost)
    order: list[str] = []
    channels = []
    for name, path in [("q1", "/v1/query"), ("q2", "/v1/query"), ("health", "/v1/health")]:
        channel = _channel("GET", path)
        channel.service = lambda name=name: order.append(name)
        channels.append(channel)
        dispatcher.add_task(channel)
    assert not dispatcher.queue
    assert dispatcher.run_inline() == 3
    assert order == ["health", "q1", "q2"]


def test_the_cost_model_forgets_the_oldest_keys_past_its_size() -> None:
    cost = CostModel(budget_s=0.001, keep=2)
    for key in ("a", "b", "c"):
        cost.record(key, 0.01)
    assert set(cost.expensive()) == {"b", "c"}
    cost.record("b", 0.02)  # confirmed: now the newest
    cost.record("d", 0.01)
    assert set(cost.expensive()) == {"b", "d"}
    cost.record("cheap", 0.0001)
    assert "cheap" not in cost.expensive()


def test_metered_learns_only_the_watched_routes_from_the_wsgi_environ() -> None:
    cost = CostModel(budget_s=0.0)  # everything measured is "expensive"
    answers = {"/v1/query": [b"q"], "/v1/assert": [b"w"]}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return answers[environ["PATH_INFO"]]

    wrapped = metered(app, cost, inline_matcher(ROUTES))
    for method, path in [("GET", "/v1/query"), ("POST", "/v1/assert")]:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "lens=x"}
        busy_until = time.thread_time() + 0.001
        while time.thread_time() < busy_until:
            pass
        assert wrapped(environ, lambda *a: None) == answers[path]
    assert list(cost.expensive()) == [request_key("GET", "/v1/query", "lens=x")]


def test_metered_counts_wall_time_on_the_loop_and_cpu_time_in_the_pool() -> None:
    """Waiting (for a slot, the GIL, a sleep) is the loop's loss but not a worker's cost."""

    def waits(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        time.sleep(0.02)  # no CPU at all
        return [b"ok"]

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/query", "QUERY_STRING": "w=1"}
    key = request_key("GET", "/v1/query", "w=1")
    in_pool = CostModel(budget_s=0.01)
    metered(waits, in_pool, inline_matcher(ROUTES))(environ, lambda *a: None)
    assert key not in in_pool.expensive()
    on_loop = CostModel(budget_s=0.01)
    on_loop.loop_thread = threading.get_ident()
    metered(waits, on_loop, inline_matcher(ROUTES))(environ, lambda *a: None)
    assert key in on_loop.expensive()


def test_a_long_round_turns_the_loop_and_serves_what_arrived_urgent_first() -> None:
    """Past POLL_EVERY_S of answers the round polls (sending what workers wrote,
    reading new requests); a health request read there is answered next."""
    from stemedb.http import dispatch

    dispatcher = _dispatcher()
    order: list[str] = []
    health = _channel("GET", "/v1/health")
    health.service = lambda: order.append("health")

    def slow(name: str) -> Any:
        def service() -> None:
            order.append(name)
            busy_until = time.perf_counter() + dispatch.POLL_EVERY_S * 1.5
            while time.perf_counter() < busy_until:
                pass

        channel = _channel("GET", "/v1/query")
        channel.service = service
        return channel

    polls: list[int] = []

    def turn() -> None:  # what the event loop's non-blocking turn would read
        polls.append(1)
        if len(polls) == 1:
            dispatcher.add_task(health)

    for name in ("q1", "q2", "q3"):
        dispatcher.add_task(slow(name))
    assert dispatcher.run_inline(turn) == 4
    assert order == ["q1", "health", "q2", "q3"]
    assert len(polls) == 2  # after q1 and q2, never after the last answer


def test_queued_requests_of_a_key_learned_expensive_meanwhile_go_to_the_pool() -> None:
    """32 clients ask for the same large pair at once: the first answer teaches the
    cost, and the others, already queued for the loop, are handed to the pool."""
    cost = CostModel(budget_s=0.002)
    dispatcher = _dispatcher(cost)
    key = request_key("GET", "/v1/query", "p=big")
    first = _channel("GET", "/v1/query", query="p=big")
    first.service = lambda: cost.record(key, 0.005)  # served inline: learned 5 ms
    queued = [_channel("GET", "/v1/query", query="p=big") for _ in range(3)]
    other = _channel("GET", "/v1/query", query="p=small")
    for channel in [first, *queued, other]:
        dispatcher.add_task(channel)
    assert not dispatcher.queue
    assert dispatcher.run_inline() == 2  # the first and the small one
    assert list(dispatcher.queue) == queued and other.served
