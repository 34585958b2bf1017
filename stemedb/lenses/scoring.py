"""Shared arithmetic: tiers, decay, the tie-break chain and the conflict score.

Every lens uses these same definitions so that scores, orderings and conflict
numbers agree between lenses (see docs/lenses.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from stemedb.lenses.candidate import Candidate, LensContext

TIER_NAMES: tuple[str, ...] = (
    "Regulatory",
    "Clinical",
    "Observational",
    "Expert",
    "Community",
    "Anecdotal",
)
TIER_WEIGHTS: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2, 0.1)
TIER_HALF_LIFE_DAYS: tuple[float | None, ...] = (None, 730.0, 365.0, 180.0, 90.0, 30.0)

SECONDS_PER_DAY = 86_400.0
TIE_DECIMALS = 12  # scores equal after rounding to this many decimals tie

TieKey = tuple[int, int, str]
TotalKey = tuple[int, int, str, str, float, str, str, str, bool]


def tier_name(tier: int) -> str:
    """The source-class name of a tier; ValueError outside 0..5."""
    if type(tier) is not int or not 0 <= tier <= 5:  # fast path: a plain int in range
        _check_tier(tier)
    return TIER_NAMES[tier]


def tier_weight(tier: int) -> float:
    """How much one unit of confidence from this tier counts in conflict/skeptic."""
    if type(tier) is not int or not 0 <= tier <= 5:  # fast path: a plain int in range
        _check_tier(tier)
    return TIER_WEIGHTS[tier]


def _check_tier(tier: int) -> None:
    if isinstance(tier, bool) or not isinstance(tier, int) or not 0 <= tier < len(TIER_NAMES):
        raise ValueError(f"tier must be an integer 0..5, got {tier!r}")


def validate_decay(decay: str | float | None) -> str | float | None:
    """Normalise `decay` to None, "tier" or a positive finite number of days.

    A zero, negative or non-finite half-life is a caller error (ValueError):
    silently ignoring it would make a typo look like "no decay".
    """
    if decay is None:
        return None
    if isinstance(decay, str):
        word = decay.strip().lower()
        if word == "none":
            return None
        if word == "tier":
            return "tier"
        raise ValueError(f"decay must be None, 'tier' or a half-life in days, got {decay!r}")
    if isinstance(decay, bool) or not isinstance(decay, int | float):
        raise ValueError(f"decay must be None, 'tier' or a half-life in days, got {decay!r}")
    days = float(decay)
    if math.isnan(days) or days <= 0.0:
        raise ValueError(f"decay half-life must be a positive number of days, got {decay!r}")
    return days


def age_days(timestamp: int, at_s: float) -> float:
    """Age of a claim in days at `at_s`; claims from the future have age 0."""
    return max(0.0, (at_s - timestamp) / SECONDS_PER_DAY)


def half_life_days(tier: int, decay: str | float | None) -> float | None:
    """The half-life that applies to a tier under `decay`; None = no decay."""
    if decay is None:
        return None
    mode = validate_decay(decay)
    if mode is None:
        return None
    if mode == "tier":
        _check_tier(tier)
        return TIER_HALF_LIFE_DAYS[tier]
    assert isinstance(mode, float)
    return mode


def effective_confidence(c: Candidate, ctx: LensContext) -> float:
    """confidence × 2^(−age/half_life) at ctx.at_s; plain confidence without decay."""
    if ctx.decay is None:
        return float(c.confidence)
    half_life = half_life_days(c.tier, ctx.decay)
    if half_life is None:
        return float(c.confidence)
    return float(c.confidence) * math.exp2(-age_days(c.timestamp, ctx.at_s) / half_life)


def conflict_score(weighted: Iterable[tuple[str, float]]) -> float:
    """Normalised Shannon entropy of the weight shares of the distinct values.

    k counts every distinct value key, even one whose weight is zero (its
    p ln p term is 0); one value or zero total weight means no conflict.
    math.fsum keeps the result independent of the input order.
    """
    groups: dict[str, list[float]] = {}
    for key, weight in weighted:
        w = float(weight)
        if not math.isfinite(w) or w < 0.0:
            raise ValueError(f"conflict weights must be finite and >= 0, got {weight!r}")
        groups.setdefault(key, []).append(w)
    k = len(groups)
    if k < 2:
        return 0.0
    totals = [math.fsum(ws) for _, ws in sorted(groups.items())]
    total = math.fsum(totals)
    if total <= 0.0:
        return 0.0
    entropy = -math.fsum(p * math.log(p) for p in (w / total for w in totals) if p > 0.0)
    return min(1.0, max(0.0, entropy / math.log(k)))


def tie_value(score: float) -> float:
    """Scores are compared after rounding so 0.1+0.2 and 0.3 tie."""
    return round(score, TIE_DECIMALS) + 0.0  # + 0.0 folds -0.0 into 0.0


def tiebreak_key(c: Candidate) -> TieKey:
    """Sort key of the tie-break chain: newer, then higher authority, then lower hash."""
    return (-c.timestamp, c.tier, c.hash)


def total_key(c: Candidate) -> TotalKey:
    """The tie-break chain extended by every other field: a total order on candidates.

    Only malformed input (two different candidates with one hash) ever needs
    the extension, but it keeps results independent of input order even then.
    """
    return (
        -c.timestamp,
        c.tier,
        c.hash,
        c.value_key,
        float(c.confidence),
        c.agent_id or "",
        c.lifecycle,
        c.epoch or "",
        c.superseded,
    )


def ranked(scored: Iterable[tuple[Candidate, float]]) -> list[tuple[Candidate, float]]:
    """Highest score first; exact ties (after rounding) by the tie-break chain."""
    return sorted(scored, key=lambda cs: (-tie_value(cs[1]), total_key(cs[0])))


def tiebreak_reason(loser: Candidate, winner: Candidate) -> str:
    """Which link of the tie-break chain put `loser` behind `winner`."""
    if loser.timestamp != winner.timestamp:
        return "older timestamp"
    if loser.tier != winner.tier:
        return "lower authority tier"
    if loser.hash != winner.hash:
        return "higher hash"
    return "identical candidate"
