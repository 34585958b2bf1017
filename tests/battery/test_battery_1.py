"""Battery 1 — Semaglutide: four signed sources from four agents disagree."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2ekit import DAY, Agent, Api

SUBJECT = "drugs/semaglutide"
PREDICATE = "gastroparesis_risk"
T = int(time.time()) - 400 * DAY  # every timestamp and as_of below stays in the past


@pytest.fixture(scope="module")
def world(bapi: Api) -> dict[str, Any]:
    agents = {name: Agent() for name in "ABCD"}
    rows = {
        "A": ("Regulatory", 1.0, T, "gastroparesis_warning"),
        "B": ("Clinical", 0.9, T + 1, "no_gastroparesis_signal"),
        "C": ("Anecdotal", 0.2, T + 2, "gastroparesis"),
        "D": ("Clinical", 0.9, T + 3, "no_gastroparesis_signal"),
    }
    records = {
        name: agents[name].assertion(
            SUBJECT,
            PREDICATE,
            {"type": "Text", "value": value},
            confidence,
            source_class=source_class,
            timestamp=ts,
        )
        for name, (source_class, confidence, ts, value) in rows.items()
    }
    # Tiers are registered by an admin, not self-declared (docs/security.md): the
    # regulator and the two clinical sources are registered for their tiers.
    registrar = Agent()
    bapi.batch_ok(
        [
            registrar.record("agent_tier", agent_id=agents[name].id, max_tier=rows[name][0])
            for name in "ABD"
        ]
    )
    hashes = {name: bapi.write("/v1/assert", record)["hash"] for name, record in records.items()}
    return {"agents": agents, "hash": hashes, "rows": rows}


def lens(bapi: Api, name: str, **params: Any) -> dict[str, Any]:
    body = bapi.query(subject=SUBJECT, predicate=PREDICATE, lens=name, **params)
    assert body["lens"] == name
    assert len(body["results"]) == 1, body
    return body["results"][0]


def test_all_four_are_stored_and_listed_by_a_plain_query(bapi: Api, world: dict[str, Any]) -> None:
    listed = bapi.get_ok("/v1/query", {"subject": SUBJECT})
    assert listed["count"] == 4
    by_hash = {a["hash"]: a for a in listed["assertions"]}
    assert set(by_hash) == set(world["hash"].values())
    for name, (source_class, confidence, ts, value) in world["rows"].items():
        stored = by_hash[world["hash"][name]]
        assert stored["agent_id"] == world["agents"][name].id
        assert stored["source_class"] == source_class and stored["confidence"] == confidence
        assert stored["timestamp"] == ts and stored["object"] == {"type": "Text", "value": value}
    assert len({a["agent_id"] for a in listed["assertions"]}) == 4


def test_authority_gives_the_regulator(bapi: Api, world: dict[str, Any]) -> None:
    result = lens(bapi, "authority")
    assert result["winner"]["hash"] == world["hash"]["A"]
    assert result["winner"]["object"]["value"] == "gastroparesis_warning"
    excluded = {e["hash"]: e["excluded"] for e in result["explanation"]}
    assert excluded[world["hash"]["A"]] is None
    assert {excluded[world["hash"][n]] for n in "BCD"} == {"tier"}


def test_recency_gives_d(bapi: Api, world: dict[str, Any]) -> None:
    result = lens(bapi, "recency")
    assert result["winner"]["hash"] == world["hash"]["D"]
    assert result["resolution_confidence"] == pytest.approx(0.5)  # 1 s ahead of C


def test_consensus_gives_no_signal_with_two_of_four_voices(
    bapi: Api, world: dict[str, Any]
) -> None:
    result = lens(bapi, "consensus")
    assert result["winner"]["object"]["value"] == "no_gastroparesis_signal"
    assert result["winner"]["hash"] == world["hash"]["D"]  # newest of the winning value
    assert result["resolution_confidence"] == pytest.approx(2 / 4)


def test_skeptic_is_contested_with_three_claims(bapi: Api, world: dict[str, Any]) -> None:
    body = bapi.get_ok("/v1/skeptic", {"subject": SUBJECT, "predicate": PREDICATE})
    assert body["status"] == "Contested"
    assert len(body["claims"]) == 3
    assert body["conflict_score"] > 0.3
    counts = {c["object"]["value"]: c["assertion_count"] for c in body["claims"]}
    assert counts == {"gastroparesis_warning": 1, "no_gastroparesis_signal": 2, "gastroparesis": 1}
    agents = {c["object"]["value"]: set(c["agents"]) for c in body["claims"]}
    assert agents["no_gastroparesis_signal"] == {world["agents"]["B"].id, world["agents"]["D"].id}
    shares = [c["share"] for c in body["claims"]]
    assert shares == sorted(shares, reverse=True)
    via_lens = lens(bapi, "skeptic")
    assert via_lens["winner"] is None and via_lens["status"] == "Contested"
    assert via_lens["conflict_score"] == pytest.approx(body["conflict_score"])
    assert via_lens["claims"] == body["claims"]


def test_as_of_time_travel(bapi: Api, world: dict[str, Any]) -> None:
    assert lens(bapi, "recency", as_of=T + 1)["winner"]["hash"] == world["hash"]["B"]
    before = bapi.query(subject=SUBJECT, predicate=PREDICATE, lens="recency", as_of=T - 1)
    assert all(r["winner"] is None for r in before["results"])
    assert before["results"] == []  # nothing was claimed yet: no group, no winner
    listed = bapi.query(subject=SUBJECT, as_of=T - 1)
    assert listed["count"] == 0


def test_tier_decay_at_t_plus_200_days(bapi: Api, world: dict[str, Any]) -> None:
    as_of = T + 200 * DAY
    result = lens(bapi, "confidence", decay="tier", as_of=as_of)
    score = {e["hash"]: e["score"] for e in result["explanation"]}
    a, b, c, d = (score[world["hash"][n]] for n in "ABCD")
    # The acceptance numbers, to their printed precision ...
    assert a == pytest.approx(1.0)
    assert b == pytest.approx(0.9 * 0.826, abs=0.9 * 0.0015)
    assert c == pytest.approx(0.2 * 0.010, abs=0.2 * 0.0005)
    # ... and exactly, from the formula (Regulatory never decays).
    assert b == pytest.approx(0.9 * 2 ** (-((as_of - (T + 1)) / DAY) / 730), rel=1e-9)
    assert c == pytest.approx(0.2 * 2 ** (-((as_of - (T + 2)) / DAY) / 30), rel=1e-9)
    assert d == pytest.approx(0.9 * 2 ** (-((as_of - (T + 3)) / DAY) / 730), rel=1e-9)
    assert result["winner"]["hash"] == world["hash"]["A"]
    # Nothing stored changed: without decay the stored confidences are back.
    plain = {e["hash"]: e["score"] for e in lens(bapi, "confidence", as_of=as_of)["explanation"]}
    assert plain[world["hash"]["B"]] == pytest.approx(0.9)
