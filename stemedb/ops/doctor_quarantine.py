"""Doctor check of the quarantine queue (docs/security.md, "Quarantine").

Held records are journalled but no lens counts them until an admin decides,
so a queue nobody works through silently hides writes: the check warns when
records have waited more than a day, or when the queue is long (the
`StemeDBQuarantineBacklog` alert's threshold), and says which policy the
database holds against the one configured (the server records a changed
policy at its next start).
"""

from __future__ import annotations

import time

from stemedb.config import Settings
from stemedb.ops.doctor_data import read_summary
from stemedb.ops.findings import Finding
from stemedb.store import files
from stemedb.store.quarantine import OFF, Policy, parse_policy

CHECK = "quarantine"
BACKLOG = 1000
STALE_MS = 86_400_000
ACTION = (
    "release or reject them (GET /v1/admin/quarantine lists them with the reason; "
    "docs/operations/runbooks/abuse.md, A full quarantine)"
)


def check_quarantine(settings: Settings) -> list[Finding]:
    queue = read_summary(
        CHECK,
        settings,
        "the quarantine",
        files.quarantine_summary,
        "schema older than migration 0008 (start once)",
    )
    if isinstance(queue, Finding):
        return [queue]
    held, oldest, stored = queue
    in_db = parse_policy(stored) if stored is not None else OFF
    configured = Policy(
        settings.quarantine_new_agent_s,
        settings.quarantine_min_trust,
        settings.quarantine_near_duplicates,
    )
    summary = f"{int(held)} records held"
    if in_db != configured:
        summary += f"; the configured policy {configured.to_json()} applies from the next start"
    elif not configured.active:
        summary += "; every quarantine rule is off"
    waited_ms = int(time.time() * 1000) - int(oldest) if oldest is not None else 0
    if int(held) >= BACKLOG or waited_ms > STALE_MS:
        detail = f"{summary}; the oldest has waited {waited_ms // 3_600_000} h"
        return [Finding(CHECK, "warn", detail, ACTION)]
    return [Finding(CHECK, "ok", summary)]
