"""One writer process per data directory: an exclusive `flock` on `stemedb.lock`.

SQLite's own locks only cover a transaction: two servers on one file each
start "healthy", each with its own idea of the journal head, and a restore
can replace the file under a running server (acknowledged writes lost). So
the server and every command that writes or replaces the database take this
lock on the directory for their whole run, and a second one exits at once
with a line naming the holder.

Why `flock` and not a PID file: the kernel drops the lock when the holder's
last descriptor closes, including after `kill -9` or a power cut, so a crash
never leaves a stale lock that an operator must delete by hand. The file
also carries the holder's PID and command for the error message and for
`stemedb doctor`; it is only advice (a dead holder's text stays behind), the
lock itself is the truth.

The lock is re-entrant inside one process (a count per directory): the
server takes it at step 4 and its store takes it again at step 5, and an
in-process tool that opens the store twice does not lock itself out. It is
exclusive between processes, which is what the runbook promises.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["LOCK_NAME", "RUNBOOK", "DirLock", "DirectoryLocked", "Holder", "acquire", "holder"]

LOCK_NAME = "stemedb.lock"
RUNBOOK = "docs/operations/runbooks/server-wont-start.md §6"
_HOLDER_WAIT_S = 0.5  # the holder writes its PID right after locking: give it that long


@dataclass(frozen=True)
class Holder:
    """Who holds a data directory's lock (pid None when it could not be told)."""

    pid: int | None
    command: str

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "an unknown process"
        return f"{who} ({self.command})" if self.command else who


class DirectoryLocked(Exception):
    """Another process holds the data directory; the message is the runbook line."""

    def __init__(self, directory: Path, holder: Holder) -> None:
        self.directory = directory
        self.holder = holder
        self.runbook = RUNBOOK
        kill = f"kill {holder.pid}" if holder.pid is not None else "find it with: fuser -v"
        super().__init__(
            f"data directory {directory} is in use by {holder.describe()}: one StemeDB process "
            f"at a time may write it (is the server running? stop it first: {kill}, or "
            "systemctl stop stemedb-api; or wait for the import/restore to finish)"
        )


@dataclass
class _Entry:
    fd: int
    count: int


_held: dict[str, _Entry] = {}
_guard = threading.Lock()


class DirLock:
    """A held lock; `release()` (or leaving the `with` block) gives it back once."""

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self.path = directory / LOCK_NAME
        self._key: str | None = key

    def release(self) -> None:
        with _guard:
            key, self._key = self._key, None
            entry = _held.get(key) if key is not None else None
            if entry is None:
                return
            entry.count -= 1
            if entry.count == 0:
                del _held[key]  # type: ignore[arg-type]
                os.close(entry.fd)  # closing the descriptor releases the flock

    def __enter__(self) -> DirLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock still goes when its owner does
        with contextlib.suppress(Exception):
            self.release()


def default_command() -> str:
    """This process's command line, shortened: what a second process will be told."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if name in ("main.py", "__main__.py", "-m", "-c"):
        name = "stemedb"
    return " ".join([name, *sys.argv[1:]])[:160]


def acquire(directory: Path, command: str | None = None) -> DirLock:
    """Lock `directory` for this process; DirectoryLocked if another process holds it.

    OSError (permissions, read-only or full file system) propagates: the
    callers already turn those into their runbook lines.
    """
    directory = Path(directory)
    key = str(directory.resolve() / LOCK_NAME)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry.count += 1
            return DirLock(directory, key)
        fd = _open_lock_file(directory / LOCK_NAME)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise DirectoryLocked(directory, _wait_for_holder(directory)) from None
        _write_holder(fd, command or default_command())
        _held[key] = _Entry(fd, 1)
        return DirLock(directory, key)


def _open_lock_file(path: Path) -> int:
    """The lock file, created when missing; read-only is enough for flock."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # someone else's file: lock anyway
    except OSError as exc:
        if exc.errno == errno.EROFS and path.exists():
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        raise
    if os.geteuid() == 0:  # root doing maintenance must not leave a file the service can't open
        with contextlib.suppress(OSError):
            st = os.stat(path.parent)
            os.fchown(fd, st.st_uid, st.st_gid)
    return fd


def _write_holder(fd: int, command: str) -> None:
    """Best effort: a full disk or a read-only descriptor must not stop the lock."""
    text = f"{os.getpid()} {command}\n".encode("utf-8", "replace")
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)


def _wait_for_holder(directory: Path) -> Holder:
    deadline = time.monotonic() + _HOLDER_WAIT_S
    while True:
        found = holder(directory)
        if found is not None and (found.pid is not None or time.monotonic() >= deadline):
            return found
        if time.monotonic() >= deadline:
            return Holder(None, "")
        time.sleep(0.02)


def holder(directory: Path) -> Holder | None:
    """Who holds `directory`'s lock now, or None if nobody does.

    Reads /proc/locks (no locking, so asking never makes a starting server
    fail); where it is unreadable, probes with a shared lock for an instant.
    """
    path = Path(directory) / LOCK_NAME
    try:
        st = os.stat(path)
    except OSError:
        return None
    lockers = _proc_locks(st)
    if lockers is None:
        if not _probe_locked(path):
            return None
    elif not lockers:
        return None
    pid, command = _read_holder(path)
    if lockers and pid not in lockers:
        pid, command = lockers[0], _cmdline(lockers[0])  # the file's text is stale
    return Holder(pid, command)


def _proc_locks(st: os.stat_result) -> list[int] | None:
    """PIDs holding a FLOCK on this inode per /proc/locks; None if it cannot tell.

    /proc/locks names the file system's device, which is not always the one
    stat() reports (btrfs subvolumes): a match on the inode number alone is
    ambiguous, and then the caller probes instead.
    """
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    exact, same_inode = [], []
    for line in lines:
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":  # "->": a waiter
            continue
        with contextlib.suppress(ValueError):
            if parts[5] == wanted:
                exact.append(int(parts[4]))
            elif parts[5].rsplit(":", 1)[-1] == str(st.st_ino):
                same_inode.append(int(parts[4]))
    if exact or not same_inode:
        return exact
    return None


def _probe_locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _read_holder(path: Path) -> tuple[int | None, str]:
    try:
        text = path.read_text("utf-8", "replace").strip()
    except OSError:
        return None, ""
    first, _, rest = text.partition(" ")
    return (int(first), rest.strip()) if first.isdigit() else (None, "")


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()[:160]
