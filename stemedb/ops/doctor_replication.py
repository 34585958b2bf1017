"""`stemedb doctor`'s replication check: binary, configuration, Litestream alive, errors."""

from __future__ import annotations

from stemedb.config import Settings
from stemedb.ops.findings import Finding
from stemedb.replication import ReplicationError, config_path, enabled, litestream


def check_replication(settings: Settings) -> list[Finding]:
    if not enabled(settings):
        return []
    action = f"see {litestream.RUNBOOK}"
    try:
        exe = litestream.binary()
        config, addr = config_path(settings, write=False)
    except (ReplicationError, OSError) as exc:
        return [Finding("replication", "fail", str(exc), action)]
    if settings.role == "replica":
        return [Finding("replication", "ok", f"replica following {settings.replica_url}", "")]
    if addr is None:
        return [Finding("replication", "fail", f"{config} sets no `addr:`", action)]
    sample = litestream.scrape(addr, settings.db_path)
    if sample is None:
        return [
            Finding(
                "replication",
                "warn",
                f"Litestream ({exe}) is not answering on {addr} for {settings.db_path}: the "
                "server (or stemedb-litestream.service) is stopped, or replication is down",
                action,
            )
        ]
    status = "warn" if sample.sync_errors else "ok"
    return [
        Finding(
            "replication",
            status,
            f"Litestream at {addr}: txid {sample.txid}, {sample.syncs} syncs, "
            f"{sample.sync_errors} sync errors, WAL {sample.wal_bytes} bytes",
            action if sample.sync_errors else "",
        )
    ]
