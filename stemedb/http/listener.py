"""The waitress listener: build it, run its event loop ourselves, drain it.

Why our own loop instead of `BaseWSGIServer.run()`: after each poll the loop
thread serves the quick reads it just read (`LoopDispatcher.run_inline`, see
dispatch.py) and, a few times a second, closes connections whose request
deadline passed or whose client stopped reading (channel.py). waitress's
`run()` has no hook for either. Draining on stop is ours too: waitress's
`close()` drops in-flight requests, ours lets them finish for up to
`drain_seconds`.

Every waitress internal touched here is listed in `stemedb/http/__init__.py`
and pinned by tests/http/test_waitress_canaries.py.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

from stemedb.http.channel import (
    OUTBUF_HIGH_WATERMARK,
    OUTBUF_OVERFLOW,
    install_channel,
    sweep_deadlines,
)
from stemedb.http.cost import CostModel, metered
from stemedb.http.dispatch import InlinePredicate, LoopDispatcher, accept_in_bursts

log = logging.getLogger("stemedb.server")

LOOP_TIMEOUT = 0.25
DEADLINE_SWEEP_S = 0.25  # request deadlines (STEMEDB_REQUEST_TIMEOUT) are checked this often
# Waitress settings not worth a variable of their own.
CHANNEL_TIMEOUT = 120  # > the feed's 30 s long poll
CONNECTION_LIMIT = 1000
CLEANUP_INTERVAL = 30

WsgiApp = Callable[..., Any]


class Listener:
    """A bound waitress server (one or several sockets) and its dispatcher.

    Construction binds (an OSError such as EADDRINUSE propagates, with the
    worker threads already stopped); `serve(stop)` runs the loop on the calling
    thread until `stop` is set; `drain(seconds)` then finishes what is in flight.
    """

    def __init__(
        self,
        app: WsgiApp,
        *,
        host: str,
        port: int,
        threads: int,
        inline: InlinePredicate | None,
        max_request_body_size: int,
        request_timeout_s: float,
        send_timeout_s: float,
        send_buffer_total_bytes: int,
    ) -> None:
        self.cost = CostModel()
        self.dispatcher = LoopDispatcher(threads, inline, self.cost)
        if inline is not None:  # learn which inline requests are too large for the loop
            app = metered(app, self.cost, inline)
        try:
            self.server: Any = create_server(
                app,
                host=host,
                port=port,
                threads=threads,
                channel_timeout=CHANNEL_TIMEOUT,
                outbuf_overflow=OUTBUF_OVERFLOW,  # per connection: see channel.py
                outbuf_high_watermark=OUTBUF_HIGH_WATERMARK,
                connection_limit=CONNECTION_LIMIT,
                cleanup_interval=CLEANUP_INTERVAL,
                max_request_body_size=max_request_body_size,
                asyncore_use_poll=True,
                ident="stemedb",
                _dispatcher=self.dispatcher,  # private: the only way to give it our pool
            )
        except OSError:
            self.dispatcher.shutdown(timeout=1)
            raise
        install_channel(  # request deadline, send timeout, JSON errors
            self.listeners(), request_timeout_s, send_timeout_s, send_buffer_total_bytes
        )
        for listener in self.listeners():
            accept_in_bursts(listener)
        first = self.listeners()[0]
        host, port = first.effective_host, first.effective_port  # type: ignore[attr-defined]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def serve(self, stop: threading.Event) -> None:
        """The event loop (in place of `BaseWSGIServer.run`) until `stop` is set."""
        socket_map = self.socket_map()
        dispatcher = self.dispatcher
        dispatcher.bind_loop_thread()
        next_sweep = 0.0
        turn = functools.partial(wasyncore.loop, timeout=0, map=socket_map, use_poll=True, count=1)
        while not stop.is_set():
            wasyncore.loop(timeout=LOOP_TIMEOUT, map=socket_map, use_poll=True, count=1)
            dispatcher.run_inline(turn)  # with a non-blocking turn every few ms of answers
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + DEADLINE_SWEEP_S
                sweep_deadlines(socket_map, now)

    def drain(self, seconds: float) -> None:
        """Refuse new connections, let in-flight requests finish, then close everything."""
        socket_map = self.socket_map()
        for listener in self.listeners():
            wasyncore.dispatcher.close(listener)  # not BaseWSGIServer.close: keep the trigger
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            channels = [obj for obj in socket_map.values() if isinstance(obj, HTTPChannel)]
            busy = [ch for ch in channels if ch.requests or ch.total_outbufs_len]
            for channel in channels:
                if channel not in busy:
                    channel.will_close = True  # idle keep-alive connection
            if not channels:
                break
            wasyncore.loop(timeout=0.1, map=socket_map, use_poll=True, count=1)
            self.dispatcher.run_inline()
        else:
            log.warning("drain timed out after %.0f s; closing remaining connections", seconds)
        self.dispatcher.cancel_inline()
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=2)
        wasyncore.close_all(socket_map, ignore_all=True)

    def socket_map(self) -> dict[int, Any]:
        """Every socket the loop polls: listeners, their trigger, and the channels."""
        # One listener is a TcpWSGIServer (`_map`), several a MultiSocketServer (`map`).
        if hasattr(self.server, "_map"):
            return self.server._map  # type: ignore[no-any-return]
        return self.server.map  # type: ignore[no-any-return]

    def listeners(self) -> list[BaseWSGIServer]:
        return [obj for obj in self.socket_map().values() if isinstance(obj, BaseWSGIServer)]
