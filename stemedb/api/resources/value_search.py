"""GET /v1/concepts/search: subjects whose claimed values contain a text (docs/console.md)."""

from __future__ import annotations

import falcon
from pydantic import BaseModel, ConfigDict, Field

from stemedb.api.errors import ErrorResponse
from stemedb.api.media import parse_query
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.service.value_search import ValueSearch


class ValueSearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str = Field(..., min_length=1, max_length=200, description="text the value contains")
    prefix: str | None = Field(None, max_length=1024, description="concept path prefix")
    limit: int = Field(50, ge=1, le=500, description="distinct hits to return")


class ValueHit(BaseModel):
    subject: str
    predicate: str
    value: str
    claims: int
    newest_seq: int


class ValueSearchOut(BaseModel):
    q: str
    prefix: str | None
    hits: list[ValueHit]
    subjects: int
    complete: bool
    server_ms: float


def routes(search: ValueSearch) -> list[Route]:
    def on_search(req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, ValueSearchQuery)
        json_response(resp, search.search(q.q, q.prefix or None, q.limit))

    return [
        Route(
            "GET",
            "/v1/concepts/search",
            on_search,
            "Claims whose value text contains `q`, in any subject",
            tag="reads",
            query_model=ValueSearchQuery,
            responses={200: ValueSearchOut, 400: ErrorResponse},
            description="Text and Reference values, case-insensitive substring of at least "
            "3 characters, newest claims first; distinct (subject, predicate, value) hits with "
            "their claim counts. At most 2,000 matching claims are read per search: "
            "`complete` is false when more exist. Definitions: docs/console.md.",
        ),
    ]
