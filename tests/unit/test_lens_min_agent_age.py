"""`min_agent_age`: agents first seen too recently have no voice in consensus/layered.

Pure lens tests (the first-seen times come in the context); the real-server
flood scenario is tests/security/test_agent_flood.py.
"""

from __future__ import annotations

import json

from stemedb.lenses import Candidate, LensContext, resolve

T = 1_700_000_000
DAY = 86400


def vk(value: str) -> str:
    return json.dumps({"type": "Text", "value": value}, separators=(",", ":"))


def agent(n: int) -> str:
    return f"f{n:063x}"


def cand(n: int, value: str, who: int | None, ts: int = T, tier: int = 1) -> Candidate:
    return Candidate(
        f"{n:064x}", "s", "p", vk(value), 0.9, tier, ts,
        None if who is None else agent(who), "Proposed", None,
    )  # fmt: skip


OLD = {agent(i): float(T - 10 * DAY) for i in range(1, 4)}  # agents 1..3: ten days old
YOUNG = {agent(i): float(T - 60) for i in range(10, 20)}  # agents 10..19: a minute old


def ctx(min_age: float | None, cosigners: dict[str, tuple[str, ...]] | None = None) -> LensContext:
    return LensContext(
        at_s=T,
        min_agent_age=min_age,
        agent_first_seen={**OLD, **YOUNG},
        cosigners=cosigners or {},
    )


def test_young_agents_lose_their_voice_and_say_why() -> None:
    honest = [cand(i, "a", i) for i in range(1, 4)]
    flood = [cand(i, "b", i, ts=T + 5) for i in range(10, 20)]
    assert resolve("consensus", "s", "p", honest + flood, ctx(None)).winner in flood
    result = resolve("consensus", "s", "p", honest + flood, ctx(DAY))
    assert result.winner in honest
    assert result.extra["voices"] == 3 and result.extra["unvoiced_assertions"] == 10
    reasons = {e.hash: e.why for e in result.explanation}
    assert reasons[flood[0].hash] == (
        f"not counted: agent {agent(10)[:12]} first seen 60 s before the query; min_agent_age=86400"
    )


def test_a_co_signed_claim_keeps_the_voices_of_its_old_signers_only() -> None:
    cosigned = cand(1, "a", 10)
    ctx_ = ctx(DAY, {cosigned.hash: (agent(1), agent(11))})
    result = resolve("consensus", "s", "p", [cosigned, cand(2, "b", 12)], ctx_)
    assert result.winner == cosigned and result.extra["voices"] == 1


def test_unsigned_and_never_seen_agents_have_no_voice() -> None:
    unseen = cand(2, "b", 99)  # not in agent_first_seen at all
    result = resolve("consensus", "s", "p", [cand(1, "b", None), unseen], ctx(1))
    assert result.winner is None and result.extra["voices"] == 0
    whys = sorted(e.why for e in result.explanation)
    assert whys[0].startswith(f"not counted: agent {agent(99)[:12]} not seen before the query")
    assert whys[1] == "not counted: unsigned, so no agent history; min_agent_age=1"


def test_layered_skips_a_tier_whose_agents_are_all_too_new() -> None:
    top = [cand(i, "b", i, tier=0) for i in range(10, 13)]  # young, Regulatory
    lower = [cand(1, "a", 1, tier=2)]  # old, Clinical
    result = resolve("layered", "s", "p", top + lower, ctx(DAY))
    assert result.winner == lower[0]
    assert [t["tier"] for t in result.extra["tiers"]] == [2]
    assert len(result.explanation) == 4
