"""Battery 2 — volume does not beat authority: one regulator against 100 agents."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2ekit import Agent, Api

SUBJECT = "drugs/battery2"
PREDICATE = "safe"
T = int(time.time()) - 3600


@pytest.fixture(scope="module")
def world(bapi: Api) -> dict[str, Any]:
    regulator = Agent()
    crowd = [Agent() for _ in range(100)]
    records = [
        regulator.assertion(SUBJECT, PREDICATE, "X", 0.95, source_class="Regulatory", timestamp=T)
    ]
    records += [
        agent.assertion(SUBJECT, PREDICATE, "Y", 0.8, source_class="Anecdotal", timestamp=T + 1 + i)
        for i, agent in enumerate(crowd)
    ]
    # The regulator's tier is registered by an admin (docs/security.md); the crowd is not.
    registrar = Agent()
    bapi.batch_ok([registrar.record("agent_tier", agent_id=regulator.id, max_tier="Regulatory")])
    hashes = bapi.batch_ok(records)
    assert len(set(hashes)) == 101
    return {
        "regulator": hashes[0],
        "crowd": hashes[1:],
        "agents": [regulator.id] + [a.id for a in crowd],
    }


def test_all_101_are_stored_from_101_agents(bapi: Api, world: dict[str, Any]) -> None:
    listed = bapi.query(subject=SUBJECT, limit=1000)
    assert listed["count"] == 101
    assert {a["agent_id"] for a in listed["assertions"]} == set(world["agents"])


def test_authority_gives_x(bapi: Api, world: dict[str, Any]) -> None:
    (result,) = bapi.query(subject=SUBJECT, predicate=PREDICATE, lens="authority")["results"]
    assert result["winner"]["hash"] == world["regulator"]
    assert result["winner"]["object"]["value"] == "X"
    assert result["candidates_count"] == 101


def test_consensus_gives_y(bapi: Api, world: dict[str, Any]) -> None:
    (result,) = bapi.query(subject=SUBJECT, predicate=PREDICATE, lens="consensus")["results"]
    assert result["winner"]["object"]["value"] == "Y"
    assert result["winner"]["hash"] == world["crowd"][-1]  # the newest "Y"
    assert result["resolution_confidence"] == pytest.approx(100 / 101)


def test_skeptic_is_contested(bapi: Api, world: dict[str, Any]) -> None:
    body = bapi.get_ok("/v1/skeptic", {"subject": SUBJECT, "predicate": PREDICATE})
    assert body["status"] == "Contested"
    claims = {c["object"]["value"]: c for c in body["claims"]}
    assert set(claims) == {"X", "Y"}
    assert claims["Y"]["assertion_count"] == 100 and len(claims["Y"]["agents"]) == 100
    assert claims["X"]["best_tier"] == "Regulatory" and claims["Y"]["best_tier"] == "Anecdotal"
    assert body["conflict_score"] >= 0.4


def test_layered_puts_the_regulator_on_top(bapi: Api, world: dict[str, Any]) -> None:
    body = bapi.get_ok("/v1/layered", {"subject": SUBJECT, "predicate": PREDICATE})
    assert body["winner"]["hash"] == world["regulator"]
    assert [t["tier"] for t in body["tiers"]] == [0, 5]
