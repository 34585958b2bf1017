"""Doctor check of the agent tier registry (docs/security.md, "Authority cannot be self-declared").

Lenses cap a claim's declared tier to what its signers are registered for, so
a database whose Regulatory and Clinical sources were never registered ranks
them all as `Observational` (the unregistered ceiling): after an upgrade that
is the change an operator must act on. The check counts such claims (by
their first signer; co-signers and source schemes can only lower the count
the lenses see further) and warns when claims above the ceiling exist but no
agent is registered at all.
"""

from __future__ import annotations

from pathlib import Path

import apsw

from stemedb.config import Settings
from stemedb.lenses.scoring import tier_name
from stemedb.ops.common import open_readonly
from stemedb.ops.findings import Finding
from stemedb.store.schema import fetchall

CHECK = "tiers"
ACTION = (
    "register the agents that may speak at those tiers: `stemedb agents register ID --tier T` "
    '(POST /v1/admin/agents; docs/security.md, "Authority cannot be self-declared")'
)

_UNREGISTERED_ABOVE = """
SELECT count(*) FROM assertions a
WHERE a.tier < ? AND NOT EXISTS (
  SELECT 1 FROM agent_tiers r
  WHERE r.agent_id = a.agent_id AND r.max_tier <= a.tier
    AND r.seq = (SELECT max(n.seq) FROM agent_tiers n WHERE n.agent_id = r.agent_id)
)
"""


def check_tier_registry(settings: Settings) -> list[Finding]:
    path: Path = settings.db_path
    if not path.exists():
        return [Finding(CHECK, "skip", f"no database at {path} yet")]
    ceiling = settings.unregistered_max_tier
    try:
        conn = open_readonly(path)
        try:
            if not fetchall(conn, "SELECT 1 FROM sqlite_master WHERE name = 'agent_tiers'"):
                return [Finding(CHECK, "skip", "schema older than migration 0005 (start once)")]
            agents = int(fetchall(conn, "SELECT count(DISTINCT agent_id) FROM agent_tiers")[0][0])
            above = int(fetchall(conn, _UNREGISTERED_ABOVE, (ceiling,))[0][0])
        finally:
            conn.close()
    except apsw.Error as exc:
        return [Finding(CHECK, "skip", f"cannot read the registry: {exc}")]
    if ceiling == 0:
        detail = f"{agents} agents registered; the cap is off (STEMEDB_UNREGISTERED_MAX_TIER=0)"
        return [Finding(CHECK, "ok", detail)]
    summary = (
        f"{above} claims declare a tier above {tier_name(ceiling)} without a registered signer "
        f"(lenses rank them at most {tier_name(ceiling)}); {agents} agents registered"
    )
    if above and not agents:
        return [Finding(CHECK, "warn", summary, ACTION)]
    return [Finding(CHECK, "ok", summary)]
