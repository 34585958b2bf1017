"""The single writer thread and its group commit.

HTTP threads do the CPU work (validation, hashing, signature checks) in
parallel and hand finished records to this one thread. It takes whatever is
queued (up to `max_batch` records, waiting at most `max_delay_ms` for more),
writes it in ONE transaction — journal frames and projections together — and
only then wakes the waiters: one fsync is shared by the whole batch.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import apsw

from stemedb.errors import InsufficientStorage, StemeError, Unavailable
from stemedb.store import digests, journal, projections, truth_state
from stemedb.store.journal import Head
from stemedb.store.schema import fetchall

log = logging.getLogger("stemedb.writer")

PROBE_INTERVAL_S = 2.0
# Deferred jobs (audit rows) ride along with the next commit, or get one of their
# own at most this long after the first was deferred: a commit (and its fsync) per
# 100 ms of queries instead of one per query batch.
DEFER_S = 0.1
# After SQLITE_FULL, health recovers only once this much space is free again (a tiny
# probe write alone can still fit in WAL space allocated before the disk filled up).
PROBE_MIN_FREE_BYTES = 1 << 20

INTERNAL_MESSAGE = "internal error in the writer; nothing was written (see the server log)"


class InternalWriteError(StemeError):
    """A fault on our side inside a group commit (a constraint violation, a bug):
    never the client's `invalid_request`. Code `internal`: the API answers 500
    with the request id and logs it; the writer has already logged the cause."""

    code = "internal"


@dataclass(frozen=True)
class PendingRecord:
    """A validated record ready to journal (the store never parses HTTP input).

    `written_ms` is the receive time the caller normalised the record with; the
    frame itself gets the commit time of its group commit (see `Writer._commit`).
    `digest` is what the record's signatures sign (`PreparedRecord.digest`);
    when None the writer computes it from `record`.
    """

    kind: str
    hash: bytes
    body: str
    record: dict[str, Any]
    written_ms: int
    digest: bytes | None = None


@dataclass(frozen=True)
class WriteOutcome:
    """`hash` is the STORED id: for `exists` that of the record already journaled
    with the same signed content, which may differ from the submitted id."""

    status: str  # created | exists | rejected
    hash: bytes
    seq: int | None = None
    error: StemeError | None = None


class _Done:
    """A one-shot "finished" signal with a single waiter: a held lock the writer
    releases. Every write makes one; a threading.Event (a Condition, its lock and
    a waiter deque) costs several times more to make and to set.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        """Wake the waiter (only the writer thread sets; setting twice is harmless)."""
        if self._lock.locked():
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        """True once set (the one waiter, until it gets True); False on timeout."""
        return self._lock.acquire(True, timeout)


@dataclass
class _Job:
    records: Sequence[PendingRecord] = ()
    atomic: bool = False
    local: Callable[[apsw.Connection], Any] | None = None
    done: _Done = field(default_factory=_Done)
    outcomes: list[WriteOutcome] = field(default_factory=list)
    result: Any = None
    error: StemeError | None = None

    @property
    def size(self) -> int:
        return max(1, len(self.records))


CommitObserver = Callable[[float, int], None]
# Wraps a request thread's wait for its commit. The server passes
# `admission.blocking` (a parked request gives its CPU slot back); the store itself
# reads no process-wide setting, so offline tools and tests wait plainly.
WaitHook = Callable[[], AbstractContextManager[object]]


