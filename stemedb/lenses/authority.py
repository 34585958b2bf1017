"""`authority`, `trust` and `best`: effective confidence weighted by who said it.

`authority` lets only the highest tier present compete (one regulator beats
a hundred forum posts); `trust` lets every tier compete on agent reputation;
`best` first keeps the best lifecycle stage, Wikidata-style, then applies
`authority`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from stemedb.lenses.base import (
    EMPTY,
    Excluded,
    Outcome,
    confidence_text,
    fmt_num,
    rank_by_score,
    share,
)
from stemedb.lenses.candidate import Candidate, LensContext
from stemedb.lenses.scoring import effective_confidence, tier_name
from stemedb.lenses.trust import agent_trust

DROPPED_STAGES = frozenset({"deprecated", "rejected"})
APPROVED = "approved"


def trust_scored(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Score = effective confidence × trust(signer); resolution = winner's share."""

    def describe(c: Candidate, score: float) -> str:
        trust = agent_trust(c.agent_id, ctx)
        return f"{confidence_text(c, ctx)} × trust {fmt_num(trust)} = {fmt_num(score)}"

    pairs = [(c, effective_confidence(c, ctx) * agent_trust(c.agent_id, ctx)) for c in candidates]
    winner, lines = rank_by_score(pairs, "confidence × trust", describe)
    if winner is None:
        return EMPTY
    total = math.fsum(score for _, score in pairs)
    return Outcome(winner, share(lines[0].score, total), lines)


def trust(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Agent reputation across all tiers."""
    return trust_scored(candidates, ctx)


def authority(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Only the highest-authority tier present competes; the rest are excluded."""
    if not candidates:
        return EMPTY
    top = min(c.tier for c in candidates)
    inside = [c for c in candidates if c.tier == top]
    excluded = [
        Excluded(
            c,
            "tier",
            f"tier {tier_name(c.tier)} ranks below {tier_name(top)}, the highest tier present",
        )
        for c in candidates
        if c.tier != top
    ]
    out = trust_scored(inside, ctx).with_excluded(excluded)
    extra: dict[str, Any] = {"tier": top, "tier_name": tier_name(top)}
    return Outcome(out.winner, out.resolution, out.scored, out.excluded, extra)


def best(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Drop Deprecated/Rejected; if anything is Approved only that competes; then authority."""
    alive = [c for c in candidates if c.lifecycle.lower() not in DROPPED_STAGES]
    excluded = [
        Excluded(c, "lifecycle", f"lifecycle {c.lifecycle} is never best")
        for c in candidates
        if c.lifecycle.lower() in DROPPED_STAGES
    ]
    approved_only = any(c.lifecycle.lower() == APPROVED for c in alive)
    if approved_only:
        excluded += [
            Excluded(c, "lifecycle", f"lifecycle {c.lifecycle}; an Approved candidate exists")
            for c in alive
            if c.lifecycle.lower() != APPROVED
        ]
        alive = [c for c in alive if c.lifecycle.lower() == APPROVED]
    out = authority(alive, ctx).with_excluded(excluded)
    extra = {**out.extra, "approved_only": approved_only}
    return Outcome(out.winner, out.resolution, out.scored, out.excluded, extra)
