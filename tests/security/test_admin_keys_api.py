"""`GET/POST/DELETE /v1/admin/keys`: secrets shown once, never a hash, revocation immediate."""

from __future__ import annotations

import re
import time

import pytest
from securekit import ROOT_KEY, SecureApp

ADMIN = {"X-API-Key": ROOT_KEY}


def test_create_shows_the_secret_once_and_listing_never_shows_secret_or_hash(
    auth_app: SecureApp,
) -> None:
    resp = auth_app.client.simulate_post(
        "/v1/admin/keys",
        json={"role": "writer", "name": "pipeline", "scope": "drugs/"},
        headers=ADMIN,
    )
    assert resp.status_code == 201, resp.text
    body = resp.json
    secret = body["api_key"]
    assert re.fullmatch(r"stemedb_[0-9a-f]{12}_[0-9a-f]{64}", secret)
    assert body["key"] | {"created_ms": 0} == {
        "id": secret.split("_")[1],
        "name": "pipeline",
        "role": "writer",
        "scope": "drugs",
        "created_ms": 0,
        "expires_ms": None,
        "revoked_ms": None,
        "status": "active",
    }
    listing = auth_app.client.simulate_get("/v1/admin/keys", headers=ADMIN)
    assert listing.status_code == 200
    assert secret.split("_")[2] not in listing.text
    assert "hash" not in listing.text
    assert body["key"]["id"] in {key["id"] for key in listing.json["keys"]}
    assert set(listing.json["keys"][0]) == set(body["key"])


def test_the_created_key_works_at_once_and_revocation_is_immediate(auth_app: SecureApp) -> None:
    created = auth_app.client.simulate_post(
        "/v1/admin/keys", json={"role": "reader"}, headers=ADMIN
    ).json
    key = {"X-API-Key": created["api_key"]}
    # An unknown-key lookup is cached for up to a second; creation must clear that.
    assert auth_app.client.simulate_get("/v1/epochs", headers=key).status_code == 200
    revoked = auth_app.client.simulate_delete(
        f"/v1/admin/keys/{created['key']['id']}", headers=ADMIN
    )
    assert revoked.status_code == 200
    assert revoked.json["key"]["status"] == "revoked"
    resp = auth_app.client.simulate_get("/v1/epochs", headers=key)  # no wait for any TTL
    assert resp.status_code == 401
    assert "revoked" in resp.json["error"]["message"]
    again = auth_app.client.simulate_delete(f"/v1/admin/keys/{created['key']['id']}", headers=ADMIN)
    assert again.json["key"]["revoked_ms"] == revoked.json["key"]["revoked_ms"]


def test_expiry_by_duration(auth_app: SecureApp) -> None:
    resp = auth_app.client.simulate_post(
        "/v1/admin/keys", json={"role": "reader", "expires_in": "1h"}, headers=ADMIN
    )
    expires = resp.json["key"]["expires_ms"]
    assert abs(expires - (time.time() * 1000 + 3_600_000)) < 60_000


def test_a_key_that_expires_is_refused_from_then_on(auth_app: SecureApp) -> None:
    soon = int(time.time() * 1000) + 300
    resp = auth_app.client.simulate_post(
        "/v1/admin/keys", json={"role": "reader", "expires_ms": soon}, headers=ADMIN
    )
    key = {"X-API-Key": resp.json["api_key"]}
    assert auth_app.client.simulate_get("/v1/epochs", headers=key).status_code == 200
    time.sleep(max(0.0, soon / 1000 - time.time()) + 0.05)
    expired = auth_app.client.simulate_get("/v1/epochs", headers=key)
    assert expired.status_code == 401
    assert "expired" in expired.json["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "root"}, "role"),
        ({}, "role"),
        ({"role": "reader", "scope": "drugs"}, "scope"),
        ({"role": "admin", "scope": "drugs"}, "scope"),
        ({"role": "writer", "scope": "a//b"}, "scope"),
        ({"role": "writer", "expires_in": "soon"}, "expires_in"),
        ({"role": "writer", "expires_ms": 1000}, "expires_ms"),
        ({"role": "writer", "expires_ms": 2**70}, "expires_ms"),
        ({"role": "writer", "expires_in": "9999999999w"}, "expires_in"),
        ({"role": "writer", "expires_in": "1d", "expires_ms": 10**13}, "expires_in"),
        ({"role": "writer", "name": "x" * 129}, "name"),
        ({"role": "writer", "hash": "00"}, "hash"),
    ],
)
def test_bad_create_requests_are_400_naming_the_field(
    auth_app: SecureApp, body: dict[str, object], field: str
) -> None:
    resp = auth_app.client.simulate_post("/v1/admin/keys", json=body, headers=ADMIN)
    assert resp.status_code == 400, resp.text
    assert resp.json["error"]["code"] == "invalid_request"
    assert resp.json["error"]["details"][0]["field"] == field


def test_revoking_an_unknown_key_is_404(auth_app: SecureApp) -> None:
    resp = auth_app.client.simulate_delete("/v1/admin/keys/abcdefabcdef", headers=ADMIN)
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"


def test_key_management_needs_the_admin_role(auth_app: SecureApp) -> None:
    writer = {"X-API-Key": auth_app.new_key("writer")}
    assert auth_app.client.simulate_get("/v1/admin/keys", headers=writer).status_code == 403
    create = auth_app.client.simulate_post("/v1/admin/keys", json={"role": "admin"}, headers=writer)
    assert create.status_code == 403  # a writer cannot mint itself an admin key
    assert auth_app.client.simulate_get("/v1/admin/keys").status_code == 401
