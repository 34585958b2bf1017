"""`recency` and `confidence`."""

from __future__ import annotations

import json

import pytest

from stemedb.lenses import Candidate, LensContext, resolve

T = 1_700_000_000
DAY = 86_400
CTX = LensContext(at_s=T + 10 * DAY)


def vk(value: str) -> str:
    return json.dumps({"type": "Text", "value": value}, separators=(",", ":"))


def cand(
    n: int,
    value: str = "x",
    *,
    tier: int = 1,
    conf: float = 0.9,
    ts: int = T,
    hash_: str | None = None,
) -> Candidate:
    return Candidate(
        hash=hash_ or f"{n:064x}",
        subject="s",
        predicate="p",
        value_key=vk(value),
        confidence=conf,
        tier=tier,
        timestamp=ts,
        agent_id=f"f{n:063x}",
        lifecycle="Proposed",
        epoch=None,
    )


def test_recency_newest_wins_and_explains_itself() -> None:
    old, new = cand(1, "a", ts=T), cand(2, "b", ts=T + 5)
    result = resolve("recency", "s", "p", [new, old], CTX)
    assert result.winner == new
    assert result.lens == "recency"
    assert result.candidates_count == 2
    assert [e.hash for e in result.explanation] == [new.hash, old.hash]
    assert result.explanation[0].why == "newest timestamp 2023-11-14T22:13:25Z"
    assert result.explanation[0].score == float(T + 5)
    assert "older" in result.explanation[1].why


def test_recency_single_candidate_and_unanimous_values_are_certain() -> None:
    assert resolve("recency", "s", "p", [cand(1)], CTX).resolution_confidence == 1.0
    same = [cand(1, "a", ts=T), cand(2, "a", ts=T + 1), cand(3, "a", ts=T + 1)]
    assert resolve("recency", "s", "p", same, CTX).resolution_confidence == 1.0


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (2 * DAY, 0.95),
        (DAY + 1, 0.95),
        (DAY, 0.8),
        (2 * 3600, 0.8),
        (3600, 0.6),
        (120, 0.6),
        (60, 0.5),
        (30, 0.5),
        (0, 0.5),
    ],
)
def test_recency_resolution_follows_the_gap(gap: int, expected: float) -> None:
    cands = [cand(1, "old", ts=T), cand(2, "new", ts=T + gap, tier=0)]
    result = resolve("recency", "s", "p", cands, CTX)
    assert result.winner is not None and result.winner.hash == f"{2:064x}"
    assert result.resolution_confidence == expected


def test_recency_gap_is_to_the_newest_different_value() -> None:
    cands = [cand(1, "b", ts=T), cand(2, "a", ts=T + 2 * DAY - 10), cand(3, "a", ts=T + 2 * DAY)]
    result = resolve("recency", "s", "p", cands, CTX)
    assert result.winner == cands[2]
    assert result.resolution_confidence == 0.95


def test_recency_timestamp_tie_goes_to_higher_authority_then_lower_hash() -> None:
    low_auth = cand(1, "a", tier=3, hash_="0" * 64)
    high_auth = cand(2, "b", tier=1, hash_="f" * 64)
    result = resolve("recency", "s", "p", [low_auth, high_auth], CTX)
    assert result.winner == high_auth
    assert "lower authority tier" in result.explanation[1].why
    first, second = cand(3, "a", hash_="1" * 64), cand(4, "b", hash_="2" * 64)
    result = resolve("recency", "s", "p", [second, first], CTX)
    assert result.winner == first
    assert "higher hash" in result.explanation[1].why


def test_recency_future_timestamp_still_counts_as_newest() -> None:
    future = cand(1, "future", ts=int(CTX.at_s) + 3600)
    result = resolve("recency", "s", "p", [cand(2, "now", ts=int(CTX.at_s)), future], CTX)
    assert result.winner == future


def test_confidence_highest_effective_confidence_wins() -> None:
    cands = [cand(1, "a", conf=0.6), cand(2, "b", conf=0.95), cand(3, "c", conf=0.7)]
    result = resolve("confidence", "s", "p", cands, CTX)
    assert result.winner == cands[1]
    assert result.resolution_confidence == 0.95
    assert [e.score for e in result.explanation] == [0.95, 0.7, 0.6]
    assert result.explanation[0].why.startswith("highest effective confidence")


def test_confidence_decay_can_overturn_the_raw_ranking() -> None:
    old_strong = cand(1, "a", tier=5, conf=0.9, ts=T - 300 * DAY)
    fresh_weak = cand(2, "b", tier=1, conf=0.5, ts=T)
    plain = resolve("confidence", "s", "p", [old_strong, fresh_weak], LensContext(at_s=T))
    decayed = resolve("confidence", "s", "p", [old_strong, fresh_weak], LensContext(T, "tier"))
    assert plain.winner == old_strong
    assert decayed.winner == fresh_weak
    assert "half-life 30 days" in decayed.explanation[1].why


def test_confidence_float_noise_ties_and_falls_to_the_tie_break() -> None:
    noisy = cand(1, "a", conf=0.1 + 0.2, ts=T)  # 0.30000000000000004
    newer = cand(2, "b", conf=0.3, ts=T + 1)
    result = resolve("confidence", "s", "p", [noisy, newer], CTX)
    assert result.winner == newer
    assert "ties the winner, older timestamp" in result.explanation[1].why


def test_confidence_zero_everywhere_still_names_a_winner_with_zero_resolution() -> None:
    cands = [cand(1, "a", conf=0.0, ts=T), cand(2, "b", conf=0.0, ts=T + 1)]
    result = resolve("confidence", "s", "p", cands, CTX)
    assert result.winner == cands[1]
    assert result.resolution_confidence == 0.0
    assert result.conflict_score == 0.0
