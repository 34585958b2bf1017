"""Public agent profiles: `GET /v1/agents` and `GET /v1/agents/{agent_id}` (read role).

Who an agent is in this database: trust at the reading instant, the outcomes
that moved it, how much it signed, when it was first seen. The admin tier
registry lives at /v1/admin/agents (stemedb.api.resources.admin_agents).
"""

from __future__ import annotations

import falcon

from stemedb.api.errors import ErrorResponse
from stemedb.api.media import parse_query
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.service.agent_models import (
    AgentProfileOut,
    AgentQuery,
    AgentsListQuery,
    AgentsPageOut,
)
from stemedb.service.agents import AgentService
from stemedb.store import Store


def routes(store: Store) -> list[Route]:
    service = AgentService(store)

    def list_agents(req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, service.listing(parse_query(req, AgentsListQuery)))

    def get_agent(req: falcon.Request, resp: falcon.Response, agent_id: str) -> None:
        json_response(resp, service.get(agent_id, parse_query(req, AgentQuery)))

    errors = {400: ErrorResponse, 401: ErrorResponse}
    return [
        Route(
            "GET",
            "/v1/agents",
            list_agents,
            "Agents by trust (relaxed to the reading instant), highest first, paged",
            tag="agents",
            query_model=AgentsListQuery,
            responses={200: AgentsPageOut, **errors},
        ),
        Route(
            "GET",
            "/v1/agents/{agent_id}",
            get_agent,
            "One agent: trust now, its outcome history, claims, votes, co-signatures, first seen",
            tag="agents",
            query_model=AgentQuery,
            responses={200: AgentProfileOut, 404: ErrorResponse, **errors},
        ),
    ]
