"""`epoch`: superseded paradigms step aside, then an inner lens decides."""

from __future__ import annotations

import json

import pytest

from stemedb.lenses import Candidate, LensContext, UnknownLens, resolve

T = 1_700_000_000
E1, E2 = "1" * 64, "2" * 64


def cand(n: int, value: str, epoch: str | None, *, ts: int = T, tier: int = 1) -> Candidate:
    return Candidate(
        hash=f"{n:064x}",
        subject="s",
        predicate="p",
        value_key=json.dumps({"type": "Text", "value": value}, separators=(",", ":")),
        confidence=0.8,
        tier=tier,
        timestamp=ts,
        agent_id=f"f{n:063x}",
        lifecycle="Proposed",
        epoch=epoch,
    )


OLD = cand(1, "old", E1, ts=T + 100, tier=0)
NEW = cand(2, "new", E2, ts=T, tier=2)
FREE = cand(3, "free", None, ts=T - 10, tier=1)


def test_epochless_candidates_are_never_hidden() -> None:
    ctx = LensContext(at_s=T, superseded_epochs=frozenset({E1}), inner="authority")
    result = resolve("epoch", "s", "p", [OLD, NEW, FREE], ctx)
    assert result.winner == FREE  # OLD's Regulatory tier no longer counts
    reasons = {e.hash: e.excluded for e in result.explanation}
    assert reasons == {OLD.hash: "epoch_superseded", NEW.hash: "tier", FREE.hash: None}
    assert result.extra["inner"] == "authority"
    assert result.extra["tier_name"] == "Clinical"


def test_default_inner_is_recency() -> None:
    ctx = LensContext(at_s=T, superseded_epochs=frozenset({E1}))
    result = resolve("epoch_aware", "s", "p", [OLD, NEW, FREE], ctx)
    assert result.lens == "epoch"
    assert result.winner == NEW
    assert result.extra == {"inner": "recency"}


def test_unreadable_epoch_metadata_fails_open() -> None:
    ctx = LensContext(at_s=T, superseded_epochs=None)
    result = resolve("epoch", "s", "p", [OLD, NEW, FREE], ctx)
    assert result.winner == OLD
    assert result.extra == {"inner": "recency", "epoch_metadata": "unavailable"}
    assert all(e.excluded is None for e in result.explanation)


def test_inner_lens_aliases_are_accepted() -> None:
    ctx = LensContext(at_s=T, inner="VOTE_AWARE_CONSENSUS")
    result = resolve("epoch", "s", "p", [OLD, NEW], ctx)
    assert result.extra == {"inner": "votes", "fallback": "recency"}


@pytest.mark.parametrize("inner", ["epoch", "skeptic", "Layered"])
def test_composite_inner_lenses_are_rejected(inner: str) -> None:
    with pytest.raises(ValueError, match="inner lens"):
        resolve("epoch", "s", "p", [NEW], LensContext(at_s=T, inner=inner))


def test_unknown_inner_lens_is_unknown_lens() -> None:
    with pytest.raises(UnknownLens):
        resolve("epoch", "s", "p", [NEW], LensContext(at_s=T, inner="nope"))


def test_inner_is_ignored_by_other_lenses() -> None:
    result = resolve("recency", "s", "p", [NEW], LensContext(at_s=T, inner="skeptic"))
    assert result.winner == NEW


def test_everything_superseded_leaves_no_winner() -> None:
    ctx = LensContext(at_s=T, superseded_epochs=frozenset({E1, E2}))
    result = resolve("epoch", "s", "p", [OLD, NEW], ctx)
    assert result.winner is None
    assert result.candidates_count == 2
    assert [e.excluded for e in result.explanation] == ["epoch_superseded"] * 2
