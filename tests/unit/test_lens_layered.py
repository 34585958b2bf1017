"""`layered`: consensus per tier and the conflict between tiers."""

from __future__ import annotations

import json

import pytest

from stemedb.lenses import Candidate, LensContext, conflict_score, resolve

T = 1_700_000_000
CTX = LensContext(at_s=T)


def vk(value: str) -> str:
    return json.dumps({"type": "Text", "value": value}, separators=(",", ":"))


def cand(n: int, value: str, tier: int, *, ts: int = T, agent: int | None = -1) -> Candidate:
    return Candidate(
        hash=f"{n:064x}",
        subject="s",
        predicate="p",
        value_key=vk(value),
        confidence=0.9,
        tier=tier,
        timestamp=ts,
        agent_id=None if agent is None else f"f{(n if agent == -1 else agent):063x}",
        lifecycle="Proposed",
        epoch=None,
    )


def test_each_present_tier_gets_its_own_consensus() -> None:
    cands = [
        cand(1, "a", 1, ts=T),
        cand(2, "b", 1, ts=T + 1),
        cand(3, "b", 1, ts=T + 2),
        cand(4, "a", 4, ts=T + 3),
        cand(5, "c", 4, ts=T + 4),
        cand(6, "c", 4, ts=T + 5),
    ]
    result = resolve("layered", "s", "p", cands, CTX)
    assert result.winner == cands[2]
    assert result.resolution_confidence == pytest.approx(2 / 3)
    tiers = result.extra["tiers"]
    assert [t["tier"] for t in tiers] == [1, 4]
    assert [t["tier_name"] for t in tiers] == ["Clinical", "Community"]
    assert [t["winner"] for t in tiers] == [cands[2].hash, cands[5].hash]
    assert [t["value"] for t in tiers] == [
        {"type": "Text", "value": "b"},
        {"type": "Text", "value": "c"},
    ]
    assert [t["candidates_count"] for t in tiers] == [3, 3]
    two_to_one = conflict_score([("a", 1.0), ("b", 2.0)])
    assert [t["conflict_score"] for t in tiers] == [pytest.approx(two_to_one)] * 2
    assert result.extra["cross_tier_conflict"] == pytest.approx(
        conflict_score([("b", 0.8), ("c", 0.2)])
    )
    assert all(e.why.startswith("tier ") for e in result.explanation)
    assert len(result.explanation) == 6


def test_agreeing_tiers_have_no_cross_tier_conflict() -> None:
    cands = [cand(1, "a", 0), cand(2, "a", 3), cand(3, "b", 3, ts=T - 5), cand(4, "a", 3)]
    result = resolve("layered", "s", "p", cands, CTX)
    assert result.extra["cross_tier_conflict"] == 0.0
    assert result.winner == cands[0]
    assert result.resolution_confidence == 1.0
    assert result.conflict_score > 0.0  # b is still claimed in tier 3


def test_consensus_within_a_tier_counts_agents_once() -> None:
    cands = [cand(i, "loud", 2, ts=T + i, agent=1) for i in range(1, 4)]
    cands += [cand(10, "quiet", 2, agent=2), cand(11, "quiet", 2, agent=3)]
    result = resolve("layered", "s", "p", cands, CTX)
    assert result.extra["tiers"][0]["value"]["value"] == "quiet"
    assert result.extra["tiers"][0]["resolution_confidence"] == pytest.approx(2 / 3)
