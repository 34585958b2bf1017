"""Token buckets per client and route class, IETF RateLimit-* headers, 429s, trusted proxies."""

from __future__ import annotations

from collections.abc import Callable

import falcon.testing
import pytest
from securekit import ROOT_KEY, Agent, SecureApp

from stemedb.security.ratelimit import BucketTable, TokenBucket, client_address, parse_networks


def test_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = TokenBucket(capacity=2, rate=2, tokens=2, updated=0.0)
    assert bucket.take(1, 0.0) and bucket.take(1, 0.0)
    assert not bucket.take(1, 0.0)
    assert bucket.seconds_until(1) == pytest.approx(0.5)
    assert bucket.take(1, 0.5)
    bucket.refill(100.0)
    assert bucket.tokens == 2


def test_bucket_table_stays_bounded_and_drops_idle_buckets_first() -> None:
    table = BucketTable(max_entries=100)
    for i in range(1000):
        table.take(f"client{i}", 1, 1, 1, now=float(i))
    assert len(table) <= 100
    busy = BucketTable(max_entries=3)
    busy.take("b", 1, 1, 1, now=0)
    busy.take("c", 1, 1, 1, now=0)
    busy.take("a", 10, 0.001, 5, now=0)  # half empty for the next hour and more
    busy.take("d", 1, 1, 1, now=10)  # b and c are full again: forgetting them changes nothing
    assert ("a" in busy, "b" in busy, "c" in busy, "d" in busy) == (True, False, False, True)
    assert not busy.take("a", 10, 0.001, 6, now=11).allowed  # a's spent tokens were kept


def _req(remote: str, xff: str | None = None) -> falcon.Request:
    headers = {"X-Forwarded-For": xff} if xff else {}
    return falcon.testing.create_req(remote_addr=remote, headers=headers)


def test_take_all_takes_from_every_bucket_or_none_and_force_charges_into_debt() -> None:
    table = BucketTable()
    table.take("agent", 10, 1, 8, now=0)  # the agent's bucket has 2 left, the payer's 10
    refused = table.take_all(["payer", "agent"], 10, 1, 5, now=0)
    assert not refused.allowed and refused.remaining == 2 and refused.retry_after_s == 3
    assert table.take("payer", 10, 1, 10, now=0).allowed  # nothing was taken from the payer
    forced = table.take_all(["payer", "agent", "payer"], 10, 1, 5, now=0, force=True)
    assert forced.allowed and forced.retry_after_s == 0.0
    assert forced.remaining == 0 and forced.reset_s == 15  # the payer: 0 - 5 = -5 tokens
    assert not table.take("agent", 10, 1, 1, now=0).allowed  # the agent owes 3
    assert table.take("agent", 10, 1, 1, now=4).allowed


