"""lenses.md, this round: co-signers are voices (consensus, skeptic `agents`,
layered), skeptic `NoClaims`, superseded candidates marked when they compete,
and decay/trust measured at the reading instant."""

from __future__ import annotations

import json
import time

import pytest

from stemedb.lenses import Candidate, LensContext, resolve, skeptic_report
from stemedb.lenses.trust import trust_at
from stemedb.service.queries import reading_instant

T = 1_700_000_000
CTX = LensContext(at_s=T + 1000)


def vk(value: str) -> str:
    return json.dumps({"type": "Text", "value": value}, separators=(",", ":"))


def agent(n: int) -> str:
    return f"f{n:063x}"


def cand(
    n: int,
    value: str,
    *,
    signer: int | None,
    ts: int = T,
    tier: int = 1,
    conf: float = 0.9,
    superseded: bool = False,
) -> Candidate:
    return Candidate(
        hash=f"{n:064x}",
        subject="s",
        predicate="p",
        value_key=vk(value),
        confidence=conf,
        tier=tier,
        timestamp=ts,
        agent_id=None if signer is None else agent(signer),
        lifecycle="Proposed",
        epoch=None,
        superseded=superseded,
    )


def ctx_with(cosigned: dict[Candidate, tuple[int, ...]], **kw: object) -> LensContext:
    """A context whose `cosigners` say who else signed each candidate."""
    return LensContext(
        at_s=T + 1000,
        cosigners={c.hash: tuple(agent(a) for a in extra) for c, extra in cosigned.items()},
        **kw,  # type: ignore[arg-type]
    )


# ---- consensus: every co-signer is a voice ----------------------------------------------


def test_a_claim_signed_by_three_agents_holds_three_voices() -> None:
    together = cand(1, "x", signer=1, ts=T)
    alone = [cand(2, "y", signer=4, ts=T + 5), cand(3, "y", signer=5, ts=T + 6)]
    without = resolve("consensus", "s", "p", [together, *alone], CTX)
    assert without.winner is not None and without.winner.value_key == vk("y")  # 2 voices to 1
    result = resolve("consensus", "s", "p", [together, *alone], ctx_with({together: (2, 3)}))
    assert result.winner == together
    assert result.extra == {"voices": 5, "winning_voices": 3}
    assert result.resolution_confidence == pytest.approx(3 / 5)
    line = next(e for e in result.explanation if e.hash == together.hash)
    assert "carries the voices of 3 signers" in line.why and line.score == pytest.approx(3 / 5)


def test_a_cosigner_speaks_through_its_newest_assertion_only() -> None:
    # Agent 2 co-signed an old "x" with agent 1, then said "y" on its own, later.
    old = cand(1, "x", signer=1, ts=T)
    newer = cand(2, "y", signer=2, ts=T + 10)
    third = cand(3, "y", signer=3, ts=T + 1)
    result = resolve("consensus", "s", "p", [old, newer, third], ctx_with({old: (2,)}))
    assert result.extra == {"voices": 3, "winning_voices": 2}  # agent 2 counted once
    assert result.winner == newer
    lines = {e.hash: e for e in result.explanation}
    assert lines[old.hash].score == pytest.approx(1 / 3)  # still agent 1's voice
    assert "carries the voices" not in lines[old.hash].why


def test_a_cosigned_assertion_whose_signers_all_speak_elsewhere_is_silent() -> None:
    old = cand(1, "x", signer=1, ts=T)
    a_new = cand(2, "y", signer=1, ts=T + 5)
    b_new = cand(3, "y", signer=2, ts=T + 6)
    result = resolve("consensus", "s", "p", [old, a_new, b_new], ctx_with({old: (2,)}))
    assert result.extra == {"voices": 2, "winning_voices": 2}
    silent = next(e for e in result.explanation if e.hash == old.hash)
    assert silent.score == 0.0 and silent.why.startswith("not counted")


