"""Small pieces the operations commands share: durable writes, hashing, safe opens.

Backups, archive segments and restores are only useful if they survive a
crash right after the command said "done", hence fsync of files *and* of
their directories (a rename is durable only once the directory is synced).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import apsw

from stemedb.store import dirlock, files, schema
from stemedb.store.consistency import classify
from stemedb.store.dirlock import DirLock

Progress = Callable[[int], None]

CHUNK = 1 << 20


class DatabaseInUse(Exception):
    """Another connection (normally the running server) holds the database."""


class DatabaseUnavailable(DatabaseInUse):
    """The database cannot be opened for writing at all (read-only mount, full disk,
    wrong owner). A DatabaseInUse so every caller that prints one line for "in use"
    prints this one too, instead of a traceback."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `path` so that a crash leaves either the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha3_file(path: Path) -> str:
    digest = hashlib.sha3_256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def open_readonly(path: Path) -> apsw.Connection:
    """Read a database without leaving files behind.

    A read-only SQLite connection creates `-wal`/`-shm` when they are missing,
    owned by whoever runs the command (root running `stemedb doctor` would
    leave root-owned files the service user cannot open). With no `-wal`
    there is nothing to read from it, so `immutable=1` reads the main file only.
    """
    uri = f"file:{path}?mode=ro" if Path(f"{path}-wal").exists() else f"file:{path}?immutable=1"
    conn = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    conn.set_busy_timeout(schema.BUSY_TIMEOUT_MS)
    return conn


class _LockedConnection(apsw.Connection):  # type: ignore[misc]
    """A connection that also holds its data directory's lock until it is closed."""

    dirlock: DirLock | None = None

    def close(self, force: bool = False) -> None:
        try:
            super().close(force)
        finally:
            lock, self.dirlock = self.dirlock, None
            if lock is not None:
                lock.release()


def lock_directory(directory: Path, command: str | None = None) -> DirLock:
    """The data directory's writer lock (see stemedb.store.dirlock); DatabaseInUse if held."""
    try:
        return dirlock.acquire(directory, command)
    except dirlock.DirectoryLocked as exc:
        raise DatabaseInUse(f"{exc} ({exc.runbook})") from None
    except OSError as exc:
        raise _unavailable(exc, directory / dirlock.LOCK_NAME) from None


def _unavailable(exc: BaseException, path: Path) -> DatabaseUnavailable:
    known = classify(exc, path)
    if known is None:
        return DatabaseUnavailable(f"cannot open {path} for writing: {exc}")
    return DatabaseUnavailable(f"{known} ({known.runbook})")


def open_exclusive(path: Path, *, timeout_ms: int = 250) -> apsw.Connection:
    """Open a stopped database and keep every other process out until closed.

    First the data directory's lock (no server, import or restore can start
    while we work, and a running one is named by PID). Then SQLite's: in WAL
    mode `BEGIN EXCLUSIVE` alone does not notice idle readers; with
    `locking_mode=EXCLUSIVE` the lock covers the whole file and is kept after
    COMMIT, so any other connection makes this fail fast.
    """
    if not path.exists():
        raise FileNotFoundError(f"no database at {path}")
    lock = lock_directory(path.parent)
    try:
        conn = _LockedConnection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    except BaseException:
        lock.release()
        raise
    conn.dirlock = lock
    conn.set_busy_timeout(timeout_ms)
    try:
        files.take_exclusive(conn)
    except apsw.BusyError:
        conn.close()
        raise DatabaseInUse(
            f"{path} is in use (is the server running? stop it first: systemctl stop stemedb-api)"
        ) from None
    except (apsw.ReadOnlyError, apsw.CantOpenError, apsw.FullError, apsw.IOError) as exc:
        conn.close()
        raise _unavailable(exc, path) from None
    except BaseException:
        conn.close()
        raise
    if conn.readonly("main"):  # SQLite fell back to read-only: the first write would fail
        conn.close()
        raise _unavailable(apsw.ReadOnlyError("attempt to write a readonly database"), path)
    conn.set_busy_timeout(schema.BUSY_TIMEOUT_MS)
    files.durable_writes(conn)
    return conn


def adopt_owner(path: Path, like: Path) -> None:
    """When run as root, give `path` (recursively) the owner of `like`.

    Operators run maintenance as root; a root-owned database, backup or
    segment in the service's directories is exactly the permission trap of
    server-wont-start.md §5. As any other user this does nothing.
    """
    if os.geteuid() != 0:
        return
    st = like.stat()
    if (st.st_uid, st.st_gid) == (0, 0):
        return
    targets = [path, *path.rglob("*")] if path.is_dir() else [path]
    for target in targets:
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)


def remove_database(path: Path) -> None:
    """Delete a database file and its `-wal`/`-shm` companions (restore --force)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")
