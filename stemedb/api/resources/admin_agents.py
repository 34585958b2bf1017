"""Agent tier registry: `POST/GET /v1/admin/agents`, `GET /v1/admin/agents/{agent_id}`.

A registration is a signed `agent_tier` journal record (admin only, on this
route and inside a batch alike): it says which signing agent may claim which
authority tier. Claims above what their signers may claim are capped at read
time (`stemedb.service.tier_policy`); docs/security.md, "Authority cannot be
self-declared".
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
from stemedb.records.agent_tier import AgentTierIn
from stemedb.security.kinds import caller_for
from stemedb.service.models import WriteResult
from stemedb.service.tier_policy import AgentRegistry
from stemedb.service.writes import WriteService

KIND = "agent_tier"
_AGENT_ID = re.compile(r"^[0-9a-fA-F]{64}$")


class AgentListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: str | None = Field(None, description="cursor: the last agent id of the previous page")
    limit: int = Field(1000, ge=1, le=10000)


class AgentOut(BaseModel):
    agent_id: str
    max_tier: str
    tier: int
    name: str | None
    note: str | None
    registered_by: str | None
    timestamp: int
    written_ms: int
    seq: int
    hash: str


class AgentListOut(BaseModel):
    agents: list[AgentOut]
    count: int
    next_cursor: str | None
    unregistered_max_tier: str


class AgentDetailOut(BaseModel):
    agent: AgentOut
    history: list[AgentOut]
    unregistered_max_tier: str


def _agent_id(value: str | None, field: str) -> str:
    if value is None or not _AGENT_ID.match(value):
        raise InvalidRequest.field(field, "expected 64 hex characters (an Ed25519 public key)")
    return value.lower()


def routes(service: WriteService, registry: AgentRegistry) -> list[Route]:
    def register(req: falcon.Request, resp: falcon.Response) -> None:
        caller = caller_for(getattr(req.context, "api_key", None), service.store)
        answer = service.write_one(KIND, req.get_media(), caller=caller)
        json_response(resp, answer.body, 201 if answer.created else 200)

    def list_agents(req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, AgentListQuery)
        after = _agent_id(query.after, "after") if query.after is not None else None
        json_response(resp, registry.list(after=after, limit=query.limit))

    def get_agent(req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        json_response(resp, registry.get(_agent_id(agent_id, "agent_id")))

    common: dict[str, Any] = {"tag": "admin", "auth": "admin"}
    errors = {400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse}
    return [
        Route(
            "POST",
            "/v1/admin/agents",
            register,
            "Register a signing agent for a maximum authority tier (a signed agent_tier record)",
            request_model=AgentTierIn,
            responses={201: WriteResult, 200: WriteResult, **errors},
            **common,
        ),
        Route(
            "GET",
            "/v1/admin/agents",
            list_agents,
            "List registered agents and the tier each may claim",
            query_model=AgentListQuery,
            responses={200: AgentListOut, **errors},
            **common,
        ),
        Route(
            "GET",
            "/v1/admin/agents/{agent_id}",
            get_agent,
            "One agent's registration in force and its history",
            responses={200: AgentDetailOut, 404: ErrorResponse, **errors},
            **common,
        ),
    ]
