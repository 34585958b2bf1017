"""`consensus`: one voice per signer, majority of values."""

from __future__ import annotations

import json

from stemedb.lenses import Candidate, LensContext, resolve

T = 1_700_000_000
CTX = LensContext(at_s=T + 1000)


def vk(value: str) -> str:
    return json.dumps({"type": "Text", "value": value}, separators=(",", ":"))


def cand(
    n: int, value: str, *, agent: int | None, ts: int = T, tier: int = 1, conf: float = 0.9
) -> Candidate:
    return Candidate(
        hash=f"{n:064x}",
        subject="s",
        predicate="p",
        value_key=vk(value),
        confidence=conf,
        tier=tier,
        timestamp=ts,
        agent_id=None if agent is None else f"f{agent:063x}",
        lifecycle="Proposed",
        epoch=None,
    )


def test_one_agent_repeating_itself_counts_once() -> None:
    spam = [cand(i, "a", agent=1, ts=T + i) for i in range(1, 6)]
    others = [cand(10, "b", agent=2, ts=T), cand(11, "b", agent=3, ts=T)]
    result = resolve("consensus", "s", "p", spam + others, CTX)
    assert result.winner is not None and result.winner.value_key == vk("b")
    assert result.resolution_confidence == 2 / 3
    assert result.extra == {"voices": 3, "winning_voices": 2}
    silenced = [e for e in result.explanation if e.score == 0.0]
    assert len(silenced) == 4
    assert all(e.why.startswith("not counted: agent") for e in silenced)


def test_an_agent_that_changed_its_mind_counts_for_its_newest_value() -> None:
    cands = [
        cand(1, "a", agent=1, ts=T),
        cand(2, "b", agent=1, ts=T + 10),  # agent 1 moved to b
        cand(3, "a", agent=2, ts=T + 1),
        cand(4, "b", agent=3, ts=T + 2),
    ]
    result = resolve("consensus", "s", "p", cands, CTX)
    assert result.winner == cands[1]
    assert result.resolution_confidence == 2 / 3


def test_representative_is_newest_counted_voice_not_a_silenced_one() -> None:
    cands = [
        cand(1, "w", agent=1, ts=T + 50),  # agent 1 said w late ...
        cand(2, "l", agent=1, ts=T + 60),  # ... then l: its voice is l
        cand(3, "w", agent=2, ts=T + 1),
        cand(4, "w", agent=3, ts=T + 2),
    ]
    result = resolve("consensus", "s", "p", cands, CTX)
    assert result.winner == cands[3]
    assert result.resolution_confidence == 2 / 3


def test_unsigned_assertions_count_one_voice_each() -> None:
    unsigned = [cand(i, "a", agent=None, ts=T + i) for i in range(1, 4)]
    signed = [cand(10, "b", agent=7, ts=T + 20), cand(11, "b", agent=8, ts=T + 21)]
    result = resolve("consensus", "s", "p", unsigned + signed, CTX)
    assert result.winner == unsigned[2]
    assert result.resolution_confidence == 3 / 5


def test_group_tie_goes_to_the_group_with_the_newest_assertion() -> None:
    cands = [
        cand(1, "a", agent=1, ts=T),
        cand(2, "a", agent=2, ts=T + 5),
        cand(3, "b", agent=3, ts=T + 6),
        cand(4, "b", agent=4, ts=T + 1),
    ]
    result = resolve("consensus", "s", "p", cands, CTX)
    assert result.winner == cands[2]
    assert result.resolution_confidence == 0.5
    loser = next(e for e in result.explanation if e.hash == cands[1].hash)
    assert "ties the winning value" in loser.why


def test_group_tie_at_equal_timestamps_goes_to_higher_authority() -> None:
    a = cand(1, "a", agent=1, ts=T, tier=4)
    b = cand(2, "b", agent=2, ts=T, tier=2)
    assert resolve("consensus", "s", "p", [a, b], CTX).winner == b


def test_all_equal_values_are_unanimous() -> None:
    cands = [cand(i, "same", agent=i, ts=T + i) for i in range(4)]
    result = resolve("consensus", "s", "p", cands, CTX)
    assert result.winner == cands[3]
    assert result.resolution_confidence == 1.0
    assert result.conflict_score == 0.0


def test_consensus_ignores_confidence_even_zero() -> None:
    cands = [
        cand(1, "a", agent=1, conf=0.0),
        cand(2, "a", agent=2, conf=0.0),
        cand(3, "b", agent=3, conf=1.0, tier=0),
    ]
    result = resolve("consensus", "s", "p", cands, CTX)
    assert result.winner is not None and result.winner.value_key == vk("a")
    assert result.conflict_score == 0.0  # all the weight is on b
