"""Lenses: pure, deterministic resolution of conflicting claims at read time.

The package depends on nothing but the standard library: the service layer
fetches candidates, vote totals, trust scores and epoch metadata first, then
calls `resolve`. See docs/lenses.md for what each lens answers.
"""

from stemedb.lenses.candidate import Candidate, Explanation, LensContext, LensResult
from stemedb.lenses.registry import (
    LENS_ALIASES,
    LENS_NAMES,
    UnknownLens,
    canonical_lens_name,
    resolve,
)
from stemedb.lenses.scoring import (
    TIER_HALF_LIFE_DAYS,
    TIER_NAMES,
    TIER_WEIGHTS,
    conflict_score,
    effective_confidence,
)
from stemedb.lenses.skeptic import skeptic_report
from stemedb.lenses.trust import trust_at

__all__ = [
    "LENS_ALIASES",
    "LENS_NAMES",
    "TIER_HALF_LIFE_DAYS",
    "TIER_NAMES",
    "TIER_WEIGHTS",
    "Candidate",
    "Explanation",
    "LensContext",
    "LensResult",
    "UnknownLens",
    "canonical_lens_name",
    "conflict_score",
    "effective_confidence",
    "resolve",
    "skeptic_report",
    "trust_at",
]
