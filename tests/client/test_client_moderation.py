"""The client's quarantine and breaker calls, against a real server."""

from __future__ import annotations

from e2ekit import Agent, ServerFactory, unique

from stemedb.client import Client
from stemedb.crypto import generate_signing_key


def test_a_held_claim_is_listed_then_released_through_the_client(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(
        {"STEMEDB_QUARANTINE_NEW_AGENT_S": "3600", "STEMEDB_NEW_AGENTS_PER_HOUR": "0"}
    )
    subject = f"drugs/{unique()}"
    held = srv.api.write("/v1/assert", Agent().assertion(subject, "dose", "7 mg", 0.8))
    assert held["quarantine"]["reason"] == "new_agent"

    admin = Client(srv.proc.url, seed=generate_signing_key())  # auth off: every caller is admin
    listed = admin.admin_quarantine()
    assert held["hash"] in str(listed)
    answer = admin.admin_quarantine_release(held["hash"], reason="checked by hand")
    assert answer["status"] == "created"
    body = admin.query(subject=subject, predicate="dose", lens="consensus")
    assert body["results"][0]["winner"]["hash"] == held["hash"]


def test_breakers_are_listed_and_reset_through_the_client(server_factory: ServerFactory) -> None:
    srv = server_factory()
    client = Client(srv.proc.url)
    assert isinstance(client.admin_breakers(), dict)
    agent = Agent()
    assert isinstance(client.admin_breaker_reset(agent.id), dict)
