"""`stemedb restore`: a backup plus archived segments, replayed to a chosen point.

Everything happens in a scratch file next to the target; the target is only
replaced once the replayed journal has passed a full verify, so a failed or
interrupted restore never leaves a half-restored database in place. Every
replayed frame is re-checked (seq continuity, hash of its body, chain link)
before it is applied, and the first failure names its seq.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw

from stemedb.ops import archive as archive_mod
from stemedb.ops.backup import DB_FILE, BackupError, read_metadata
from stemedb.ops.common import (
    DatabaseInUse,
    adopt_owner,
    fsync_dir,
    fsync_file,
    lock_directory,
    remove_database,
    sha3_file,
)
from stemedb.store import digests, files, journal, projections, schema
from stemedb.store.journal import Frame, Head, JournalError
from stemedb.store.verify import verify

BATCH_FRAMES = 5000
Progress = Callable[[int], None]


class RestoreError(Exception):
    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


@dataclass
class RestoreResult:
    target: Path
    journal_seq: int
    chain_head: str
    base_seq: int
    replayed: int
    assertion_count: int
    verify: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "journal_seq": self.journal_seq,
            "chain_head": self.chain_head,
            "base_seq": self.base_seq,
            "frames_replayed": self.replayed,
            "assertion_count": self.assertion_count,
            "verify_ok": self.verify.get("ok"),
        }


def parse_until_time(text: str) -> int:
    """Unix seconds (`1767225600`, `1767225600.5`) or ISO-8601 (naive = UTC) -> Unix ms."""
    try:
        return int(float(text) * 1000)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--until-time: expected Unix seconds or ISO-8601, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def restore(
    target: Path,
    *,
    backup_dir: Path | None = None,
    wal_dir: Path | None = None,
    until_seq: int | None = None,
    until_ms: int | None = None,
    force: bool = False,
    full_verify: bool = True,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore into `target`; raise RestoreError (naming the seq) on any mismatch."""
    if backup_dir is None and wal_dir is None:
        raise RestoreError("give a backup directory, or --from-archive with --wal-dir")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock = lock_directory(target.parent, "stemedb restore")
    except DatabaseInUse as exc:
        raise RestoreError(str(exc)) from None
    with lock:  # no server may start on the target's directory while we build and replace
        return _restore_locked(
            target, backup_dir, wal_dir, until_seq, until_ms, force, full_verify, progress
        )


def _restore_locked(
    target: Path,
    backup_dir: Path | None,
    wal_dir: Path | None,
    until_seq: int | None,
    until_ms: int | None,
    force: bool,
    full_verify: bool,
    progress: Progress | None,
) -> RestoreResult:
    _check_target(target, force)
    scratch = target.with_name(f".{target.name}.restoring")
    remove_database(scratch)
    try:
        if backup_dir is not None:
            _copy_backup(backup_dir, scratch)
        else:
            _create_empty(scratch)
        base, replayed = _replay(scratch, wal_dir, until_seq, until_ms, progress)
        report = verify(scratch, full=full_verify)
        if not report.ok:
            bad = [f"{c['check']}: {c['detail']}" for c in report.checks if not c["ok"]]
            raise RestoreError(
                "restored database failed verification: " + " | ".join(bad), report.first_bad_seq
            )
        count = _assertion_count(scratch)
        fsync_file(scratch)
        adopt_owner(scratch, target if target.exists() else target.parent)
        remove_database(target)
        os.replace(scratch, target)
        fsync_dir(target.parent)
    finally:
        remove_database(scratch)
    assert report.journal_seq is not None and report.chain_head is not None
    return RestoreResult(
        target, report.journal_seq, report.chain_head, base, replayed, count, report.to_dict()
    )


def _check_target(target: Path, force: bool) -> None:
    existing = [p for p in (target, Path(f"{target}-wal")) if p.exists()]
    if not existing:
        return
    if not force:
        raise RestoreError(
            f"{target} already exists; refusing to overwrite it (use --force, after "
            "moving it aside if it may still be needed)"
        )
    if target.exists():
        from stemedb.ops.common import open_exclusive

        try:
            open_exclusive(target).close()
        except DatabaseInUse as exc:
            raise RestoreError(f"--force refused: {exc}") from None
        except apsw.Error:
            pass  # not a readable database (damaged, foreign): nobody can be using it


def _copy_backup(backup_dir: Path, scratch: Path) -> None:
    try:
        meta = read_metadata(backup_dir)
    except BackupError as exc:
        raise RestoreError(str(exc)) from None
    source = backup_dir / str(meta.get("file") or DB_FILE)
    if not source.is_file():
        raise RestoreError(f"{source} is missing")
    digest = sha3_file(source)
    if digest != meta.get("sha3_256"):
        raise RestoreError(
            f"{source} does not match its metadata (sha3_256 {digest}, "
            f"metadata says {meta.get('sha3_256')}): the backup is damaged"
        )
    shutil.copyfile(source, scratch)
    conn = schema.connect(scratch, sync="full")
    try:
        head = journal.read_head(conn)
        if head is None or head.seq != meta.get("journal_seq"):
            raise RestoreError(
                f"backup head seq {head.seq if head else None} differs from its "
                f"metadata ({meta.get('journal_seq')})"
            )
        if head.chain_hex != meta.get("chain_head"):
            raise RestoreError(
                f"backup chain head differs from its metadata at seq {head.seq}", head.seq
            )
        schema.apply_migrations(conn)  # an older backup restored by a newer build
        digests.backfill(conn)  # its identities, and its replays uncounted (data-model §7)
    finally:
        conn.close()


