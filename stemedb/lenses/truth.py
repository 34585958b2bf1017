"""`truth`: the value most likely true, with each agent's reliability learned from the data.

Every other lens follows a fixed rule (newest, highest tier, most agents).
This one learns how often each agent is right from everything the group's
agents said on other pairs (`LensContext.truth`, read by the service before
the lens runs, under the same `as_of` / `known_at`), and discounts agents
that look like copies of one another; the method is in `truth_model.py`.

One voice per agent and pair: its newest assertion (as in `consensus`); every
co-signer is a voice. An unsigned assertion is a voice of its own with only
the tier prior to go on. An agent that made no claim on a pair but up-voted
one of its assertions backs that value (votes are evidence too, and voters
earn a reliability like everyone else). The winner is the value with the highest
probability, represented by its newest counted assertion; the resolution
confidence is that probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from stemedb.lenses import truth_online as online
from stemedb.lenses.base import EMPTY, Outcome, Scored, fmt_num, show_value, signers
from stemedb.lenses.candidate import Candidate, LensContext, TruthClaim
from stemedb.lenses.scoring import tie_value, total_key
from stemedb.lenses.truth_model import Estimate, Model, estimate
from stemedb.lenses.truth_online import NEW_AGENT, TruthTable

SEP = "\x00"
VOTER_TIER = 5  # Anecdotal: the prior of an agent known only by its votes


def _voices(
    ordered: Sequence[Candidate], ctx: LensContext
) -> tuple[dict[str, str], dict[str, int], dict[int, list[str]], dict[int, Candidate]]:
    """Newest claim of each agent of the group: agent → value, agent → tier, speakers by position.

    Also, for each position whose every signer speaks through a newer
    assertion, that newer assertion.
    """
    value: dict[str, str] = {}
    tier: dict[str, int] = {}
    speaks: dict[int, list[str]] = {}
    at: dict[str, int] = {}
    silenced: dict[int, Candidate] = {}
    for i, c in enumerate(ordered):
        who = signers(c, ctx) or (f"unsigned:{c.hash}",)
        for agent in who:
            if agent not in value:
                value[agent] = c.value_key
                tier[agent] = c.tier
                at[agent] = i
                speaks.setdefault(i, []).append(agent)
        if i not in speaks:
            silenced[i] = ordered[at[who[0]]]
    return value, tier, speaks, silenced


def _current(
    ctx: LensContext, claims: Sequence[TruthClaim], pair: str, group_hashes: set[str]
) -> set[str]:
    """Assertions that are still the newest of one of their signers on their pair."""
    if ctx.truth is None or not ctx.truth.votes:
        return set()
    newest: dict[tuple[str, str], str] = {}
    # the order `_model` reads claims in: newest first, then the tie-break chain
    for claim in sorted(claims, key=lambda c: (c.pair, -c.timestamp, c.tier, c.hash)):
        if claim.pair != pair:
            for agent in claim.signers:
                newest.setdefault((claim.pair, agent), claim.hash)
    return set(newest.values()) | group_hashes


def _model(
    pair: str,
    group: dict[str, str],
    group_tier: dict[str, int],
    ctx: LensContext,
    group_hashes: set[str],
) -> tuple[Model, Estimate]:
    """The pairs → {agent: value} the model learns from: the group plus its neighbourhood."""
    pairs: dict[str, dict[str, str]] = {pair: dict(group)}
    tiers = dict(group_tier)
    claims = ctx.truth.claims if ctx.truth is not None else ()
    # newest first within each pair, so an agent's first claim seen is its newest
    for claim in sorted(claims, key=lambda c: (c.pair, -c.timestamp, c.tier, c.hash)):
        if claim.pair == pair:
            continue  # the group itself comes from the candidates
        speakers = pairs.setdefault(claim.pair, {})
        for agent in claim.signers:
            if agent not in speakers:
                speakers[agent] = claim.value_key
            tiers[agent] = min(tiers.get(agent, claim.tier), claim.tier)
    # An up-vote backs the value voted on: the voter's voice on that pair, unless it
    # made a claim there itself (its newest vote per pair; on this pair only for
    # values a counted candidate holds). A voter seen nowhere else: tier prior Anecdotal.
    # A vote on an assertion its signers have since revised (a newer claim of theirs
    # on the pair) backs a stale value, and no longer counts.
    votes = ctx.truth.votes if ctx.truth is not None else ()
    held = set(group.values())
    current = _current(ctx, claims, pair, group_hashes)
    for vote in sorted(votes, key=lambda v: (v.pair, -v.timestamp, v.voter, v.value_key)):
        if vote.pair == pair and vote.value_key not in held:
            continue
        if vote.hash and vote.hash not in current:
            continue
        speakers = pairs.setdefault(vote.pair, {})
        if vote.voter not in speakers:
            speakers[vote.voter] = vote.value_key
            tiers.setdefault(vote.voter, VOTER_TIER)
    return estimate(pairs, tiers)


def _agent_line(agent: str, est: Estimate, counted: float) -> str:
    own = est.weight[agent]
    text = (
        f"{agent[:12]} (reliability {fmt_num(round(est.accuracy[agent], 4))} over "
        f"{est.evidence[agent]} pairs, weight {fmt_num(round(own, 4))}"
    )
    if own > 0 and counted < own * 0.999:
        why = "as a likely copy" if counted < own * 0.9 else "for possible copying"
        text += f", counted ×{fmt_num(round(counted / own, 3))} {why}"
    return text + ")"


def _table_estimate(
    speakers: Sequence[tuple[str, str]], tiers: dict[str, int], table: TruthTable
) -> Estimate:
    """Accuracy, weight and dependence of the group's speakers, from the table's counts."""
    stats = {a: table.agents.get(a, NEW_AGENT) for a, _v in speakers}
    acc = {a: online.accuracy(stats[a], tiers[a]) for a in stats}
    weight = {a: online.weight(stats[a], tiers[a]) for a in stats}
    dep: dict[tuple[str, str], float] = {}
    value = dict(speakers)
    for (a, b), link in sorted(table.links.items()):  # agents with no link are independent
        if a in value and b in value and value[a] == value[b]:
            d = online.dependence(stats[a], stats[b], acc[a], acc[b], link)
            if d > 1e-6:
                dep[(a, b)] = d
    evidence = {a: stats[a].pairs for a in stats}
    prior = {a: online.prior(tiers[a]) for a in stats}
    return Estimate(acc, weight, evidence, prior, dep, (0, 0))


def _table_voters(
    group: dict[str, str], ctx: LensContext, current: set[str]
) -> list[tuple[str, str]]:
    """Up-votes on the group's counted assertions, each voter's newest, not by a speaker."""
    held = set(group.values())
    out: dict[str, str] = {}
    votes = ctx.truth.votes if ctx.truth is not None else ()
    for vote in sorted(votes, key=lambda v: (-v.timestamp, v.voter, v.value_key)):
        if vote.voter in group or vote.voter in out or vote.value_key not in held:
            continue
        if vote.hash and vote.hash not in current:
            continue
        out[vote.voter] = vote.value_key
    return sorted(out.items())


def truth(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """The most probable value given learned agent reliabilities (see module docstring)."""
    if not candidates:
        return EMPTY
    ordered = sorted(candidates, key=total_key)
    first = ordered[0]
    pair = f"{first.subject}{SEP}{first.predicate}"
    group, group_tier, speaks, silenced = _voices(ordered, ctx)
    current = {ordered[i].hash for i in speaks}  # the group's counted assertions
    table = ctx.truth.table if ctx.truth is not None else None
    tolerance = ctx.truth.tolerance if ctx.truth is not None else 0.0
    if isinstance(table, TruthTable):
        voters = _table_voters(group, ctx, current)
        speakers = sorted([*group.items(), *voters])
        tiers = dict(group_tier)
        for a, _v in voters:
            tiers[a] = min(VOTER_TIER, table.agents.get(a, NEW_AGENT).tier)
        est = _table_estimate(speakers, tiers, table)
        pairs_seen, voices_seen = 1, len(speakers)
    else:
        model, est = _model(pair, group, group_tier, ctx, current)
        speakers = next(s for p, s in model.pairs if p == pair)  # the group and its voters
        voters = [(a, v) for a, v in speakers if a not in group]
        pairs_seen, voices_seen = len(model.pairs), sum(len(s) for _, s in model.pairs)
    scored = online.score_group(speakers, est.weight, est.dependence, tolerance)
    counted, probs = scored.counted, scored.probs
    newest: dict[str, Candidate] = {}
    for i, c in enumerate(ordered):
        if i in speaks:
            newest.setdefault(c.value_key, c)
    best = sorted(probs, key=lambda v: (-tie_value(probs[v]), total_key(newest[v])))[0]
    winner = newest[best]
    lines = []
    for i, c in enumerate(ordered):
        if i in silenced:
            newer = silenced[i].hash[:12]
            why = f"not counted: its signers speak through the newer assertion {newer}"
            lines.append(Scored(c, 0.0, why))
            continue
        who = "; ".join(_agent_line(a, est, counted[a]) for a in speaks[i])
        why = f"value {show_value(c.value_key)} probability {fmt_num(round(probs[c.value_key], 6))}"
        why += f"; voice of {who}"
        backing = [a for a, v in voters if v == c.value_key]
        if backing:
            shown = "; ".join(_agent_line(a, est, counted[a]) for a in backing[:3])
            more = f" and {len(backing) - 3} more" if len(backing) > 3 else ""
            why += f"; up-voted by {len(backing)} agent(s): {shown}{more}"
        similar = [
            v for v in probs if v != c.value_key and online.similar(v, c.value_key, tolerance)
        ]
        if similar:
            why += f"; supported by {len(similar)} similar value(s) within tolerance {tolerance}"
        if c is winner:
            why += "; newest counted assertion of the most probable value"
        lines.append(Scored(c, probs[c.value_key], why))
    extra = _extra(est, {a for a, _ in speakers}, ctx, pairs_seen, voices_seen, table)
    # with a tolerance: the chance the truth lies within it of the winner
    near = math.fsum(p for v, p in probs.items() if online.similar(v, best, tolerance))
    return Outcome(winner, min(1.0, near), tuple(lines), extra=extra)


def _extra(
    est: Estimate,
    group: set[str],
    ctx: LensContext,
    pairs_seen: int,
    voices_seen: int,
    table: object,
) -> dict[str, Any]:
    agents = {
        a: {
            "reliability": round(est.accuracy[a], 6),
            "weight": round(est.weight[a], 6),
            "evidence": est.evidence[a],
            "prior": est.prior[a],
        }
        for a in sorted(group)
    }
    copying = [
        {"agents": [a, b], "probability": round(p, 6)}
        for (a, b), p in sorted(est.dependence.items())
        if p >= 0.5 and (a in group or b in group)
    ]
    evidence = ctx.truth
    return {
        "truth": {
            "agents": agents,
            "iterations": list(est.iterations),
            "source": "table" if table is not None else "neighbourhood",
            "tolerance": evidence.tolerance if evidence is not None else 0.0,
            "pairs": pairs_seen,  # pairs learned from at query time (the table: only the group)
            "claims": voices_seen,  # voices: claims and votes
            "bounded": bool(evidence.bounded) if evidence is not None else False,
            "limits": dict(evidence.limits) if evidence is not None else {},
            "copying": copying[:50],
        }
    }
