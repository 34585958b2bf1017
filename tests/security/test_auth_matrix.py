"""Every principal × every route class: who is let in and who is refused, and how.

Runs in-process against the real store, routes and security middleware, with
authentication on. The refusals must carry the one error shape.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from securekit import ROOT_KEY, Agent, SecureApp

PRINCIPALS = ("none", "garbage", "unknown", "expired", "revoked", "reader", "writer", "admin")


@pytest.fixture(scope="module")
def secrets(auth_app: SecureApp) -> dict[str, str | None]:
    keys = auth_app.keys
    revoked, revoked_secret = keys.create("admin", name="revoked")
    keys.revoke(revoked.id)
    _, expired_secret = keys.create("admin", expires_ms=int(time.time() * 1000) + 50)
    time.sleep(0.06)
    return {
        "none": None,
        "garbage": "not a key at all",
        "unknown": "stemedb_000000000000_" + "0" * 64,
        "expired": expired_secret,
        "revoked": revoked_secret,
        "reader": keys.create("reader")[1],
        "writer": keys.create("writer")[1],
        "admin": ROOT_KEY,
    }


Call = Callable[[SecureApp, dict[str, str]], Any]


def _public(app: SecureApp, headers: dict[str, str]) -> Any:
    return app.client.simulate_get("/v1/health", headers=headers)


def _read(app: SecureApp, headers: dict[str, str]) -> Any:
    return app.client.simulate_get("/v1/query", params={"subject": "x/y"}, headers=headers)


def _write(app: SecureApp, headers: dict[str, str]) -> Any:
    # a fresh claim each time: the same content from another signer would be `exists`
    return app.client.simulate_post(
        "/v1/assert", json=Agent().assertion(f"matrix/{uuid.uuid4().hex}"), headers=headers
    )


def _admin(app: SecureApp, headers: dict[str, str]) -> Any:
    return app.client.simulate_get("/v1/admin/stats", headers=headers)


ROUTE_CLASSES: dict[str, tuple[Call, int]] = {
    "public": (_public, 200),
    "read": (_read, 200),
    "write": (_write, 201),
    "admin": (_admin, 200),
}
ALLOWED = {
    "public": set(PRINCIPALS),
    "read": {"reader", "writer", "admin"},
    "write": {"writer", "admin"},
    "admin": {"admin"},
}
UNAUTHENTICATED = {"none", "garbage", "unknown", "expired", "revoked"}


@pytest.mark.parametrize("route_class", list(ROUTE_CLASSES))
@pytest.mark.parametrize("principal", PRINCIPALS)
def test_role_matrix(
    auth_app: SecureApp, secrets: dict[str, str | None], principal: str, route_class: str
) -> None:
    call, ok_status = ROUTE_CLASSES[route_class]
    secret = secrets[principal]
    headers = {"X-API-Key": secret} if secret is not None else {}
    resp = call(auth_app, headers)
    if principal in ALLOWED[route_class]:
        assert resp.status_code == ok_status, resp.text
    elif principal in UNAUTHENTICATED:
        assert resp.status_code == 401, resp.text
        assert resp.json["error"]["code"] == "unauthorized"
    else:
        assert resp.status_code == 403, resp.text
        error = resp.json["error"]
        assert error["code"] == "forbidden"
        assert error["details"][0]["field"] == "X-API-Key"
    assert resp.headers["X-Request-Id"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("principal", "says"),
    [
        ("none", "API key is required"),
        ("garbage", "not valid"),
        ("unknown", "not valid"),
        ("expired", "is expired"),
        ("revoked", "is revoked"),
    ],
)
def test_401_messages_say_why(
    auth_app: SecureApp, secrets: dict[str, str | None], principal: str, says: str
) -> None:
    secret = secrets[principal]
    resp = _read(auth_app, {"X-API-Key": secret} if secret else {})
    assert resp.status_code == 401
    assert says in resp.json["error"]["message"]


def test_403_names_the_role_needed(auth_app: SecureApp, secrets: dict[str, str | None]) -> None:
    resp = _admin(auth_app, {"X-API-Key": secrets["writer"] or ""})
    assert resp.status_code == 403
    assert "needs admin" in resp.json["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/health", "/v1/ready", "/metrics", "/openapi.json", "/docs"])
def test_public_routes_need_no_key(auth_app: SecureApp, path: str) -> None:
    assert auth_app.client.simulate_get(path).status_code == 200


def test_a_refused_write_reads_no_body_and_writes_nothing(
    auth_app: SecureApp, secrets: dict[str, str | None]
) -> None:
    head = auth_app.store.stats()["journal_seq"]
    for principal in ("none", "reader"):
        secret = secrets[principal]
        resp = auth_app.client.simulate_post(
            "/v1/assert",
            body=b"{ this is not even json",
            headers={
                "Content-Type": "application/json",
                **({"X-API-Key": secret} if secret else {}),
            },
        )
        assert resp.status_code in (401, 403)  # not 400: refused before the body is parsed
    assert auth_app.store.stats()["journal_seq"] == head


def test_auth_off_lets_everyone_in(secure_app: Callable[..., SecureApp]) -> None:
    app = secure_app()
    assert _admin(app, {}).status_code == 200
    assert _write(app, {"X-API-Key": "ignored"}).status_code == 201
