"""`votes`: highest vote total, with an explicit recency fallback."""

from __future__ import annotations

import json

import pytest

from stemedb.lenses import Candidate, LensContext, resolve

T = 1_700_000_000


def cand(n: int, value: str, *, ts: int = T) -> Candidate:
    return Candidate(
        hash=f"{n:064x}",
        subject="s",
        predicate="p",
        value_key=json.dumps({"type": "Text", "value": value}, separators=(",", ":")),
        confidence=0.5,
        tier=3,
        timestamp=ts,
        agent_id=f"f{n:063x}",
        lifecycle="Proposed",
        epoch=None,
    )


A, B, C = cand(1, "a", ts=T + 30), cand(2, "b", ts=T), cand(3, "c", ts=T + 10)


def test_highest_total_wins_with_share_of_positive_totals() -> None:
    ctx = LensContext(at_s=T, vote_totals={B.hash: 2.5, C.hash: 0.5, A.hash: -1.0})
    result = resolve("votes", "s", "p", [A, B, C], ctx)
    assert result.winner == B
    assert result.resolution_confidence == pytest.approx(2.5 / 3.0)
    assert [e.hash for e in result.explanation] == [B.hash, C.hash, A.hash]
    assert result.explanation[2].score == -1.0
    assert result.extra == {}


def test_unvoted_candidates_score_zero_and_can_lose_to_votes() -> None:
    ctx = LensContext(at_s=T, vote_totals={C.hash: 0.2})
    result = resolve("vote_aware_consensus", "s", "p", [A, B, C], ctx)
    assert result.lens == "votes"
    assert result.winner == C
    assert result.resolution_confidence == 1.0
    assert "no votes (total 0)" in result.explanation[1].why


def test_no_positive_total_keeps_a_winner_but_zero_resolution() -> None:
    ctx = LensContext(at_s=T, vote_totals={A.hash: -0.5, B.hash: 0.0})
    result = resolve("votes", "s", "p", [A, B, C], ctx)
    assert result.winner == C  # 0 (no votes) ties B's net 0 and C is newer than B
    assert result.resolution_confidence == 0.0
    assert "fallback" not in result.extra


def test_no_votes_falls_back_to_recency_and_says_so() -> None:
    ctx = LensContext(at_s=T, vote_totals={"e" * 64: 3.0})  # a vote on another assertion
    result = resolve("votes", "s", "p", [B, C, A], ctx)
    assert result.winner == A
    assert result.extra == {"fallback": "recency"}
    assert result.resolution_confidence == 0.0
    assert all(e.why.startswith("no votes, recency fallback") for e in result.explanation)


def test_exact_vote_tie_goes_to_the_newer_assertion() -> None:
    ctx = LensContext(at_s=T, vote_totals={B.hash: 1.0, C.hash: 1.0})
    result = resolve("votes", "s", "p", [B, C], ctx)
    assert result.winner == C
    assert result.resolution_confidence == 0.5
