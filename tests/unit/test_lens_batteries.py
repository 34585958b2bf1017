"""Batteries 1-5 of acceptance.md, checked at the lens level."""

from __future__ import annotations

import json

import pytest

from stemedb.lenses import LENS_NAMES, Candidate, LensContext, resolve, skeptic_report

T = 1_700_000_000
DAY = 86_400


def vk(kind: str, value: object) -> str:
    return json.dumps({"type": kind, "value": value}, separators=(",", ":"))


def cand(
    name: str,
    value: object,
    *,
    tier: int,
    conf: float,
    ts: int = T,
    kind: str = "Text",
    lifecycle: str = "Proposed",
    epoch: str | None = None,
    superseded: bool = False,
    subject: str = "drugs/semaglutide",
    predicate: str = "gastroparesis_risk",
) -> Candidate:
    return Candidate(
        hash=name.encode().hex().ljust(64, "0"),
        subject=subject,
        predicate=predicate,
        value_key=vk(kind, value),
        confidence=conf,
        tier=tier,
        timestamp=ts,
        agent_id=("a" + name.encode().hex()).ljust(64, "0"),
        lifecycle=lifecycle,
        epoch=epoch,
        superseded=superseded,
    )


# Battery 1 -- Semaglutide
A = cand("A", "gastroparesis_warning", tier=0, conf=1.0, ts=T)
B = cand("B", "no_gastroparesis_signal", tier=1, conf=0.9, ts=T + 1)
C = cand("C", "gastroparesis", tier=5, conf=0.2, ts=T + 2)
D = cand("D", "no_gastroparesis_signal", tier=1, conf=0.9, ts=T + 3)
SEMA = [A, B, C, D]
NOW = LensContext(at_s=T + 10)


def sema(lens: str, cands: list[Candidate] = SEMA, ctx: LensContext = NOW) -> Candidate | None:
    return resolve(lens, "drugs/semaglutide", "gastroparesis_risk", cands, ctx).winner


def test_battery_1_authority_recency_consensus() -> None:
    assert sema("authority") == A
    assert sema("recency") == D
    result = resolve("consensus", "drugs/semaglutide", "gastroparesis_risk", SEMA, NOW)
    assert result.winner is not None
    assert result.winner.value_key == vk("Text", "no_gastroparesis_signal")
    assert result.resolution_confidence == 0.5  # 2 of 4 voices


def test_battery_1_skeptic() -> None:
    report = skeptic_report("drugs/semaglutide", "gastroparesis_risk", SEMA, NOW)
    assert report["status"] == "Contested"
    assert report["conflict_score"] > 0.3
    assert report["candidates_count"] == 4
    counts = {c["object"]["value"]: c["assertion_count"] for c in report["claims"]}
    assert counts == {"gastroparesis_warning": 1, "no_gastroparesis_signal": 2, "gastroparesis": 1}
    assert [c["object"]["value"] for c in report["claims"]] == [
        "no_gastroparesis_signal",
        "gastroparesis_warning",
        "gastroparesis",
    ]


def test_battery_1_as_of() -> None:
    at_t1 = [c for c in SEMA if c.timestamp <= T + 1]  # the service's as_of filter
    assert sema("recency", at_t1, LensContext(at_s=T + 1)) == B
    assert sema("recency", [c for c in SEMA if c.timestamp <= T - 1]) is None


def test_battery_1_tier_decay_at_200_days() -> None:
    ctx = LensContext(at_s=T + 200 * DAY, decay="tier")
    result = resolve("confidence", "s", "p", SEMA, ctx)
    scores = {e.hash: e.score for e in result.explanation}
    assert scores[A.hash] == 1.0
    assert scores[B.hash] == pytest.approx(0.9 * 0.826, abs=0.002)
    assert scores[C.hash] == pytest.approx(0.2 * 0.010, abs=0.0002)
    assert result.winner == A


def test_battery_2_volume_does_not_beat_authority() -> None:
    x = cand("X", "X", tier=0, conf=0.95)
    crowd = [cand(f"Y{i}", "Y", tier=5, conf=0.8, ts=T + i) for i in range(100)]
    cands = [*crowd, x]
    assert sema("authority", cands) == x
    consensus = sema("consensus", cands)
    assert consensus is not None and consensus.value_key == vk("Text", "Y")
    assert skeptic_report("s", "p", cands, NOW)["status"] == "Contested"


