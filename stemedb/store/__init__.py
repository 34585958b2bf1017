"""The store: one SQLite file, one writer thread, a pool of read connections.

Start-up is split into the runbook's steps so the server can log each one:
`open_journal` (step 5), `open_projections` (step 6), `start_writer` (step 7).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import apsw

from stemedb.config import Settings
from stemedb.errors import Unavailable
from stemedb.store import (
    checkpointer,
    consistency,
    digests,
    dirlock,
    journal,
    projections,
    schema,
    truth_state,
)
from stemedb.store.consistency import StartupError, require_writable, startup_errors
from stemedb.store.journal import Head, JournalError
from stemedb.store.schema import fetchall
from stemedb.store.writer import CommitObserver, PendingRecord, WaitHook, WriteOutcome, Writer

__all__ = ["PendingRecord", "StartupError", "Store", "WriteOutcome"]

log = logging.getLogger("stemedb.store")

RUNBOOK = "docs/operations/runbooks/server-wont-start.md"
CORRUPTION_RUNBOOK = "docs/operations/runbooks/corruption.md"


# Projection tables that stay empty in most databases, by the record kind filling them.
SPARSE_TABLES = {"alias": "aliases", "outcome": "trust", "retraction": "retractions"}


class Store:
    def __init__(
        self,
        settings: Settings,
        *,
        on_commit: CommitObserver | None = None,
        while_waiting: WaitHook = nullcontext,
        rebuild_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.path: Path = settings.db_path
        self.on_commit = on_commit
        self.while_waiting = while_waiting  # see store.writer.WaitHook
        # (frames done, frames in all) during a start-up rebuild: the server keeps
        # systemd's start timeout from killing it (stemedb.notify.StartupProgress).
        self.rebuild_progress = rebuild_progress
        self._write_conn: apsw.Connection | None = None
        self._local = threading.local()
        self._readers: list[apsw.Connection] = []  # every read connection, to close them
        self._idle: list[apsw.Connection] = []  # the pool: read connections not in use
        self._readers_lock = threading.Lock()
        self.writer: Writer | None = None
        self.checkpointer: checkpointer.Checkpointer | None = None
        self.head: Head | None = None
        self.read_only_reason: str | None = None
        self.assertion_count = 0
        self._tables_with_rows: set[str] | None = None  # of SPARSE_TABLES, known at open
        self.node_id: str | None = None
        self.opened_at = time.time()
        self.is_new = False
        self._dirlock: dirlock.DirLock | None = None

    # ---- start-up steps ----------------------------------------------------

    def open_journal(self) -> str:
        """Step 5: lock the directory, open the file, check the header and the chain's tail."""
        with startup_errors(self.path):
            self._lock_directory()
            return self._open_journal()

    def _lock_directory(self) -> None:
        """One writer process per data directory, held until `close` (storage.md)."""
        if self._dirlock is not None or not self.path.parent.is_dir():
            return  # a missing directory fails the open below with its own line
        try:
            self._dirlock = dirlock.acquire(self.path.parent)
        except dirlock.DirectoryLocked as exc:
            raise StartupError(str(exc), exc.runbook) from None

    def _open_journal(self) -> str:
        self.is_new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            self._write_conn = schema.connect(self.path, sync=self.settings.sync)
            require_writable(self._write_conn, self.path)
            found_id = schema.application_id(self._write_conn)
            version = schema.user_version(self._write_conn)
        except apsw.NotADBError:
            raise StartupError(
                f"{self.path} is not an SQLite database (journal magic check failed)",
                f"{RUNBOOK} §3",
            ) from None
        except apsw.CorruptError as exc:
            raise StartupError(
                f"{self.path} is corrupt (SQLite: {exc}); run `stemedb verify --full` on it",
                f"{RUNBOOK} §3",
            ) from None
        if self.is_new:
            return f"new database at {self.path}"
        if found_id not in (0, schema.APPLICATION_ID):
            raise StartupError(
                f"{self.path} is not a StemeDB database (application_id {found_id:#x})",
                f"{RUNBOOK} §3",
            )
        if version > schema.latest_version():
            raise StartupError(
                f"{self.path} has schema version {version}, newer than this build "
                f"({schema.latest_version()}); upgrade stemedb",
                f"{RUNBOOK} §3",
            )
        if version == 0:
            return f"empty database at {self.path}"
        if journal.read_head(self._write_conn) is None and (
            projections.applied_seq(self._write_conn) < 0
        ):
            # A first start killed between its migrations and its header frame (two
            # transactions): nothing was ever journaled, so step 6 writes the header.
            # A journal that had frames always has applied_seq >= 0 (set with the header).
            return f"empty journal at {self.path} (an earlier first start was interrupted)"
        try:
            header = journal.check_header(self._write_conn)
            head = journal.read_head(self._write_conn)
            assert head is not None
            first = max(0, head.seq - self.settings.verify_tail + 1)
            checked = journal.verify_range(self._write_conn, first)
        except JournalError as exc:
            return self._corrupt(exc)
        except apsw.CorruptError as exc:  # a damaged page under the header or the tail
            return self._corrupt(JournalError(f"SQLite reports a corrupt page ({exc})"))
        self.node_id = str(header.get("node_id"))
        self.head = head
        return (
            f"journal ok: head seq {head.seq}, chain {head.chain_hex[:16]}…,"
            f" tail of {checked} frames verified"
        )

    def _corrupt(self, exc: JournalError) -> str:
        where = f" at seq {exc.seq}" if exc.seq is not None else ""
        message = f"journal check failed{where}: {exc}"
        if not self.settings.read_only_on_corruption:
            raise StartupError(message, f"{RUNBOOK} §3") from None
        assert self._write_conn is not None
        try:
            self.head = journal.read_head(self._write_conn)
        except apsw.Error as err:
            raise StartupError(
                f"{message}; not even the chain head can be read ({err}), so there is "
                "nothing to serve read-only",
                f"{RUNBOOK} §3",
            ) from None
        self.read_only_reason = message
        log.error("%s; serving reads only (STEMEDB_READ_ONLY_ON_CORRUPTION=true)", message)
        return f"{message}; READ-ONLY"

    def open_projections(self) -> str:
        """Step 6: migrations, header frame on a new file, projections to the journal head."""
        with startup_errors(self.path):
            return self._open_projections()

    def _open_projections(self) -> str:
        conn = self._conn()
        notes: list[str] = []
        if self.read_only_reason is None:
            pending = schema.pending_migrations(conn)
            for migration in pending:
                log.info("applying migration %s", migration.name)
            schema.apply_migrations(conn)
            notes.extend(f"applied {m.name}" for m in pending)
            if backfilled := digests.backfill(conn):  # frames older than migration 0003
                notes.append(f"record digests of {backfilled} frames backfilled")
            if journal.read_head(conn) is None:
                with conn:
                    self.head = journal.write_header(conn)
                    projections.set_applied_seq(conn, 0)
                notes.append("wrote journal header")
            self.head = journal.read_head(conn)
            repaired = consistency.repair_if_ahead(conn, self.head)
            if repaired:
                notes.append(repaired)
            if truth_state.backfill_pending(conn):
                notes.append(self._rebuild_for_truth_table(conn))
            replayed = self.catch_up()
            if replayed:
                notes.append(f"re-applied {replayed} frames to the projections")
        header = journal.check_header(conn)
        self.node_id = str(header.get("node_id"))
        self.assertion_count = int(fetchall(conn, "SELECT count(*) FROM assertions")[0][0])
        self._tables_with_rows = {
            table
            for table in SPARSE_TABLES.values()
            if fetchall(conn, f"SELECT EXISTS (SELECT 1 FROM {table})")[0][0]
        }
        assert self.head is not None
        notes.append(f"{self.assertion_count} assertions, journal seq {self.head.seq}")
        return "; ".join(notes)

    def _rebuild_for_truth_table(self, conn: apsw.Connection) -> str:
        """Migration 0016: the file's records predate the truth table. Rebuild the
        projections from the journal once, exactly as `stemedb reindex` does."""
        from stemedb.store.verify import rebuild_projections  # it imports this package

        log.warning(
            "rebuilding the projections from the journal once: the truth lens's reliability"
            " table (migration 0013) was never filled for this file's earlier records"
            " (about 0.15 ms of CPU per frame; `stemedb reindex` on the stopped server does the"
            " same ahead of a start)"
        )
        started = time.monotonic()
        total = self.head.seq + 1 if self.head is not None else 0
        report = self.rebuild_progress
        done = 0

        def advance(frames: int) -> None:
            nonlocal done
            done += frames
            if report is not None and done % 1000 == 0:
                report(done, total)

        if report is not None:
            report(0, total)
        try:
            frames = rebuild_projections(conn, advance)
        except JournalError as exc:
            raise StartupError(
                f"cannot rebuild the projections for the truth table: {exc}", CORRUPTION_RUNBOOK
            ) from None
        seconds = time.monotonic() - started
        log.info("projections rebuilt from %d frames in %.1f s", frames, seconds)
        return f"projections rebuilt from {frames} frames for the truth table ({seconds:.1f} s)"

    def catch_up(self) -> int:
        """Apply journal frames the projections have not seen yet (after a crash or reindex)."""
        conn = self._conn()
        applied = projections.applied_seq(conn)
        count = 0
        with conn:
            for frame in journal.iter_frames(conn, after=applied):
                record = frame.kind != "header" and _loads(frame.body)
                if record:
                    projections.apply(
                        conn, frame.seq, frame.kind, frame.hash, record, frame.written_ms
                    )
                count += 1
                applied = frame.seq
            projections.set_applied_seq(conn, applied)
        return count

    def start_writer(self) -> str:
        """Step 7: the single writer thread."""
        if self.read_only_reason is not None:
            return "writer NOT started: database is read-only after a failed journal check"
        assert self.head is not None
        checkpointer.cooperate(self._conn(), self.settings)  # Litestream owns checkpoints
        self.writer = Writer(
            self._conn(),
            self.head,
            max_batch=self.settings.group_commit_max_batch,
            max_delay_ms=self.settings.group_commit_max_delay_ms,
            on_commit=self.on_commit,
            while_waiting=self.while_waiting,
        )
        self.writer.start()
        self.checkpointer = checkpointer.Checkpointer(
            self.path, sync=self.settings.sync, replicating=checkpointer.replicating(self.settings)
        )
        self.checkpointer.start()
        return (
            f"writer started (group commit: max batch {self.settings.group_commit_max_batch},"
            f" max delay {self.settings.group_commit_max_delay_ms:g} ms, sync {self.settings.sync})"
        )

    def open(self) -> Store:
        """All three steps at once (CLI tools and tests)."""
        self.open_journal()
        self.open_projections()
        self.start_writer()
        return self

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        if self.writer is not None:
            self.writer.stop()
            self.writer = None
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._idle.clear()
        if self._write_conn is not None:
            self._write_conn.close()
            self._write_conn = None
        if self._dirlock is not None:
            lock, self._dirlock = self._dirlock, None
            lock.release()

    # ---- writing -----------------------------------------------------------

    def _require_writer(self) -> Writer:
        if self.writer is None:
            reason = self.read_only_reason or "the writer is not running"
            raise Unavailable(f"writes are refused: {reason}")
        return self.writer

    def write(
        self, records: Sequence[PendingRecord], *, atomic: bool = False
    ) -> list[WriteOutcome]:
        outcomes = self._require_writer().submit(records, atomic=atomic)
        created = sum(
            1
            for r, o in zip(records, outcomes, strict=True)
            if o.status == "created" and r.kind == "assertion"
        )
        if created:
            with self._readers_lock:
                self.assertion_count += created
        return outcomes

    def write_local(
        self, fn: Callable[[apsw.Connection], Any], *, wait: bool = True, defer: bool = False
    ) -> Any:
        return self._require_writer().run_local(fn, wait=wait, defer=defer)

    # ---- reading -----------------------------------------------------------

    def may_have_rows(self, table: str) -> bool:
        """False only while `table` (aliases, trust) is certainly empty.

        Most databases never write an alias or an outcome, so a hot query can
        skip looking them up: a query fewer per read. Rows appear only through
        the writer, which notes each kind it applies before the commit.
        """
        known = self._tables_with_rows
        if known is None:
            return True  # not opened through open_projections: do not guess
        if table in known:
            return True
        applied = self.writer.kinds_applied if self.writer is not None else set()
        if any(kind in applied for kind, filled in SPARSE_TABLES.items() if filled == table):
            known.add(table)
            return True
        return False

    def _conn(self) -> apsw.Connection:
        if self._write_conn is None:
            raise Unavailable("the store is closed")
        return self._write_conn

    @contextmanager
    def reader(self) -> Iterator[apsw.Connection]:
        """A pooled read connection, inside one read transaction (a consistent snapshot).

        The pool is a LIFO stack shared by all threads: with admission letting
        two requests run at once, two or three connections serve every read
        and keep their page caches warm, where one connection per thread (32)
        spread the same reads over 32 cold 2 MB caches and held all of that
        memory. Nested use on one thread reuses the open snapshot.
        """
        held: apsw.Connection | None = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        try:
            conn = self._idle.pop()  # atomic under the GIL
        except IndexError:
            conn = schema.connect(self.path, sync=self.settings.sync)
            with self._readers_lock:
                self._readers.append(conn)
        try:
            conn.execute("BEGIN")
            self._local.conn = conn
            try:
                yield conn
            finally:
                if getattr(self._local, "conn", None) is conn:  # a stream may end elsewhere
                    self._local.conn = None
                conn.execute("COMMIT")
        finally:
            self._give_back(conn)

    def _give_back(self, conn: apsw.Connection) -> None:
        """Back to the pool if clean; a connection stuck in a transaction is closed
        (an open snapshot would keep the WAL from being checkpointed)."""
        if not conn.getautocommit():
            with contextlib.suppress(apsw.Error):
                conn.execute("ROLLBACK")
        if conn.getautocommit():
            self._idle.append(conn)
            return
        with self._readers_lock:
            if conn in self._readers:
                self._readers.remove(conn)
        with contextlib.suppress(apsw.Error):
            conn.close()

    # ---- state -------------------------------------------------------------

    @property
    def current_head(self) -> Head:
        if self.writer is not None:
            return self.writer.committed
        assert self.head is not None
        return self.head

    def db_size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    def degraded_reason(self) -> str | None:
        if self.read_only_reason is not None:
            return "read_only"
        if self.writer is None or not self.writer.alive:
            return "writer_down"
        return self.writer.degraded_reason

    def stats(self) -> dict[str, Any]:
        head = self.current_head
        return {
            "assertion_count": self.assertion_count,
            "journal_seq": head.seq,
            "chain_head": head.chain_hex,
            "db_size_bytes": self.db_size_bytes(),
            "queue_depth": self.writer.queue_depth if self.writer else 0,
            "degraded": self.degraded_reason(),
            "node_id": self.node_id,
        }


def _loads(body: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(body)
    return value
