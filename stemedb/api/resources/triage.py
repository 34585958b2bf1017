"""GET /v1/triage: contested pairs classified Resolved / Active / Emerging (docs/console.md)."""

from __future__ import annotations

from typing import Any, Literal

import falcon
from pydantic import BaseModel, ConfigDict, Field

from stemedb.api.errors import ErrorResponse
from stemedb.api.media import parse_query
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.errors import InvalidRequest
from stemedb.lenses.scoring import TIER_NAMES
from stemedb.service.triage import TriageQuery, TriageService


class TriageQueryIn(BaseModel):
    """Filters of the triage view; `now` defaults to the newest claim time in the store."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    prefix: str | None = Field(None, max_length=1024, description="concept path prefix")
    tier: str | None = Field(None, max_length=32, description="tier name or 0-5")
    class_: Literal["Resolved", "Active", "Emerging"] | None = Field(None, alias="class")
    window_days: float = Field(30.0, gt=0, le=36500)
    now: int | None = Field(None, ge=0, le=253402300799)
    limit: int = Field(100, ge=1, le=1000)


class TriageOut(BaseModel):
    status: Literal["ready", "building"]
    pairs: list[dict[str, Any]] = []
    counts: dict[str, int] | None = None
    total: int | None = None
    reference_time: int | None = None
    window_days: float | None = None
    indexed_seq: int | None = None
    head_seq: int | None = None
    server_ms: float | None = None


def parse_tier(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    text = value.strip()
    if text.isdigit() and int(text) < len(TIER_NAMES):
        return int(text)
    for index, name in enumerate(TIER_NAMES):
        if name.lower() == text.lower():
            return index
    raise InvalidRequest.field("tier", f"must be 0-5 or one of {', '.join(TIER_NAMES)}")


def routes(triage: TriageService) -> list[Route]:
    def on_triage(req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, TriageQueryIn)
        query = TriageQuery(
            prefix=q.prefix or None,
            tier=parse_tier(q.tier),
            klass=q.class_,
            window_days=q.window_days,
            now=q.now,
            limit=q.limit,
        )
        json_response(resp, triage.triage(query))

    return [
        Route(
            "GET",
            "/v1/triage",
            on_triage,
            "Contested pairs: Resolved / Active / Emerging, by conflict × recency",
            tag="reads",
            query_model=TriageQueryIn,
            responses={200: TriageOut, 400: ErrorResponse},
            description="`status` is `building` (with progress) until the index has folded in "
            "the journal once after start. Definitions: docs/console.md.",
        ),
    ]
