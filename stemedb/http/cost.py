"""Which quick-read requests are too large for the event loop, learned from what they cost.

Why: the loop thread serves quick reads itself (dispatch.py), one at a time. A
read that is quick by route but large by data (the 1,000-candidate pair, a deep
trace) holds the loop for its whole answer, and every other connection,
`/v1/health` and `/v1/ready` included, waits behind it. Nothing in the request
says how large the answer will be, so the server learns it: every request of an
inline route is timed by a plain WSGI wrapper (which clock: below), and a key
(method, path and query string) that took more than `INLINE_BUDGET_S` is
remembered as expensive. The
dispatcher sends expensive keys to the worker pool, where the loop thread (and
so health and ready) keeps getting the GIL every switch interval (5 ms) while
the answer is built. A remembered key that turns cheap again (measured in the
pool under half the budget) goes back to the loop.

Which clock: in the pool, thread CPU time (`time.thread_time`), so that waiting
for an admission slot or for the GIL is not counted as the request's cost; on
the loop thread, wall time (`time.perf_counter`), because what delays health is
how long the loop was away, and because reading the thread's CPU clock is a
system call (4 µs here, 1 % of a 10-candidate query) where the wall clock is
not. A cheap request that the writer thread preempted on the loop may be taken
for an expensive one: it goes to the pool once, measures cheap there, and comes
back.

Cost: the first request of a large key is still served inline, once; at most
`KEEP` keys are remembered (least recently confirmed first out), so a workload
of more distinct large keys than that pays that once per key per eviction. A
POST /v1/query has its parameters in the body, so all its keys are one: it
follows the last one measured.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from threading import get_ident
from typing import Any

INLINE_BUDGET_S = 0.002  # ~5 lens queries on 10-candidate pairs; the 1,000-candidate pair: ~5 ms
KEEP = 4096  # expensive keys remembered (about 0.5 MB at most)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def request_key(method: str, path: str, query: str) -> str:
    """What the cost is learned by: the same request gives the same key."""
    return f"{method} {path}?{query}"


class CostModel:
    """The expensive keys and what each last cost (seconds of thread CPU)."""

    def __init__(self, budget_s: float = INLINE_BUDGET_S, keep: int = KEEP) -> None:
        self.budget_s = budget_s
        self.keep = keep
        self._expensive: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.deferred = 0  # requests sent to the pool because of their cost
        self.loop_thread: int | None = None  # set by LoopDispatcher.bind_loop_thread

    def cheap(self, key: str) -> bool:
        """Serve it on the loop? Called on the loop thread for every inline request."""
        if key in self._expensive:  # one dict lookup: the hot path
            self.deferred += 1
            return False
        return True

    def record(self, key: str, seconds: float) -> None:
        """What one request of `key` cost; any thread."""
        if seconds > self.budget_s:
            with self._lock:
                self._expensive[key] = seconds
                self._expensive.move_to_end(key)
                while len(self._expensive) > self.keep:
                    self._expensive.popitem(last=False)
        elif seconds < self.budget_s / 2 and key in self._expensive:
            with self._lock:
                self._expensive.pop(key, None)

    def any_expensive(self) -> bool:
        return bool(self._expensive)

    def expensive(self) -> dict[str, float]:
        with self._lock:
            return dict(self._expensive)


def metered(app: WsgiApp, model: CostModel, watched: Callable[[str, str], bool]) -> WsgiApp:
    """`app`, timing each request and teaching `model` the inline ones (`watched`).

    Pure WSGI: it reads REQUEST_METHOD, PATH_INFO and QUERY_STRING, which
    waitress fills from the same parsed request the dispatcher keys on.
    """
    wall, cpu = time.perf_counter, time.thread_time

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        on_loop = get_ident() == model.loop_thread
        clock = wall if on_loop else cpu
        start = clock()
        try:
            return app(environ, start_response)
        finally:
            seconds = clock() - start
            # On the loop only a slow answer is news (what it serves is not remembered
            # as expensive); in the pool a remembered key may have turned cheap.
            if seconds > model.budget_s or (not on_loop and model.any_expensive()):
                method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
                if watched(method, path):
                    query = environ.get("QUERY_STRING", "")
                    model.record(request_key(method, path, query), seconds)

    return wrapped
