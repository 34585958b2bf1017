"""`stemedb verify` and `stemedb reindex`: prove the file holds what the journal says.

Both work on a path, not a running server's connections, so they can run
against a stopped database, a backup, or a copy under investigation.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw

from stemedb.store import digests, journal, projections, quarantine, schema, truth_state
from stemedb.store.journal import CORRUPTION_RUNBOOK, JournalError
from stemedb.store.schema import fetchall

Progress = Callable[[int], None]

_COUNTED = {
    "assertion": "assertions",
    "epoch": "epochs",
    "supersession": "supersessions",
    "agent_tier": "agent_tiers",
    "source": "sources",  # one row per record (store/sources.py)
    "retraction": "retractions",
}


@dataclass
class VerifyReport:
    path: str
    full: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    first_bad_seq: int | None = None
    journal_seq: int | None = None
    chain_head: str | None = None
    frames_checked: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"check": name, "ok": ok, "detail": detail})

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "path": self.path,
            "full": self.full,
            "journal_seq": self.journal_seq,
            "chain_head": self.chain_head,
            "frames_checked": self.frames_checked,
            "first_bad_seq": self.first_bad_seq,
            "seconds": round(self.seconds, 3),
            "checks": self.checks,
        }


def verify(path: Path, *, full: bool = False, progress: Progress | None = None) -> VerifyReport:
    started = time.perf_counter()
    report = VerifyReport(str(path), full)
    if not path.exists():
        report.add("open", False, f"{path} does not exist")
        return report
    try:
        conn = schema.connect(f"file:{path}?mode=ro", readonly=True)
    except apsw.Error as exc:  # e.g. a truncated or overwritten file
        report.add("open", False, f"{type(exc).__name__}: {exc}")
        report.seconds = time.perf_counter() - started
        return report
    try:
        conn.execute("BEGIN")
        _guarded(report, "sqlite", lambda: _check_sqlite(conn, report, full))
        if not _check_journal(conn, report, progress):
            return report
        _guarded(report, "projections", lambda: _check_projection_counts(conn, report))
        conn.execute("COMMIT")
        if full:
            _guarded(
                report, "rebuild_matches", lambda: _check_rebuild(path, conn, report, progress)
            )
    except apsw.Error as exc:
        report.add("sqlite", False, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
        report.seconds = time.perf_counter() - started
    return report


def _guarded(report: VerifyReport, name: str, check: Callable[[], None]) -> None:
    """Run one check; any failure is a failed check in the report, never a traceback."""
    try:
        check()
    except JournalError as exc:
        if report.first_bad_seq is None:
            report.first_bad_seq = exc.seq
        report.add(name, False, str(exc))
    except Exception as exc:  # damaged data must give a report, whatever it breaks
        report.add(name, False, f"{type(exc).__name__}: {exc}")


def _check_sqlite(conn: apsw.Connection, report: VerifyReport, full: bool) -> None:
    pragma = "integrity_check" if full else "quick_check"
    rows = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}")]
    report.add(pragma, rows == ["ok"], "; ".join(rows[:5]))
    app_id = schema.application_id(conn)
    report.add(
        "application_id",
        app_id == schema.APPLICATION_ID,
        f"{app_id:#x} (want {schema.APPLICATION_ID:#x})",
    )


def _check_journal(conn: apsw.Connection, report: VerifyReport, progress: Progress | None) -> bool:
    """Every column of every frame, exactly as strict as docs/forensics.md's query."""
    try:
        report.frames_checked = journal.verify_all(conn, progress)
        report.add("header", True, "format stemedb-journal v1")
        report.add(
            "chain",
            True,
            f"{report.frames_checked} frames: every column, hashes, records and chain intact",
        )
        head = journal.read_head(conn)
    except JournalError as exc:
        report.first_bad_seq = exc.seq
        report.add("chain", False, str(exc))
        return False
    except Exception as exc:  # never a traceback: name the failure and stop here
        report.add("chain", False, f"journal check failed: {type(exc).__name__}: {exc}")
        return False
    if head is not None:
        report.journal_seq, report.chain_head = head.seq, head.chain_hex
    return True


