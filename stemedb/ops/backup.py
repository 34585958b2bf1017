"""`stemedb backup`: a verified, self-describing copy of the live database.

The copy is made with SQLite's online backup API from a connection that
holds one read transaction for the whole copy: in WAL mode that snapshot
never blocks the writer, and the backup never restarts because of new
commits (it would, forever, under steady load without the snapshot). The
chain head and counts read inside the same snapshot are what the copy must
contain; a copy that does not verify is deleted and the command fails.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw

from stemedb import __version__
from stemedb.ops.common import adopt_owner, atomic_write_text, fsync_dir, fsync_file, sha3_file
from stemedb.store import files, journal, schema
from stemedb.store.verify import verify

DB_FILE = "stemedb.db"
METADATA_FILE = "metadata.json"
NAME_PREFIX = "stemedb-backup-"
BACKUP_NAME = re.compile(r"^stemedb-backup-(\d{8})-(\d{6})(?:-(\d+))?$")
STEP_PAGES = 1024  # 4 MiB at the default page size between progress updates
FULL_RUNBOOK = "docs/operations/runbooks/disk-full.md (Backup destination full)"
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

# (pages copied, total pages)
PageProgress = Callable[[int, int], None]

_lock = threading.Lock()  # one backup at a time per process (API requests)


class BackupError(Exception):
    """The backup could not be made or did not verify; the message says what differs."""


class BackupDiskFull(BackupError):
    """The destination ran out of space (HTTP 507); nothing was kept."""

    runbook = FULL_RUNBOOK


@dataclass(frozen=True)
class BackupResult:
    path: Path
    metadata: dict[str, Any]
    removed: list[Path]
    prune_errors: list[str]


@dataclass(frozen=True)
class _Snapshot:
    seq: int
    chain_hex: str
    assertion_count: int
    node_id: str | None


def backup(
    db_path: Path,
    dest_dir: Path,
    *,
    keep: int | None = None,
    progress: PageProgress | None = None,
    now: datetime | None = None,
) -> BackupResult:
    """Copy `db_path` into `dest_dir/stemedb-backup-YYYYMMDD-HHMMSS/`, verify, prune."""
    if not db_path.is_file():
        raise BackupError(f"no database at {db_path}")
    try:
        return _backup(db_path, dest_dir, keep, progress, now)
    except (apsw.FullError, apsw.IOError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno not in _FULL_ERRNOS:
            raise
        if isinstance(exc, apsw.IOError) and not _no_space(dest_dir):
            raise BackupError(f"I/O error writing the backup into {dest_dir}: {exc}") from None
        raise BackupDiskFull(
            f"backup destination {dest_dir} is full (No space left on device); "
            "nothing was kept: free space there or use --dest on another disk. "
            f"See {FULL_RUNBOOK}"
        ) from None


def _no_space(path: Path) -> bool:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        vfs = os.statvfs(probe)
    except OSError:
        return False
    return vfs.f_bavail * vfs.f_frsize < 1 << 20 or (vfs.f_files > 0 and vfs.f_favail == 0)


def _backup(
    db_path: Path,
    dest_dir: Path,
    keep: int | None,
    progress: PageProgress | None,
    now: datetime | None,
) -> BackupResult:
    with _lock:
        dest_dir.mkdir(parents=True, exist_ok=True)
        when = (now or datetime.now(UTC)).astimezone(UTC)
        final = _free_name(dest_dir, when)
        partial = dest_dir / f".{final.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            snapshot = _copy(db_path, partial / DB_FILE, progress)
            metadata = _check_copy(partial / DB_FILE, snapshot, when)
            atomic_write_text(partial / METADATA_FILE, json.dumps(metadata, indent=2) + "\n")
            adopt_owner(partial, dest_dir)
            partial.rename(final)
            fsync_dir(dest_dir)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        removed, problems = prune(dest_dir, keep) if keep else ([], [])
        return BackupResult(final, metadata, removed, problems)


def _free_name(dest_dir: Path, when: datetime) -> Path:
    base = f"{NAME_PREFIX}{when:%Y%m%d-%H%M%S}"
    candidate, n = dest_dir / base, 1
    while candidate.exists():
        n += 1
        candidate = dest_dir / f"{base}-{n}"
    return candidate


def _copy(db_path: Path, target: Path, progress: PageProgress | None) -> _Snapshot:
    # A plain read-write connection (no CREATE): a reader like any other; the
    # last connection to close removes -wal/-shm, so nothing is left behind.
    src = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READWRITE)
    src.set_busy_timeout(schema.BUSY_TIMEOUT_MS)
    dst = apsw.Connection(str(target))
    try:
        files.begin_snapshot(src)
        try:
            header = journal.check_header(src)
            head = journal.read_head(src)
            if head is None:
                raise BackupError(f"{db_path} has an empty journal")
            count = files.assertion_count(src)
            with dst.backup("main", src, "main") as job:
                while not job.done:
                    job.step(STEP_PAGES)
                    if progress is not None:
                        progress(job.page_count - job.remaining, job.page_count)
        finally:
            files.end_snapshot(src)
        # One self-contained file: no -wal/-shm companions in the backup.
        files.fold_wal(dst)
    except journal.JournalError as exc:
        raise BackupError(f"source journal is damaged at seq {exc.seq}: {exc}") from None
    finally:
        dst.close()
        src.close()
    fsync_file(target)
    node = header.get("node_id")
    return _Snapshot(head.seq, head.chain_hex, count, str(node) if node else None)


def _check_copy(copy: Path, snapshot: _Snapshot, when: datetime) -> dict[str, Any]:
    report = verify(copy, full=False)
    problems = [f"{c['check']}: {c['detail']}" for c in report.checks if not c["ok"]]
    conn = apsw.Connection(
        f"file:{copy}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    )
    try:
        integrity = files.integrity_check(conn)
        count = files.assertion_count(conn)
        version = schema.user_version(conn)
    finally:
        conn.close()
    if integrity != ["ok"]:
        problems.append(f"integrity_check: {'; '.join(integrity[:5])}")
    if report.journal_seq != snapshot.seq or report.chain_head != snapshot.chain_hex:
        problems.append(
            f"chain head of the copy (seq {report.journal_seq}, {report.chain_head}) differs "
            f"from the source (seq {snapshot.seq}, {snapshot.chain_hex})"
        )
    if count != snapshot.assertion_count:
        problems.append(f"copy has {count} assertions, source had {snapshot.assertion_count}")
    if problems:
        bad = f" (first bad seq {report.first_bad_seq})" if report.first_bad_seq is not None else ""
        raise BackupError("backup copy failed verification" + bad + ": " + " | ".join(problems))
    return {
        "format": "stemedb-backup",
        "version": __version__,
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timestamp_unix": round(when.timestamp(), 3),
        "assertion_count": count,
        "journal_seq": snapshot.seq,
        "chain_head": snapshot.chain_hex,
        "schema_version": version,
        "node_id": snapshot.node_id,
        "file": DB_FILE,
        "size_bytes": copy.stat().st_size,
        "sha3_256": sha3_file(copy),
        "verified": {"checks": len(report.checks) + 1, "frames": report.frames_checked},
    }


# ---- listing and retention --------------------------------------------------


def _sort_key(path: Path) -> tuple[str, str, int]:
    match = BACKUP_NAME.match(path.name)
    assert match is not None
    return match.group(1), match.group(2), int(match.group(3) or 1)


def list_backups(dest_dir: Path) -> list[Path]:
    """Completed backups, oldest first: our name pattern *and* a metadata.json."""
    try:
        entries = list(dest_dir.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [
        p
        for p in entries
        if BACKUP_NAME.match(p.name) and p.is_dir() and (p / METADATA_FILE).is_file()
    ]
    return sorted(found, key=_sort_key)


def prune(dest_dir: Path, keep: int) -> tuple[list[Path], list[str]]:
    """Delete all but the newest `keep` backups; nothing else in the folder is touched.

    A backup that cannot be deleted (say, made by root, pruned by the service
    user) is reported, not fatal: the new backup is good either way.
    """
    backups = list_backups(dest_dir)
    removed, problems = [], []
    for path in backups[: max(0, len(backups) - max(keep, 1))]:
        try:
            shutil.rmtree(path)
            removed.append(path)
        except OSError as exc:
            problems.append(f"cannot remove old backup {path}: {exc}")
    if removed:
        fsync_dir(dest_dir)
    return removed, problems


def read_metadata(backup_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((backup_dir / METADATA_FILE).read_text("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{backup_dir} has no {METADATA_FILE}: not a StemeDB backup") from None
    except ValueError as exc:
        raise BackupError(f"{backup_dir / METADATA_FILE} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BackupError(f"{backup_dir / METADATA_FILE} is not a JSON object")
    return data


def last_backup_timestamp(dest_dir: Path) -> float | None:
    """Unix time of the newest completed backup (for the gauge and `doctor`)."""
    for path in reversed(list_backups(dest_dir)):
        try:
            meta = read_metadata(path)
        except BackupError:
            continue
        stamp = meta.get("timestamp_unix")
        if isinstance(stamp, int | float):
            return float(stamp)
        try:
            return datetime.fromisoformat(str(meta.get("timestamp"))).timestamp()
        except ValueError:
            return path.stat().st_mtime
    return None


def age_seconds(dest_dir: Path) -> float | None:
    stamp = last_backup_timestamp(dest_dir)
    return None if stamp is None else time.time() - stamp
