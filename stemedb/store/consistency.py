"""Start-up guards of the store: what can be wrong with the files before a write happens.

Each failure the runbook knows becomes a `StartupError` carrying its one
line and its section, so the server logs `[n/10] step: FAILED: ... See §N`
and exits 1 instead of printing an apsw traceback:

* the disk is full (SQLITE_FULL, or an I/O error with no free block) -> §4;
* the database file or its file system is read-only for this user -> §5
  (SQLite silently opens a file it cannot write read-only, and the first
  write would fail much later as `ReadOnlyError`);
* projections ahead of the journal (meta's applied seq, or projection rows,
  beyond the journal head): every write would then collide with a stale row
  and fail. The journal is the source of truth, so the projections are
  rebuilt from it and the step says so (§7).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw

from stemedb.store import projections
from stemedb.store.journal import Head
from stemedb.store.schema import fetchall

log = logging.getLogger("stemedb.store")

RUNBOOK = "docs/operations/runbooks/server-wont-start.md"
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class StartupError(Exception):
    """The database cannot be opened; `runbook` says where to read next."""

    def __init__(self, message: str, runbook: str) -> None:
        super().__init__(message)
        self.runbook = runbook


def disk_full(path: Path) -> bool:
    """True when the file system holding `path` has no block left for us."""
    try:
        vfs = os.statvfs(path if path.is_dir() else path.parent)
    except OSError:
        return False
    return vfs.f_bavail == 0 or (vfs.f_files > 0 and vfs.f_favail == 0)


def read_only_fs(path: Path) -> bool:
    try:
        vfs = os.statvfs(path if path.is_dir() else path.parent)
    except OSError:
        return False
    return bool(vfs.f_flag & os.ST_RDONLY)


def classify(exc: BaseException, path: Path) -> StartupError | None:
    """The runbook line for an error met while opening `path`; None if it is not ours."""
    directory = path.parent
    if isinstance(exc, StartupError):
        return exc
    full_line = (
        f"the disk holding {directory} is full ({exc}); free space, then start again",
        f"{RUNBOOK} §4",
    )
    ro_line = (
        f"{directory} is on a read-only file system ({exc}); remount it read-write "
        f"(mount -o remount,rw) or point STEMEDB_DB_DIR at a writable disk",
        f"{RUNBOOK} §5",
    )
    if isinstance(exc, apsw.FullError):
        return StartupError(*full_line)
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return StartupError(*full_line)
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return StartupError(*ro_line)
    if isinstance(exc, apsw.ReadOnlyError | apsw.IOError | apsw.CantOpenError):
        if read_only_fs(directory):
            return StartupError(*ro_line)
        if disk_full(directory):
            return StartupError(*full_line)
        if isinstance(exc, apsw.ReadOnlyError):
            return not_writable(path, str(exc))
        if isinstance(exc, apsw.CantOpenError):
            return StartupError(f"cannot open {path}: {exc}", f"{RUNBOOK} §5")
        return StartupError(
            f"I/O error on {path} ({exc}); check the disk (dmesg) and run `stemedb verify`",
            f"{RUNBOOK} §3",
        )
    if isinstance(exc, PermissionError):
        return StartupError(f"{exc}; fix ownership (chown -R) of {directory}", f"{RUNBOOK} §5")
    return None


def not_writable(path: Path, why: str) -> StartupError:
    """Name the file that is in the way: the database, or a -wal/-shm left by root."""
    uid = os.geteuid()
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if candidate.exists() and not os.access(candidate, os.W_OK):
            path = candidate
            break
    try:
        owner = _user(path.stat().st_uid)
    except OSError:
        owner = "?"
    return StartupError(
        f"{path} is not writable by {_user(uid)} (uid {uid}); it is owned by {owner} ({why}); "
        f"fix with: chown {_user(uid)}: {path}",
        f"{RUNBOOK} §5",
    )


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


@contextmanager
def startup_errors(path: Path) -> Iterator[None]:
    """Turn the failures the runbook covers into StartupError; let the rest through."""
    try:
        yield
    except (apsw.Error, OSError) as exc:
        failure = classify(exc, path)
        if failure is None:
            raise
        raise failure from None


def require_writable(conn: apsw.Connection, path: Path) -> None:
    """Refuse a database SQLite could only open read-only (wrong owner, read-only mount)."""
    if not conn.readonly("main"):
        return
    if read_only_fs(path):
        raise classify(OSError(errno.EROFS, os.strerror(errno.EROFS)), path) or AssertionError
    raise not_writable(path, "SQLite opened it read-only")


def _tables_with_seq(conn: apsw.Connection) -> list[str]:
    found = []
    for table in projections.PROJECTION_TABLES:
        columns = {str(row[1]) for row in fetchall(conn, f"PRAGMA table_info({table})")}
        if "seq" in columns:
            found.append(table)
    return found


def repair_if_ahead(conn: apsw.Connection, head: Head | None) -> str:
    """Rebuild the projections when they claim frames the journal does not have.

    Returns a note for the start-up line ("" when they were consistent).
    """
    if head is None:
        return ""
    applied = projections.applied_seq(conn)
    beyond = max(
        (
            int(fetchall(conn, f"SELECT coalesce(max(seq), -1) FROM {table}")[0][0])
            for table in _tables_with_seq(conn)
        ),
        default=-1,
    )
    if applied <= head.seq and beyond <= head.seq:
        return ""
    from stemedb.store.verify import rebuild_projections  # verify imports the store package

    note = (
        f"projections were ahead of the journal (applied seq {applied}, rows up to seq "
        f"{beyond}, journal head {head.seq})"
    )
    log.warning("%s: rebuilding them from the journal (%s §7)", note, RUNBOOK)
    frames = rebuild_projections(conn)
    return f"{note}: rebuilt from the journal ({frames} frames, {RUNBOOK} §7)"
