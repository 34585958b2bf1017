"""A read replica's store: the database `litestream restore -f` keeps following.

Why follow mode: measured on this machine (docs/operations/replication.md), a
write on the primary is visible in a follow-mode copy 0.1 s (median) later,
applied page by page, whereas "restore into a new file and swap" copies the
whole database each time (seconds at a few hundred MB) and would have to reopen
every connection on each swap. The VFS (`litestream-vfs`) would need an SQLite
extension loaded into apsw; follow mode needs nothing but the binary we ship.

The copy is Litestream's to write: this store never starts a writer, answers
writes with `NotPrimary` (HTTP 421 naming STEMEDB_PRIMARY_URL), turns off the
per-table "may have rows" shortcut (rows arrive without our writer) and reads
the journal head from the file every `HEAD_POLL_S` so that `X-StemeDB-Seq` and
`min_seq` follow it. The chain's tail is verified at open exactly as on a
primary (`Store.open_journal`), and `stemedb verify` runs on the copy as on any.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import apsw

from stemedb.errors import Unavailable
from stemedb.replication import litestream
from stemedb.store import StartupError, Store, journal, schema

log = logging.getLogger("stemedb.replication")

HEAD_POLL_S = 0.02
COUNT_EVERY_S = 1.0
FOLLOW_INTERVAL = "100ms"
FIRST_RESTORE_S = 300.0


class NotPrimary(Unavailable):
    """A write reached a read replica (HTTP 421 Misdirected Request)."""

    code = "not_primary"


class ReplicaStore(Store):
    def __init__(self, settings: Any, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.follower: subprocess.Popen[bytes] | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # ---- start-up ------------------------------------------------------------

    def open_journal(self) -> str:
        """Restore afresh from the storage, keep following it, then the usual checks."""
        if len(self.settings.replica_url) != 1:
            raise StartupError(
                "STEMEDB_ROLE=replica needs exactly one STEMEDB_REPLICA_URL to follow",
                litestream.RUNBOOK,
            )
        url = self.settings.replica_url[0]
        # A follow-mode copy cannot always resume after a stop (Litestream refuses when
        # its saved position is past the storage's newest snapshot): start from scratch.
        for suffix in ("", "-wal", "-shm", "-txid"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        cmd = [str(litestream.binary()), "restore", "-f", "-follow-interval", FOLLOW_INTERVAL]
        self.follow_log = self.path.parent / "litestream-follow.log"
        with self.follow_log.open("ab") as out:
            self.follower = subprocess.Popen(
                [*cmd, "-o", str(self.path), url],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=litestream.die_with_parent,
            )
        deadline = time.monotonic() + FIRST_RESTORE_S
        while not self._restored():
            if self.follower.poll() is not None or time.monotonic() > deadline:
                raise StartupError(
                    f"cannot restore a replica from {url} (litestream restore -f exited "
                    f"{self.follower.returncode}): nothing replicated there yet?",
                    litestream.RUNBOOK,
                )
            time.sleep(0.1)
        return f"following {url}; " + super().open_journal()

    def _restored(self) -> bool:
        if not self.path.is_file() or not Path(f"{self.path}-txid").is_file():
            return False
        try:
            conn = schema.connect(self.path, readonly=True)
            try:
                return journal.read_head(conn) is not None
            finally:
                conn.close()
        except Exception:  # mid-restore
            return False

    def open_projections(self) -> str:
        primary = self.settings.primary_url or "(STEMEDB_PRIMARY_URL is not set)"
        self.read_only_reason = f"this server is a read replica; write to the primary {primary}"
        summary = super().open_projections()
        self._tables_with_rows = None  # rows arrive without our writer: always look
        # Litestream applies followed pages to the file itself, and only while no
        # connection is open on it: keep none open between requests (see `reader`).
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None
        return summary

    def start_writer(self) -> str:
        self._poller = threading.Thread(target=self._poll, name="stemedb-replica", daemon=True)
        self._poller.start()
        return "read replica: no writer; the journal head follows the replica storage"

    # ---- serving -------------------------------------------------------------

    def _require_writer(self) -> Any:
        raise NotPrimary(
            "this server is a read replica: send writes to the primary "
            f"{self.settings.primary_url or '(unknown: set STEMEDB_PRIMARY_URL)'}",
            [{"field": "primary", "message": self.settings.primary_url or ""}],
        )

    @contextmanager
    def reader(self) -> Iterator[apsw.Connection]:
        """A read-only connection for one request, closed after it.

        Measured: Litestream's follow mode applies nothing while any connection to
        the file stays open (a WAL-mode connection holds its shared lock until it
        closes), so the primary's pool of warm connections would freeze the copy.
        A fresh connection costs a cold page cache, not correctness.
        """
        held: apsw.Connection | None = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        conn = schema.connect(self.path, readonly=True)
        try:
            conn.execute("BEGIN")
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None
                with contextlib.suppress(apsw.Error):
                    conn.execute("COMMIT")
        finally:
            conn.close()

    def degraded_reason(self) -> str | None:
        if self.follower is None or self.follower.poll() is not None:
            return "replica_not_following"
        return None

    def _poll(self) -> None:
        counted_at = 0.0
        while not self._stop.wait(HEAD_POLL_S):
            try:
                conn = schema.connect(self.path, readonly=True)
                try:
                    head = journal.read_head(conn)
                    # /v1/health's count: no writer keeps it here; a scan at most once a second
                    stale = head is not None and (self.head is None or head.seq != self.head.seq)
                    if stale and time.monotonic() - counted_at >= COUNT_EVERY_S:
                        counted_at = time.monotonic()
                        rows = schema.fetchall(conn, "SELECT count(*) FROM assertions")
                        self.assertion_count = int(rows[0][0])
                finally:
                    conn.close()
            except Exception:  # busy while Litestream applies: next turn
                continue
            if head is not None and (self.head is None or head.seq != self.head.seq):
                with self._changed:
                    self.head = head
                    self._changed.notify_all()

    def wait_for(self, seq: int, timeout: float) -> bool:
        """Block until the replica has reached journal seq `seq` (True) or `timeout` passed."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.head is None or self.head.seq < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(2.0)
        super().close()
        if self.follower is not None and self.follower.poll() is None:
            self.follower.terminate()
            try:
                self.follower.wait(10)
            except subprocess.TimeoutExpired:
                self.follower.kill()