@pytest.mark.parametrize(
    ("trusted", "remote", "xff", "client"),
    [
        ((), "203.0.113.9", "1.2.3.4", "203.0.113.9"),  # no trusted proxy: header ignored
        (("127.0.0.1",), "203.0.113.9", "1.2.3.4", "203.0.113.9"),  # peer is not the proxy
        (("127.0.0.1",), "127.0.0.1", "198.51.100.7", "198.51.100.7"),
        (("127.0.0.1",), "127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # spoofed left
        (("127.0.0.1", "10.0.0.0/8"), "127.0.0.1", "198.51.100.7, 10.1.2.3", "198.51.100.7"),
        (("127.0.0.1",), "127.0.0.1", None, "127.0.0.1"),
        (("127.0.0.1",), "127.0.0.1", "garbage", "127.0.0.1"),
        (("::1",), "::1", "2001:db8::1", "2001:db8::1"),
        (("127.0.0.1",), "127.0.0.1", "[2001:db8::2]:5555", "2001:db8::2"),
    ],
)
def test_client_address_believes_forwarded_for_only_from_trusted_proxies(
    trusted: tuple[str, ...], remote: str, xff: str | None, client: str
) -> None:
    assert client_address(_req(remote, xff), parse_networks(trusted)) == client


@pytest.fixture
def limited(secure_app: Callable[..., SecureApp]) -> SecureApp:
    return secure_app(
        STEMEDB_RATE_LIMIT_WRITE="2/s",
        STEMEDB_RATE_LIMIT_READ="3/m",
        STEMEDB_RATE_LIMIT_ADMIN="0",
        STEMEDB_REQUIRE_SIGNATURES="false",
    )


def _assert(app: SecureApp, remote: str = "192.0.2.1", **headers: str) -> falcon.testing.Result:
    record = {"subject": "rl/x", "predicate": "p", "object": "v", "confidence": 0.5}
    return app.client.simulate_post("/v1/assert", json=record, headers=headers, remote_addr=remote)


def test_write_limit_headers_then_429_with_retry_after(limited: SecureApp) -> None:
    first, second, third = (_assert(limited) for _ in range(3))
    assert first.status_code in (200, 201) and second.status_code in (200, 201)
    assert first.headers["RateLimit-Limit"] == "2"
    assert first.headers["RateLimit-Remaining"] == "1"
    assert second.headers["RateLimit-Remaining"] == "0"
    assert int(second.headers["RateLimit-Reset"]) >= 1
    assert third.status_code == 429
    assert third.json["error"]["code"] == "rate_limited"
    assert third.headers["Retry-After"] == "1"
    assert third.headers["RateLimit-Remaining"] == "0"
    assert limited.metric("stemedb_rate_limited_total", route="/v1/assert") == 1


def test_classes_and_clients_have_separate_buckets(limited: SecureApp) -> None:
    for _ in range(2):
        _assert(limited)
    assert _assert(limited).status_code == 429
    assert _assert(limited, remote="192.0.2.2").status_code in (200, 201)  # another client
    read = limited.client.simulate_get("/v1/epochs", remote_addr="192.0.2.1")
    assert read.status_code == 200  # the read bucket is untouched
    assert read.headers["RateLimit-Limit"] == "1"  # 3/m: burst of 1, refills every 20 s
    again = limited.client.simulate_get("/v1/epochs", remote_addr="192.0.2.1")
    assert again.status_code == 429
    assert int(again.headers["Retry-After"]) in range(19, 21)


@pytest.mark.parametrize("path", ["/v1/health", "/v1/ready", "/metrics", "/openapi.json"])
def test_public_routes_are_never_limited_and_carry_no_headers(
    limited: SecureApp, path: str
) -> None:
    for _ in range(10):
        resp = limited.client.simulate_get(path, remote_addr="192.0.2.1")
        assert resp.status_code == 200
        assert "RateLimit-Limit" not in resp.headers


def test_zero_turns_a_class_off(limited: SecureApp) -> None:
    for _ in range(20):
        resp = limited.client.simulate_get("/v1/admin/stats", remote_addr="192.0.2.1")
        assert resp.status_code == 200
        assert "RateLimit-Limit" not in resp.headers


def test_with_auth_the_bucket_is_per_key_and_bad_keys_are_limited_per_address(
    secure_app: Callable[..., SecureApp],
) -> None:
    app = secure_app(
        STEMEDB_AUTH_ENABLED="true", STEMEDB_ROOT_API_KEY=ROOT_KEY, STEMEDB_RATE_LIMIT_READ="2/s"
    )
    one, two = app.new_key("reader"), app.new_key("reader")
    for _ in range(2):
        assert app.client.simulate_get("/v1/epochs", headers={"X-API-Key": one}).status_code == 200
    assert app.client.simulate_get("/v1/epochs", headers={"X-API-Key": one}).status_code == 429
    # Same address, other key: its own bucket.
    assert app.client.simulate_get("/v1/epochs", headers={"X-API-Key": two}).status_code == 200
    codes = [
        app.client.simulate_get("/v1/epochs", headers={"X-API-Key": "guess"}).status_code
        for _ in range(3)
    ]
    assert codes == [401, 401, 429]


def test_forwarded_for_selects_the_bucket_behind_a_trusted_proxy(
    secure_app: Callable[..., SecureApp], agent: Agent
) -> None:
    app = secure_app(STEMEDB_RATE_LIMIT_READ="1/s", STEMEDB_TRUSTED_PROXY="127.0.0.1")

    def get(xff: str, remote: str = "127.0.0.1") -> int:
        resp = app.client.simulate_get(
            "/v1/epochs", headers={"X-Forwarded-For": xff}, remote_addr=remote
        )
        return resp.status_code

    assert get("198.51.100.1") == 200
    assert get("198.51.100.1") == 429
    assert get("198.51.100.2") == 200  # another client behind the same proxy
    assert get("6.6.6.6, 198.51.100.1") == 429  # a spoofed left part changes nothing
    assert get("198.51.100.9", remote="203.0.113.5") == 200  # not the proxy: its own address
    assert get("198.51.100.10", remote="203.0.113.5") == 429  # ... whatever header it sends
