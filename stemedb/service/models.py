"""Request and response models of the read and write services.

The same models validate requests and generate the OpenAPI document, so the
documentation cannot drift from what the handlers accept.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, RootModel, field_validator

HEX64 = r"^[0-9a-fA-F]{64}$"
MAX_SEQ = 2**63 - 1  # SQLite INTEGER; larger values are a 400, never an overflow
# Query parameter lengths (a 400 naming the field beyond them): a reader's parameters
# are kept in the audit trail, and nothing a reader sends may be unbounded.
MAX_PATH_PARAM = 1024  # a concept path before normalisation (512 after it)
MAX_NAME_PARAM = 64  # a lens name, a decay
MAX_LIST_PARAM = 256  # comma lists: lifecycles, source classes, kinds


def check_decay(value: str) -> str:
    """`none`, `tier`, or a positive finite half-life in days."""
    text = str(value).strip().lower()
    if text in ("none", "tier"):
        return text
    try:
        days = float(text)
    except ValueError:
        raise ValueError("must be none, tier, or a positive number of days") from None
    if not 0 < days < float("inf"):
        raise ValueError("half-life in days must be a positive finite number")
    return text


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---- writes -----------------------------------------------------------------


class WriteResult(_Out):
    hash: str
    seq: int | None = None
    status: Literal["created", "exists"]


class ErrorInfo(_Out):
    code: str
    message: str
    details: list[dict[str, Any]] = []


class BatchItemResult(_Out):
    index: int
    hash: str | None = None
    seq: int | None = None
    status: Literal["created", "exists", "rejected", "not_written"]
    error: ErrorInfo | None = None


class BatchResult(_Out):
    results: list[BatchItemResult]
    created: int
    exists: int
    rejected: int


class BatchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    atomic: bool = False


class NormalizeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal[
        "assertion",
        "vote",
        "epoch",
        "supersession",
        "alias",
        "outcome",
        "agent_tier",
        "source",
        "retraction",
    ] = "assertion"


class NormalizeResult(_Out):
    record: dict[str, Any]
    digest: str
    message: str


# ---- queries ----------------------------------------------------------------


class QueryIn(BaseModel):
    """Parameters of GET/POST /v1/query (query string or JSON body)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    subject: str | None = Field(
        None,
        max_length=MAX_PATH_PARAM,
        validation_alias=AliasChoices("subject", "concept_path"),
        description="Concept path (alias `concept_path`); a trailing `/*` means prefix=true.",
    )
    prefix: bool = False
    predicate: str | None = Field(None, min_length=1, max_length=256)
    lens: str | None = Field(None, max_length=MAX_NAME_PARAM)
    inner: str = Field("recency", max_length=MAX_NAME_PARAM)
    lifecycle: str = Field("any", max_length=MAX_LIST_PARAM)
    epoch: str | None = Field(None, pattern=HEX64)
    source_class: str | None = Field(
        None, max_length=MAX_LIST_PARAM, description="One tier name or a comma list"
    )
    max_tier: int | None = Field(None, ge=0, le=5)
    agent_id: str | None = Field(None, pattern=HEX64)
    as_of: int | None = Field(None, ge=0, le=253402300799)
    known_at: int | None = Field(None, ge=0, le=253402300799)
    min_agent_age: float | None = Field(
        None,
        ge=0,
        le=100 * 365 * 86400,
        description="Seconds: agents first seen less long before the query have no voice"
        " in consensus/layered (docs/security.md, Floods of new agents)",
    )
    decay: str = Field(
        "none", max_length=MAX_NAME_PARAM, description="`none`, `tier`, or a half-life in days"
    )
    include_superseded: bool = False
    include_quarantined: bool = Field(
        False, description="Let held (quarantined) assertions compete; the answer says which"
    )
    exclude_retracted: bool = Field(
        False, description="Leave out claims whose source is retracted (else they carry warnings)"
    )
    resolve_aliases: bool = True
    truth_tolerance: float | None = Field(
        None,
        ge=0,
        le=1,
        description="lens=truth: numbers within this relative difference support each other"
        " (default 0.01; 0: exact). docs/lenses.md, truth",
    )
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=4096)

    _decay = field_validator("decay")(lambda value: check_decay(value))


