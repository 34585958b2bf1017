"""`recency` (latest wins) and `confidence` (most certain wins)."""

from __future__ import annotations

from collections.abc import Sequence

from stemedb.lenses.base import (
    EMPTY,
    Outcome,
    Scored,
    confidence_text,
    fmt_ts,
    rank_by_score,
)
from stemedb.lenses.candidate import Candidate, LensContext
from stemedb.lenses.scoring import effective_confidence, tiebreak_reason, total_key

MINUTE, HOUR, DAY = 60, 3_600, 86_400


def recency_resolution(winner: Candidate, ordered: Sequence[Candidate]) -> float:
    """How clearly the newest claim is newer than the newest one that disagrees.

    `ordered` is newest first. A rival a few seconds older is barely beaten
    (0.5); one older by more than a day is clearly outdated (0.95).
    """
    rival = next((c for c in ordered if c.value_key != winner.value_key), None)
    if rival is None:
        return 1.0
    gap = winner.timestamp - rival.timestamp
    if gap > DAY:
        return 0.95
    if gap > HOUR:
        return 0.8
    if gap > MINUTE:
        return 0.6
    return 0.5


def recency(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """The newest claim wins; its score is its timestamp."""
    if not candidates:
        return EMPTY
    ordered = sorted(candidates, key=total_key)
    winner = ordered[0]
    lines = [
        Scored(winner, float(winner.timestamp), f"newest timestamp {fmt_ts(winner.timestamp)}")
    ]
    for c in ordered[1:]:
        if c.timestamp == winner.timestamp:
            why = (
                f"same timestamp {fmt_ts(c.timestamp)} as the winner, {tiebreak_reason(c, winner)}"
            )
        else:
            why = f"timestamp {fmt_ts(c.timestamp)}, older than the winner's"
        lines.append(Scored(c, float(c.timestamp), why))
    return Outcome(winner, recency_resolution(winner, ordered), tuple(lines))


def confidence(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """The highest effective confidence wins; resolution is that confidence."""
    pairs = [(c, effective_confidence(c, ctx)) for c in candidates]
    winner, lines = rank_by_score(
        pairs, "effective confidence", lambda c, _s: confidence_text(c, ctx)
    )
    if winner is None:
        return EMPTY
    return Outcome(winner, lines[0].score, lines)
