"""Typed shapes of the answers (TypedDicts: plain dicts at runtime, checked by mypy).

They mirror `stemedb.service.models` but stay importable without pydantic
knowledge, and they are deliberately partial (`total=False` where the server
may add fields): a new server field never breaks an old client.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class WriteResult(TypedDict):
    hash: str
    seq: int | None
    status: Literal["created", "exists"]


class BatchItem(TypedDict, total=False):
    index: int
    hash: str
    seq: int | None
    status: Literal["created", "exists", "rejected", "not_written"]
    error: dict[str, Any]


class BatchResult(TypedDict):
    results: list[BatchItem]
    created: int
    exists: int
    rejected: int


class Normalized(TypedDict):
    record: dict[str, Any]
    digest: str
    message: str


class Explanation(TypedDict):
    hash: str
    score: float
    excluded: str | None
    why: str


class LensGroup(TypedDict, total=False):
    subject: str
    predicate: str
    winner: dict[str, Any] | None
    candidates_count: int
    resolution_confidence: float
    conflict_score: float
    explanation: list[Explanation]


class QueryResult(TypedDict, total=False):
    """Without a lens: `assertions`/`count`; with one: `lens`/`results`."""

    query_id: str
    next_cursor: str | None
    assertions: list[dict[str, Any]]
    count: int
    lens: str
    results: list[LensGroup]


class Claim(TypedDict, total=False):
    object: dict[str, Any]
    weight: float
    share: float
    assertion_count: int
    agents: list[str]
    tiers: dict[str, int]
    best_tier: str
    newest_timestamp: int
    assertions: list[str]


class Skeptic(TypedDict, total=False):
    subject: str
    predicate: str
    status: Literal["NoClaims", "Unanimous", "Agreed", "Contested"]
    conflict_score: float
    candidates_count: int
    claims: list[Claim]


class Frame(TypedDict):
    seq: int
    kind: str
    hash: str
    written_ms: int
    record: dict[str, Any]


class Feed(TypedDict):
    frames: list[Frame]
    next_after: int


class Health(TypedDict, total=False):
    status: Literal["healthy", "degraded"]
    version: str
    uptime_seconds: int
    assertion_count: int
    journal_seq: int
    chain_head: str
    reason: str


class Ready(TypedDict, total=False):
    ready: bool
    reason: str | None


class AgentSummary(TypedDict, total=False):
    agent_id: str
    trust: float
    rated: bool
    first_seen_seq: int | None
    first_seen_ms: int | None


class AgentsPage(TypedDict, total=False):
    agents: list[AgentSummary]
    count: int
    next_cursor: str | None
    at: float
    known_at: int | None


class AgentProfile(AgentSummary, total=False):
    at: float
    known_at: int | None
    stored_score: float | None
    last_updated: int | None
    counts: dict[str, int]
    history: list[dict[str, Any]]
    history_truncated: bool
