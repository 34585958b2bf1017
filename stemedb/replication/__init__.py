"""Continuous replication (Litestream) on a primary; read replicas that follow it.

docs/operations/replication.md is the operator's side. Here: `start_primary`
turns the settings into a running Litestream (a child of `stemedb serve`, or a
separate unit) plus the lag probe behind /metrics; `follower` keeps a replica's
database following the replica storage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemedb.config import Settings
from stemedb.replication import litestream
from stemedb.replication.litestream import ReplicationError
from stemedb.replication.probe import LagProbe

RUNBOOK = litestream.RUNBOOK
__all__ = ["RUNBOOK", "Replication", "ReplicationError", "config_path", "enabled", "start_primary"]

log = logging.getLogger("stemedb.replication")
CONFIG_NAME = "litestream.yml"


def enabled(settings: Settings) -> bool:
    return bool(settings.replica_url or settings.litestream_config)


def config_path(settings: Settings, *, write: bool = True) -> tuple[Path, str | None]:
    """The litestream.yml to run and the metrics address in it.

    STEMEDB_REPLICA_URL: one is written beside the database (so `doctor`, the
    unit and the child agree on it); STEMEDB_LITESTREAM_CONFIG: the operator's.
    """
    if settings.litestream_config is not None:
        try:
            text = settings.litestream_config.read_text("utf-8")
        except OSError as exc:
            raise ReplicationError(
                f"STEMEDB_LITESTREAM_CONFIG {settings.litestream_config}: {exc.strerror or exc}"
            ) from None
        return settings.litestream_config, litestream.config_addr(text)
    path = settings.db_dir / CONFIG_NAME
    text = litestream.render_config(
        settings.db_path, list(settings.replica_url), settings.litestream_addr
    )
    if write and (not path.is_file() or path.read_text("utf-8") != text):
        path.write_text(text, "utf-8")
    return path, settings.litestream_addr


@dataclass
class Replication:
    """What `start_primary` started; `stop()` after the writer has flushed."""

    probe: LagProbe
    supervisor: litestream.Supervisor | None

    def stop(self) -> None:
        self.probe.stop()
        if self.supervisor is not None:
            self.supervisor.stop()

    def describe(self) -> str:
        if self.supervisor is None:
            return f"replication by an external Litestream (metrics {self.probe.addr})"
        return f"replicating with Litestream pid {self.supervisor.pid} (metrics {self.probe.addr})"


def start_primary(
    settings: Settings, head_fn: Callable[[], int], metrics: Any = None
) -> Replication | None:
    """Start Litestream (child mode) and the lag probe; None when replication is off."""
    if not enabled(settings) or settings.role != "primary":
        return None
    config, addr = config_path(settings)
    if addr is None:
        raise ReplicationError(
            f"{config} sets no `addr:` (Litestream's metrics address), so replication lag "
            f'cannot be measured; add e.g. addr: "{settings.litestream_addr}"'
        )
    supervisor = None
    if settings.replication_process == "child":
        supervisor = litestream.Supervisor(config)
        supervisor.start()
    probe = LagProbe(head_fn, addr, settings.db_path, supervisor)
    probe.start()
    if metrics is not None:
        metrics.replication.probe = probe  # stemedb_replication_* on /metrics
    return Replication(probe, supervisor)


def for_server(settings: Settings, store: Any, metrics: Any) -> Replication | None:
    """The server's hook (start-up step 7): replication for this store, if configured."""
    head = getattr(store, "current_head", None)

    def head_fn() -> int:
        return int(store.current_head.seq)

    if head is None:  # a test's fake store: nothing to replicate
        return None
    return start_primary(settings, head_fn, metrics)
