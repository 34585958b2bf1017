"""`votes`: the assertion the agents voted highest.

Vote totals are looked up before the lens runs (ctx.vote_totals). With no
vote on any candidate there is nothing to decide by, so the lens falls back
to `recency` and says so rather than picking arbitrarily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from stemedb.lenses.base import EMPTY, Outcome, Scored, finite, fmt_num, rank_by_score, share
from stemedb.lenses.candidate import Candidate, LensContext
from stemedb.lenses.simple import recency


def votes(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Highest vote total wins; resolution = winner / Σ positive totals."""
    if not candidates:
        return EMPTY
    if not any(c.hash in ctx.vote_totals for c in candidates):
        fallback = recency(candidates, ctx)
        lines = tuple(
            Scored(s.candidate, s.score, f"no votes, recency fallback: {s.why}")
            for s in fallback.scored
        )
        return Outcome(fallback.winner, 0.0, lines, extra={"fallback": "recency"})

    def describe(c: Candidate, score: float) -> str:
        if c.hash not in ctx.vote_totals:
            return "no votes (total 0)"
        return f"vote total {fmt_num(score)}"

    pairs = [(c, finite(float(ctx.vote_totals.get(c.hash, 0.0)))) for c in candidates]
    winner, lines = rank_by_score(pairs, "vote total", describe)
    positive = math.fsum(score for _, score in pairs if score > 0.0)
    resolution = share(lines[0].score, positive) if lines[0].score > 0.0 else 0.0
    return Outcome(winner, resolution, lines)
