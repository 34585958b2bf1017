"""Source registry: `POST /v1/sources`, `GET /v1/sources/{source_id}`, `POST /v1/retractions`.

A registration and a retraction are signed journal records (`source`,
`retraction`) written through the write service like every record, so the
same rights apply inside a batch (`stemedb.service.source_rights`). Lens
answers warn about claims citing a retracted source (`warnings`), and
`exclude_retracted=true` leaves them out. docs/agents.md, "Sources and
retractions".
"""

from __future__ import annotations

import re
from typing import Any

import falcon
from pydantic import BaseModel, ConfigDict, Field

from stemedb.api.errors import ErrorResponse
from stemedb.api.media import parse_query
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.errors import InvalidRequest
from stemedb.records.source import RetractionIn, SourceIn
from stemedb.security.kinds import caller_for
from stemedb.service.models import WriteResult
from stemedb.service.sources import SourceRegistry
from stemedb.service.writes import WriteService

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class SourceQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    known_at: int | None = Field(
        None, ge=0, le=253402300799, description="Show the source as the journal knew it then"
    )


class SourceOut(BaseModel):
    source_id: str
    identifier: str
    identifier_type: str
    title: str | None
    publisher: str | None
    publisher_key: str | None
    tier: str
    tier_basis: str
    declared_tier: str | None
    content_hash: str | None
    registered_by: str | None
    timestamp: int
    written_ms: int
    seq: int
    hash: str


class RetractionOut(BaseModel):
    source_id: str
    reason: str
    retracted_by: str | None
    timestamp: int
    written_ms: int
    seq: int
    hash: str


class CitingClaim(BaseModel):
    hash: str
    subject: str
    predicate: str
    source: str | None
    source_hash: str | None
    agent_id: str | None
    timestamp: int
    seq: int


class SourceDetailOut(BaseModel):
    source: SourceOut
    retracted: bool
    retractions: list[RetractionOut]
    history: list[dict[str, Any]]
    claims: list[CitingClaim]
    claims_count: int
    claims_truncated: bool


def _source_id(value: str) -> str:
    if not _HEX64.match(value):
        raise InvalidRequest.field(
            "source_id", "expected 64 hex characters (SHA3-256 of the source identifier)"
        )
    return value.lower()


def routes(service: WriteService, registry: SourceRegistry) -> list[Route]:
    def writer(kind: str) -> Any:
        def handler(req: falcon.Request, resp: falcon.Response) -> None:
            caller = caller_for(getattr(req.context, "api_key", None), service.store)
            answer = service.write_one(kind, req.get_media(), caller=caller)
            json_response(resp, answer.body, 201 if answer.created else 200)

        return handler

    def get_source(req: falcon.Request, resp: falcon.Response, source_id: str) -> None:
        query = parse_query(req, SourceQuery)
        json_response(resp, registry.get(_source_id(source_id), query.known_at))

    errors: dict[int, type[BaseModel] | None] = {
        400: ErrorResponse,
        401: ErrorResponse,
        403: ErrorResponse,
    }
    written: dict[int, type[BaseModel] | None] = {
        201: WriteResult,
        200: WriteResult,
        404: ErrorResponse,
        **errors,
    }
    return [
        Route(
            "POST",
            "/v1/sources",
            writer("source"),
            "Register a source of evidence (a signed source record)",
            tag="sources",
            auth="write",
            request_model=SourceIn,
            responses=written,
            description="Any writer may register a source; `publisher_key` must be the "
            "signing key unless sent with an admin key; re-registering needs the source's "
            "publisher or registrant key, or an admin key. The source id is SHA3-256 of "
            "`identifier`, which is a claim's default `source_hash`.",
        ),
        Route(
            "GET",
            "/v1/sources/{source_id}",
            get_source,
            "A source, its retractions, registration history and the claims citing it",
            tag="sources",
            auth="read",
            query_model=SourceQuery,
            responses={200: SourceDetailOut, 404: ErrorResponse, **errors},
        ),
        Route(
            "POST",
            "/v1/retractions",
            writer("retraction"),
            "Retract a registered source (a signed retraction record; never deleted)",
            tag="sources",
            auth="write",
            request_model=RetractionIn,
            responses=written,
            description="Needs an admin key, or a signature of the source's registered "
            "publisher key. Lens answers then warn about the claims citing the source; "
            "`exclude_retracted=true` leaves them out; `known_at` before it replays the past.",
        ),
    ]
