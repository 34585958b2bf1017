"""`skeptic`: the conflict analysis, as a report and as a lens."""

from __future__ import annotations

import json
import math

import pytest

from stemedb.lenses import Candidate, LensContext, resolve, skeptic_report
from stemedb.lenses.skeptic import status_of

T = 1_700_000_000
CTX = LensContext(at_s=T + 100)


def cand(
    n: int,
    value: object,
    *,
    tier: int = 1,
    conf: float = 0.8,
    ts: int = T,
    agent: int | None = -1,
    superseded: bool = False,
) -> Candidate:
    kind = "Boolean" if isinstance(value, bool) else "Text"
    return Candidate(
        hash=f"{n:064x}",
        subject="s",
        predicate="p",
        value_key=json.dumps({"type": kind, "value": value}, separators=(",", ":")),
        confidence=conf,
        tier=tier,
        timestamp=ts,
        agent_id=None if agent is None else f"f{(n if agent == -1 else agent):063x}",
        lifecycle="Proposed",
        epoch=None,
        superseded=superseded,
    )


def test_empty_report_is_noclaims_with_no_claims() -> None:
    assert skeptic_report("s", "p", [], CTX) == {
        "subject": "s",
        "predicate": "p",
        "status": "NoClaims",
        "conflict_score": 0.0,
        "candidates_count": 0,
        "claims": [],
    }


def test_one_value_group_is_unanimous_and_fully_described() -> None:
    cands = [
        cand(1, "x", tier=3, conf=0.5, ts=T, agent=9),
        cand(2, "x", tier=1, conf=1.0, ts=T + 5, agent=4),
        cand(3, "x", tier=3, conf=1.0, ts=T + 2, agent=9),
        cand(4, "x", tier=5, conf=1.0, ts=T + 1, agent=None),
    ]
    report = skeptic_report("s", "p", cands, CTX)
    assert report["status"] == "Unanimous"
    assert report["conflict_score"] == 0.0
    [claim] = report["claims"]
    assert claim == {
        "object": {"type": "Text", "value": "x"},
        "weight": pytest.approx(0.5 * 0.4 + 0.8 + 0.4 + 0.1),
        "share": 1.0,
        "assertion_count": 4,
        "agents": [f"f{4:063x}", f"f{9:063x}"],
        "tiers": {"Clinical": 1, "Expert": 2, "Anecdotal": 1},
        "best_tier": "Clinical",
        "newest_timestamp": T + 5,
        "assertions": [f"{n:064x}" for n in (2, 3, 4, 1)],
    }
    assert list(claim["tiers"]) == ["Clinical", "Expert", "Anecdotal"]


def test_lopsided_disagreement_is_agreed() -> None:
    cands = [cand(1, "x", tier=0, conf=0.95), cand(2, "y", tier=5, conf=0.5)]
    report = skeptic_report("s", "p", cands, CTX)
    assert 0.0 < report["conflict_score"] < 0.4
    assert report["status"] == "Agreed"
    assert [c["object"]["value"] for c in report["claims"]] == ["x", "y"]
    shares = [c["share"] for c in report["claims"]]
    assert shares == pytest.approx([0.95 / 1.0, 0.05 / 1.0])


def test_status_threshold_is_inclusive() -> None:
    assert status_of(2, 0.4) == "Contested"
    assert status_of(2, 0.4 - 1e-9) == "Agreed"
    assert status_of(1, 0.0) == "Unanimous"
    assert status_of(0, 0.0) == "NoClaims"


def test_shares_of_ninety_ten_are_contested() -> None:
    # 0.9 / 0.1 gives a normalised entropy of ~0.469, above the 0.4 line
    cands = [cand(1, "x", tier=1, conf=0.9), cand(2, "y", tier=1, conf=0.1)]
    report = skeptic_report("s", "p", cands, CTX)
    expected = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    assert report["conflict_score"] == pytest.approx(expected)
    assert report["status"] == "Contested"


def test_equal_share_claims_rank_by_newest_assertion() -> None:
    cands = [cand(1, "old", ts=T), cand(2, "new", ts=T + 1)]
    report = skeptic_report("s", "p", cands, CTX)
    assert [c["object"]["value"] for c in report["claims"]] == ["new", "old"]
    assert report["conflict_score"] == pytest.approx(1.0)


def test_zero_weights_give_zero_shares() -> None:
    report = skeptic_report("s", "p", [cand(1, "x", conf=0.0), cand(2, "y", conf=0.0)], CTX)
    assert [c["share"] for c in report["claims"]] == [0.0, 0.0]
    assert report["conflict_score"] == 0.0
    assert report["status"] == "Agreed"


def test_superseded_are_left_out_but_counted() -> None:
    cands = [cand(1, "x"), cand(2, "y", superseded=True)]
    report = skeptic_report("s", "p", cands, CTX)
    assert report["candidates_count"] == 2
    assert [c["object"]["value"] for c in report["claims"]] == ["x"]
    assert report["status"] == "Unanimous"
    included = skeptic_report("s", "p", cands, LensContext(at_s=T, include_superseded=True))
    assert len(included["claims"]) == 2


def test_skeptic_lens_has_no_winner_and_carries_the_report() -> None:
    cands = [cand(1, True), cand(2, False), cand(3, True, superseded=True)]
    result = resolve("SKEPTIC", "drug", "risk", cands, CTX)
    assert result.winner is None
    assert result.resolution_confidence == 0.0
    assert result.extra == skeptic_report("drug", "risk", cands, CTX)
    assert result.conflict_score == result.extra["conflict_score"]
    assert [e.excluded for e in result.explanation] == [None, None, "superseded"]
    assert result.explanation[0].score == pytest.approx(0.64)
    assert "claim share 0.5" in result.explanation[0].why
    json.dumps(result.extra, allow_nan=False)
