"""TrustRank at read time: stored scores relax toward neutral as they age.

A reputation earned long ago should not weigh as much as a fresh one, and
nothing stored changes: the relaxation is computed when a lens reads it.
"""

from __future__ import annotations

import math

from stemedb.lenses.candidate import LensContext
from stemedb.lenses.scoring import SECONDS_PER_DAY

NEUTRAL_TRUST = 0.5  # unknown and unsigned agents
TRUST_HALF_LIFE_DAYS = 30.0


def trust_at(score: float, last_updated_s: float, at_s: float) -> float:
    """0.5 + (score − 0.5) × 2^(−Δt / 30 days), Δt clamped at 0, result in [0, 1].

    Δt is clamped because only the latest stored score is known: a read at an
    instant before the last update sees that score unrelaxed.
    """
    elapsed_days = max(0.0, (at_s - last_updated_s) / SECONDS_PER_DAY)
    relax = math.exp2(-elapsed_days / TRUST_HALF_LIFE_DAYS)
    value = NEUTRAL_TRUST + (score - NEUTRAL_TRUST) * relax
    if math.isnan(value):
        return NEUTRAL_TRUST
    return min(1.0, max(0.0, value))


def agent_trust(agent_id: str | None, ctx: LensContext) -> float:
    """The trust of a signer at ctx.at_s; 0.5 for unsigned or unknown agents."""
    if agent_id is None:
        return NEUTRAL_TRUST
    entry = ctx.trust.get(agent_id)
    if entry is None:
        return NEUTRAL_TRUST
    score, last_updated_s = entry
    return trust_at(score, last_updated_s, ctx.at_s)
