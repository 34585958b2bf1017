"""Quotas bind to who pays (issue 14, item 11), on a real server.

Before the fix the quota bucket was keyed by the self-declared `X-Agent-Id`
or the record's signer: a client rotating either (fresh signing keys are
free) had an unlimited quota. Now every request is charged to its API key
(or, with auth off, its client address) as well as to its agent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2ekit import Agent, RunningServer, ServerFactory, unique
from rightskit import AUTH_ENV, ROOT_KEY, AuthServer

QUOTA_ENV = {"STEMEDB_QUOTA_ENABLED": "true", "STEMEDB_QUOTA_TOKENS_PER_HOUR": "100"}


@pytest.fixture(scope="module")
def srv(module_server_factory: ServerFactory) -> Iterator[AuthServer]:
    server = module_server_factory({**AUTH_ENV, **QUOTA_ENV})
    auth = AuthServer(server, {"admin": ROOT_KEY})
    yield auth
    server.proc.stop()


def test_rotating_signing_keys_exhausts_the_api_keys_quota(srv: AuthServer) -> None:
    key = srv.new_key("writer")
    statuses = []
    for _ in range(15):  # 10 tokens each: 10 fit in 100
        agent = Agent()  # a fresh signer for every request, announced in X-Agent-Id too
        resp = srv.api.post(
            "/v1/assert",
            agent.assertion(f"quota/{unique()}", "p", 1),
            headers={"X-API-Key": key, "X-Agent-Id": agent.id},
        )
        statuses.append(resp.status)
        if resp.status == 429:
            assert resp.error["code"] == "quota_exhausted"
            assert int(resp.header("Retry-After") or 0) >= 1
    assert statuses[:9] == [201] * 9
    assert statuses[-3:] == [429] * 3
    # another API key is another payer: its quota is whole
    other = srv.new_key("writer")
    resp = srv.api.post(
        "/v1/assert",
        Agent().assertion(f"quota/{unique()}", "p", 1),
        headers={"X-API-Key": other},
    )
    assert resp.status == 201, resp
    assert int(resp.header("X-Quota-Remaining") or 0) >= 80


def test_rotating_x_agent_id_on_reads_exhausts_the_api_keys_quota(srv: AuthServer) -> None:
    key = srv.new_key("reader")
    codes = set()
    for _ in range(120):  # 1 token each
        resp = srv.api.get("/v1/epochs", headers={"X-API-Key": key, "X-Agent-Id": Agent().id})
        codes.add(resp.status)
        if resp.status == 429:
            assert resp.error["code"] == "quota_exhausted"
            break
    assert 429 in codes


@pytest.fixture(scope="module")
def open_server(module_server_factory: ServerFactory) -> Iterator[RunningServer]:
    env = {**QUOTA_ENV, "STEMEDB_RATE_LIMIT_WRITE": "0", "STEMEDB_RATE_LIMIT_READ": "0"}
    server = module_server_factory(env)
    yield server
    server.proc.stop()


def test_with_auth_off_the_client_address_pays(open_server: RunningServer) -> None:
    statuses = []
    for _ in range(12):
        agent = Agent()
        resp = open_server.api.post(
            "/v1/assert",
            agent.assertion(f"quota/{unique()}", "p", 1),
            headers={"X-Agent-Id": agent.id},
        )
        statuses.append(resp.status)
    assert statuses[:9] == [201] * 9
    assert statuses[-1] == 429
