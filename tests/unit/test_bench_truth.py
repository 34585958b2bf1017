"""The truth benchmark's generator and scores (bench/truth; the benchmark itself is not a test)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root holds bench/

from bench.truth import scoring
from bench.truth.world import FAMILIES, T_END, Claim, Query, World, generate, signed_records


def test_same_seed_same_signed_bytes_other_seed_other_world() -> None:
    one = json.dumps(signed_records(generate("spam", 3)), sort_keys=True)
    again = json.dumps(signed_records(generate("spam", 3)), sort_keys=True)
    other = json.dumps(signed_records(generate("spam", 4)), sort_keys=True)
    assert one == again and one != other


@pytest.mark.parametrize("family", FAMILIES)
def test_worlds_have_known_truth_and_no_merged_voices(family: str) -> None:
    world = generate(family, 1)
    assert world.queries and all(q.truth.startswith("v") for q in world.queries)
    assert set(world.registered.values()) <= {"Regulatory", "Clinical"}
    assert not any(name.startswith(("spam", "copy", "orig")) for name in world.registered)
    keys = [
        (c.subject, c.predicate, c.value, c.confidence, c.tier, c.timestamp) for c in world.claims
    ]
    assert len(keys) == len(set(keys))  # equal records would be one, losing a voice


def test_spam_pushes_only_false_values_and_drift_changes_some_truths() -> None:
    spam = generate("spam", 2)
    truth = {(q.subject, q.predicate): q.truth for q in spam.queries}
    pushed = [c for c in spam.claims if c.agents[0].startswith("spam")]
    assert pushed and all(c.value != truth[(c.subject, c.predicate)] for c in pushed)
    drift = generate("drift", 2)
    by_pair: dict[tuple[str, str], set[str]] = {}
    for q in drift.queries:
        by_pair.setdefault((q.subject, q.predicate), set()).add(q.truth)
    assert any(len(v) == 2 for v in by_pair.values()) and any(len(v) == 1 for v in by_pair.values())


def test_ece() -> None:
    assert scoring.ece([0.95, 0.95], [True, True]) == pytest.approx(0.05)
    assert scoring.ece([1.0, 1.0], [True, False]) == pytest.approx(0.5)
    assert scoring.ece([0.25, 0.75], [False, True]) == pytest.approx(0.25)
    assert scoring.ece([], []) == 0.0
    with pytest.raises(ValueError):
        scoring.ece([1.5], [True])


def test_majority_counts_each_agent_once_at_its_newest_claim_co_signers_too() -> None:
    world = World("independent", 0, "w")
    world.claims = [
        Claim(["a"], "s", "p", "v1", 0.9, 10, "Expert"),
        Claim(["a"], "s", "p", "v2", 0.9, 20, "Expert"),  # a's newest
        Claim(["b", "c"], "s", "p", "v1", 0.9, 15, "Expert"),
        Claim(["d"], "s", "p", "v2", 0.9, 30, "Expert"),
    ]
    assert scoring.majority(world, Query("s", "p", T_END, "v1")) == ("v1", 0.5)  # tie: lower
    assert scoring.majority(world, Query("s", "p", 25, "v1")) == ("v1", 2 / 3)
    assert scoring.majority(world, Query("s", "p", 5, "v1")) == (None, 0.0)
    assert scoring.accuracy([True, False, True, True]) == 0.75
