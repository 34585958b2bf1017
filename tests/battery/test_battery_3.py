"""Battery 3 — the contradiction is the answer: two equal studies, false vs true."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2ekit import Agent, Api

SUBJECT = "trials/battery3"
PREDICATE = "effective"
T = int(time.time()) - 7200
LENSES = (
    "recency",
    "confidence",
    "consensus",
    "authority",
    "trust",
    "votes",
    "best",
    "epoch",
    "skeptic",
    "layered",
)


@pytest.fixture(scope="module")
def world(bapi: Api) -> dict[str, Any]:
    one, two = Agent(), Agent()
    no = one.assertion(
        SUBJECT,
        PREDICATE,
        {"type": "Boolean", "value": False},
        0.85,
        source_class="Clinical",
        timestamp=T,
    )
    yes = two.assertion(
        SUBJECT,
        PREDICATE,
        {"type": "Boolean", "value": True},
        0.85,
        source_class="Clinical",
        timestamp=T + 60,
    )
    hashes = bapi.batch_ok([no, yes])
    return {"false": hashes[0], "true": hashes[1]}


def test_skeptic_is_contested_with_exactly_two_claims(bapi: Api, world: dict[str, Any]) -> None:
    body = bapi.get_ok("/v1/skeptic", {"subject": SUBJECT, "predicate": PREDICATE})
    assert body["status"] == "Contested"
    assert body["conflict_score"] >= 0.88
    assert len(body["claims"]) == 2
    values = sorted((c["object"]["type"], c["object"]["value"]) for c in body["claims"])
    assert values == [("Boolean", False), ("Boolean", True)]
    assert [c["share"] for c in body["claims"]] == pytest.approx([0.5, 0.5])
    assert {tuple(c["assertions"]) for c in body["claims"]} == {(world["false"],), (world["true"],)}


def test_no_lens_invents_an_averaged_value(bapi: Api, world: dict[str, Any]) -> None:
    allowed = ({"type": "Boolean", "value": False}, {"type": "Boolean", "value": True})
    for name in LENSES:
        body = bapi.query(subject=SUBJECT, predicate=PREDICATE, lens=name)
        (result,) = body["results"]
        assert result["conflict_score"] >= 0.88, name
        winner = result["winner"]
        if name == "skeptic":
            assert winner is None
            assert [c["object"] for c in result["claims"]] in (
                list(allowed),
                list(reversed(allowed)),
            )
            continue
        assert winner is not None, name
        assert winner["object"] in allowed, (name, winner["object"])
        assert winner["hash"] in (world["false"], world["true"]), name
        for tier in result.get("tiers", []):
            assert tier["value"] in allowed, (name, tier)
    layered = bapi.get_ok("/v1/layered", {"subject": SUBJECT, "predicate": PREDICATE})
    assert layered["winner"]["object"] in allowed
