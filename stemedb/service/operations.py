"""Operations the server offers over HTTP: health, readiness, stats, verify, backup.

The HTTP resources (api/resources/ops.py, admin_ops.py) call this service and
never the store or the offline tools (stemedb.ops) themselves, so the API
depends on services only. The work is the same as the CLI's: `verify` is
`stemedb verify` on the live file, `backup` is `stemedb backup`; the gauges
read the backup and archive folders, so what the CLI timers write shows too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stemedb.config import Settings
from stemedb.ops import archive, backup
from stemedb.ops.backup import BackupDiskFull as BackupDiskFull
from stemedb.ops.backup import BackupError as BackupError
from stemedb.ops.backup import BackupResult
from stemedb.store import Store
from stemedb.store.verify import VerifyReport, verify


class _DirCache:
    """A value derived from a folder, recomputed only when the folder changes."""

    def __init__(self, path: Path, compute: Any) -> None:
        self.path, self.compute = path, compute
        self.stamp: int | None = None
        self.value: float = 0.0

    def get(self) -> float:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            return 0.0
        if stamp != self.stamp:
            self.value, self.stamp = float(self.compute(self.path) or 0.0), stamp
        return self.value


class Operations:
    """One server's operations, bound to its store and settings."""

    def __init__(self, store: Store, settings: Settings, started: float | None = None) -> None:
        self.store = store
        self.settings = settings
        self.started = time.time() if started is None else started
        self._last_backup = _DirCache(settings.backup_dir, backup.last_backup_timestamp)

    def uptime_seconds(self) -> int:
        return int(time.time() - self.started)

    def stats(self) -> dict[str, Any]:
        """The store's statistics (assertion count, journal head, degraded reason ...)."""
        return dict(self.store.stats())

    def degraded_reason(self) -> str | None:
        """Why writes are refused now (full disk, I/O error), or None."""
        return self.store.degraded_reason()

    def verify(self) -> VerifyReport:
        """A quick verification of the live file (chain tail and projections)."""
        return verify(self.store.path, full=False)

    def backup(self) -> BackupResult:
        """An online, verified backup into STEMEDB_BACKUP_DIR, pruned to STEMEDB_BACKUP_KEEP.

        Raises BackupDiskFull, BackupError, or OSError as `stemedb.ops.backup` does.
        """
        settings = self.settings
        return backup.backup(settings.db_path, settings.backup_dir, keep=settings.backup_keep)

    def last_backup_timestamp(self) -> float:
        """Seconds since the epoch of the newest backup in the folder (0 when none)."""
        return self._last_backup.get()

    def archive_lag(self) -> float:
        """Journal frames committed but not yet archived to STEMEDB_WAL_DIR."""
        return float(archive.archive_lag(self.settings.wal_dir, self.store.current_head.seq))

    def observe_commits(self, on_commit: Callable[[float, int], None]) -> None:
        """Call `on_commit(seconds, records)` after each group commit of the writer."""
        if self.store.writer is not None:
            self.store.writer.on_commit = on_commit
