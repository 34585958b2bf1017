"""`skeptic`: no winner, the shape of the disagreement instead.

When sources disagree the honest answer is often the conflict itself: which
values are claimed, by whom, at what authority, and how evenly the weight is
split. Nothing is averaged or invented.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from stemedb.lenses.base import (
    Outcome,
    Scored,
    check_context,
    confidence_text,
    conflict_of,
    fmt_num,
    parse_value,
    share,
    show_value,
    signers,
    split_superseded,
    weight,
)
from stemedb.lenses.candidate import Candidate, LensContext
from stemedb.lenses.dedupe import near_duplicates, near_key, repeat_note, report
from stemedb.lenses.scoring import tie_value, tier_name, tier_weight, total_key

CONTESTED_AT = 0.4


def status_of(groups: int, conflict: float) -> str:
    """NoClaims without a competing candidate; Unanimous for one value;
    Contested from conflict 0.4 up; else Agreed."""
    if groups == 0:
        return "NoClaims"
    if groups == 1:
        return "Unanimous"
    return "Contested" if tie_value(conflict) >= CONTESTED_AT else "Agreed"


def _groups(competing: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    """Candidates by value, trivial variations together (dedupe.near_key), newest first."""
    groups: dict[str, list[Candidate]] = {}
    for c in sorted(competing, key=total_key):
        groups.setdefault(near_key(c.value_key), []).append(c)
    return groups


def _claim(
    value_key: str,
    members: list[Candidate],
    w: float,
    total: float,
    ctx: LensContext,
) -> dict[str, Any]:
    tiers = sorted({c.tier for c in members})
    return {
        "object": parse_value(members[0].value_key),  # the newest spelling of the value
        "weight": w,
        "share": share(w, total),
        "assertion_count": len(members),
        "agents": sorted({a for c in members for a in signers(c, ctx)}),  # co-signers too
        "tiers": {tier_name(t): sum(1 for c in members if c.tier == t) for t in tiers},
        "best_tier": tier_name(tiers[0]),
        "newest_timestamp": max(c.timestamp for c in members),
        "assertions": [c.hash for c in members],  # newest first (tie-break chain)
    }


def analyse(competing: Sequence[Candidate], ctx: LensContext) -> dict[str, Any]:
    """Status, conflict score and ranked claims of the competing candidates.

    Skeptic shows the shape of what was written, so an agent's repeats keep
    their weight; they are named in `near_duplicates` (lenses/dedupe.py), and
    values that differ only trivially are one claim.
    """
    groups = _groups(competing)
    repeats = near_duplicates(competing, ctx.clusters)
    weights = {k: math.fsum(weight(c, ctx) for c in ms) for k, ms in groups.items()}
    total = math.fsum(weight(c, ctx) for c in competing)
    order = sorted(
        groups,
        key=lambda k: (-tie_value(share(weights[k], total)), total_key(groups[k][0]), k),
    )
    conflict = conflict_of(competing, ctx)
    body: dict[str, Any] = {
        "status": status_of(len(groups), conflict),
        "conflict_score": conflict,
        "claims": [_claim(k, groups[k], weights[k], total, ctx) for k in order],
    }
    if repeats:
        body["near_duplicates"] = report(repeats, ctx.clusters)
    return body


def skeptic_report(
    subject: str, predicate: str, candidates: Sequence[Candidate], ctx: LensContext
) -> dict[str, Any]:
    """The `/v1/skeptic` body; superseded candidates (unless included) are left out.

    `candidates_count` counts every candidate given, as `LensResult` does, so
    the endpoint and `lens=skeptic` agree; no competing candidate (none at
    all, or every one superseded) is "NoClaims" with conflict 0 and no claims.
    """
    check_context(ctx)
    competing, _ = split_superseded(sorted(candidates, key=total_key), ctx)
    body = analyse(competing, ctx)
    answer = {
        "subject": subject,
        "predicate": predicate,
        "status": body["status"],
        "conflict_score": body["conflict_score"],
        "candidates_count": len(candidates),
        "claims": body["claims"],
    }
    if "near_duplicates" in body:
        answer["near_duplicates"] = body["near_duplicates"]
    return answer


def skeptic(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Per-candidate weights for the explanation; the report goes in `extra` (no winner)."""
    repeats = near_duplicates(candidates, ctx.clusters)
    total = math.fsum(weight(c, ctx) for c in candidates)
    groups = _groups(candidates)
    group_share = {
        k: share(math.fsum(weight(c, ctx) for c in ms), total) for k, ms in groups.items()
    }
    lines = tuple(
        Scored(
            c,
            weight(c, ctx),
            f"weight {fmt_num(weight(c, ctx))} = {confidence_text(c, ctx)} × tier weight "
            f"{fmt_num(tier_weight(c.tier))} for value {show_value(c.value_key)} "
            f"(claim share {fmt_num(group_share[near_key(c.value_key)])})"
            + (f"; {repeat_note(c, repeats[c.hash])}" if c.hash in repeats else ""),
        )
        for c in sorted(candidates, key=total_key)
    )
    extra = {"near_duplicates": report(repeats, ctx.clusters)} if repeats else {}
    return Outcome(winner=None, resolution=0.0, scored=lines, extra=extra)