def _create_empty(scratch: Path) -> None:
    conn = schema.connect(scratch, sync="normal")
    try:
        schema.apply_migrations(conn)
    finally:
        conn.close()


def _segment_frames(wal_dir: Path, after: int) -> Iterator[Frame]:
    """Archived frames with seq > `after`, in order (segments wholly before are skipped)."""
    for segment in archive_mod.list_segments(wal_dir):
        if segment.last < after:
            continue
        for frame in archive_mod.read_segment(segment):
            if frame.seq >= after:
                yield frame


def _replay(
    scratch: Path,
    wal_dir: Path | None,
    until_seq: int | None,
    until_ms: int | None,
    progress: Progress | None,
) -> tuple[int, int]:
    """Apply archived frames after the scratch file's head; return (base seq, frames applied)."""
    conn = schema.connect(scratch, sync="normal")
    try:
        head = journal.read_head(conn)
        base = head.seq if head is not None else -1
        _check_base(conn, base, until_seq, until_ms)
        applied = 0
        if wal_dir is not None and (until_seq is None or until_seq > base):
            applied = _apply_frames(conn, head, wal_dir, until_seq, until_ms, progress)
        last = base + applied
        if until_seq is not None and last < until_seq:
            where = f"the archive in {wal_dir}" if wal_dir else "the backup (no --wal-dir given)"
            raise RestoreError(
                f"{where} ends at seq {last}, before --until-seq {until_seq}", last + 1
            )
        if last < 0 and until_ms is not None and _first_segment_starts_at_zero(wal_dir):
            raise RestoreError("nothing to restore: the journal began after --until-time", 0)
        if last < 0:
            raise RestoreError(f"no archive segment starting at seq 0 in {wal_dir}", 0)
        files.fold_wal(conn)  # fold the WAL into the file
        return base, applied
    finally:
        conn.close()


def _first_segment_starts_at_zero(wal_dir: Path | None) -> bool:
    segments = archive_mod.list_segments(wal_dir) if wal_dir is not None else []
    return bool(segments) and segments[0].first == 0


def _check_base(
    conn: apsw.Connection, base: int, until_seq: int | None, until_ms: int | None
) -> None:
    """A backup already past the requested point cannot be rewound: say so."""
    if until_seq is not None and until_seq < base:
        raise RestoreError(
            f"the backup is already at seq {base}, past --until-seq {until_seq}; "
            "choose an older backup",
            until_seq,
        )
    if until_ms is not None and base >= 0:
        written = files.written_ms_at(conn, base)
        if written is not None and written > until_ms:
            raise RestoreError(
                f"the backup's last frame (seq {base}) was written at {written} ms, after "
                f"--until-time ({until_ms} ms); choose an older backup",
                base,
            )


def _apply_frames(
    conn: apsw.Connection,
    head: Head | None,
    wal_dir: Path,
    until_seq: int | None,
    until_ms: int | None,
    progress: Progress | None,
) -> int:
    previous = head.chain if head is not None else journal.ZERO_CHAIN
    expect = head.seq + 1 if head is not None else 0
    applied = 0
    pending: list[Frame] = []
    for frame in _segment_frames(wal_dir, expect - 1):
        if frame.seq < expect:
            # The backup's own head (or a frame repeated by overlapping segments): it
            # must be the frame we already have, or the archive is another history.
            if frame.seq == expect - 1 and frame.chain != previous:
                raise RestoreError(
                    f"the archive does not continue this backup: chain differs at seq {frame.seq}",
                    frame.seq,
                )
            continue
        if (until_seq is not None and frame.seq > until_seq) or (
            until_ms is not None and frame.written_ms > until_ms
        ):
            break
        if frame.seq != expect:
            raise RestoreError(
                f"archive gap: expected seq {expect}, the segments continue at {frame.seq}",
                expect,
            )
        try:
            journal.verify_frames(iter([frame]), previous, expect)
        except JournalError as exc:
            raise RestoreError(f"archived {exc}", exc.seq) from None
        previous = frame.chain
        expect += 1
        pending.append(frame)
        if len(pending) >= BATCH_FRAMES:
            applied += _apply_batch(conn, pending, progress)
            pending = []
    if pending:
        applied += _apply_batch(conn, pending, progress)
    return applied


def _apply_batch(conn: apsw.Connection, frames: list[Frame], progress: Progress | None) -> int:
    """Journal rows and their projections in one transaction, as the writer does."""
    with conn:
        for frame in frames:
            files.insert_frame(conn, frame)
            if frame.kind != "header":
                record = json.loads(frame.body)
                projections.apply(conn, frame.seq, frame.kind, frame.hash, record, frame.written_ms)
        projections.set_applied_seq(conn, frames[-1].seq)
    if progress is not None:
        progress(len(frames))
    return len(frames)


def _assertion_count(path: Path) -> int:
    conn = apsw.Connection(
        f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    )
    try:
        return files.assertion_count(conn)
    finally:
        conn.close()
