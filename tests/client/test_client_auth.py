"""The client on a server with authentication on: X-API-Key, roles, admin key management."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from stemedb.client import ApiError, Client
from stemedb.crypto import generate_signing_key

ROOT = "root-key-for-tests-" + "x" * 32


def test_api_keys_through_the_client(run_server_process: Callable[..., Any]) -> None:
    proc = run_server_process({"STEMEDB_AUTH_ENABLED": "true", "STEMEDB_ROOT_API_KEY": ROOT})
    admin = Client(proc.url, api_key=ROOT)
    assert Client(proc.url).health()["status"] == "healthy"  # public, no key needed

    with pytest.raises(ApiError) as info:
        Client(proc.url, seed=generate_signing_key()).assert_("a/b", "p", "v", 0.5)
    assert (info.value.status, info.value.code) == (401, "unauthorized")

    created = admin.admin_keys_create("writer", name="pipeline", scope="drugs", expires_in="1d")
    secret, key_id = created["api_key"], created["key"]["id"]
    assert created["key"]["role"] == "writer" and created["key"]["scope"] == "drugs"
    writer = Client(proc.url, seed=generate_signing_key(), api_key=secret)
    assert writer.assert_("drugs/x", "p", "v", 0.5)["status"] == "created"
    with pytest.raises(ApiError) as info:
        writer.assert_("devices/y", "p", "v", 0.5)  # outside the key's scope
    assert info.value.status == 403
    with pytest.raises(ApiError) as info:
        writer.admin_stats()  # a writer is not an admin
    assert info.value.status == 403

    listed = {key["id"]: key for key in admin.admin_keys_list()}
    assert listed[key_id]["status"] == "active" and "api_key" not in listed[key_id]
    assert admin.admin_keys_revoke(key_id)["key"]["status"] == "revoked"
    deadline = time.monotonic() + 3
    while True:
        try:
            writer.assertion("00" * 32)
        except ApiError as exc:
            if exc.status == 401 or time.monotonic() > deadline:
                assert exc.status == 401
                break
        time.sleep(0.1)
