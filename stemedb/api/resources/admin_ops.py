"""`POST /v1/admin/backup` and the backup/archive gauges of the running server.

The backup runs in the request thread through `stemedb.ops.backup` with its
own read connection to the database file (a snapshot: the writer keeps
committing meanwhile). The gauges read the backup and archive folders at
scrape time, so backups and archives made by the CLI timers show up too.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

import falcon
from pydantic import BaseModel, ConfigDict

from stemedb import admission
from stemedb.api.errors import ErrorResponse
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.config import Settings
from stemedb.metrics import Metrics
from stemedb.ops import archive, backup
from stemedb.store import Store

log = logging.getLogger("stemedb.api.admin")


class BackupOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    path: str
    timestamp: str
    assertion_count: int
    journal_seq: int
    chain_head: str
    sha3_256: str
    removed: list[str]


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


def bind_metrics(settings: Settings, store: Store, metrics: Metrics) -> None:
    """Replace the store-stats placeholders of the two gauges with real readings."""
    last_backup = _DirCache(settings.backup_dir, backup.last_backup_timestamp)
    metrics.last_backup_timestamp_seconds.set_function(last_backup.get)
    metrics.archive_lag_frames.set_function(
        lambda: float(archive.archive_lag(settings.wal_dir, store.current_head.seq))
    )


def routes(settings: Settings, store: Store, metrics: Metrics) -> list[Route]:
    bind_metrics(settings, store, metrics)

    def run_backup(req: falcon.Request, resp: falcon.Response) -> None:
        try:
            with admission.blocking():  # minutes of I/O must not hold a request slot
                result = backup.backup(
                    settings.db_path, settings.backup_dir, keep=settings.backup_keep
                )
        except backup.BackupDiskFull as exc:
            log.error("backup failed: %s", exc)
            no_space = {"error": {"code": "insufficient_storage", "message": str(exc)}}
            json_response(resp, no_space, 507)
            return
        except backup.BackupError as exc:
            log.error("backup failed: %s", exc)
            json_response(resp, {"error": {"code": "backup_failed", "message": str(exc)}}, 500)
            return
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            log.error("backup failed: %s", exc)
            code, status = ("insufficient_storage", 507) if full else ("backup_failed", 500)
            json_response(
                resp, {"error": {"code": code, "message": f"backup failed: {exc}"}}, status
            )
            return
        log.info("backup written to %s (seq %s)", result.path, result.metadata["journal_seq"])
        body = {
            **result.metadata,
            "path": str(result.path),
            "removed": [p.name for p in result.removed],
        }
        json_response(resp, body, 200)

    return [
        Route(
            "POST",
            "/v1/admin/backup",
            run_backup,
            "Back up the database (online, verified) into STEMEDB_BACKUP_DIR",
            tag="admin",
            auth="admin",
            responses={
                200: BackupOut,
                401: ErrorResponse,
                403: ErrorResponse,
                500: ErrorResponse,
                507: ErrorResponse,
            },
            content_types=("application/json",),
            description="Same as `stemedb backup`: an online copy, verified against the chain "
            "head read in the same snapshot, then pruned to STEMEDB_BACKUP_KEEP backups.",
        )
    ]
