"""Plumbing shared by the lens implementations.

A lens core returns an `Outcome` (its winner, resolution and one scored line
per competing candidate, plus any candidates it excluded); `assemble` turns
that into the public `LensResult` with the one ordering and the one conflict
score every lens shares.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from stemedb.lenses.candidate import Candidate, Explanation, LensContext, LensResult
from stemedb.lenses.scoring import (
    age_days,
    conflict_score,
    effective_confidence,
    half_life_days,
    tie_value,
    tiebreak_reason,
    tier_weight,
    total_key,
    validate_decay,
)

EXCLUDED_REASONS = ("superseded", "epoch_superseded", "tier", "lifecycle")


class Scored(NamedTuple):
    """A competing candidate with its lens score and reason."""

    candidate: Candidate
    score: float
    why: str


class Excluded(NamedTuple):
    """A candidate kept out of the competition, and why."""

    candidate: Candidate
    reason: str  # one of EXCLUDED_REASONS
    why: str


@dataclass(frozen=True)
class Outcome:
    """What a lens core decides, before ordering and conflict are added."""

    winner: Candidate | None
    resolution: float
    scored: tuple[Scored, ...]
    excluded: tuple[Excluded, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_excluded(self, more: Iterable[Excluded]) -> Outcome:
        """The same outcome with earlier-stage exclusions added."""
        return Outcome(
            self.winner, self.resolution, self.scored, (*more, *self.excluded), self.extra
        )


EMPTY = Outcome(winner=None, resolution=0.0, scored=())

LensFn = Callable[[Sequence[Candidate], LensContext], Outcome]


def check_context(ctx: LensContext) -> None:
    """Reject a context no lens can honour, before any candidate is looked at."""
    if isinstance(ctx.at_s, bool) or not isinstance(ctx.at_s, int | float):
        raise ValueError(f"at_s must be Unix seconds, got {ctx.at_s!r}")
    if not math.isfinite(ctx.at_s):
        raise ValueError(f"at_s must be finite, got {ctx.at_s!r}")
    validate_decay(ctx.decay)


def split_superseded(
    candidates: Sequence[Candidate], ctx: LensContext
) -> tuple[list[Candidate], list[Excluded]]:
    """Superseded candidates stop competing unless the caller asked to include them."""
    if ctx.include_superseded:
        return list(candidates), []
    competing = [c for c in candidates if not c.superseded]
    excluded = [
        Excluded(c, "superseded", "target of a supersession record")
        for c in candidates
        if c.superseded
    ]
    return competing, excluded


def signers(c: Candidate, ctx: LensContext) -> tuple[str, ...]:
    """Every signer of a candidate: its first signer, then its co-signers; () if unsigned."""
    if c.agent_id is None:
        return ()
    extra = ctx.cosigners.get(c.hash, ())
    if not extra:
        return (c.agent_id,)
    return (c.agent_id, *(a for a in extra if a != c.agent_id))


def weight(c: Candidate, ctx: LensContext) -> float:
    """The conflict/skeptic weight: effective confidence × tier weight."""
    return effective_confidence(c, ctx) * tier_weight(c.tier)


def conflict_of(candidates: Iterable[Candidate], ctx: LensContext) -> float:
    """The shared conflict score over a set of candidates."""
    return conflict_score((c.value_key, weight(c, ctx)) for c in candidates)


def assemble(
    lens: str,
    subject: str,
    predicate: str,
    count: int,
    out: Outcome,
    ctx: LensContext,
) -> LensResult:
    """Order the explanation (winner, others by score, then excluded) and add conflict."""
    ordered = sorted(out.scored, key=lambda s: (-tie_value(s.score), total_key(s.candidate)))
    if out.winner is not None:
        winner = out.winner
        index = next(
            i for i, s in enumerate(ordered) if s.candidate is winner or s.candidate == winner
        )
        ordered.insert(0, ordered.pop(index))
    lines = [
        Explanation(
            s.candidate.hash,
            finite(s.score),
            None,
            _note_included(s.candidate, s.why),
            s.candidate.superseded,
        )
        for s in ordered
    ]
    lines += [
        Explanation(e.candidate.hash, 0.0, e.reason, e.why, e.candidate.superseded)
        for e in sorted(out.excluded, key=lambda e: total_key(e.candidate))
    ]
    return LensResult(
        lens=lens,
        subject=subject,
        predicate=predicate,
        winner=out.winner,
        candidates_count=count,
        resolution_confidence=min(1.0, max(0.0, finite(out.resolution))),
        conflict_score=conflict_of(_visible(out), ctx),
        explanation=tuple(lines),
        extra=dict(out.extra),
    )


HIDDEN = frozenset({"superseded", "epoch_superseded", "retracted"})


def _visible(out: Outcome) -> list[Candidate]:
    """Candidates the conflict score covers: all but those hidden by supersession.

    Tier and lifecycle exclusions are competition rules of one lens, not
    visibility, so every lens reports the same conflict for the same data.
    """
    visible = [s.candidate for s in out.scored]
    visible += [e.candidate for e in out.excluded if e.reason not in HIDDEN]
    return visible


def _note_included(c: Candidate, why: str) -> str:
    if c.superseded:
        return f"{why}; superseded, competing because include_superseded is set"
    return why


def finite(x: float) -> float:
    """NaN and infinities cannot be serialised as JSON; they count as 0."""
    return float(x) if math.isfinite(x) else 0.0


def fmt_ts(ts: int) -> str:
    """ISO 8601 UTC for a Unix timestamp, or @seconds when out of datetime's range."""
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"@{ts}"