def test_battery_3_the_contradiction_is_the_answer() -> None:
    no = cand("F", False, tier=1, conf=0.85, kind="Boolean")
    yes = cand("T", True, tier=1, conf=0.85, kind="Boolean", ts=T + 1)
    report = skeptic_report("s", "p", [no, yes], NOW)
    assert report["status"] == "Contested"
    assert report["conflict_score"] >= 0.88
    assert len(report["claims"]) == 2
    given = {no.value_key, yes.value_key}
    for lens in LENS_NAMES:
        result = resolve(lens, "s", "p", [no, yes], NOW)
        assert result.winner is None or result.winner.value_key in given
        for tier in result.extra.get("tiers", []):
            assert json.dumps(tier["value"], separators=(",", ":")) in given


def test_battery_4_paradigm_shift() -> None:
    e1, e2 = "e1".ljust(64, "0"), "e2".ljust(64, "0")
    old = [cand(f"O{i}", "old-label", tier=0, conf=1.0, ts=T + 100 + i, epoch=e1) for i in range(2)]
    new = [cand("N", "new-label", tier=1, conf=0.7, ts=T, epoch=e2)]
    ctx = LensContext(at_s=T + 200, superseded_epochs=frozenset({e1}))
    result = resolve("epoch", "s", "p", old + new, ctx)
    assert result.winner == new[0]
    assert {e.hash for e in result.explanation if e.excluded == "epoch_superseded"} == {
        c.hash for c in old
    }
    # E1's assertions are still there for every lens that does not look at epochs
    assert sema("recency", old, ctx) == old[1]


def test_battery_4_epoch_chain() -> None:
    e3, e4, e5 = ("e3".ljust(64, "0"), "e4".ljust(64, "0"), "e5".ljust(64, "0"))
    cands = [
        cand("P3", "three", tier=0, conf=1.0, ts=T + 30, epoch=e3),
        cand("P4", "four", tier=0, conf=1.0, ts=T + 20, epoch=e4),
        cand("P5", "five", tier=2, conf=0.5, ts=T + 10, epoch=e5),
    ]
    chain = frozenset({e3, e4})  # E5 supersedes E4 supersedes E3: the service's closure
    for inner in ("recency", "authority", "confidence", "consensus"):
        ctx = LensContext(at_s=T, superseded_epochs=chain, inner=inner)
        assert sema("epoch", cands, ctx) == cands[2], inner


def test_battery_5_corrections_without_mutation() -> None:
    p = cand("P", "ES256", tier=3, conf=0.9, ts=T + 50, subject="svc", predicate="alg")
    q = cand("Q", "RS256", tier=3, conf=0.6, ts=T, lifecycle="Approved")
    assert sema("recency", [q]) == q  # lifecycle=Approved filter is the service's
    assert sema("best", [p, q]) == q
    assert sema("recency", [p, q]) == p

    hidden = cand("P", "ES256", tier=3, conf=0.9, ts=T + 50, superseded=True)
    result = resolve("recency", "s", "p", [hidden, q], NOW)
    assert result.winner == q
    assert [(e.hash, e.excluded) for e in result.explanation] == [
        (q.hash, None),
        (hidden.hash, "superseded"),
    ]
    shown = resolve("recency", "s", "p", [hidden, q], LensContext(T, include_superseded=True))
    assert shown.winner == hidden
    assert "superseded, competing because include_superseded" in shown.explanation[0].why


@pytest.mark.parametrize("lens", LENS_NAMES)
def test_superseded_never_compete_in_any_lens(lens: str) -> None:
    gone = cand("G", "gone", tier=0, conf=1.0, ts=T + 99, lifecycle="Approved", superseded=True)
    kept = cand("K", "kept", tier=4, conf=0.3, ts=T)
    ctx = LensContext(at_s=T, vote_totals={gone.hash: 5.0, kept.hash: 1.0})
    result = resolve(lens, "s", "p", [gone, kept], ctx)
    assert result.winner in (None, kept)
    assert result.explanation[-1] == type(result.explanation[-1])(
        gone.hash, 0.0, "superseded", "target of a supersession record", True
    )
    assert result.candidates_count == 2
