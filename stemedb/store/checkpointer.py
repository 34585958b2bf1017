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

With replication on (STEMEDB_REPLICA_URL / STEMEDB_LITESTREAM_CONFIG), Litestream
owns checkpointing, as its documentation asks of applications: it holds a read
transaction so no checkpoint can pass the last WAL frame it has copied, runs its
own PASSIVE checkpoints (at 1,000 pages and every minute) and a TRUNCATE only
when the WAL is huge. A checkpoint of ours in the instant Litestream lets go of
that read lock could let the next commit restart the WAL under it; Litestream
then notices and ships a full snapshot instead (no frame is lost, but a snapshot
is the whole database). So then: the writer's automatic checkpoint is off
(`cooperate`), and this thread only steps in, still PASSIVE, never RESTART or
TRUNCATE, when the WAL passes `GUARD_BYTES`: Litestream is down or far behind,
and a bounded WAL matters more than one extra snapshot.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import apsw

from stemedb.store import schema

log = logging.getLogger("stemedb.store")

INTERVAL_S = 0.25
NICE = 10  # lower priority than request work (a thread may always lower its own)
WARN_EVERY_S = 60.0
GUARD_BYTES = 16 * 1024 * 1024  # 4x the WAL at which Litestream checkpoints itself


def replicating(settings: Any) -> bool:
    """Litestream replicates this database (it then owns checkpointing)."""
    urls = getattr(settings, "replica_url", ())
    return bool(urls or getattr(settings, "litestream_config", None))


def cooperate(writer: apsw.Connection, settings: Any) -> None:
    """Before the writer starts: with Litestream on, no automatic checkpoint on commit."""
    if replicating(settings):
        writer.execute("PRAGMA wal_autocheckpoint=0")


class Checkpointer:
    def __init__(
        self,
        path: Path | str,
        *,
        sync: str,
        interval_s: float = INTERVAL_S,
        replicating: bool = False,
    ) -> None:
        self.path = path
        self.replicating = replicating
        self.skipped = 0  # turns left to Litestream (replicating, WAL under GUARD_BYTES)
        self.sync = sync
        self.interval_s = interval_s
        self.checkpoints = 0  # PASSIVE checkpoints run (tests, /metrics-free diagnostics)
        self.busy = 0  # turns that found the checkpoint lock taken (not an error)
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
        if self.replicating and _wal_bytes(self.path) < GUARD_BYTES:
            self.skipped += 1
            return
        try:
            conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
            self.checkpoints += 1
        except apsw.BusyError:  # another checkpoint holds the lock: routine, try next turn
            self.busy += 1
        except apsw.Error as exc:  # full disk, I/O error: worth a line; the next turn retries
            now = time.monotonic()
            if now - self._last_warning >= WARN_EVERY_S:
                self._last_warning = now
                log.warning("background WAL checkpoint failed (will retry): %s", exc)


def _wal_bytes(path: Path | str) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except OSError:
        return 0
