"""WAL checkpoints off the request path: a background thread with its own connection.

Why: SQLite's automatic checkpoint runs inside whichever commit pushes the
WAL past 1,000 pages, on the writer thread. The server runs on one core, so
copying those 4 MB back into the database stole the core from the requests in
flight: under a read load, whose audit rows fill the WAL about once a second,
that checkpoint was 3 ms of the lens queries' p99 (18.2-19.5 ms with it,
15.9-16.3 ms without, side by side). Here a thread at low CPU priority runs
a PASSIVE checkpoint every `INTERVAL_S`: it never blocks the writer or a
reader, and while requests keep the core busy it takes only the time they
leave. The writer keeps SQLite's automatic checkpoint at its default (1,000
pages) as the safety net: it only runs when this thread falls behind (a
burst of writes), so the WAL stays as small as before, which matters on a
full disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

import apsw

from stemedb.store import schema

log = logging.getLogger("stemedb.store")

INTERVAL_S = 0.25
NICE = 10  # lower priority than request work (a thread may always lower its own)
WARN_EVERY_S = 60.0


class Checkpointer:
    def __init__(self, path: Path | str, *, sync: str, interval_s: float = INTERVAL_S) -> None:
        self.path = path
        self.sync = sync
        self.interval_s = interval_s
        self.checkpoints = 0  # PASSIVE checkpoints run (tests, /metrics-free diagnostics)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stemedb-checkpointer", daemon=True)
        self._last_warning = 0.0
        self.native_id: int | None = None  # the thread's id in /proc, once running

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        # not Linux, or refused: run at normal priority
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        conn = schema.connect(self.path, sync=self.sync)
        try:
            while not self._stop.wait(self.interval_s):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: apsw.Connection) -> None:
        try:
            conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
            self.checkpoints += 1
        except apsw.Error as exc:  # busy, full disk, I/O error: the next turn tries again
            now = time.monotonic()
            if now - self._last_warning >= WARN_EVERY_S:
                self._last_warning = now
                log.warning("background WAL checkpoint failed (will retry): %s", exc)