class PairQuery(BaseModel):
    """Parameters of /v1/skeptic and /v1/layered: one (subject, predicate) pair."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    subject: str = Field(
        max_length=MAX_PATH_PARAM, validation_alias=AliasChoices("subject", "concept_path")
    )
    predicate: str = Field(min_length=1, max_length=256)
    lifecycle: str = Field("any", max_length=MAX_LIST_PARAM)
    as_of: int | None = Field(None, ge=0, le=253402300799)
    known_at: int | None = Field(None, ge=0, le=253402300799)
    min_agent_age: float | None = Field(
        None,
        ge=0,
        le=100 * 365 * 86400,
        description="Seconds: agents first seen less long before the query have no voice"
        " in consensus/layered (docs/security.md, Floods of new agents)",
    )
    decay: str = Field("none", max_length=MAX_NAME_PARAM)
    include_superseded: bool = False
    include_quarantined: bool = Field(
        False, description="Let held (quarantined) assertions compete; the answer says which"
    )
    exclude_retracted: bool = Field(
        False, description="Leave out claims whose source is retracted (else they carry warnings)"
    )
    resolve_aliases: bool = True

    _decay = field_validator("decay")(lambda value: check_decay(value))


class AssertionOut(_Out):
    """A stored assertion: the normalised record plus server fields."""

    hash: str
    seq: int
    written_at: int
    tier: int
    agent_id: str | None
    superseded: bool
    subject: str
    predicate: str
    object: dict[str, Any]
    confidence: float
    source_class: str
    lifecycle: str
    timestamp: int
    source: str | None = None
    source_hash: str | None = None
    parent_hash: str | None = None
    epoch: str | None = None
    signatures: list[dict[str, Any]] = []


class ExplanationOut(_Out):
    hash: str
    score: float
    excluded: str | None
    superseded: bool = False  # target of a supersession visible to the query (lenses.md)
    why: str


class TierCapOut(_Out):
    """A candidate ranked below its declared tier (docs/security.md, Authority cannot be
    self-declared); listed only when something was capped."""

    hash: str
    declared: str
    effective: str
    why: str


class LensGroupOut(_Out):
    subject: str
    predicate: str
    winner: dict[str, Any] | None
    candidates_count: int
    resolution_confidence: float
    conflict_score: float
    explanation: list[ExplanationOut]
    tier_caps: list[TierCapOut] | None = None


class LensQueryOut(_Out):
    lens: str
    query_id: str
    results: list[LensGroupOut]
    next_cursor: str | None
    seq: int | None = Field(default=None, description="journal seq of the answer's snapshot")


class ListQueryOut(_Out):
    assertions: list[dict[str, Any]]
    count: int
    next_cursor: str | None
    query_id: str
    seq: int | None = Field(default=None, description="journal seq of the answer's snapshot")


class QueryOut(RootModel[LensQueryOut | ListQueryOut]):
    """With `lens`: one result per (subject, predicate); without: the matching assertions."""


class ClaimOut(_Out):
    object: dict[str, Any]
    weight: float
    share: float
    assertion_count: int
    agents: list[str]
    tiers: dict[str, int]
    best_tier: str
    newest_timestamp: int
    assertions: list[str]


class SkepticOut(_Out):
    subject: str
    predicate: str
    status: Literal["NoClaims", "Unanimous", "Agreed", "Contested"]
    conflict_score: float
    candidates_count: int
    claims: list[ClaimOut]
    tier_caps: list[TierCapOut] | None = None


class LayeredOut(_Out):
    subject: str
    predicate: str
    winner: dict[str, Any] | None
    resolution_confidence: float
    conflict_score: float
    cross_tier_conflict: float
    tiers: list[dict[str, Any]]
    tier_caps: list[TierCapOut] | None = None


class TraceQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = Field(32, ge=0, le=1000)


class TraceOut(_Out):
    assertion: dict[str, Any]
    ancestors: list[dict[str, Any]]
    children: list[str]
    supersessions: list[dict[str, Any]]
    votes: dict[str, Any]
    same_source: list[str]


class ConceptsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str | None = Field(None, max_length=MAX_PATH_PARAM)


class ConceptsOut(_Out):
    prefix: str | None
    children: list[dict[str, Any]]


class AliasesOut(_Out):
    path: str
    canonical: str
    aliases: list[str]


class EpochOut(_Out):
    id: str
    seq: int
    name: str
    description: str | None
    supersedes: list[str]
    timestamp: int
    written_at: int
    superseded: bool
    superseded_by: str | None


class EpochsOut(_Out):
    epochs: list[EpochOut]


class FeedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: int = Field(0, ge=0, le=MAX_SEQ)
    limit: int = Field(100, ge=1, le=1000)
    kinds: str | None = Field(None, max_length=MAX_LIST_PARAM)
    wait: float = Field(0, ge=0, le=30)


class FrameOut(_Out):
    seq: int
    kind: str
    hash: str
    written_ms: int
    record: dict[str, Any]


class FeedOut(_Out):
    frames: list[FrameOut]
    next_after: int
    retry_after: int | None = Field(
        None,
        description="Set when the long poll was answered at once because too many polls "
        "were waiting (STEMEDB_LONG_POLLS): seconds to wait before polling again",
    )


class ExportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["ndjson", "csv"] = "ndjson"
    kinds: str | None = Field(None, max_length=MAX_LIST_PARAM)
    after: int = Field(0, ge=0, le=MAX_SEQ)


class AuditListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str | None = Field(None, max_length=128)
    from_: int | None = Field(None, alias="from", ge=0, le=253402300799)
    to: int | None = Field(None, ge=0, le=253402300799)
    limit: int = Field(100, ge=1, le=1000)


class AuditEntryOut(_Out):
    query_id: str
    at_ms: int
    agent_id: str | None
    endpoint: str
    lens: str | None
    params: dict[str, Any]
    results: list[dict[str, Any]]
    truncated: dict[str, Any] | None = Field(
        None,
        description="Present when the row was cut to its bounds: what was cut, how much, "
        "and the limits (docs/security.md, Hostile readers)",
    )


class AuditListOut(_Out):
    queries: list[AuditEntryOut]


# ---- operations ---------------------------------------------------------------


class HealthOut(_Out):
    status: Literal["healthy", "degraded"]
    version: str
    uptime_seconds: int
    assertion_count: int
    journal_seq: int
    chain_head: str
    reason: str | None = Field(default=None, description="why the server is degraded")


class ReadyOut(_Out):
    ready: bool
    reason: str | None = None


class StatsOut(_Out):
    assertion_count: int
    journal_seq: int
    chain_head: str
    db_size_bytes: int
    queue_depth: int


class VerifyOut(_Out):
    ok: bool
    checks: list[dict[str, Any]]
