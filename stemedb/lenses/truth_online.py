"""The `truth` lens's reliability table, as pure arithmetic: what one pair teaches.

The table (store/truth_state.py, migration 0012) keeps, per agent, sufficient
statistics of the model in `truth_model.py`, updated one journal record at a
time: the pairs it spoke on, `right` (the sum, over those pairs, of the
probability that its value is right *without its own voice nor its likely
copies'*: TruthFinder / ACCU's leave-one-out credit), how often its value was
what the others mostly said (`backed`, the clone rule's test), and recorded
outcomes. Per two agents that spoke on a common pair: how often they said the
same value, how much of that was probably false, how often they differed
(ACCU's copy-detection counts).

When a record changes a pair's voices, the pair is re-scored with the
weights the table holds *now* and each speaker's credit on the pair is
replaced (one online EM step per change, not a global iteration): the same
journal in the same order gives the same table bit for bit, and a rebuild
from scratch replays it in that order. A query at the head then only scores
its own group with these weights (`score_group`): no neighbourhood, no loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from stemedb.lenses.truth_model import (
    COPY_RATE,
    FALSE_VALUES,
    LCB_Z,
    MAX_WEIGHT,
    MIN_TWIN_CLAIMS,
    MIN_WEIGHT,
    PRIOR_STRENGTH,
    TIER_PRIOR,
    TWIN_BACKED,
    TWIN_OVERLAP,
    _dependent,
    _unseen,
)

TABLE_TIER_FLOOR = 3  # the table's own prior: no better than Observational (see docs)
DEFAULT_TOLERANCE = 0.01  # numbers within 1 % (relative) support each other


class AgentStats(NamedTuple):
    """One agent's row of the reliability table."""

    tier: int  # best (lowest) tier of its claims, floored at TABLE_TIER_FLOOR
    pairs: int  # pairs it speaks on (a claim, or an up-vote counted as its voice)
    right: float  # Σ leave-one-out probability that its value there is right
    backed: int  # pairs where its value is the others' most common one
    outcomes_right: int = 0  # recorded outcomes: accurate
    outcomes_wrong: int = 0  # ... inaccurate


class LinkStats(NamedTuple):
    """Two agents (a < b) that spoke on common pairs."""

    same: int
    same_false: float  # Σ (1 − P(value)) over the pairs where they agreed
    differ: int


NEW_AGENT = AgentStats(5, 0, 0.0, 0)
NO_LINK = LinkStats(0, 0.0, 0)


@dataclass(frozen=True)
class TruthTable:
    """The table's rows for one group's agents (64-hex ids), read before the lens runs."""

    agents: Mapping[str, AgentStats] = field(default_factory=dict)
    links: Mapping[tuple[str, str], LinkStats] = field(default_factory=dict)  # a < b


def prior(tier: int) -> float:
    return TIER_PRIOR[min(5, max(0, tier))]


def posterior(stats: AgentStats, tier: int) -> tuple[float, float]:
    """Beta(α, β) of the agent's accuracy: tier prior, pairs, then outcomes."""
    p = prior(tier)
    alpha = PRIOR_STRENGTH * p + stats.right + stats.outcomes_right
    beta = PRIOR_STRENGTH * (1.0 - p) + max(0.0, stats.pairs - stats.right) + stats.outcomes_wrong
    return alpha, beta


def accuracy(stats: AgentStats, tier: int) -> float:
    alpha, beta = posterior(stats, tier)
    return alpha / (alpha + beta)


def weight(stats: AgentStats, tier: int) -> float:
    """`_weight(*posterior(stats, tier))` inlined, the writer calls it per voice per
    re-score: the same operations in the same order, so the same float (`max(c, x)`
    written `x if x > c else c`, which is what `max` returns, ties included)."""
    p = TIER_PRIOR[5 if tier > 5 else (tier if tier > 0 else 0)]
    right = stats.right
    left = stats.pairs - right
    alpha = PRIOR_STRENGTH * p + right + stats.outcomes_right
    beta = PRIOR_STRENGTH * (1.0 - p) + (left if left > 0.0 else 0.0) + stats.outcomes_wrong
    total = alpha + beta
    mean = alpha / total
    sd = math.sqrt(mean * (1.0 - mean) / (total + 1.0))
    low = mean - LCB_Z * sd
    low = low if low > 1e-9 else 1e-9
    lcb = low if low < 1.0 - 1e-9 else 1.0 - 1e-9
    w = math.log(FALSE_VALUES * lcb / (1.0 - lcb))
    w = w if w > MIN_WEIGHT else MIN_WEIGHT
    return w if w < MAX_WEIGHT else MAX_WEIGHT


def twins(sa: AgentStats, sb: AgentStats, link: LinkStats) -> bool:
    """The clone rule of `truth_model._twins`, on counts: never differ, enough shared
    pairs, and neither mostly says what the others say."""
    if link.differ or link.same < MIN_TWIN_CLAIMS:
        return False
    if link.same < TWIN_OVERLAP * min(sa.pairs, sb.pairs):
        return False
    return all(s.pairs and s.backed < TWIN_BACKED * s.pairs for s in (sa, sb))


def near_twins(link: LinkStats) -> bool:
    """Candidates for the clone rule: never differ on at least MIN_TWIN_CLAIMS pairs."""
    return not link.differ and link.same >= MIN_TWIN_CLAIMS


