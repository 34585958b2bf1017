"""Write endpoints: one record per request, batches, and /v1/normalize."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon

from stemedb.api.errors import ErrorBody, ErrorResponse
from stemedb.api.media import iter_ndjson, media_type, parse_query
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.errors import InvalidRequest
from stemedb.records import AliasIn, AssertionIn, EpochIn, OutcomeIn, SupersessionIn, VoteIn
from stemedb.security.kinds import KIND_AUTH, caller_for
from stemedb.service.models import (
    BatchQuery,
    BatchResult,
    NormalizeQuery,
    NormalizeResult,
    WriteResult,
)
from stemedb.service.rights import Caller
from stemedb.service.writes import WriteService

# The role each route needs is its record kind's (KIND_AUTH), which the batch
# route applies to every record it carries: one table, so they cannot drift.
_SINGLE = (
    ("/v1/assert", "assertion", AssertionIn, "Assert one claim"),
    ("/v1/assertions", "assertion", AssertionIn, "Assert one claim (alias of /v1/assert)"),
    ("/v1/vote", "vote", VoteIn, "Vote on an assertion"),
    ("/v1/epoch", "epoch", EpochIn, "Create an epoch"),
    ("/v1/supersede", "supersession", SupersessionIn, "Supersede an assertion"),
    ("/v1/aliases", "alias", AliasIn, "Map an alias path to a canonical path"),
    ("/v1/outcome", "outcome", OutcomeIn, "Record an outcome (moves TrustRank)"),
)


class AtomicBatchRejected(BatchResult):
    """`?atomic=true` with a rejection: nothing written, the error envelope beside results."""

    error: ErrorBody


def _caller(req: falcon.Request, service: WriteService) -> Caller:
    """The request's rights; `api_key` is set by the security middleware (None: auth off)."""
    return caller_for(getattr(req.context, "api_key", None), service.store)


def _single(service: WriteService, kind: str) -> Any:
    def handler(req: falcon.Request, resp: falcon.Response) -> None:
        answer = service.write_one(kind, req.get_media(), caller=_caller(req, service))
        json_response(resp, answer.body, 201 if answer.created else 200)

    return handler


def _batch_items(req: falcon.Request) -> Iterator[tuple[int, Any]]:
    if media_type(req.content_type) == "application/x-ndjson":
        for index, (_, value) in enumerate(iter_ndjson(req.bounded_stream)):
            yield index, value
        return
    body = req.get_media()
    if not isinstance(body, list):
        raise InvalidRequest.field("(root)", "expected a JSON array of records (or NDJSON)")
    yield from enumerate(body)


def routes(service: WriteService) -> list[Route]:
    out = [
        Route(
            "POST",
            template,
            _single(service, kind),
            summary,
            tag="writes",
            request_model=model,
            responses={
                201: WriteResult,
                200: WriteResult,
                400: ErrorResponse,
                403: ErrorResponse,
                404: ErrorResponse,
            },
            auth=KIND_AUTH[kind],
        )
        for template, kind, model, summary in _SINGLE
    ]

    def batch(req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, BatchQuery)
        ok, body = service.write_batch(
            _batch_items(req), atomic=query.atomic, caller=_caller(req, service)
        )
        json_response(resp, body, 200 if ok else 400)

    def normalize(req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, NormalizeQuery)
        body = req.get_media()
        kind = body.get("kind", query.kind) if isinstance(body, dict) else query.kind
        json_response(resp, service.normalize(str(kind), body))

    out.append(
        Route(
            "POST",
            "/v1/assert/batch",
            batch,
            "Write many records (JSON array or NDJSON)",
            tag="writes",
            query_model=BatchQuery,
            responses={200: BatchResult, 400: AtomicBatchRejected},
            auth="write",
            content_types=("application/json", "application/x-ndjson"),
            body_limit_factor=32,
        )
    )
    out.append(
        Route(
            "POST",
            "/v1/normalize",
            normalize,
            "Normalise an unsigned record and return what to sign",
            tag="writes",
            request_model=AssertionIn,
            query_model=NormalizeQuery,
            responses={200: NormalizeResult, 400: ErrorResponse},
            auth="read",
        )
    )
    return out