def fmt_num(x: float) -> str:
    """Short, stable rendering of a score for the one-line reasons."""
    return f"{x:.6g}"


def parse_value(value_key: str) -> Any:
    """The tagged object behind a value key (the raw string if it is not JSON)."""
    try:
        return json.loads(value_key)
    except ValueError:
        return value_key


def show_value(value_key: str, limit: int = 60) -> str:
    """A value for a one-line reason: the JSON of its `value`, cut to `limit` chars."""
    parsed = parse_value(value_key)
    inner = parsed.get("value", parsed) if isinstance(parsed, dict) else parsed
    text = json.dumps(inner, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def confidence_text(c: Candidate, ctx: LensContext) -> str:
    """The effective confidence with, under decay, where it came from."""
    half_life = half_life_days(c.tier, ctx.decay)
    if half_life is None:
        return f"confidence {fmt_num(c.confidence)}"
    eff = effective_confidence(c, ctx)
    age = age_days(c.timestamp, ctx.at_s)
    return (
        f"effective confidence {fmt_num(eff)} (confidence {fmt_num(c.confidence)}, "
        f"{fmt_num(age)} days old, half-life {fmt_num(half_life)} days)"
    )


def rank_by_score(
    pairs: Sequence[tuple[Candidate, float]],
    label: str,
    describe: Callable[[Candidate, float], str],
) -> tuple[Candidate | None, tuple[Scored, ...]]:
    """Highest score wins, ties by the tie-break chain; each reason says why."""
    order = sorted(pairs, key=lambda cs: (-tie_value(cs[1]), total_key(cs[0])))
    if not order:
        return None, ()
    winner, best = order[0]
    lines = [Scored(winner, best, f"highest {label}: {describe(winner, best)}")]
    for c, score in order[1:]:
        if tie_value(score) == tie_value(best):
            tail = f"ties the winner, {tiebreak_reason(c, winner)}"
        else:
            tail = f"below the winner's {fmt_num(best)}"
        lines.append(Scored(c, score, f"{describe(c, score)}; {tail}"))
    return winner, tuple(lines)


def share(part: float, whole: float) -> float:
    """part / whole, 0 when there is nothing to share."""
    return part / whole if whole > 0.0 else 0.0
