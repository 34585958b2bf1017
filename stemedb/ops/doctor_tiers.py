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

from stemedb.config import Settings
from stemedb.lenses.scoring import tier_name
from stemedb.ops.doctor_data import read_summary
from stemedb.ops.findings import Finding
from stemedb.store import agent_tiers

CHECK = "tiers"
ACTION = (
    "register the agents that may speak at those tiers: `stemedb agents register ID --tier T` "
    '(POST /v1/admin/agents; docs/security.md, "Authority cannot be self-declared")'
)


def check_tier_registry(settings: Settings) -> list[Finding]:
    ceiling = settings.unregistered_max_tier
    registry = read_summary(
        CHECK,
        settings,
        "the registry",
        lambda conn: agent_tiers.registry_summary(conn, ceiling),
        "schema older than migration 0005 (start once)",
    )
    if isinstance(registry, Finding):
        return [registry]
    agents, above = registry
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