class Writer:
    """Owns the only write connection; every database write goes through it."""

    def __init__(
        self,
        conn: apsw.Connection,
        head: Head,
        *,
        max_batch: int = 512,
        max_delay_ms: float = 2.0,
        on_commit: CommitObserver | None = None,
        while_waiting: WaitHook = nullcontext,
    ) -> None:
        self._conn = conn
        self.while_waiting = while_waiting
        self.head = head  # advances record by record inside a batch
        self.committed = head  # the head readers can see: moves only after COMMIT
        self._last_ms: int | None = None  # written_ms of the committed head frame
        self._batch_ms = 0  # written_ms of every frame of the batch being written
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000.0
        self.on_commit = on_commit
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._deferred: list[_Job] = []
        self._deferred_lock = threading.Lock()
        self._deferred_due = float("inf")  # monotonic time the oldest deferred job is due
        self._accepting = False
        self._thread = threading.Thread(target=self._run, name="stemedb-writer", daemon=True)
        self.degraded_reason: str | None = None
        self.commits = 0
        self.records_committed = 0
        self.kinds_applied: set[str] = set()

    # ---- lifecycle -------------------------------------------------------

    def start(self) -> None:
        self._accepting = True
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new work, flush what is queued, then stop the thread."""
        if not self._accepting:
            return
        self._accepting = False
        self._queue.put(None)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._accepting and self._thread.is_alive()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # ---- submitting ------------------------------------------------------

    def submit(
        self, records: Sequence[PendingRecord], *, atomic: bool = False
    ) -> list[WriteOutcome]:
        """Journal `records` and wait for the commit; one outcome per record, in order."""
        job = _Job(records=records, atomic=atomic)
        self._enqueue(job)
        self._wait(job)
        return job.outcomes

    def run_local(
        self, fn: Callable[[apsw.Connection], Any], *, wait: bool = True, defer: bool = False
    ) -> Any:
        """Run a non-journal write (audit rows, API keys) on the writer connection.

        `defer` (implies not waiting): run it in the next commit, or within DEFER_S.
        """
        job = _Job(local=fn)
        if defer:
            if not self.alive:
                raise Unavailable("the writer is not running (server starting or shutting down)")
            with self._deferred_lock:
                if not self._deferred:
                    self._deferred_due = time.monotonic() + DEFER_S
                self._deferred.append(job)
            return None
        self._enqueue(job)
        if wait:
            self._wait(job)
            return job.result
        return None

    def _enqueue(self, job: _Job) -> None:
        if not self.alive:
            raise Unavailable("the writer is not running (server starting or shutting down)")
        self._queue.put(job)

    def _wait(self, job: _Job) -> None:
        with self.while_waiting():  # parked on the commit (the server: give the CPU slot back)
            while not job.done.wait(1.0):
                if not self._thread.is_alive():
                    raise Unavailable("the writer stopped before this write was committed")
        if job.error is not None:
            raise job.error

    # ---- the thread ------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            timeout = PROBE_INTERVAL_S if self.degraded_reason else None
            if self._deferred:
                timeout = max(0.0, min(timeout or DEFER_S, self._deferred_due - time.monotonic()))
            elif timeout is None:
                timeout = DEFER_S  # wake to notice jobs deferred while idle
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                if self._deferred and time.monotonic() >= self._deferred_due:
                    self._commit_batch([])  # on a full disk these audit rows are lost
                elif self.degraded_reason:
                    self._probe()
                continue
            if first is None:
                break
            jobs, stopping = self._gather(first)
            self._commit_batch(jobs)
        self._drain_refused()
        if self._deferred and not self.degraded_reason:
            self._commit_batch([])  # best effort: audit rows deferred before the stop

    def _commit_batch(self, jobs: list[_Job]) -> None:
        with self._deferred_lock:
            deferred, self._deferred = self._deferred, []
            self._deferred_due = float("inf")
        jobs = jobs + deferred
        try:
            self._commit(jobs)
        except Exception:  # never let the writer die silently
            log.exception("writer: unexpected error; failing the batch")
            for job in jobs:
                job.outcomes = []
                job.error = InternalWriteError(INTERNAL_MESSAGE)
                job.done.set()

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, count = [first], first.size
        deadline = time.monotonic() + self.max_delay_s
        while count < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if job is None:
                return jobs, True
            jobs.append(job)
            count += job.size
        return jobs, False

    def _drain_refused(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.error = Unavailable("the server is shutting down; nothing was written")
                job.done.set()

    def _commit(self, jobs: list[_Job]) -> None:
        conn = self._conn
        start_head = self.head
        started = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._batch_ms = self._commit_ms()
            try:
                with truth_state.deferred(conn):  # the truth table: once per batch
                    for job in jobs:
                        if job.local is not None:
                            self._run_local_job(job)
                        else:
                            self._apply_job(job)
                    truth_state.flush_deferred(conn)
                if self.head.seq != start_head.seq:
                    projections.set_applied_seq(conn, self.head.seq)
                conn.execute("COMMIT")
            except BaseException:
                if not conn.getautocommit():
                    conn.execute("ROLLBACK")
                raise
        except apsw.FullError:
            self.head = start_head
            self._fail(jobs, InsufficientStorage("the disk is full; nothing was written"))
            self.degraded_reason = "disk_full"
            log.error("writer: disk full (SQLITE_FULL); batch of %d rolled back", len(jobs))
            return
        except (apsw.ConstraintError, apsw.MismatchError, apsw.SQLError):
            # Not the client's fault and not the disk's: the database disagrees with
            # the writer (e.g. projections ahead of the journal). A 500 and the cause.
            self.head = start_head
            log.exception("writer: internal error, batch of %d rolled back", len(jobs))
            self._fail(jobs, InternalWriteError(INTERNAL_MESSAGE))
            return
        except apsw.Error as exc:
            self.head = start_head
            self._fail(
                jobs, Unavailable(f"storage error ({type(exc).__name__}); nothing was written")
            )
            self.degraded_reason = "io_error"
            log.error("writer: %s; batch of %d rolled back", exc, len(jobs))
            return
        except Exception:
            self.head = start_head
            raise  # _commit_batch logs it and fails every job with InternalWriteError
        elapsed = time.perf_counter() - started
        if self.head.seq != start_head.seq:
            self._last_ms = self._batch_ms
        self.committed = self.head
        self.degraded_reason = None
        records = sum(len(job.records) for job in jobs)
        self.commits += 1
        self.records_committed += records
        if self.on_commit is not None:
            self.on_commit(elapsed, records)
        for job in jobs:
            job.done.set()

    def _commit_ms(self) -> int:
        """The `written_ms` of every frame of this group commit: its commit time.

        Taken once BEGIN IMMEDIATE holds the write lock, after the batch was
        gathered, so `known_at=T` does not show frames that were still queued at T
        (storage.md). It cannot be the instant COMMIT returns: the chain link
        that covers it is written inside the transaction; the frames become
        visible at COMMIT, this transaction's duration (a few ms) later. Never
        below the last committed frame's value, so written_ms is non-decreasing
        along the journal even when the wall clock steps back (NTP), which
        `known_at` cut-offs by time rely on. See docs/architecture.md.
        """
        if self._last_ms is None:
            rows = fetchall(
                self._conn, "SELECT written_ms FROM journal WHERE seq = ?", (self.committed.seq,)
            )
            self._last_ms = int(rows[0][0]) if rows and isinstance(rows[0][0], int) else 0
        return max(int(time.time() * 1000), self._last_ms)

    @staticmethod
    def _fail(jobs: list[_Job], error: StemeError) -> None:
        for job in jobs:
            job.outcomes = []
            job.error = error
            job.done.set()

    def _run_local_job(self, job: _Job) -> None:
        conn = self._conn
        conn.execute("SAVEPOINT local")
        noted = truth_state.mark(conn)
        try:
            job.result = job.local(conn) if job.local else None
            conn.execute("RELEASE local")
        except (apsw.FullError, apsw.IOError):
            raise
        except StemeError as exc:
            conn.execute("ROLLBACK TO local")
            truth_state.truncate(conn, noted)
            conn.execute("RELEASE local")
            job.error = exc
        except Exception:
            conn.execute("ROLLBACK TO local")
            truth_state.truncate(conn, noted)
            conn.execute("RELEASE local")
            log.exception("writer: internal error in a local write; it was rolled back")
            job.error = InternalWriteError(INTERNAL_MESSAGE)

    def _apply_job(self, job: _Job) -> None:
        conn = self._conn
        job_head = self.head
        if job.atomic:
            conn.execute("SAVEPOINT job")
        noted = truth_state.mark(conn)
        outcomes: list[WriteOutcome] = []
        for pending in job.records:
            outcomes.append(self._apply_record(pending))
        if job.atomic:
            if any(o.status == "rejected" for o in outcomes):
                conn.execute("ROLLBACK TO job")
                truth_state.truncate(conn, noted)
                self.head = job_head
                outcomes = [
                    o if o.status == "rejected" else WriteOutcome("not_written", o.hash)
                    for o in outcomes
                ]
            conn.execute("RELEASE job")
        job.outcomes = outcomes

    def _apply_record(self, pending: PendingRecord) -> WriteOutcome:
        """Journal one record unless its signed content is already stored.

        Identity is (kind, digest[, signer]), see stemedb/store/digests.py, not
        the id: the id also covers the unsigned `signatures` list (data-model.md
        §7). The lookup sees rows of earlier records of the same batch too (same
        transaction). Only a client problem (a StemeError such as an unknown
        referenced hash) rejects the record; anything else propagates and fails
        the whole group commit as an internal error (a 500, never the client's
        `invalid_request`).
        """
        conn = self._conn
        digest = pending.digest if pending.digest is not None else digests.digest_of(pending.record)
        signer = digests.signer_of(pending.kind, pending.record)
        stored = digests.lookup(conn, pending.kind, digest, signer)
        if stored is not None:
            return WriteOutcome("exists", stored.hash, stored.seq)
        written_ms = self._batch_ms
        self.kinds_applied.add(pending.kind)  # before the commit: readers never miss rows
        conn.execute("SAVEPOINT record")
        noted = truth_state.mark(conn)
        try:
            projections.check_references(conn, pending.kind, pending.record)
            head = journal.append(
                conn, self.head, pending.kind, pending.hash, pending.body, written_ms
            )
            projections.apply(
                conn, head.seq, pending.kind, pending.hash, pending.record, written_ms, digest
            )
        except StemeError as exc:
            conn.execute("ROLLBACK TO record")
            truth_state.truncate(conn, noted)
            conn.execute("RELEASE record")
            return WriteOutcome("rejected", pending.hash, error=exc)
        conn.execute("RELEASE record")
        self.head = head
        return WriteOutcome("created", pending.hash, head.seq)

    def _probe(self) -> None:
        """After a failed commit, try a tiny write so health recovers once space returns.

        After a full disk the tiny write is not proof enough: it can fit in WAL
        space allocated before the disk filled up while every real batch still
        fails, so the filesystem (and any page limit) must also show
        PROBE_MIN_FREE_BYTES free.
        """
        if self.degraded_reason == "disk_full" and self._free_bytes() < PROBE_MIN_FREE_BYTES:
            return
        conn = self._conn
        try:
            with conn:
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('writer_probe_ms', ?)",
                    (int(time.time() * 1000),),
                )
        except apsw.Error:
            return
        log.info("writer: storage writable again (%s cleared)", self.degraded_reason)
        self.degraded_reason = None

    def _free_bytes(self) -> int:
        """Room left for the database: free filesystem space, capped by PRAGMA max_page_count."""
        conn = self._conn
        try:
            page_size = int(fetchall(conn, "PRAGMA page_size")[0][0])
            pages = int(fetchall(conn, "PRAGMA page_count")[0][0])
            limit = int(fetchall(conn, "PRAGMA max_page_count")[0][0])
            fs = os.statvfs(os.path.dirname(os.path.abspath(conn.filename)))
        except (apsw.Error, OSError):
            return 0
        return min((limit - pages) * page_size, fs.f_bavail * fs.f_frsize)
