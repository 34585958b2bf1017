"""`layered`: one consensus per authority tier, side by side.

It shows whether regulators, studies and the crowd agree with each other
(cross-tier conflict) as well as among themselves (each tier's conflict),
while the overall answer still comes from the highest tier present.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stemedb.lenses.base import EMPTY, Outcome, Scored, conflict_of, parse_value
from stemedb.lenses.candidate import Candidate, LensContext
from stemedb.lenses.consensus import consensus
from stemedb.lenses.scoring import conflict_score, tier_name, tier_weight


def layered(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Consensus per tier; the top tier's winner and resolution are the overall ones."""
    if not candidates:
        return Outcome(None, 0.0, (), extra={"tiers": [], "cross_tier_conflict": 0.0})
    tiers: list[dict[str, Any]] = []
    lines: list[Scored] = []
    winners: list[tuple[int, Candidate]] = []
    top = EMPTY
    for tier in sorted({c.tier for c in candidates}):
        members = [c for c in candidates if c.tier == tier]
        out = consensus(members, ctx)
        lines += [
            Scored(s.candidate, s.score, f"tier {tier_name(tier)}: {s.why}") for s in out.scored
        ]
        if out.winner is None:
            continue  # every signer of this tier is too new under min_agent_age
        if not winners:
            top = out
        winners.append((tier, out.winner))
        tiers.append(
            {
                "tier": tier,
                "tier_name": tier_name(tier),
                "winner": out.winner.hash,
                "value": parse_value(out.winner.value_key),
                "conflict_score": conflict_of(members, ctx),
                "candidates_count": len(members),
                "resolution_confidence": out.resolution,
            }
        )
    cross = conflict_score((w.value_key, tier_weight(t)) for t, w in winners)
    extra = {"tiers": tiers, "cross_tier_conflict": cross}
    return Outcome(top.winner, top.resolution, tuple(lines), extra=extra)
