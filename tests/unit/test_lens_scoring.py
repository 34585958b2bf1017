"""Shared arithmetic of the lenses: tiers, decay, conflict score, trust, names."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stemedb.lenses import (
    LENS_NAMES,
    TIER_HALF_LIFE_DAYS,
    TIER_NAMES,
    TIER_WEIGHTS,
    Candidate,
    LensContext,
    UnknownLens,
    canonical_lens_name,
    conflict_score,
    effective_confidence,
    trust_at,
)
from stemedb.lenses.scoring import tie_value

T = 1_700_000_000
DAY = 86_400


def cand(*, tier: int = 1, conf: float = 0.9, ts: int = T) -> Candidate:
    return Candidate(
        hash="ab" * 32,
        subject="s",
        predicate="p",
        value_key=json.dumps({"type": "Text", "value": "x"}, separators=(",", ":")),
        confidence=conf,
        tier=tier,
        timestamp=ts,
        agent_id=None,
        lifecycle="Proposed",
        epoch=None,
    )


def test_tier_tables() -> None:
    assert TIER_NAMES == (
        "Regulatory",
        "Clinical",
        "Observational",
        "Expert",
        "Community",
        "Anecdotal",
    )
    assert TIER_WEIGHTS == (1.0, 0.8, 0.6, 0.4, 0.2, 0.1)
    assert TIER_HALF_LIFE_DAYS == (None, 730.0, 365.0, 180.0, 90.0, 30.0)


def test_no_decay_keeps_confidence_forever() -> None:
    ctx = LensContext(at_s=T + 10_000 * DAY)
    assert effective_confidence(cand(tier=5, conf=0.7), ctx) == 0.7
    assert effective_confidence(cand(tier=5, conf=0.7), LensContext(T + DAY, "none")) == 0.7


def test_regulatory_never_decays_under_tier_decay() -> None:
    ctx = LensContext(at_s=T + 10_000 * DAY, decay="tier")
    assert effective_confidence(cand(tier=0, conf=1.0), ctx) == 1.0


@pytest.mark.parametrize("tier", [1, 2, 3, 4, 5])
def test_one_half_life_halves(tier: int) -> None:
    half_life = TIER_HALF_LIFE_DAYS[tier]
    assert half_life is not None
    ctx = LensContext(at_s=T + half_life * DAY, decay="tier")
    assert effective_confidence(cand(tier=tier, conf=0.8), ctx) == pytest.approx(0.4)


def test_battery_1_decay_figures_at_200_days() -> None:
    ctx = LensContext(at_s=T + 200 * DAY, decay="tier")
    b = effective_confidence(cand(tier=1, conf=0.9, ts=T + 1), ctx)
    c = effective_confidence(cand(tier=5, conf=0.2, ts=T + 2), ctx)
    assert b / 0.9 == pytest.approx(0.826, abs=0.002)
    assert c / 0.2 == pytest.approx(0.010, abs=0.0005)
    assert effective_confidence(cand(tier=0, conf=1.0), ctx) == 1.0


def test_numeric_decay_applies_to_every_tier_including_regulatory() -> None:
    ctx = LensContext(at_s=T + 10 * DAY, decay=10.0)
    assert effective_confidence(cand(tier=0, conf=1.0), ctx) == pytest.approx(0.5)
    assert effective_confidence(cand(tier=5, conf=1.0), ctx) == pytest.approx(0.5)
    assert effective_confidence(cand(tier=3, conf=1.0), LensContext(T + 10 * DAY, 5)) == (
        pytest.approx(0.25)
    )


def test_future_timestamp_has_age_zero() -> None:
    ctx = LensContext(at_s=T, decay="tier")
    assert effective_confidence(cand(tier=5, conf=0.6, ts=T + 100 * DAY), ctx) == 0.6


@pytest.mark.parametrize("bad", [0, 0.0, -3.0, math.nan, "bogus", "", True])
def test_invalid_decay_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        effective_confidence(cand(), LensContext(at_s=T, decay=bad))  # type: ignore[arg-type]


def test_conflict_trivial_cases() -> None:
    assert conflict_score([]) == 0.0
    assert conflict_score([("a", 0.9), ("a", 0.1)]) == 0.0
    assert conflict_score([("a", 0.0), ("b", 0.0)]) == 0.0
    assert conflict_score([("a", 0.85), ("b", 0.85)]) == pytest.approx(1.0)


def test_conflict_zero_weight_group_still_counts_in_k() -> None:
    assert conflict_score([("a", 1.0), ("b", 1.0), ("c", 0.0)]) == pytest.approx(
        math.log(2) / math.log(3)
    )


def test_conflict_rejects_negative_or_non_finite_weights() -> None:
    with pytest.raises(ValueError):
        conflict_score([("a", -0.1), ("b", 1.0)])
    with pytest.raises(ValueError):
        conflict_score([("a", math.inf), ("b", 1.0)])


def test_conflict_battery_1_value() -> None:
    score = conflict_score(
        [("warn", 1.0), ("none", 0.9 * 0.8), ("gp", 0.2 * 0.1), ("none", 0.9 * 0.8)]
    )
    shares = [1.0 / 2.46, 1.44 / 2.46, 0.02 / 2.46]
    assert score == pytest.approx(-sum(p * math.log(p) for p in shares) / math.log(3))


weights = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@given(st.lists(st.tuples(st.sampled_from("abcde"), weights), max_size=12))
def test_conflict_is_in_unit_interval_and_order_free(pairs: list[tuple[str, float]]) -> None:
    score = conflict_score(pairs)
    assert 0.0 <= score <= 1.0
    assert conflict_score(list(reversed(pairs))) == score
    if len({k for k, _ in pairs}) < 2:
        assert score == 0.0


@given(st.integers(min_value=2, max_value=12), st.floats(min_value=0.001, max_value=100.0))
def test_conflict_is_one_for_k_equal_groups(k: int, w: float) -> None:
    assert conflict_score([(str(i), w) for i in range(k)]) == pytest.approx(1.0)


def test_trust_relaxes_toward_neutral() -> None:
    assert trust_at(0.9, T, T) == pytest.approx(0.9)
    assert trust_at(0.9, T, T + 30 * DAY) == pytest.approx(0.7)
    assert trust_at(0.1, T, T + 60 * DAY) == pytest.approx(0.4)
    assert trust_at(1.0, T, T + 100_000 * DAY) == pytest.approx(0.5)
    assert trust_at(0.9, T, T - 30 * DAY) == pytest.approx(0.9)  # before the update


@given(
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=10**9),
)
def test_trust_stays_between_score_and_neutral(score: float, last: int, at: int) -> None:
    value = trust_at(score, last, at)
    assert min(score, 0.5) - 1e-12 <= value <= max(score, 0.5) + 1e-12


def test_tie_rounding_makes_float_noise_tie() -> None:
    assert 0.1 + 0.2 != 0.3
    assert tie_value(0.1 + 0.2) == tie_value(0.3)
    assert tie_value(0.3) != tie_value(0.3 + 1e-9)


def test_lens_names_and_aliases() -> None:
    assert LENS_NAMES == (
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
        "truth",
        "constraints",
    )
    assert canonical_lens_name("ReCency") == "recency"
    assert canonical_lens_name("TRUST_AWARE_AUTHORITY") == "trust"
    assert canonical_lens_name("vote_aware_consensus") == "votes"
    assert canonical_lens_name("Epoch_Aware") == "epoch"
    for name in LENS_NAMES:
        assert canonical_lens_name(name.upper()) == name


def test_unknown_lens_names_the_valid_ones() -> None:
    with pytest.raises(UnknownLens) as info:
        canonical_lens_name("majority")
    assert isinstance(info.value, ValueError)
    assert info.value.name == "majority"
    assert info.value.valid == LENS_NAMES
    assert "recency" in str(info.value) and "layered" in str(info.value)
