"""Circuit breakers: `GET /v1/admin/breakers`, `POST /v1/admin/breakers/{agent_id}/reset`.

Breakers are server state (stemedb/security/breakers.py), not journal
records: a reset changes no answer, only whether an agent's next writes are
refused, so it is logged rather than journalled. Trips are kept in the
`breaker_trips` table and survive a restart; a reset deletes them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import falcon
from pydantic import BaseModel, ConfigDict, Field

from stemedb.api.errors import ErrorResponse
from stemedb.api.media import parse_query
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.errors import InvalidRequest
from stemedb.security.breakers import Breakers

log = logging.getLogger("stemedb.security")
_AGENT_ID = re.compile(r"^[0-9a-fA-F]{64}$")


class BreakerListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_closed: bool = Field(False, description="also agents that tripped and closed again")


class BreakerOut(BaseModel):
    agent_id: str
    api_key: str | None
    state: str
    reason: str | None
    detail: str
    tripped_at: str
    reset_at: str
    retry_after_s: int
    trips: int
    history_per_window: float


class BreakerListOut(BaseModel):
    enabled: bool
    breakers: list[BreakerOut]
    count: int
    open: int


class BreakerResetOut(BaseModel):
    agent_id: str
    closed: int


def routes(breakers: Breakers) -> list[Route]:
    def list_breakers(req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, BreakerListQuery)
        items = breakers.listing(include_closed=query.include_closed)
        json_response(
            resp,
            {
                "enabled": breakers.policy.enabled,
                "breakers": items,
                "count": len(items),
                "open": sum(1 for item in items if item["state"] == "open"),
            },
        )

    def reset(req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        if not _AGENT_ID.match(agent_id):
            raise InvalidRequest.field(
                "agent_id", "expected 64 hex characters (an Ed25519 public key)"
            )
        key = getattr(req.context, "api_key", None)
        closed = breakers.reset(agent_id)
        log.warning(
            "circuit breaker of agent %s reset by %s (%d open breaker(s) closed)",
            agent_id.lower(),
            f"API key {key.id}" if key is not None else "an admin (auth off)",
            closed,
        )
        json_response(resp, {"agent_id": agent_id.lower(), "closed": closed})

    common: dict[str, Any] = {"tag": "admin", "auth": "admin"}
    errors = {400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse}
    return [
        Route(
            "GET",
            "/v1/admin/breakers",
            list_breakers,
            "Agents whose circuit breaker is open (why, and until when)",
            query_model=BreakerListQuery,
            responses={200: BreakerListOut, **errors},
            **common,
        ),
        Route(
            "POST",
            "/v1/admin/breakers/{agent_id}/reset",
            reset,
            "Close an agent's circuit breaker now (every API key it writes under)",
            responses={200: BreakerResetOut, **errors},
            **common,
        ),
    ]
