"""Per-agent hourly quotas: costs, attribution, X-Quota-* headers, 429 quota_exhausted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from securekit import Agent, SecureApp

HOUR = 3600


@pytest.fixture
def metered(secure_app: Callable[..., SecureApp]) -> SecureApp:
    return secure_app(STEMEDB_QUOTA_ENABLED="true", STEMEDB_QUOTA_TOKENS_PER_HOUR="100")


def _post(app: SecureApp, path: str, body: Any, **headers: str) -> Any:
    return app.client.simulate_post(path, json=body, headers=headers, remote_addr="192.0.2.1")


def _get(app: SecureApp, path: str, params: dict[str, str], **headers: str) -> Any:
    return app.client.simulate_get(path, params=params, headers=headers, remote_addr="192.0.2.1")


def _remaining(resp: Any) -> int:
    return int(resp.headers["X-Quota-Remaining"])


def test_an_assert_costs_10_of_the_signers_quota(metered: SecureApp, agent: Agent) -> None:
    resp = _post(metered, "/v1/assert", agent.assertion("q/a"))
    assert resp.status_code == 201
    assert resp.headers["X-Quota-Limit"] == "100"
    assert _remaining(resp) == 90
    assert 0 < int(resp.headers["X-Quota-Reset"]) <= 10 * HOUR / 100 + 1


def test_costs_per_request_kind(metered: SecureApp, agent: Agent) -> None:
    who = {"X-Agent-Id": agent.id}
    target = _post(metered, "/v1/assert", agent.assertion("q/b")).json["hash"]
    steps = [
        (
            lambda: _post(
                metered, "/v1/vote", agent.record("vote", {"assertion_hash": target, "weight": 1})
            ),
            1,
        ),
        (lambda: _get(metered, "/v1/query", {"subject": "q/b"}, **who), 5),
        (lambda: _get(metered, "/v1/query", {"subject": "q/b", "lens": "recency"}, **who), 6),
        (lambda: _post(metered, "/v1/query", {"subject": "q/b", "lens": "recency"}, **who), 6),
        (lambda: _post(metered, "/v1/query", {"subject": "q/b"}, **who), 5),
        (lambda: _get(metered, "/v1/skeptic", {"subject": "q/b", "predicate": "p"}, **who), 6),
        (lambda: _get(metered, "/v1/epochs", {}, **who), 1),
    ]
    left = 90
    for call, cost in steps:
        resp = call()
        assert resp.status_code in (200, 201), resp.text
        left -= cost
        # Refill is 100/h: at most a token or so during this test.
        assert _remaining(resp) in (left, left + 1), (resp.text, cost)


def test_one_token_per_kib_of_body(metered: SecureApp, agent: Agent) -> None:
    big = json.dumps(agent.assertion("q/big", value="x" * 3000)).encode()
    assert 3 * 1024 <= len(big) < 4 * 1024
    resp = metered.client.simulate_post(
        "/v1/assert", body=big, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 201, resp.text
    assert _remaining(resp) == 100 - 10 - 3


def test_a_batch_costs_10_per_record(metered: SecureApp, agent: Agent) -> None:
    records = [agent.assertion(f"q/batch{i}") for i in range(4)]
    body = json.dumps(records).encode()
    resp = metered.client.simulate_post(
        "/v1/assert/batch", body=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 200 and resp.json["created"] == 4
    assert _remaining(resp) == 100 - 40 - len(body) // 1024
    seq = metered.store.stats()["journal_seq"]
    more = _post(metered, "/v1/assert/batch", [agent.assertion(f"q/more{i}") for i in range(7)])
    assert more.status_code == 200  # 10 + KiB now (enough), the other 60 afterwards: in debt
    assert _remaining(more) == 0
    after = _post(metered, "/v1/assert", agent.assertion("q/later"))
    assert after.status_code == 429
    assert metered.store.stats()["journal_seq"] == seq + 7


def test_exhausted_quota_is_429_with_retry_after_and_headers(
    metered: SecureApp, agent: Agent
) -> None:
    for i in range(10):
        assert _post(metered, "/v1/assert", agent.assertion(f"q/x{i}")).status_code == 201
    resp = _post(metered, "/v1/assert", agent.assertion("q/x10"))
    assert resp.status_code == 429
    assert resp.json["error"]["code"] == "quota_exhausted"
    assert "costs 10 tokens" in resp.json["error"]["message"]
    # 10 tokens at 100 per hour: 6 minutes.
    assert 350 <= int(resp.headers["Retry-After"]) <= 361
    assert resp.headers["X-Quota-Remaining"] == "0"
    assert metered.metric("stemedb_rate_limited_total", route="/v1/assert") == 1


def test_agents_have_separate_quotas_and_the_header_wins(metered: SecureApp) -> None:
    alice, bob = Agent(), Agent()
    for i in range(10):
        _post(metered, "/v1/assert", alice.assertion(f"q/alice{i}"))
    assert _post(metered, "/v1/assert", alice.assertion("q/alice")).status_code == 429

    def elsewhere(record: Any, **headers: str) -> Any:
        return metered.client.simulate_post(
            "/v1/assert", json=record, headers=headers, remote_addr="192.0.2.2"
        )

    # From another address (another payer, auth is off): Bob has his own quota ...
    assert elsewhere(bob.assertion("q/bob")).status_code == 201
    # ... and Alice's is spent wherever she writes from.
    assert elsewhere(alice.assertion("q/alice-again")).status_code == 429
    # Bob's record, but the request says it is on behalf of Alice: Alice pays.
    resp = elsewhere(bob.assertion("q/bob2"), **{"X-Agent-Id": alice.id})
    assert resp.status_code == 429
    # The first address paid for Alice's ten records: Bob cannot write from it either.
    assert _post(metered, "/v1/assert", bob.assertion("q/bob3")).status_code == 429


def test_without_an_agent_the_client_address_pays(secure_app: Callable[..., SecureApp]) -> None:
    app = secure_app(
        STEMEDB_QUOTA_ENABLED="true",
        STEMEDB_QUOTA_TOKENS_PER_HOUR="12",
        STEMEDB_REQUIRE_SIGNATURES="false",
    )
    # An explicit timestamp: without one the server stamps the second it receives the
    # record, and a resubmission a second later is a new record (this failed once).
    record = {
        "subject": "q/anon",
        "predicate": "p",
        "object": "v",
        "confidence": 0.5,
        "timestamp": int(time.time()),
    }
    assert _post(app, "/v1/assert", record).status_code == 201
    assert _post(app, "/v1/assert", record).status_code == 429
    other = app.client.simulate_post("/v1/assert", json=record, remote_addr="192.0.2.99")
    assert other.status_code == 200  # an exact resubmission: exists


def test_public_and_admin_routes_are_not_metered(metered: SecureApp) -> None:
    for path in ("/v1/health", "/v1/admin/stats"):
        resp = metered.client.simulate_get(path)
        assert resp.status_code == 200
        assert "X-Quota-Limit" not in resp.headers


def test_a_request_bigger_than_the_whole_quota_says_so(
    secure_app: Callable[..., SecureApp],
) -> None:
    app = secure_app(STEMEDB_QUOTA_ENABLED="true", STEMEDB_QUOTA_TOKENS_PER_HOUR="5")
    resp = _post(app, "/v1/assert", Agent().assertion("q/x"))
    assert resp.status_code == 429
    assert "more than the whole hourly quota" in resp.json["error"]["message"]
    assert int(resp.headers["Retry-After"]) <= 3600


def test_quotas_off_means_no_headers(secure_app: Callable[..., SecureApp], agent: Agent) -> None:
    app = secure_app()
    resp = _post(app, "/v1/assert", agent.assertion("q/off"))
    assert resp.status_code == 201
    assert "X-Quota-Limit" not in resp.headers
