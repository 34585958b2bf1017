"""Admission control: at most N requests run Python at once, admitted in arrival order.

Why: the server is one process under one GIL. With 32 request threads all
runnable, the interpreter hands the GIL to an arbitrary waiting thread, so a
request can be overtaken again and again (p99 three times p50 at 32
connections), and 32 large answers get built in memory at once. Admitting
requests first-come first-served into a few slots keeps latency fair and memory
bounded, at no cost in throughput: the CPU was already doing one thing at a time.

A request gives its slot back while it blocks on something other than the CPU
(waiting for its group commit, a long poll, a backup), and queues again at the
back afterwards. That keeps group commit fed: every writer parked on a commit
is a writer that no longer holds a slot.

The process has one `Admission` (like it has one GIL); `configure()` sets its
slot count at start-up. Unconfigured, or with 0 slots, it admits everyone at
once and `released()` is a no-op, so library use of the store is unaffected.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class Admission:
    """A FIFO counting semaphore whose holders can step out while they block."""

    def __init__(self, slots: int = 0) -> None:
        self._mutex = threading.Lock()
        self._slots = slots
        self._free = slots
        self._queue: deque[threading.Lock] = deque()
        self._local = threading.local()

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def waiting(self) -> int:
        """Requests queued for a slot right now (the `stemedb_requests_waiting` gauge)."""
        return len(self._queue)

    def holding(self) -> bool:
        return bool(getattr(self._local, "held", False))

    def exempt_this_thread(self) -> None:
        """Admit this thread's requests without a slot (the event loop: stemedb.http.dispatch)."""
        self._local.exempt = True

    def _acquire(self) -> None:
        with self._mutex:
            if self._free > 0 and not self._queue:
                self._free -= 1
                return
            ticket = threading.Lock()
            ticket.acquire()
            self._queue.append(ticket)
        ticket.acquire()  # released by whoever hands us their slot

    def _release(self) -> None:
        with self._mutex:
            if self._queue:
                self._queue.popleft().release()  # the slot passes straight to the next in line
            else:
                self._free += 1

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Run the body holding a slot (re-entrant: a holder is not queued again)."""
        if self._slots <= 0 or self.holding() or getattr(self._local, "exempt", False):
            yield
            return
        self._acquire()
        self._local.held = True
        try:
            yield
        finally:
            self._local.held = False
            self._release()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Give the slot back for a blocking wait; queue again (at the back) after it."""
        if self._slots <= 0 or not self.holding():
            yield
            return
        self._local.held = False
        self._release()
        try:
            yield
        finally:
            self._acquire()
            self._local.held = True


_process = Admission(0)


def configure(slots: int) -> Admission:
    """Set the process's slot count (server start-up); returns the admission in force."""
    global _process
    _process = Admission(slots)
    return _process


def current() -> Admission:
    return _process


@contextmanager
def blocking() -> Iterator[None]:
    """Mark a wait on something other than the CPU: the caller's slot is free meanwhile."""
    with _process.released():
        yield


class Lane:
    """At most `limit` holders at once; over it `try_enter` says no at once, it never queues.

    Why: admission bounds requests that run Python, but a request that *waits*
    (a long poll on the feed, an export streaming to a slow client) gives its
    slot back and keeps its waitress worker thread. Forty followers long-polling
    held every worker thread, so a write waited 22 s for one. A lane caps how
    many threads such requests may hold at once; the rest of the pool stays
    free for writes and quick reads. Refusing (instead of queueing) is the
    point: a queued request would hold a thread too.
    """

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = max(1, limit)
        self._mutex = threading.Lock()
        self._active = 0
        self.refused = 0  # times a request found the lane full (a counter for /metrics)

    @property
    def active(self) -> int:
        return self._active

    def try_enter(self) -> bool:
        with self._mutex:
            if self._active >= self.limit:
                self.refused += 1
                return False
            self._active += 1
            return True

    def leave(self) -> None:
        with self._mutex:
            self._active = max(0, self._active - 1)