def _check_projection_counts(conn: apsw.Connection, report: VerifyReport) -> None:
    applied = projections.applied_seq(conn)
    report.add(
        "projections_at_head",
        applied == report.journal_seq,
        f"applied seq {applied}, journal seq {report.journal_seq}",
    )
    summary = digests.replay_summary(conn)  # None before migration 0012
    listed = {kind: n for kind, n, _ in summary[0]} if summary is not None else {}
    for kind, table in _COUNTED.items():
        frames = int(fetchall(conn, "SELECT count(*) FROM journal WHERE kind = ?", (kind,))[0][0])
        replays = listed.get(kind, 0)  # journalled, not projected
        rows = int(fetchall(conn, f"SELECT count(*) FROM {table}")[0][0])
        detail = f"{frames} {kind} frames, {rows} rows in {table}"
        if replays:
            detail += f", {replays} replays not counted"
        report.add(f"count_{table}", frames - replays == rows, detail)
    if summary is None:
        report.add(
            "replays",
            True,
            "not listed yet: the file predates migration 0012 (the server lists them at its"
            " next start and rebuilds the projections without them)",
        )
        return
    by_kind = summary[0]
    total = sum(n for _, n, _ in by_kind)
    report.add(
        "replays",
        True,  # a finding, not a failure: the journal keeps them, lenses do not count them
        f"{total} journal frames are replays of earlier records (kept, not counted): "
        + ", ".join(f"{n} {kind} (first at seq {first})" for kind, n, first in by_kind)
        if by_kind
        else "no journal frame repeats an earlier record",
    )


def rebuild_projections(conn: apsw.Connection, progress: Progress | None = None) -> int:
    """Clear and re-derive every projection from the journal, in one transaction."""
    count = 0
    schema.apply_migrations(conn)  # a database of an older build: its projection tables too
    with conn, truth_state.deferred(conn):  # the truth table: batched, same rows
        projections.clear(conn)
        last = -1
        for frame in journal.iter_frames(conn):
            if frame.kind != "header":
                try:
                    record = json.loads(frame.body)
                    projections.apply(
                        conn, frame.seq, frame.kind, frame.hash, record, frame.written_ms
                    )
                except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
                    raise JournalError(
                        f"frame {frame.seq}: not a record the projections can hold "
                        f"({type(exc).__name__}: {exc}); run `stemedb verify`",
                        frame.seq,
                    ) from None
            last = frame.seq
            count += 1
            if count % 10_000 == 0:
                truth_state.flush_deferred(conn)
            if progress is not None:
                progress(1)
        truth_state.flush_deferred(conn)
        projections.set_applied_seq(conn, last)
    return count


def reindex(path: Path, progress: Progress | None = None) -> int:
    """`stemedb reindex`: rebuild the projections of a stopped database in place."""
    conn = schema.connect(path)
    try:
        return rebuild_projections(conn, progress)
    finally:
        conn.close()


