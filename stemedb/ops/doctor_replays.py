"""Doctor check of journal replays (data-model.md §7, docs/forensics.md).

A file written before v0.2 can hold two frames with one identity (kind +
signed digest): a copy re-minted by changing an unsigned entry `timestamp`,
or a co-signed claim with an entry stripped. The first frame is the record,
later ones are replays: kept in the journal, listed in `record_replays`
(migration 0012), counted by no lens. Nothing needs repairing, but their
presence means someone re-minted signed records on the old server, which an
operator should know and may want to trace, so the check warns with the
count per kind and where to list them. A file the server has not yet
upgraded (no table, or its identity backfill pending) cannot say: skip.
"""

from __future__ import annotations

from stemedb.config import Settings
from stemedb.ops.doctor_data import read_summary
from stemedb.ops.findings import Finding
from stemedb.store import digests

CHECK = "replays"
FORENSICS = 'docs/forensics.md, "Record identities and replays"'
ACTION = (
    f"nothing to repair (the journal keeps them, no lens counts them); list each replay and "
    f"the record it repeats with the query in {FORENSICS}, and find who re-minted them "
    "(docs/security.md, threat model row 1)"
)


def check_replays(settings: Settings) -> list[Finding]:
    summary = read_summary(
        CHECK,
        settings,
        "the replay list",
        digests.replay_summary,
        "not listed yet: schema older than migration 0012 (the server lists them at start)",
    )
    if isinstance(summary, Finding):
        return [summary]
    by_kind, pending = summary
    later = "; more may be listed when the server finishes the identity backfill at start"
    if not by_kind:
        if pending:
            detail = "none listed yet: the identity backfill is pending (it runs at start)"
            return [Finding(CHECK, "skip", detail)]
        return [Finding(CHECK, "ok", "no journal frame repeats an earlier record")]
    total = sum(n for _, n, _ in by_kind)
    detail = (
        f"{total} journal frames are replays of earlier records (kept, not counted): "
        + ", ".join(f"{n} {kind} (first at seq {first})" for kind, n, first in by_kind)
        + (later if pending else "")
    )
    return [Finding(CHECK, "warn", detail, ACTION)]
