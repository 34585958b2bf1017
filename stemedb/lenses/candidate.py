"""The value types every lens consumes and produces.

They are plain immutable values so the service layer can build them from
store rows and serialise the results without the lens package knowing about
either: lenses stay pure functions of these values. The per-candidate ones
(Candidate, Explanation) are NamedTuples: a query builds dozens of them, and a
frozen dataclass pays an `object.__setattr__` per field (4 % of a query).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Candidate(NamedTuple):
    """One assertion competing for a (subject, predicate) group."""

    hash: str  # 64 lower-case hex, the assertion id
    subject: str
    predicate: str
    value_key: str  # canonical JSON of the tagged object
    confidence: float  # the author's confidence in [0, 1]
    tier: int  # 0 (Regulatory) .. 5 (Anecdotal)
    timestamp: int  # claim time, Unix seconds
    agent_id: str | None  # first signer (64 hex), None when unsigned
    lifecycle: str  # Proposed | UnderReview | Approved | Deprecated | Rejected
    epoch: str | None  # epoch id (64 hex) or None
    superseded: bool = False  # target of a visible supersession record


@dataclass(frozen=True)
class LensContext:
    """Everything a lens may look at besides the candidates, fetched beforehand.

    Keeping lookups (votes, trust, epochs) out of the lens makes resolution a
    pure function: the same context and candidates always give the same result.
    """

    at_s: float  # instant decay and trust are measured at (as_of, else known_at, else now)
    decay: str | float | None = None  # None: no decay; "tier"; or half-life days
    include_superseded: bool = False  # True: superseded candidates compete too
    vote_totals: Mapping[str, float] = field(default_factory=dict)  # hash -> total
    trust: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # agent -> (score, t)
    superseded_epochs: frozenset[str] | None = frozenset()  # None: unreadable, fail open
    inner: str = "recency"  # inner lens of `epoch`
    # assertion hash -> its signers after the first (agent ids, 64 hex); only
    # co-signed assertions appear. Lenses that count agents count these too.
    cosigners: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # `min_agent_age` (seconds): in the agent-counting lenses an agent first
    # seen less than this long before `at_s` has no voice, so a burst of fresh
    # keys cannot outvote established agents. None: every agent counts.
    min_agent_age: float | None = None
    # agent id (64 hex) -> first time the journal carried its signature (Unix
    # seconds); an agent absent here counts as never seen. Read only when
    # min_agent_age is set.
    agent_first_seen: Mapping[str, float] = field(default_factory=dict)
    # agent id (64 hex) -> its cluster's label: agents one writer API key
    # introduced (store/agent_clusters.py). Their near-duplicate claims count
    # once (lenses/dedupe.py); an agent absent here is a cluster of its own.
    clusters: Mapping[str, str] = field(default_factory=dict)
    # assertion hash -> the retraction of the source it cites (a JSON-ready dict
    # with at least `message`), as known at the query's known_at (lenses/retraction.py).
    retracted: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    exclude_retracted: bool = False  # True: those candidates do not compete
    # `truth`: the other claims of this group's agents and of their pairs, read
    # before the lens runs (service/truth_inputs.py). None: only the group.
    truth: TruthEvidence | None = None


class TruthClaim(NamedTuple):
    """An assertion on another (subject, predicate) pair, evidence for the `truth` lens.

    The truth lens learns each agent's reliability from everything the agents
    of a group said elsewhere; the service reads these (under the query's time
    filters and tier caps) before the lens runs, so the lens stays pure.
    """

    pair: str  # subject + "\x00" + predicate
    value_key: str
    signers: tuple[str, ...]  # agent ids (64 hex), first signer first
    tier: int  # effective (capped) tier
    timestamp: int
    hash: str


class TruthVote(NamedTuple):
    """An agent's latest positive vote on an assertion: it backs that value of that pair."""

    pair: str  # subject + "\x00" + predicate
    value_key: str
    voter: str  # agent id (64 hex)
    weight: float  # in (0, 1]
    timestamp: int
    hash: str = ""  # the assertion voted on (64 hex)


@dataclass(frozen=True)
class TruthEvidence:
    """The neighbourhood the `truth` lens learns reliabilities from (read beforehand)."""

    claims: tuple[TruthClaim, ...] = ()
    votes: tuple[TruthVote, ...] = ()  # on the group's and the neighbourhood's assertions
    bounded: bool = False  # True: a read limit cut the neighbourhood short
    limits: Mapping[str, int] = field(default_factory=dict)  # the limits applied
    # At the head: the reliability table's rows for the group's agents (lenses/truth_online.py,
    # store/truth_state.py); None: learn from `claims` instead. And the numeric tolerance.
    table: Any = None
    tolerance: float = 0.0


class Explanation(NamedTuple):
    """One candidate's score and the one-line reason for its place."""

    hash: str
    score: float
    excluded: str | None  # None | superseded | epoch_superseded | tier | lifecycle
    why: str
    superseded: bool = False  # target of a visible supersession (competing or not)


@dataclass(frozen=True)
class LensResult:
    """The resolution of one (subject, predicate) group by one lens."""

    lens: str  # canonical lens name
    subject: str
    predicate: str
    winner: Candidate | None
    candidates_count: int  # candidates given, excluded ones included
    resolution_confidence: float
    conflict_score: float
    explanation: tuple[Explanation, ...]  # competing (winner first), then excluded
    extra: Mapping[str, Any]  # lens-specific, JSON-serialisable
