"""API key management: `GET/POST /v1/admin/keys`, `DELETE /v1/admin/keys/{key_id}`.

Responses never include a key's hash; the full key string appears exactly
once, in the answer to the POST that created it. DELETE revokes (the row is
kept for the audit trail) and takes the id in the path: request bodies on
DELETE are ignored by many clients and proxies. Revoking an already revoked
key answers 200 with its first revocation time.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import falcon
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stemedb.api.errors import ErrorResponse
from stemedb.api.media import validate
from stemedb.api.resources.common import json_response
from stemedb.api.routing import Route
from stemedb.errors import InvalidRequest
from stemedb.security.keys import ROLES, KeyStore, parse_duration_s

MAX_EXPIRES_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


class KeyCreateIn(BaseModel):
    """A new key: its role, and optionally a name, a subject scope and an expiry."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["reader", "writer", "admin"]
    name: str = Field("", max_length=128)
    scope: str | None = Field(
        None, description="concept path the (writer) key may write under, e.g. `drugs`"
    )
    expires_in: str | None = Field(None, description="lifetime, e.g. `30d`, `12h`, `2w`")
    expires_ms: int | None = Field(
        None, ge=0, le=MAX_EXPIRES_MS, description="absolute expiry, Unix ms"
    )

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration_s(value)
        return value


class KeyOut(BaseModel):
    id: str
    name: str
    role: Literal["reader", "writer", "admin"]
    scope: str | None
    created_ms: int
    expires_ms: int | None
    revoked_ms: int | None
    status: Literal["active", "expired", "revoked"]


class KeyListOut(BaseModel):
    keys: list[KeyOut]


class KeyCreatedOut(BaseModel):
    key: KeyOut
    api_key: str = Field(description="the secret; shown only in this response, store it now")


class KeyRevokedOut(BaseModel):
    key: KeyOut


def _expiry(body: KeyCreateIn) -> int | None:
    if body.expires_in is not None and body.expires_ms is not None:
        raise InvalidRequest.field("expires_in", "give expires_in or expires_ms, not both")
    if body.expires_in is not None:
        return int(time.time() * 1000 + parse_duration_s(body.expires_in) * 1000)
    return body.expires_ms


def routes(keys: KeyStore) -> list[Route]:
    def list_keys(req: falcon.Request, resp: falcon.Response) -> None:
        json_response(resp, {"keys": [key.to_dict() for key in keys.list()]})

    def create_key(req: falcon.Request, resp: falcon.Response) -> None:
        body = validate(KeyCreateIn, req.get_media())
        key, secret = keys.create(body.role, body.name, body.scope, _expiry(body))
        out: dict[str, Any] = {"key": key.to_dict(), "api_key": secret}
        json_response(resp, out, 201)

    def revoke_key(req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        json_response(resp, {"key": keys.revoke(key_id).to_dict()})

    common: dict[str, Any] = {"tag": "admin", "auth": "admin"}
    errors = {400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse}
    return [
        Route(
            "GET",
            "/v1/admin/keys",
            list_keys,
            "List API keys (never their secrets)",
            responses={200: KeyListOut, **errors},
            **common,
        ),
        Route(
            "POST",
            "/v1/admin/keys",
            create_key,
            f"Create an API key (role: {', '.join(ROLES)}); the secret is shown once",
            request_model=KeyCreateIn,
            responses={201: KeyCreatedOut, **errors},
            **common,
        ),
        Route(
            "DELETE",
            "/v1/admin/keys/{key_id}",
            revoke_key,
            "Revoke an API key (effective immediately)",
            responses={200: KeyRevokedOut, 404: ErrorResponse, **errors},
            **common,
        ),
    ]
