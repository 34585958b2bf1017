"""`POST /v1/admin/backup` and the backup/archive gauges of the running server.

The backup runs in the request thread through stemedb.service.operations
(which runs `stemedb.ops.backup`) with its own read connection to the
database file (a snapshot: the writer keeps committing meanwhile). The gauges
read the backup and archive folders at scrape time, so backups and archives
made by the CLI timers show up too.
"""

from __future__ import annotations

import errno
import logging

import falcon
from pydantic import BaseModel, ConfigDict

from stemedb import admission
from stemedb.api.errors import ErrorResponse
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.metrics import Metrics
from stemedb.service.operations import BackupDiskFull, BackupError, Operations

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


def bind_metrics(operations: Operations, metrics: Metrics) -> None:
    """Replace the store-stats placeholders of the two gauges with real readings."""
    metrics.last_backup_timestamp_seconds.set_function(operations.last_backup_timestamp)
    metrics.archive_lag_frames.set_function(operations.archive_lag)


def routes(operations: Operations, metrics: Metrics) -> list[Route]:
    bind_metrics(operations, metrics)

    def run_backup(req: falcon.Request, resp: falcon.Response) -> None:
        try:
            with admission.blocking():  # minutes of I/O must not hold a request slot
                result = operations.backup()
        except BackupDiskFull as exc:
            log.error("backup failed: %s", exc)
            no_space = {"error": {"code": "insufficient_storage", "message": str(exc)}}
            json_response(resp, no_space, 507)
            return
        except BackupError as exc:
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
