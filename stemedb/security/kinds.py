"""Authorisation per record kind: the role a record needs, whatever path brings it.

`POST /v1/outcome` needs the admin role; an `outcome` record inside
`POST /v1/assert/batch` (JSON or NDJSON, and so `stemedb import` over HTTP)
needs it just the same. `KIND_AUTH` is the one table both the single-record
routes (`stemedb.api.resources.writes`) and the per-record check below read,
so the two cannot drift apart. A scoped writer key is checked per record
too (`scope.record_problems`).

`caller_for` turns the request's API key (set by the security middleware)
into the write service's `Caller`. A refused record in a non-atomic batch is
`rejected` with a `forbidden` error for its index; with `?atomic=true` the
whole batch is refused (400 `batch_rejected`).
"""

from __future__ import annotations

import logging
from typing import Any

from stemedb.errors import Forbidden
from stemedb.records import RECORD_KINDS
from stemedb.security.keys import REQUIRED_ROLE, ApiKey
from stemedb.security.scope import record_problems
from stemedb.service.rights import OPEN_SERVER, Caller

log = logging.getLogger("stemedb.security")

# record kind -> Route.auth of its own endpoint ("write" or "admin")
KIND_AUTH: dict[str, str] = {
    "assertion": "write",
    "vote": "write",
    "epoch": "write",
    "supersession": "write",
    "alias": "write",
    "outcome": "admin",
    "agent_tier": "admin",  # POST /v1/admin/agents (issue 19 item 5)
    "quarantine_decision": "admin",  # POST /v1/admin/quarantine/{hash}/... (issue 19)
    # Sources (issue 17): any writer registers; a retraction further needs an admin key
    # or the source's publisher signature (service/source_rights.py).
    "source": "write",
    "retraction": "write",
}


def required_auth(kind: str) -> str | None:
    """The `Route.auth` a `kind` record needs. Fails closed: a record kind missing
    from KIND_AUTH needs admin; None only for what is no record kind at all
    (the write service answers 400 naming `kind`)."""
    if kind in KIND_AUTH:
        return KIND_AUTH[kind]
    return "admin" if kind in RECORD_KINDS else None


def kind_problem(key: ApiKey, kind: str) -> Forbidden | None:
    """Forbidden if `key`'s role may not write `kind` records."""
    needed_auth = required_auth(kind)
    if needed_auth is None or key.allows(needed_auth):
        return None
    needed = REQUIRED_ROLE[needed_auth]
    return Forbidden(
        f"API key {key.id} has the {key.role} role; {kind} records need {needed} "
        "(the same as their own endpoint), whichever route sends them",
        [{"field": "kind", "problem": f"role {key.role} < {needed} for {kind} records"}],
    )


def scope_problem(key: ApiKey, kind: str, record: Any, store: Any) -> Forbidden | None:
    if key.scope is None:
        return None
    problems = record_problems(kind, record, key.scope, store)
    if not problems:
        return None
    field, problem = problems[0]
    return Forbidden(f"{field}: {problem}", [{"field": f, "problem": p} for f, p in problems])


def caller_for(key: ApiKey | None, store: Any) -> Caller:
    """The write service's view of the request's API key (None: authentication is off)."""
    if key is None:
        return OPEN_SERVER

    def check_record(kind: str, record: Any) -> None:
        refusal = kind_problem(key, kind) or scope_problem(key, kind, record, store)
        if refusal is not None:
            log.warning(
                "403 %s record refused for key %s (%s): %s", kind, key.id, key.role, refusal.message
            )
            raise refusal

    return Caller(
        supersede_any=key.role == "admin",
        authenticated=True,
        check_record=check_record,
        label=f"API key {key.id} ({key.role})",
    )