def test_consensus_ignores_an_unknown_or_repeated_cosigner_entry() -> None:
    c = cand(1, "x", signer=1)
    result = resolve("consensus", "s", "p", [c], ctx_with({c: (1,)}))  # itself again
    assert result.extra == {"voices": 1, "winning_voices": 1}


def test_layered_counts_cosigners_in_each_tier() -> None:
    top = cand(1, "x", signer=1, tier=0)
    top_rivals = [cand(2, "y", signer=2, tier=0, ts=T + 5), cand(3, "y", signer=3, tier=0)]
    low = cand(4, "y", signer=9, tier=4)
    candidates = [top, *top_rivals, low]
    without = resolve("layered", "s", "p", candidates, CTX)
    assert without.winner is not None and without.winner.value_key == vk("y")
    result = resolve("layered", "s", "p", candidates, ctx_with({top: (4, 5)}))
    assert result.winner == top
    tier0 = result.extra["tiers"][0]
    assert tier0["winner"] == top.hash and tier0["resolution_confidence"] == pytest.approx(3 / 5)


def test_skeptic_agents_list_every_cosigner() -> None:
    c = cand(1, "x", signer=1)
    d = cand(2, "x", signer=None, ts=T + 1)
    report = skeptic_report("s", "p", [c, d], ctx_with({c: (7, 3)}))
    assert report["claims"][0]["agents"] == sorted([agent(1), agent(3), agent(7)])
    assert report["claims"][0]["assertion_count"] == 2


# ---- skeptic NoClaims --------------------------------------------------------------------


def test_skeptic_without_competing_candidates_is_noclaims() -> None:
    gone = cand(1, "x", signer=1, superseded=True)
    report = skeptic_report("s", "p", [gone], CTX)
    assert report["status"] == "NoClaims" and report["claims"] == []
    assert report["candidates_count"] == 1 and report["conflict_score"] == 0.0
    assert skeptic_report("s", "p", [], CTX)["status"] == "NoClaims"
    lens = resolve("skeptic", "s", "p", [gone], CTX)
    assert lens.extra["status"] == "NoClaims"
    included = skeptic_report("s", "p", [gone], LensContext(at_s=T, include_superseded=True))
    assert included["status"] == "Unanimous"  # with include_superseded it competes


# ---- include_superseded: competing, marked ------------------------------------------------


@pytest.mark.parametrize("lens", ["recency", "confidence", "consensus", "authority", "votes"])
def test_superseded_candidates_compete_marked_when_included(lens: str) -> None:
    gone = cand(1, "old", signer=1, ts=T + 50, conf=1.0, superseded=True)
    kept = cand(2, "new", signer=2, ts=T, conf=0.5)
    hidden = resolve(lens, "s", "p", [gone, kept], CTX)
    marks = {e.hash: (e.excluded, e.superseded) for e in hidden.explanation}
    assert marks == {gone.hash: ("superseded", True), kept.hash: (None, False)}
    ctx = LensContext(at_s=T + 1000, include_superseded=True)
    shown = resolve(lens, "s", "p", [gone, kept], ctx)
    marks = {e.hash: (e.excluded, e.superseded) for e in shown.explanation}
    assert marks == {gone.hash: (None, True), kept.hash: (None, False)}
    assert shown.winner == gone  # newest, most confident: it competes like any other
    assert shown.conflict_score > 0.0


# ---- the reading instant ------------------------------------------------------------------


def test_reading_instant_is_as_of_then_known_at_then_now() -> None:
    assert reading_instant(100, 200) == 100.0
    assert reading_instant(None, 200) == 200.0
    assert abs(reading_instant(None, None) - time.time()) < 5


def test_trust_relaxes_at_the_reading_instant() -> None:
    c = cand(1, "x", signer=1, conf=1.0)
    trust = {agent(1): (0.9, float(T))}
    at_t = resolve("trust", "s", "p", [c], LensContext(at_s=T + 30 * 86400, trust=trust))
    assert at_t.explanation[0].score == pytest.approx(trust_at(0.9, T, T + 30 * 86400))
    assert at_t.explanation[0].score == pytest.approx(0.7)
