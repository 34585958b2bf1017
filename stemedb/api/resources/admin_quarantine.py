"""Quarantine queue: `GET /v1/admin/quarantine`, `POST .../{hash}/release` and `.../reject`.

A release or a rejection is a signed `quarantine_decision` journal record
(admin only, here and inside a batch alike): the body is that record, signed
by the admin's agent key; `target_hash` and `decision` may be left out of
the body (they are taken from the path) but must match it when given, since
the signature covers them. docs/security.md, "Quarantine".
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
from stemedb.records.quarantine import QuarantineDecisionIn
from stemedb.security.kinds import caller_for
from stemedb.service.models import MAX_SEQ, WriteResult
from stemedb.service.quarantine import QuarantineService
from stemedb.service.writes import WriteService

_HASH = re.compile(r"^[0-9a-fA-F]{64}$")


class QuarantineListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str = Field("held", pattern="^(held|released|rejected|all)$")
    after: int = Field(0, ge=0, le=MAX_SEQ, description="cursor: `next_after` of the previous page")
    limit: int = Field(100, ge=1, le=1000)


class QuarantinedOut(BaseModel):
    hash: str
    kind: str = Field(description="assertion, vote, supersession, alias or epoch")
    seq: int
    subject: str
    predicate: str
    agent_id: str | None
    reason: str
    detail: str
    held_ms: int
    state: str
    decided_seq: int | None
    decided_ms: int | None
    decided_by: str | None
    decision_reason: str | None


class QuarantineListOut(BaseModel):
    records: list[QuarantinedOut]
    count: int
    held: int
    next_after: int | None
    policy: dict[str, Any]


def _hash(value: str) -> str:
    if not _HASH.match(value):
        raise InvalidRequest.field("hash", "expected 64 hex characters (a record id)")
    return value.lower()


def routes(writes: WriteService, service: QuarantineService) -> list[Route]:
    def list_held(req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, QuarantineListQuery)
        json_response(resp, service.listing(query.state, query.after, query.limit))

    def decider(decision: str) -> Any:
        def decide(req: falcon.Request, resp: falcon.Response, hash: str) -> None:
            caller = caller_for(getattr(req.context, "api_key", None), writes.store)
            answer = service.decide(writes, _hash(hash), decision, req.get_media(), caller)
            json_response(resp, answer.body, 201 if answer.created else 200)

        return decide

    common: dict[str, Any] = {"tag": "admin", "auth": "admin"}
    errors = {400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse}
    written: dict[int, type[BaseModel] | None] = {
        201: WriteResult,
        200: WriteResult,
        404: ErrorResponse,
        **errors,
    }
    return [
        Route(
            "GET",
            "/v1/admin/quarantine",
            list_held,
            "Records held in quarantine (or released, rejected), with the reason",
            query_model=QuarantineListQuery,
            responses={200: QuarantineListOut, **errors},
            **common,
        ),
        Route(
            "POST",
            "/v1/admin/quarantine/{hash}/release",
            decider("release"),
            "Release a held record: lenses count it from now on (a signed quarantine_decision)",
            request_model=QuarantineDecisionIn,
            responses=written,
            **common,
        ),
        Route(
            "POST",
            "/v1/admin/quarantine/{hash}/reject",
            decider("reject"),
            "Reject a held record: it stays journalled, lenses never count it",
            request_model=QuarantineDecisionIn,
            responses=written,
            **common,
        ),
    ]