def dependence(
    sa: AgentStats, sb: AgentStats, acc_a: float, acc_b: float, link: LinkStats
) -> float:
    """P(a and b are dependent): 1 for clones, else ACCU's posterior from the counts."""
    if twins(sa, sb, link):
        return 1.0
    if not link.same:
        return 0.0
    kf = min(float(link.same), max(0.0, link.same_false))
    return _dependent(acc_a, acc_b, link.same - kf, kf, float(link.differ))


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def similar(a: str, b: str, tolerance: float) -> bool:
    """Two value keys support each other: equal, or both numbers within `tolerance`."""
    if a == b:
        return True
    if tolerance <= 0.0:
        return False
    return _close(_number(a), _number(b), tolerance)


def _close(x: float | None, y: float | None, tolerance: float) -> bool:
    if x is None or y is None:
        return False
    return abs(x - y) <= tolerance * max(abs(x), abs(y))


def _number(value_key: str) -> float | None:
    """The value of a canonical `{"type":"Number","value":...}` key, else None."""
    head = '{"type":"Number","value":'
    if not value_key.startswith(head) or not value_key.endswith("}"):
        return None
    try:
        return float(value_key[len(head) : -1])
    except ValueError:
        return None


class Scored(NamedTuple):
    counted: dict[str, float]  # agent -> weight after the copy discount
    probs: dict[str, float]  # value -> probability
    credit: dict[str, float]  # agent -> leave-one-out probability of its value
    dep: dict[tuple[str, str], float]


def score_group(
    speakers: Sequence[tuple[str, str]],
    weights: Mapping[str, float],
    dep: Mapping[tuple[str, str], float],
    tolerance: float = 0.0,
) -> Scored:
    """Value probabilities of one pair, and each speaker's leave-one-out credit.

    Supporters of a value are taken by weight (then id); each keeps
    Π (1 − COPY_RATE × P(dependent on an earlier one)), as in the model. With
    a tolerance, a value's score adds the counted weights of every similar
    value's supporters (TruthFinder's implication between similar facts).
    """
    by_value: dict[str, list[str]] = {}
    for a, v in speakers:
        by_value.setdefault(v, []).append(a)
    partners: dict[str, list[str]] = {}  # only dependent agents: O(k + |dep|), not O(k²)
    for a, b in dep:
        partners.setdefault(a, []).append(b)
        partners.setdefault(b, []).append(a)
    counted: dict[str, float] = {}
    for a, _v in speakers:  # no dependent partner (most agents): keep = 1.0
        if a not in partners:
            counted[a] = weights[a] * 1.0
    for v in sorted(by_value) if partners else ():
        if not any(a in partners for a in by_value[v]):
            continue
        members = sorted(by_value[v], key=lambda m: (-weights[m], m))
        rank = {a: i for i, a in enumerate(members)}
        for a in members:
            if a not in partners:
                continue
            keep = 1.0
            earlier = [b for b in partners[a] if rank.get(b, len(members)) < rank[a]]
            for b in sorted(earlier, key=rank.__getitem__):
                keep *= 1.0 - COPY_RATE * dep[_key(a, b)]
            counted[a] = weights[a] * keep
    values = sorted(by_value)
    own = {v: math.fsum(counted[a] for a in by_value[v]) for v in values}
    score = dict(own)
    if tolerance > 0.0:
        nums = {v: _number(v) for v in values}
        score = {
            v: math.fsum(own[u] for u in values if u == v or _close(nums[u], nums[v], tolerance))
            for v in values
        }
    top = max(score.values(), default=0.0)
    mass = {v: math.exp(score[v] - top) for v in values}
    total = math.fsum(mass.values()) + _unseen(len(values)) * math.exp(-top)
    probs = {v: mass[v] / total for v in values}
    credit: dict[str, float] = {}
    for v in values:
        if not partners or not any(a in partners for a in by_value[v]):
            for a in by_value[v]:
                without = mass[v] * math.exp(-counted[a])
                credit[a] = without / (total - mass[v] + without)
            continue
        order = {a: i for i, a in enumerate(by_value[v])}
        for a in by_value[v]:
            removed = counted[a]
            mine = [b for b in partners.get(a, ()) if b in order]  # same value
            for b in sorted(mine, key=order.__getitem__):
                removed += counted[b] * dep[_key(a, b)]
            without = mass[v] * math.exp(-removed)
            credit[a] = without / (total - mass[v] + without)
    return Scored(counted, probs, credit, dict(dep))


def backed(speakers: Sequence[tuple[str, str]], near: set[tuple[str, str]]) -> dict[str, bool]:
    """Per speaker: is its value the most common among the others (ties included),
    leaving out its near-twins, as `truth_model._backed_outside` asks of a family?"""
    counts: dict[str, int] = {}
    for _a, v in speakers:
        counts[v] = counts.get(v, 0) + 1
    value_of = dict(speakers)
    near_of: dict[str, list[str]] = {}
    for a, b in near:
        near_of.setdefault(a, []).append(b)
        near_of.setdefault(b, []).append(a)
    # the others' counts are `counts` less one at the speaker's own value and one at
    # each near-twin's: the best of the rest is the first value of `ranked` not
    # decremented (O(speakers + near), not O(speakers × values))
    ranked = sorted(((c, v) for v, c in counts.items()), reverse=True)
    first = ranked[0][0] if ranked else 0
    second = ranked[1][0] if len(ranked) > 1 else 0
    out: dict[str, bool] = {}
    for a, va in speakers:
        near_a = near_of.get(a)
        if not near_a:
            own = counts[va] - 1
            rest = second if counts[va] == first else first
            top = own if own > rest else rest
            out[a] = bool(top) and own == top
            continue
        less = {va: 1}
        for b in near_a:
            if b in value_of:
                u = value_of[b]
                less[u] = less.get(u, 0) + 1
        top = max(counts[u] - d for u, d in less.items())
        for c, u in ranked:
            if u not in less:
                top = c if c > top else top
                break
        own = counts[va] - less[va]
        out[a] = bool(top) and own == top
    return out
