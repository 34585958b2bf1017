"""The evidence the `truth` lens learns from, read before it runs (lenses stay pure).

For one (subject, predicate) group: every signer of its candidates; the pairs
of each signer's newest claims (at most PER_AGENT); then every visible claim
on those pairs (at most MAX_PAIRS pairs, MAX_CLAIMS claims), at their
effective (capped) tiers with their co-signers, and the signed up-votes on
all of these assertions (each voter's latest). All of it under the query's
`as_of` and `known_at`, in the query's snapshot, so the answer at T uses only
what was known at T. The limits keep a query's cost bounded whatever the
journal's size; `bounded` tells the lens (and the reader) when one applied.

At the head (a query with neither `as_of` nor `known_at`) none of that is
read: the reliability table (store/truth_state.py, maintained from the
journal in the same transaction as every write) already holds what the
group's agents earned, and only their rows and links are read. A query with
`as_of` or `known_at` always takes the path above, even when T is after every
record, so its answer never changes when later records arrive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import apsw

from stemedb.lenses.candidate import TruthClaim, TruthEvidence, TruthVote
from stemedb.lenses.truth_online import DEFAULT_TOLERANCE, TruthTable
from stemedb.service import tier_policy
from stemedb.store import reliability, truth_state
from stemedb.store.candidates import CandidateFilter, CandidateRow, iter_groups

PER_AGENT = 200  # newest claims read per agent
MAX_AGENTS = 100  # agents of one group whose history is read
MAX_PAIRS = 400  # other pairs read
MAX_CLAIMS = 20_000  # claims read in all
LIMITS = {
    "per_agent": PER_AGENT,
    "agents": MAX_AGENTS,
    "pairs": MAX_PAIRS,
    "claims": MAX_CLAIMS,
}


def _signers(row: CandidateRow, cosigners: Mapping[bytes, tuple[bytes, ...]]) -> tuple[str, ...]:
    if row.agent_id is None:
        return (f"unsigned:{row.hash.hex()}",)
    extra = tuple(a.hex() for a in cosigners.get(row.hash, ()) if a != row.agent_id)
    return (row.agent_id.hex(), *extra)


@dataclass
class Memo:
    """Reads already done by one query (one snapshot): a subtree query asks for
    the same agents' pairs and the same pairs' claims group after group."""

    pairs_of: dict[bytes, list[tuple[str, str]]] = field(default_factory=dict)
    claims_of: dict[tuple[str, str], tuple[list[TruthClaim], list[TruthVote]]] = field(
        default_factory=dict
    )
    tolerance: float = DEFAULT_TOLERANCE  # the query's `truth_tolerance`


def _votes(
    conn: apsw.Connection, f: CandidateFilter, rows: Sequence[CandidateRow]
) -> list[TruthVote]:
    """Signed up-votes on these assertions (each voter's latest), as backing for their values."""
    by_hash = {r.hash: r for r in rows}
    out = []
    for target, voter, weight, ts in reliability.votes_on(
        conn, by_hash, as_of=f.as_of, known_at_ms=f.known_at_ms
    ):
        if weight > 0.0:
            r = by_hash[target]
            pair = f"{r.subject}\x00{r.predicate}"
            vote = TruthVote(pair, r.value_key, voter.hex(), min(1.0, weight), ts, r.hash.hex())
            out.append(vote)
    return out


def _pair_claims(
    conn: apsw.Connection,
    f: CandidateFilter,
    pair: tuple[str, str],
    policy: tier_policy.TierPolicy,
) -> tuple[list[TruthClaim], list[TruthVote]]:
    """Every visible claim on one pair, at its capped tier, with its co-signers; its up-votes."""
    one = CandidateFilter(
        subjects=(pair[0],),
        predicate=pair[1],
        as_of=f.as_of,
        known_at_ms=f.known_at_ms,
        include_superseded=f.include_superseded,
    )
    rows: list[CandidateRow] = []
    for _s, _p, group in iter_groups(conn, one):
        rows.extend(r for r in group if f.include_superseded or not r.superseded)
    if not rows:
        return [], []
    caps = policy.caps(conn, rows, f.known_at_ms)
    cosigners = reliability.cosigners_of(conn, (r.hash for r in rows))
    out = []
    for r in rows:
        cap = caps.get(r.hash)
        tier = max(r.tier, cap.allowed) if cap is not None else r.tier
        key = f"{r.subject}\x00{r.predicate}"
        out.append(
            TruthClaim(key, r.value_key, _signers(r, cosigners), tier, r.timestamp, r.hash.hex())
        )
    return out, _votes(conn, f, rows)


def gather(
    conn: apsw.Connection,
    f: CandidateFilter,
    rows: Sequence[CandidateRow],
    group_cosigners: Mapping[str, tuple[str, ...]],
    policy: tier_policy.TierPolicy,
    memo: Memo | None = None,
) -> TruthEvidence:
    """The neighbourhood of one group (see the module docstring).

    `memo` carries the reads of earlier groups of the same query (same
    snapshot, same filter), so each agent and each pair is read once per query.
    """
    memo = memo if memo is not None else Memo()
    agents = {r.agent_id for r in rows if r.agent_id is not None}
    agents.update(bytes.fromhex(a) for extra in group_cosigners.values() for a in extra)
    ordered = sorted(agents)
    if f.as_of is None and f.known_at_ms is None:
        return _from_table(conn, f, rows, agents, memo.tolerance)
    bounded = len(ordered) > MAX_AGENTS
    here = {(r.subject, r.predicate) for r in rows}
    pairs: dict[tuple[str, str], None] = {}
    for agent in ordered[:MAX_AGENTS]:
        if agent not in memo.pairs_of:
            memo.pairs_of[agent] = reliability.recent_pairs(
                conn, agent, as_of=f.as_of, known_at_ms=f.known_at_ms, limit=PER_AGENT
            )
        for pair in memo.pairs_of[agent]:
            if pair not in here:
                pairs.setdefault(pair, None)
    chosen = sorted(pairs)
    if len(chosen) > MAX_PAIRS:
        bounded = True
        chosen = chosen[:MAX_PAIRS]
    claims: list[TruthClaim] = []
    votes = _votes(conn, f, rows)  # on the group's own assertions
    for pair in chosen:
        if pair not in memo.claims_of:
            memo.claims_of[pair] = _pair_claims(conn, f, pair, policy)
        pair_claims, pair_votes = memo.claims_of[pair]
        claims.extend(pair_claims)
        votes.extend(pair_votes)
        if len(claims) >= MAX_CLAIMS:
            bounded = True
            claims = claims[:MAX_CLAIMS]
            break
    return TruthEvidence(
        tuple(claims), tuple(votes), bounded, dict(LIMITS), tolerance=memo.tolerance
    )


def _from_table(
    conn: apsw.Connection,
    f: CandidateFilter,
    rows: Sequence[CandidateRow],
    agents: set[bytes],
    tolerance: float,
) -> TruthEvidence:
    """The group's votes, and the table's rows for its signers and voters."""
    votes = _votes(conn, f, rows)
    everyone = agents | {bytes.fromhex(v.voter) for v in votes}
    stats = truth_state.agent_rows(conn, everyone)
    links = truth_state.links_among(conn, everyone)
    table = TruthTable(
        {a.hex(): s for a, s in stats.items()},
        {(a.hex(), b.hex()): link for (a, b), link in links.items()},
    )
    return TruthEvidence((), tuple(votes), False, {}, table=table, tolerance=tolerance)
