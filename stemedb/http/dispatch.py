"""Which thread serves a request: quick reads on the event loop, the rest in the pool.

Why: the server is one process under one GIL. With every request in a worker
thread, each one costs the event loop three turns of the GIL (read the
request, hand it over, read the next one on that connection), and each turn
waits behind whatever worker holds it: at 32 connections that wait was the
largest part of a query's p99, and the hand-over itself a fifth of its CPU.
A quick read (a lens query, an assertion by hash, health) costs less than the
hand-over, so the loop thread serves it itself, first come first served, and
sends the answer at once. Anything that can block (a write waiting for its
group commit, a long poll, an export, an admin job) still goes to the
worker pool, so the loop never waits on anything but the CPU.

The routes say which they are (`Route.inline`); `stemedb.http.route.inline_matcher`
turns them into the predicate given here. `STEMEDB_INLINE_READS=false` sends
everything to the pool (waitress's own behaviour).

Not every request of an inline route is quick: the 1,000-candidate pair costs
5 ms, and while the loop computes it nobody else is answered, health and ready
included. So the loop keeps a learned cost per request (`stemedb.http.cost`):
a request whose key cost more than its budget last time goes to the pool
instead, where the loop keeps its turns of the GIL. Urgent routes (health,
ready) are never deferred and are answered first in each turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.task import ThreadedTaskDispatcher

from stemedb import admission
from stemedb.http.cost import CostModel, request_key

log = logging.getLogger("stemedb.server")

InlinePredicate = Callable[[str, str], bool]  # (method, path) -> serve on the loop thread
ACCEPT_BURST = 64  # connections accepted per loop turn at most
POLL_EVERY_S = 0.004  # a non-blocking loop turn at least this often within a round


class LoopServedChannel(HTTPChannel):  # type: ignore[misc]
    """A channel the event loop may serve itself (see LoopDispatcher.run_inline)."""

    serving_inline = False

    def _flush_outbufs_below_high_watermark(self) -> None:
        # A worker waits here for the event loop to drain a huge answer; the loop
        # cannot wait for itself, so its answer overflows to a temporary file instead.
        if not self.serving_inline:
            super()._flush_outbufs_below_high_watermark()  # type: ignore[misc]


def accept_in_bursts(listener: Any, burst: int = ACCEPT_BURST) -> None:
    """Make the listener accept every waiting connection in one loop turn, not one.

    waitress accepts one connection per turn of its loop. Once a turn also
    serves the requests it read, a turn can take a round of 32 answers, and 32
    clients connecting at once waited up to 32 turns for their first answer
    (p99 0.75-2 s for the 1,000-candidate pair, where a turn is 0.2 s).
    """
    accept_one = listener.handle_accept
    socket_map = listener._map
    limit = listener.adj.connection_limit

    def handle_accept() -> None:
        for _ in range(burst):
            before = len(socket_map)
            accept_one()
            if len(socket_map) == before or len(socket_map) >= limit:
                break  # nothing (more) waiting, or a refused one: the next turn retries

    listener.handle_accept = handle_accept


class LoopDispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """waitress's thread pool, plus a queue of quick requests the loop thread runs.

    waitress calls `add_task` from inside a channel's `received` while holding
    that channel's lock, so an inline request is queued here and served by
    `run_inline()`, which the server's loop calls after each poll.
    """

    def __init__(
        self, threads: int, inline: InlinePredicate | None, cost: CostModel | None = None
    ) -> None:
        super().__init__()
        self.set_thread_count(threads)
        self.inline = inline
        self.cost = cost if cost is not None else CostModel()
        # Paths answered first and never deferred (InlineRoutes.urgent_paths: health, ready).
        self.urgent_paths: frozenset[str] = getattr(inline, "urgent_paths", frozenset())
        self.loop_thread: int | None = None
        self._urgent: deque[Any] = deque()  # channels
        self._ready: deque[tuple[Any, str]] = deque()  # (channel, its cost key)

    def bind_loop_thread(self) -> None:
        """Called on the thread that runs the event loop, before it serves."""
        self.loop_thread = self.cost.loop_thread = threading.get_ident()
        admission.current().exempt_this_thread()  # the loop serves one request at a time anyway

    def add_task(self, channel: Any) -> None:
        if self.inline is not None and threading.get_ident() == self.loop_thread:
            request = channel.requests[0]
            if request.error:  # waitress's own 400/413/...: it may have no path at all
                super().add_task(channel)
                return
            path = request.path
            if self.inline(request.command, path):
                if path in self.urgent_paths:
                    self._urgent.append(channel)
                    return
                key = request_key(request.command, path, request.query)
                if self.cost.cheap(key):
                    self._ready.append((channel, key))
                    return
        super().add_task(channel)

    def run_inline(self, poll: Callable[[], object] | None = None) -> int:
        """Serve the quick requests read by the last poll, urgent ones first, then in
        arrival order; how many.

        `poll` (a non-blocking turn of the event loop) is called whenever this round
        has run for `POLL_EVERY_S`: with 32 busy connections a round is ~13 ms of
        answers, and without it an answer a worker finished (a write after its
        commit, a large read) waited for the round's end to be sent, and a health
        probe arriving mid-round waited for it to be read. The turn sends what the
        workers wrote and reads new requests (urgent ones are served next).

        A queued request whose key was learned expensive since it was queued (32
        clients asking for the same large pair at once: the first answer teaches
        the cost, the other 31 are already queued) goes to the pool instead.
        """
        served = 0
        urgent, ready = self._urgent, self._ready
        clock = time.perf_counter
        next_poll = clock() + POLL_EVERY_S
        cost = self.cost
        while urgent or ready:
            if urgent:
                channel = urgent.popleft()
            else:
                channel, key = ready.popleft()
                if not cost.cheap(key):
                    super().add_task(channel)
                    continue
            channel.serving_inline = True
            try:
                channel.service()  # writes the answer at once; errors become a 500 there
            except BaseException:
                log.exception("unexpected error serving a request on the event loop")
            finally:
                channel.serving_inline = False
            served += 1
            if poll is not None and (urgent or ready) and clock() >= next_poll:
                poll()
                next_poll = clock() + POLL_EVERY_S
        return served

    def cancel_inline(self) -> None:
        while self._urgent:
            self._urgent.popleft().cancel()
        while self._ready:
            self._ready.popleft()[0].cancel()