def _check_rebuild(
    path: Path, live: apsw.Connection, report: VerifyReport, progress: Progress | None
) -> None:
    """--full: rebuild the projections into a temporary file and compare row by row."""
    with tempfile.TemporaryDirectory(prefix="stemedb-verify-") as tmp:
        scratch_path = Path(tmp) / "rebuild.db"
        scratch = schema.connect(scratch_path, sync="normal")
        try:
            schema.apply_migrations(scratch)
            scratch.execute("ATTACH DATABASE ? AS src", (f"file:{path}?mode=ro",))
            with scratch:
                scratch.execute("INSERT INTO main.journal SELECT * FROM src.journal")
                quarantine.copy_policy(scratch)  # each frame decided under its own policy
            rebuild_projections(scratch, progress)
            _guarded(report, "record_digests", lambda: _check_identities(scratch, report))
            differing, pending = [], []
            older = schema.user_version(live) < schema.latest_version()
            for table in projections.PROJECTION_TABLES:
                if older and not _has_table(scratch, "src", table):
                    pending.append(table)  # a migration the server applies at start adds it
                    continue
                diff = fetchall(
                    scratch,
                    f"SELECT (SELECT count(*) FROM (SELECT * FROM main.{table}"
                    f" EXCEPT SELECT * FROM src.{table})),"
                    f" (SELECT count(*) FROM (SELECT * FROM src.{table}"
                    f" EXCEPT SELECT * FROM main.{table}))",
                )
                if any(int(v) for v in diff[0]):
                    differing.append(table)
            report.add(
                "rebuild_matches",
                not differing,
                "projections identical to a rebuild from the journal"
                + (f" (not in this older file yet: {', '.join(pending)})" if pending else "")
                if not differing
                else f"differs from a rebuild: {', '.join(differing)}"
                + (
                    " (a file from before migration 0012 still counts the replays of records"
                    " stored before v0.2: the server's next start rebuilds without them)"
                    if "record_replays" in pending
                    else ""
                ),
            )
        finally:
            scratch.close()


def _has_table(conn: apsw.Connection, schema_name: str, table: str) -> bool:
    sql = f"SELECT 1 FROM {schema_name}.sqlite_master WHERE type = 'table' AND name = ?"
    return bool(fetchall(conn, sql, (table,)))


IDENTITY_FIX = f"run `stemedb reindex` ({CORRUPTION_RUNBOOK} §Resolve: only projections disagree)"


def _check_identities(scratch: apsw.Connection, report: VerifyReport) -> None:
    """--full: every record's identity (kind, signed digest, signer), recomputed from
    its body by the rebuild in `scratch` (main), against the file's `record_digests`
    (src). The writer trusts this table to tell a new record from a replay, so a
    missing, wrong or extra row is named by seq, not just counted."""
    pending = fetchall(scratch, "SELECT value FROM src.meta WHERE key = ?", (digests.BACKFILL_KEY,))
    if pending:
        report.add(
            "record_digests",
            True,
            f"backfill pending (done up to seq {pending[0][0]}): the server finishes it at start",
        )
        return
    columns = "seq, kind, digest, signer"
    missing = fetchall(
        scratch,
        f"SELECT {columns} FROM main.record_digests EXCEPT SELECT {columns} FROM src.record_digests"
        " ORDER BY seq LIMIT 1",
    )
    extra = fetchall(
        scratch,
        f"SELECT {columns} FROM src.record_digests EXCEPT SELECT {columns} FROM main.record_digests"
        " ORDER BY seq LIMIT 1",
    )
    bad = sorted(
        [("want", *r) for r in missing] + [("have", *r) for r in extra], key=lambda r: r[1]
    )
    if not bad:
        rows = int(fetchall(scratch, "SELECT count(*) FROM main.record_digests")[0][0])
        report.add("record_digests", True, f"{rows} identities match their frames' bodies")
        return
    side, seq, kind, _digest, _signer = bad[0]
    seq = int(seq)
    at_seq = "SELECT seq, kind, digest, signer FROM {}.record_digests WHERE seq = ?"
    stored = fetchall(scratch, at_seq.format("src"), (seq,))
    wanted = fetchall(scratch, at_seq.format("main"), (seq,))
    if side == "want" and not stored:
        problem = f"frame {seq} ({kind}): no identity row (a replay of it would be taken as new)"
    elif side == "have" and (not wanted or set(wanted) <= set(stored)):
        problem = (
            f"identity row for seq {seq} ({kind}) matches no record of the journal (an extra row:"
            " a record with that digest would be answered `exists` without being stored)"
        )
    else:
        digest = bytes(stored[0][2]).hex()[:16] if stored else "?"
        problem = f"frame {seq} ({kind}): identity row differs from its body's (stored {digest}…)"
    if report.first_bad_seq is None:
        report.first_bad_seq = seq
    report.add("record_digests", False, f"{problem}; {IDENTITY_FIX}")
