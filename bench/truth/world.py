"""Seeded synthetic worlds with known truth (issue 18).

A world is a set of (subject, predicate) pairs, each with a hidden true value
drawn from a small domain, and agents that claim values:

* honest **sources** with a hidden reliability r (they state the truth with
  probability r, else a uniformly drawn false value) and a tier that follows r
  only roughly (rank of r + noise: some Regulatory sources are poor, some
  Anecdotal ones excellent); Regulatory and Clinical sources are registered
  by the operator (signed `agent_tier` records), the others stay unregistered;
* `copiers`: poor originals, each repeated by several copiers (errors included);
* `spam`: a family of fresh agents that all push one false value on a quarter of
  the pairs, newest and most confident, self-declared Regulatory (capped to
  Observational by the server: they are not registered);
* `drift`: on half of the pairs the truth changes at T_CHANGE; every source
  speaks once before and once after it, and lagging sources repeat their old
  value after the change;
* in every world some agreeing claims are **co-signed** and honest and
  dishonest voters vote on assertions.

Everything is drawn from `random.Random(f"{family}:{seed}")` and the keys are
derived from the seed, so a world is the same bytes every time (Ed25519
signatures are deterministic).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from stemedb.crypto import public_key_hex
from stemedb.signing import sign_record

FAMILIES = ("independent", "copiers", "spam", "spam_partial", "drift")
TIERS = ("Regulatory", "Clinical", "Observational", "Expert", "Community", "Anecdotal")
T0 = 1_700_000_000
SPAN = 1_000_000  # seconds of claim time a world covers
T_CHANGE = T0 + SPAN // 2
T_END = T0 + SPAN
SPAM_PARTIAL_COVERAGE = 0.7  # `spam_partial`: share of the targets each member pushes
COPY_SHARE = 0.85  # share of an original's claims a copier repeats
NOW = T_END + 10 * SPAN  # the signing clock (timestamps are always given)


@dataclass(frozen=True)
class Size:
    subjects: int = 30
    predicates: int = 3
    domain: int = 8  # values per pair
    sources: int = 16
    coverage: float = 0.5  # chance a source speaks on a pair
    copy_originals: int = 2
    copiers_each: int = 4
    spam_agents: int = 24
    spam_share: float = 0.25  # share of pairs the spam family targets
    voters: int = 6  # honest voters, and as many dishonest ones
    vote_share: float = 0.3
    cosign_rate: float = 0.25


@dataclass(frozen=True)
class Query:
    subject: str
    predicate: str
    as_of: int
    truth: str  # the true value (the `value` of a Text object)


@dataclass
class Claim:
    """One generated claim before signing (several signers when co-signed)."""

    agents: list[str]  # agent names, first signer first
    subject: str
    predicate: str
    value: str
    confidence: float
    timestamp: int
    tier: str


@dataclass
class World:
    family: str
    seed: int
    prefix: str
    keys: dict[str, bytes] = field(default_factory=dict)  # agent name -> seed
    registered: dict[str, str] = field(default_factory=dict)  # agent name -> max tier
    claims: list[Claim] = field(default_factory=list)
    votes: list[tuple[str, int, float, int]] = field(default_factory=list)  # voter, claim, w, ts
    queries: list[Query] = field(default_factory=list)
    hidden: dict[str, float] = field(default_factory=dict)  # agent name -> reliability

    def key(self, name: str) -> bytes:
        if name not in self.keys:
            digest = hashlib.sha3_256(f"{self.family}:{self.seed}:{name}".encode()).digest()
            self.keys[name] = digest
        return self.keys[name]

    def agent_id(self, name: str) -> str:
        return public_key_hex(self.key(name))


def _false(rng: random.Random, truth: int, domain: int) -> int:
    value = rng.randrange(domain - 1)
    return value if value < truth else value + 1


def _tiers(rng: random.Random, reliability: dict[str, float]) -> dict[str, str]:
    """Tier by the rank of reliability + noise: correlated, imperfectly."""
    noisy = sorted(reliability, key=lambda n: -(reliability[n] + rng.gauss(0.0, 0.15)))
    cut = [2, 5, 8, 11, 14]  # 2 Regulatory, 3 Clinical, 3 Observational, 3 Expert, 3 Community
    out = {}
    for rank, name in enumerate(noisy):
        out[name] = TIERS[sum(1 for c in cut if rank >= c * len(noisy) // 16)]
    return out


def generate(family: str, seed: int, size: Size = Size()) -> World:
    """The world of `family` for `seed` (see the module docstring)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown world family {family!r}; one of {', '.join(FAMILIES)}")
    rng = random.Random(f"{family}:{seed}")
    world = World(family, seed, f"truth/{family}/s{seed}")
    pairs = [
        (f"{world.prefix}/e{s}", f"p{p}")
        for s in range(size.subjects)
        for p in range(size.predicates)
    ]
    truth = {pair: rng.randrange(size.domain) for pair in pairs}
    changed = {pair for pair in pairs if family == "drift" and rng.random() < 0.5}
    new_truth = {p: _false(rng, truth[p], size.domain) for p in sorted(changed)}
    sources = [f"src{i}" for i in range(size.sources)]
    rel = {name: round(rng.uniform(0.4, 0.95), 3) for name in sources}
    tier = _tiers(rng, rel)
    lagging = {n for n in sources if family == "drift" and rng.random() < 0.3}
    world.hidden.update(rel)
    world.registered.update({n: t for n, t in tier.items() if t in ("Regulatory", "Clinical")})

    def say(name: str, pair: tuple[str, str], value: int, ts: int, t: str) -> None:
        conf = round(rng.uniform(0.5, 1.0), 2)
        world.claims.append(Claim([name], pair[0], pair[1], f"v{value}", conf, ts, t))

    def claim_value(name: str, right: int) -> int:
        return right if rng.random() < rel[name] else _false(rng, right, size.domain)

    for pair in pairs:
        for name in sources:
            if rng.random() >= size.coverage:
                continue
            if family == "drift":
                before = claim_value(name, truth[pair])
                say(name, pair, before, T0 + rng.randrange(SPAN // 2), tier[name])
                after_truth = new_truth.get(pair, truth[pair])
                after = before if name in lagging else claim_value(name, after_truth)
                say(name, pair, after, T_CHANGE + 1 + rng.randrange(SPAN // 2 - 1), tier[name])
            else:
                say(
                    name, pair, claim_value(name, truth[pair]), T0 + rng.randrange(SPAN), tier[name]
                )
    if family == "copiers":
        _add_copiers(world, rng, pairs, truth, size)
    _cosign(world, rng, size)
    if family in ("spam", "spam_partial"):
        _add_spam(world, rng, pairs, truth, size)
    _distinct(world)
    _add_votes(world, rng, truth, new_truth, size)
    for pair in pairs:
        if family == "drift":
            world.queries.append(Query(pair[0], pair[1], T_CHANGE - 1, f"v{truth[pair]}"))
            world.queries.append(
                Query(pair[0], pair[1], T_END, f"v{new_truth.get(pair, truth[pair])}")
            )
        else:
            world.queries.append(Query(pair[0], pair[1], T_END, f"v{truth[pair]}"))
    return world


def _add_copiers(
    world: World,
    rng: random.Random,
    pairs: list[tuple[str, str]],
    truth: dict[tuple[str, str], int],
    size: Size,
) -> None:
    """Poor originals (r ≈ 0.35) and their copiers, who repeat COPY_SHARE of its claims,
    errors included, and make their own claim (right half the time) on the rest."""
    for k in range(size.copy_originals):
        original = f"orig{k}"
        r = round(rng.uniform(0.3, 0.4), 3)
        world.hidden[original] = r
        for pair in pairs:
            if rng.random() >= 0.8:
                continue
            value = truth[pair] if rng.random() < r else _false(rng, truth[pair], size.domain)
            ts = T0 + rng.randrange(SPAN - 10_000)
            conf = round(rng.uniform(0.5, 1.0), 2)
            world.claims.append(Claim([original], *pair, f"v{value}", conf, ts, "Community"))
            for j in range(size.copiers_each):
                name = f"copy{k}_{j}"
                world.hidden[name] = r
                delay = 1 + rng.randrange(9_000)
                tier = TIERS[3 + j % 3]
                said = value
                if rng.random() >= COPY_SHARE:  # its own claim this time, right half the time
                    said = (
                        truth[pair] if rng.random() < 0.5 else _false(rng, truth[pair], size.domain)
                    )
                world.claims.append(Claim([name], *pair, f"v{said}", conf, ts + delay, tier))


def _cosign(world: World, rng: random.Random, size: Size) -> None:
    """Merge some pairs of agreeing single claims into one co-signed claim."""
    by_key: dict[tuple[str, str, str, int], list[int]] = {}
    for i, c in enumerate(world.claims):
        if c.agents[0].startswith("src"):
            by_key.setdefault(
                (c.subject, c.predicate, c.value, c.timestamp >= T_CHANGE), []
            ).append(i)
    drop: set[int] = set()
    for key in sorted(by_key):
        group = by_key[key]
        if len(group) >= 2 and rng.random() < size.cosign_rate:
            a, b = rng.sample(group, 2)
            first = world.claims[a]
            first.agents = [first.agents[0], world.claims[b].agents[0]]
            first.timestamp = max(first.timestamp, world.claims[b].timestamp)
            drop.add(b)
    world.claims = [c for i, c in enumerate(world.claims) if i not in drop]


def _add_spam(
    world: World,
    rng: random.Random,
    pairs: list[tuple[str, str]],
    truth: dict[tuple[str, str], int],
    size: Size,
) -> None:
    """A family of fresh agents pushing one false value per targeted pair, newest and surest."""
    targets = [p for p in pairs if rng.random() < size.spam_share]
    for pair in targets:
        value = _false(rng, truth[pair], size.domain)
        for j in range(size.spam_agents):
            if world.family == "spam_partial" and rng.random() >= SPAM_PARTIAL_COVERAGE:
                continue  # each member skips some targets: no two claim sets alike
            name = f"spam{j}"
            world.hidden[name] = 0.0
            ts = T_END - rng.randrange(1_000)
            world.claims.append(Claim([name], *pair, f"v{value}", 1.0, ts, "Regulatory"))


def _distinct(world: World) -> None:
    """Claims are content-addressed (signatures aside): two agents saying the same thing
    at the same second would be one record, and the second agent's voice lost. Move
    such a claim one second later (still within the world's span and drift half)."""
    seen: set[tuple[str, str, str, float, str, int]] = set()
    for c in world.claims:
        while (c.subject, c.predicate, c.value, c.confidence, c.tier, c.timestamp) in seen:
            c.timestamp += 1 if c.timestamp < T_END and c.timestamp != T_CHANGE - 1 else -1
        seen.add((c.subject, c.predicate, c.value, c.confidence, c.tier, c.timestamp))


def _add_votes(
    world: World,
    rng: random.Random,
    truth: dict[tuple[str, str], int],
    new_truth: dict[tuple[str, str], int],
    size: Size,
) -> None:
    """At a random time, honest voters up-vote a claim then made that is true then
    (85 %, else a false one); dishonest voters up-vote a false one."""
    by_pair: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(world.claims):
        by_pair.setdefault((c.subject, c.predicate), []).append(i)
    for pair in sorted(by_pair):
        if rng.random() >= size.vote_share:
            continue
        for v in range(size.voters):
            for voter, honest in ((f"voter{v}", True), (f"liar{v}", False)):
                ts = T0 + rng.randrange(SPAN)
                now_true = new_truth[pair] if pair in new_truth and ts >= T_CHANGE else truth[pair]
                made = [i for i in by_pair[pair] if world.claims[i].timestamp <= ts]
                right = [i for i in made if world.claims[i].value == f"v{now_true}"]
                wrong = [i for i in made if i not in right]
                pool = right if honest and right and rng.random() < 0.85 else wrong
                if pool:
                    world.votes.append((voter, rng.choice(pool), 1.0, ts))


def signed_records(world: World) -> list[dict[str, Any]]:
    """The operator's registrations, then every claim, signed (votes follow the hashes)."""
    operator = world.key("operator")
    records: list[dict[str, Any]] = []
    for name in sorted(world.registered):
        fields = {
            "agent_id": world.agent_id(name),
            "max_tier": world.registered[name],
            "name": name,
            "timestamp": T0,
        }
        records.append(sign_record("agent_tier", fields, [operator], now_s=NOW))
    for c in world.claims:
        unsigned = {
            "subject": c.subject,
            "predicate": c.predicate,
            "object": c.value,
            "confidence": c.confidence,
            "source_class": c.tier,
            "timestamp": c.timestamp,
        }
        records.append(
            sign_record("assertion", unsigned, [world.key(a) for a in c.agents], now_s=NOW)
        )
    return records


def vote_records(world: World, claim_hashes: list[str]) -> list[dict[str, Any]]:
    """The world's votes, signed, on the stored hashes of its claims (in claim order)."""
    out = []
    for voter, index, weight, ts in world.votes:
        fields = {"assertion_hash": claim_hashes[index], "weight": weight, "timestamp": ts}
        out.append(sign_record("vote", fields, [world.key(voter)], now_s=NOW))
    return out
