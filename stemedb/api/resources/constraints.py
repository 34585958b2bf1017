"""Constraints: `GET /v1/constraints?context=...` and `POST /v1/constraints/check`.

A constraint is an ordinary signed assertion under a context concept with a
predicate of a small vocabulary (`must_use`, `must_not_use`, `requires`,
`prefer`, `avoid`; `stemedb.lenses.constraints`). These reads list the rules
in force in a context (its ancestors' included) and check an intended action
against them, so an agent asks before it acts. docs/agents.md, "Constraints".
"""

from __future__ import annotations

from typing import Any

import falcon
from pydantic import BaseModel

from stemedb.api.errors import ErrorResponse
from stemedb.api.media import parse_body, parse_query
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.service.constraints import CheckIn, ConstraintQuery, ConstraintService


class RuleOut(BaseModel):
    predicate: str
    value: str
    meaning: str
    context: str
    set_by: str | None
    signers: list[str]
    why: str | None
    tier: str
    timestamp: int
    set_at: str
    hash: str
    also_stated_by: list[str]
    overridden_by: str | None = None
    warnings: list[str] | None = None  # its source (why) is retracted


class ConflictOut(BaseModel):
    value: str
    rules: list[str]
    prevails: str
    overridden: str
    why: str


class ConstraintsOut(BaseModel):
    context: str
    contexts: list[str]
    rules: list[RuleOut]
    conflicts: list[ConflictOut]
    count: int
    vocabulary: dict[str, str]
    as_of: int | None
    known_at: int | None
    read_at: int


class Finding(BaseModel):
    rule: RuleOut
    problem: str | None = None
    advice: str | None = None


class CheckOut(BaseModel):
    context: str
    ok: bool
    violations: list[Finding]
    advice: list[Finding]
    rules: list[RuleOut]
    conflicts: list[ConflictOut]
    intended_action: dict[str, Any]
    known_at: int | None


def routes(service: ConstraintService) -> list[Route]:
    def get_rules(req: falcon.Request, resp: falcon.Response) -> None:
        q = parse_query(req, ConstraintQuery)
        answer = service.rules(
            q.context, as_of=q.as_of, known_at=q.known_at, exclude_retracted=q.exclude_retracted
        )
        json_response(resp, answer)

    def check(req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, CheckIn)
        answer = service.check(
            body.context,
            body.intended_action,
            as_of=body.as_of,
            known_at=body.known_at,
            exclude_retracted=body.exclude_retracted,
        )
        json_response(resp, answer)

    errors = {400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse}
    return [
        Route(
            "GET",
            "/v1/constraints",
            get_rules,
            "The rules in force in a context (its ancestors' rules included)",
            tag="constraints",
            auth="read",
            query_model=ConstraintQuery,
            responses={200: ConstraintsOut, **errors},
            description="Each rule is resolved by authority then recency and says who set it "
            "and why (`source`); conflicting rules are listed under `conflicts` with the one "
            "that prevails. `known_at` replays the rules an agent had at a time.",
        ),
        Route(
            "POST",
            "/v1/constraints/check",
            check,
            "Check an intended action against the rules in force in its context",
            tag="constraints",
            auth="read",
            request_model=CheckIn,
            responses={200: CheckOut, **errors},
            description="`intended_action.uses`: the things the action will use; `does`: "
            "the things it does or includes. Answers `ok`, the `violations` (must_use, "
            "must_not_use, requires) and `advice` (prefer, avoid).",
        ),
    ]
