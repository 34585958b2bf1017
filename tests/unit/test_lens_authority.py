"""`authority`, `trust` and `best`."""

from __future__ import annotations

import json

import pytest

from stemedb.lenses import Candidate, LensContext, conflict_score, resolve

T = 1_700_000_000
DAY = 86_400


def vk(value: str) -> str:
    return json.dumps({"type": "Text", "value": value}, separators=(",", ":"))


def agent(n: int) -> str:
    return f"f{n:063x}"


def cand(
    n: int,
    value: str,
    *,
    tier: int = 1,
    conf: float = 0.9,
    ts: int = T,
    signer: int | None = -1,
    lifecycle: str = "Proposed",
) -> Candidate:
    return Candidate(
        hash=f"{n:064x}",
        subject="s",
        predicate="p",
        value_key=vk(value),
        confidence=conf,
        tier=tier,
        timestamp=ts,
        agent_id=None if signer is None else agent(n if signer == -1 else signer),
        lifecycle=lifecycle,
        epoch=None,
    )


def test_authority_only_top_tier_competes() -> None:
    reg = cand(1, "x", tier=2, conf=0.3)
    crowd = [cand(10 + i, "y", tier=4, conf=1.0, ts=T + i) for i in range(5)]
    result = resolve("authority", "s", "p", [*crowd, reg], LensContext(at_s=T))
    assert result.winner == reg
    assert result.resolution_confidence == 1.0
    assert result.extra == {"tier": 2, "tier_name": "Observational"}
    assert [e.excluded for e in result.explanation] == [None] + ["tier"] * 5
    assert result.explanation[0].score == pytest.approx(0.3 * 0.5)
    # Conflict covers every visible candidate, not only the tier that competes.
    assert result.conflict_score == pytest.approx(
        conflict_score([("x", 0.3 * 0.6), *[("y", 0.2)] * 5])
    )


def test_authority_inside_tier_weighs_confidence_by_trust() -> None:
    sure_untrusted = cand(1, "a", conf=0.9, ts=T + 5)
    less_sure_trusted = cand(2, "b", conf=0.6)
    ctx = LensContext(at_s=T, trust={agent(1): (0.1, T), agent(2): (0.9, T)})
    result = resolve("authority", "s", "p", [sure_untrusted, less_sure_trusted], ctx)
    assert result.winner == less_sure_trusted
    assert result.resolution_confidence == pytest.approx(0.54 / (0.54 + 0.09))
    assert "trust 0.9" in result.explanation[0].why


def test_stale_trust_relaxes_to_neutral() -> None:
    a, b = cand(1, "a", conf=0.8), cand(2, "b", conf=0.7)
    fresh = LensContext(at_s=T, trust={agent(1): (0.0, T)})
    stale = LensContext(at_s=T + 3650 * DAY, trust={agent(1): (0.0, T)})
    assert resolve("authority", "s", "p", [a, b], fresh).winner == b
    assert resolve("authority", "s", "p", [a, b], stale).winner == a


def test_unsigned_and_unknown_agents_have_neutral_trust() -> None:
    unsigned = cand(1, "a", conf=0.8, signer=None)
    unknown = cand(2, "b", conf=0.8, ts=T + 1)
    result = resolve("authority", "s", "p", [unsigned, unknown], LensContext(at_s=T))
    assert [e.score for e in result.explanation] == [pytest.approx(0.4), pytest.approx(0.4)]
    assert result.winner == unknown  # exact tie -> newer
    assert result.resolution_confidence == pytest.approx(0.5)


def test_authority_zero_scores_still_pick_by_tie_break_with_zero_resolution() -> None:
    a, b = cand(1, "a", conf=0.0), cand(2, "b", conf=0.0, ts=T + 1)
    result = resolve("authority", "s", "p", [a, b], LensContext(at_s=T))
    assert result.winner == b
    assert result.resolution_confidence == 0.0


def test_trust_lens_lets_every_tier_compete() -> None:
    regulator = cand(1, "x", tier=0, conf=1.0)
    hive = cand(2, "y", tier=5, conf=1.0)
    ctx = LensContext(at_s=T, trust={agent(1): (0.2, T), agent(2): (1.0, T)})
    assert resolve("trust", "s", "p", [regulator, hive], ctx).winner == hive
    assert resolve("authority", "s", "p", [regulator, hive], ctx).winner == regulator
    result = resolve("trust_aware_authority", "s", "p", [regulator, hive], ctx)
    assert result.lens == "trust"
    assert result.resolution_confidence == pytest.approx(1.0 / 1.2)
    assert all(e.excluded is None for e in result.explanation)


def test_best_prefers_approved_over_higher_authority() -> None:
    approved = cand(1, "a", tier=3, conf=0.5, lifecycle="Approved")
    proposed_regulator = cand(2, "b", tier=0, conf=1.0, ts=T + 9)
    deprecated = cand(3, "c", tier=0, conf=1.0, ts=T + 9, lifecycle="Deprecated")
    result = resolve("best", "s", "p", [proposed_regulator, deprecated, approved], LensContext(T))
    assert result.winner == approved
    assert result.extra["approved_only"] is True
    excluded = {e.hash: (e.excluded, e.why) for e in result.explanation if e.excluded}
    assert excluded[deprecated.hash] == ("lifecycle", "lifecycle Deprecated is never best")
    assert excluded[proposed_regulator.hash][0] == "lifecycle"


def test_best_without_approved_is_authority_over_living_stages() -> None:
    rejected = cand(1, "a", tier=0, lifecycle="Rejected")
    review = cand(2, "b", tier=1, lifecycle="UnderReview")
    proposed = cand(3, "c", tier=2, ts=T + 50)
    result = resolve("best", "s", "p", [rejected, review, proposed], LensContext(at_s=T))
    assert result.winner == review
    assert result.extra == {"tier": 1, "tier_name": "Clinical", "approved_only": False}
    reasons = {e.hash: e.excluded for e in result.explanation}
    assert reasons == {rejected.hash: "lifecycle", review.hash: None, proposed.hash: "tier"}


def test_best_with_only_dropped_stages_has_no_winner() -> None:
    cands = [cand(1, "a", lifecycle="Deprecated"), cand(2, "b", lifecycle="Rejected")]
    result = resolve("best", "s", "p", cands, LensContext(at_s=T))
    assert result.winner is None
    assert result.candidates_count == 2
    assert result.resolution_confidence == 0.0
    assert [e.excluded for e in result.explanation] == ["lifecycle", "lifecycle"]
