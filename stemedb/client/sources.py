"""Client calls for the source registry and constraints (issue 17), mounted on `Client`.

Kept in their own module so `client/api.py` stays small; each function takes
the client as `self` and `Client` binds them as methods (`client.source(id)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from stemedb.client.base import BaseClient, drop_none
from stemedb.client.types import WriteResult


def register_source(
    self: BaseClient,
    identifier: str,
    *,
    title: str | None = None,
    publisher: str | None = None,
    publisher_key: str | None = None,
    tier: str | None = None,
    content_hash: str | None = None,
    timestamp: int | None = None,
) -> WriteResult:
    """Register a source (a signed `source` record). Its id is SHA3-256 of `identifier`,
    a claim's default `source_hash`; `publisher_key` (default: none) may retract it."""
    fields = {
        "identifier": identifier,
        "title": title,
        "publisher": publisher,
        "publisher_key": publisher_key,
        "tier": tier,
        "content_hash": content_hash,
        "timestamp": timestamp,
    }
    return self._write("source", "/v1/sources", fields)


def source(self: BaseClient, source_id: str, *, known_at: int | None = None) -> dict[str, Any]:
    """A source with its retractions, registration history and citing claims (404 if none)."""
    params = drop_none({"known_at": known_at})
    return cast(dict[str, Any], self._get(f"/v1/sources/{source_id}", params or None))


def retract_source(
    self: BaseClient, source_id: str, reason: str, *, timestamp: int | None = None
) -> WriteResult:
    """Retract a source (admin key, or signed by its registered publisher key)."""
    fields = {"source_id": source_id, "reason": reason, "timestamp": timestamp}
    return self._write("retraction", "/v1/retractions", fields)


def constraints(
    self: BaseClient,
    context: str,
    *,
    as_of: int | None = None,
    known_at: int | None = None,
    exclude_retracted: bool | None = None,
) -> dict[str, Any]:
    """The rules in force in `context` (ancestors' included), and their conflicts."""
    params = drop_none(
        {
            "context": context,
            "as_of": as_of,
            "known_at": known_at,
            "exclude_retracted": exclude_retracted,
        }
    )
    return cast(dict[str, Any], self._get("/v1/constraints", params))


def check_constraints(
    self: BaseClient,
    context: str,
    intended_action: Mapping[str, Any] | None = None,
    *,
    uses: Iterable[str] = (),
    does: Iterable[str] = (),
    as_of: int | None = None,
    known_at: int | None = None,
    exclude_retracted: bool | None = None,
) -> dict[str, Any]:
    """Which rules in force in `context` the intended action violates (`ok`, `violations`,
    `advice`). Give `intended_action` as a mapping (`{"uses": [...], "does": [...]}`) or
    `uses` / `does`."""
    action = dict(intended_action or {"uses": list(uses), "does": list(does)})
    body = drop_none(
        {
            "context": context,
            "intended_action": action,
            "as_of": as_of,
            "known_at": known_at,
            "exclude_retracted": exclude_retracted,
        }
    )
    return cast(
        dict[str, Any],
        self._post("/v1/constraints/check", body, idempotent=True, ok=(200,)),
    )
