"""Request and response models of the public agent endpoints (`/v1/agents`).

Kept apart from `stemedb.service.models` so the agent profile can grow
without touching the big shared models file; the OpenAPI document reads
these exactly like the others.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_TIME = 253402300799
AS_OF = "Unix seconds: relax trust to this instant (default now)"
KNOWN_AT = "Unix seconds: only what the server had received by then"


class AgentQuery(BaseModel):
    """Query parameters of `GET /v1/agents/{agent_id}`."""

    model_config = ConfigDict(extra="forbid")

    as_of: int | None = Field(None, ge=0, le=MAX_TIME, description=AS_OF)
    known_at: int | None = Field(None, ge=0, le=MAX_TIME, description=KNOWN_AT)
    history_limit: int = Field(100, ge=0, le=1000, description="newest outcomes to include")


class AgentsListQuery(BaseModel):
    """Query parameters of `GET /v1/agents`."""

    model_config = ConfigDict(extra="forbid")

    as_of: int | None = Field(None, ge=0, le=MAX_TIME, description=AS_OF)
    known_at: int | None = Field(None, ge=0, le=MAX_TIME, description=KNOWN_AT)
    cursor: str | None = Field(None, description="next_cursor of the previous page")
    limit: int = Field(50, ge=1, le=500)


class OutcomeOut(BaseModel):
    """One outcome record about the agent and the stored TrustRank it left."""

    hash: str
    seq: int
    assertion_hash: str | None
    accurate: bool
    timestamp: int = Field(description="claim time, Unix seconds")
    written_ms: int
    score_after: float = Field(description="stored TrustRank right after this outcome")


class AgentCountsOut(BaseModel):
    claims: int = Field(description="assertions it signed first")
    cosigned: int = Field(description="assertions it co-signed (a signer after the first)")
    votes: int = Field(description="vote records it signed; a changed vote counts again")
    outcomes_accurate: int
    outcomes_inaccurate: int


class AgentSummaryOut(BaseModel):
    """An agent in the listing: trust at the reading instant and when it was first seen."""

    agent_id: str
    trust: float = Field(description="TrustRank relaxed toward 0.5 to the reading instant")
    rated: bool = Field(description="true when at least one outcome record is about it")
    first_seen_seq: int | None
    first_seen_ms: int | None


class ReliabilityOut(BaseModel):
    """What the `truth` lens learned about an agent (docs/lenses.md, truth), at the head."""

    accuracy: float = Field(description="posterior mean of how often it is right")
    weight: float = Field(description="its vote weight in the truth lens (log-odds)")
    pairs: int = Field(description="(subject, predicate) pairs it spoke on")
    right: float = Field(description="sum over those pairs of P(its value is right)")
    outcomes_accurate: int
    outcomes_inaccurate: int


class AgentProfileOut(AgentSummaryOut):
    """`GET /v1/agents/{agent_id}`: trust, its history, and how much the agent signed."""

    at: float = Field(description="instant trust is relaxed to: as_of, else known_at, else now")
    known_at: int | None
    stored_score: float | None = Field(description="TrustRank after the last outcome, unrelaxed")
    last_updated: int | None = Field(description="claim time of the last outcome, Unix seconds")
    counts: AgentCountsOut
    history: list[OutcomeOut] = Field(description="newest outcomes last (at most history_limit)")
    history_truncated: bool
    reliability: ReliabilityOut | None = Field(
        None,
        description="learned by the truth lens (its reliability table, at the head); null"
        " when the agent never spoke on a pair",
    )


class AgentsPageOut(BaseModel):
    """`GET /v1/agents`: agents by trust, highest first; unrated agents (0.5) by id."""

    agents: list[AgentSummaryOut]
    count: int
    next_cursor: str | None
    at: float
    known_at: int | None
