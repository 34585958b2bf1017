"""Battery 4 — paradigm shift: epochs, supersession of epochs, and chains of them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2ekit import Agent, Api

SUBJECT = "drugs/battery4"
T = int(time.time()) - 7200


@pytest.fixture(scope="module")
def world(bapi: Api) -> dict[str, Any]:
    regulator, lab, clinic = Agent(), Agent(), Agent()
    e1 = bapi.write(
        "/v1/epoch",
        regulator.record("epoch", name="fda-label-2023", description="the 2023 label", timestamp=T),
    )["hash"]
    in_e1 = bapi.batch_ok(
        [
            lab.assertion(SUBJECT, "max_dose", "1mg", 0.9, epoch=e1, timestamp=T + 10),
            clinic.assertion(SUBJECT, "max_dose", "1mg", 0.8, epoch=e1, timestamp=T + 900),
        ]
    )
    e2 = bapi.write(
        "/v1/epoch",
        regulator.record("epoch", name="fda-label-2024", supersedes=[e1], timestamp=T + 100),
    )["hash"]
    in_e2 = bapi.batch_ok(
        [
            lab.assertion(SUBJECT, "max_dose", "2mg", 0.7, epoch=e2, timestamp=T + 200),
            clinic.assertion(SUBJECT, "max_dose", "2.4mg", 0.6, epoch=e2, timestamp=T + 300),
        ]
    )
    # A chain E3 <- E4 <- E5: each supersedes the one before.
    e3 = bapi.write("/v1/epoch", regulator.record("epoch", name="e3", timestamp=T))["hash"]
    e4 = bapi.write(
        "/v1/epoch", regulator.record("epoch", name="e4", supersedes=[e3], timestamp=T + 1)
    )["hash"]
    e5 = bapi.write(
        "/v1/epoch", regulator.record("epoch", name="e5", supersedes=[e4], timestamp=T + 2)
    )["hash"]
    chain = bapi.batch_ok(
        [
            lab.assertion(SUBJECT, "mechanism", "old", 0.99, epoch=e3, timestamp=T + 3000),
            clinic.assertion(SUBJECT, "mechanism", "older", 0.95, epoch=e4, timestamp=T + 2000),
            lab.assertion(SUBJECT, "mechanism", "current", 0.5, epoch=e5, timestamp=T + 1000),
            clinic.assertion(SUBJECT, "mechanism", "current-too", 0.4, epoch=e5, timestamp=T + 500),
        ]
    )
    return {
        "e1": e1,
        "e2": e2,
        "e3": e3,
        "e4": e4,
        "e5": e5,
        "in_e1": in_e1,
        "in_e2": in_e2,
        "chain": chain,
    }


def result(bapi: Api, predicate: str, **params: Any) -> dict[str, Any]:
    (found,) = bapi.query(subject=SUBJECT, predicate=predicate, **params)["results"]
    return found


def test_epoch_lens_lets_only_the_new_epoch_compete(bapi: Api, world: dict[str, Any]) -> None:
    plain = result(bapi, "max_dose", lens="recency")
    assert plain["winner"]["hash"] == world["in_e1"][1]  # newest overall is in E1
    found = result(bapi, "max_dose", lens="epoch")
    assert found["winner"]["hash"] == world["in_e2"][1]  # inner recency among E2 only
    excluded = {e["hash"]: e["excluded"] for e in found["explanation"]}
    assert {excluded[h] for h in world["in_e1"]} == {"epoch_superseded"}
    assert {excluded[h] for h in world["in_e2"]} == {None}
    for inner in ("confidence", "consensus", "authority"):
        found = result(bapi, "max_dose", lens="epoch", inner=inner)
        assert found["winner"]["hash"] in world["in_e2"], inner
    assert (
        result(bapi, "max_dose", lens="epoch", inner="confidence")["winner"]["hash"]
        == world["in_e2"][0]
    )


def test_an_epoch_query_still_returns_the_old_epoch(bapi: Api, world: dict[str, Any]) -> None:
    listed = bapi.query(subject=SUBJECT, epoch=world["e1"])
    assert {a["hash"] for a in listed["assertions"]} == set(world["in_e1"])
    found = result(bapi, "max_dose", lens="recency", epoch=world["e1"])
    assert found["winner"]["hash"] == world["in_e1"][1]
    assert bapi.get_ok("/v1/query", {"subject": SUBJECT, "epoch": world["e2"]})["count"] == 2


def test_in_a_chain_only_the_last_epoch_competes(bapi: Api, world: dict[str, Any]) -> None:
    found = result(bapi, "mechanism", lens="epoch")
    assert found["winner"]["hash"] == world["chain"][2]  # "current", newest in E5
    excluded = {e["hash"]: e["excluded"] for e in found["explanation"]}
    assert excluded[world["chain"][0]] == "epoch_superseded"  # E3, superseded through E4
    assert excluded[world["chain"][1]] == "epoch_superseded"
    assert excluded[world["chain"][2]] is None and excluded[world["chain"][3]] is None
    by_confidence = result(bapi, "mechanism", lens="epoch_aware", inner="confidence")
    assert by_confidence["winner"]["hash"] == world["chain"][2]
    # Without the epoch lens the superseded epochs still compete (nothing is deleted).
    assert result(bapi, "mechanism", lens="confidence")["winner"]["hash"] == world["chain"][0]


def test_epochs_report_their_superseded_flags(bapi: Api, world: dict[str, Any]) -> None:
    epochs = {e["id"]: e for e in bapi.get_ok("/v1/epochs")["epochs"]}
    assert epochs[world["e1"]]["name"] == "fda-label-2023"
    assert epochs[world["e1"]]["superseded"] is True
    assert epochs[world["e1"]]["superseded_by"] == world["e2"]
    assert epochs[world["e2"]]["superseded"] is False
    assert epochs[world["e3"]]["superseded"] is True and epochs[world["e4"]]["superseded"] is True
    assert epochs[world["e5"]]["superseded"] is False
    one = bapi.get_ok(f"/v1/epochs/{world['e3']}")
    assert one["superseded"] is True and one["superseded_by"] in (world["e4"], world["e5"])


def test_a_supersession_cycle_cannot_be_created(bapi: Api, world: dict[str, Any]) -> None:
    """Content addressing: an epoch can only name epochs that exist before it, so
    superseding a later epoch from an earlier one is impossible; a made-up id is 404."""
    regulator = Agent()
    made_up = "ab" * 32
    resp = bapi.post("/v1/epoch", regulator.record("epoch", name="loop", supersedes=[made_up]))
    assert resp.status == 404 and made_up in resp.error["message"]
    found = result(bapi, "mechanism", lens="epoch")
    assert found["winner"]["hash"] == world["chain"][2]
