"""`known_at=T` replays what a reader at T saw (issue 14, item 14).

One world is written in two states around one instant T: state A before it,
state B after it. For each kind that changes a lens answer (votes, aliases,
supersessions, epochs, outcomes/trust) a `known_at=T` query must give A's
answer and a current query B's. `known_at` is whole Unix seconds; a frame is
known at T when `written_ms <= T * 1000` (api.md), so T is the first whole
second after state A was acknowledged, and state B is written only once the
clock has passed it.

Also here: decay and trust relaxation are measured at the reading instant
(`as_of`, else `known_at`, else now), and co-signers are voices.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from e2ekit import Agent, Api, poll, unique

from stemedb.lenses.trust import trust_at
from stemedb.signing import sign_record
from stemedb.store.projections import fold_outcome

OUTCOMES_A = (True, True)  # agent `a` judged accurate twice before T
OUTCOMES_B = (False, False, False, False)  # and inaccurate four times after


@dataclass
class World:
    root: str
    t: int = 0  # the instant between state A and state B (Unix seconds)
    outcome_ts: int = 0
    agents: dict[str, Agent] = field(default_factory=dict)
    h: dict[str, str] = field(default_factory=dict)
    s: dict[str, str] = field(default_factory=dict)


def instant_after_acknowledged_writes() -> int:
    """A whole second T at or after every write acknowledged so far, once the clock passed it.

    Every frame acknowledged before this call has written_ms <= now, so
    <= T * 1000; every frame written after it returns has written_ms > T * 1000.
    """
    t = math.ceil(time.time())
    poll(lambda: time.time() * 1000 > t * 1000 + 5, timeout=3, interval=0.01)
    return t


def outcome(judge: Agent, judged: Agent, target: str, ok: bool, ts: int) -> dict[str, Any]:
    return judge.record(
        "outcome", agent_id=judged.id, assertion_hash=target, accurate=ok, timestamp=ts
    )


@pytest.fixture(scope="module")
def world(api: Api) -> World:
    a, b, c = Agent(), Agent(), Agent()
    w = World(unique("tt"), agents={"a": a, "b": b, "c": c})
    now = int(time.time())
    for name in ("votes", "alias1", "alias2", "sup", "epoch", "trust", "decay"):
        w.s[name] = f"{w.root}/{name}"
    # ---- state A ----
    w.h["vp"] = api.write(
        "/v1/assert", a.assertion(w.s["votes"], "p", "P", 0.5, timestamp=now - 50)
    )["hash"]
    w.h["vq"] = api.write(
        "/v1/assert", b.assertion(w.s["votes"], "p", "Q", 0.5, timestamp=now - 40)
    )["hash"]
    api.write("/v1/vote", a.record("vote", assertion_hash=w.h["vp"], weight=1, timestamp=now - 30))
    w.h["al1"] = api.write("/v1/assert", a.assertion(w.s["alias1"], "p", "one", 0.5))["hash"]
    w.h["al2"] = api.write("/v1/assert", a.assertion(w.s["alias2"], "p", "two", 0.5))["hash"]
    w.s["alias"] = f"{w.root}/brand"
    api.write(
        "/v1/aliases",
        a.record("alias", alias=w.s["alias"], canonical=w.s["alias1"], timestamp=now - 20),
    )
    w.h["sp"] = api.write(
        "/v1/assert", a.assertion(w.s["sup"], "p", "newer", 0.5, timestamp=now - 5)
    )["hash"]
    w.h["sq"] = api.write(
        "/v1/assert", b.assertion(w.s["sup"], "p", "older", 0.5, timestamp=now - 500)
    )["hash"]
    w.h["e1"] = api.write("/v1/epoch", a.record("epoch", name=unique("e1")))["hash"]
    w.h["ep"] = api.write(
        "/v1/assert",
        a.assertion(w.s["epoch"], "p", "in-e1", 0.5, timestamp=now - 5, epoch=w.h["e1"]),
    )["hash"]
    w.h["eq"] = api.write(
        "/v1/assert", b.assertion(w.s["epoch"], "p", "no-epoch", 0.5, timestamp=now - 500)
    )["hash"]
    w.h["ta"] = api.write(
        "/v1/assert", a.assertion(w.s["trust"], "p", "by-a", 0.8, timestamp=now - 60)
    )["hash"]
    w.h["tb"] = api.write(
        "/v1/assert", b.assertion(w.s["trust"], "p", "by-b", 0.8, timestamp=now - 60)
    )["hash"]
    w.outcome_ts = now - 10
    judge = Agent()
    for i, ok in enumerate(OUTCOMES_A):
        api.write("/v1/outcome", outcome(judge, a, w.h["ta"], ok, w.outcome_ts + i))
    w.h["dc"] = api.write(
        "/v1/assert", c.assertion(w.s["decay"], "p", "d", 0.9, timestamp=now - 1000)
    )["hash"]
    w.t = instant_after_acknowledged_writes()
    # ---- state B ----
    later = int(time.time())
    api.write("/v1/vote", a.record("vote", assertion_hash=w.h["vp"], weight=-1, timestamp=later))
    api.write("/v1/vote", b.record("vote", assertion_hash=w.h["vq"], weight=1, timestamp=later))
    api.write(
        "/v1/aliases",
        a.record("alias", alias=w.s["alias"], canonical=w.s["alias2"], timestamp=later),
    )
    api.write("/v1/supersede", a.record("supersession", target_hash=w.h["sp"], reason="wrong"))
    api.write(
        "/v1/epoch", b.record("epoch", name=unique("e2"), supersedes=[w.h["e1"]], timestamp=later)
    )
    for i, ok in enumerate(OUTCOMES_B, start=len(OUTCOMES_A)):
        api.write("/v1/outcome", outcome(judge, a, w.h["ta"], ok, w.outcome_ts + i))
    return w


def result(api: Api, **params: Any) -> dict[str, Any]:
    body = api.query(**params)
    assert len(body["results"]) == 1, body
    out: dict[str, Any] = body["results"][0]
    return out


def lines(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["hash"]: e for e in res["explanation"]}


def test_votes_as_of_t(api: Api, world: World) -> None:
    q = {"subject": world.s["votes"], "predicate": "p", "lens": "votes"}
    then = result(api, **q, known_at=world.t)
    assert then["winner"]["hash"] == world.h["vp"]
    assert lines(then)[world.h["vp"]]["score"] == 1.0  # a's first vote only
    assert lines(then)[world.h["vq"]]["score"] == 0.0  # b had not voted yet
    assert then["resolution_confidence"] == 1.0
    now = result(api, **q)
    assert now["winner"]["hash"] == world.h["vq"]
    assert lines(now)[world.h["vp"]]["score"] == -1.0  # a changed its vote after T


def test_aliases_as_of_t(api: Api, world: World) -> None:
    then = result(api, subject=world.s["alias"], predicate="p", lens="recency", known_at=world.t)
    assert then["subject"] == world.s["alias1"] and then["winner"]["hash"] == world.h["al1"]
    listed = api.query(subject=world.s["alias"], known_at=world.t)
    assert [x["hash"] for x in listed["assertions"]] == [world.h["al1"]]
    now = result(api, subject=world.s["alias"], predicate="p", lens="recency")
    assert now["subject"] == world.s["alias2"] and now["winner"]["hash"] == world.h["al2"]


def test_supersessions_as_of_t(api: Api, world: World) -> None:
    q = {"subject": world.s["sup"], "predicate": "p", "lens": "recency"}
    sp, sq = world.h["sp"], world.h["sq"]
    then = result(api, **q, known_at=world.t)
    assert then["winner"]["hash"] == sp and then["winner"]["superseded"] is False
    assert lines(then)[sp]["excluded"] is None and lines(then)[sp]["superseded"] is False
    listed = api.query(subject=world.s["sup"], known_at=world.t)
    assert {x["hash"]: x["superseded"] for x in listed["assertions"]} == {sp: False, sq: False}
    now = result(api, **q)
    assert now["winner"]["hash"] == sq
    assert lines(now)[sp]["excluded"] == "superseded" and lines(now)[sp]["superseded"] is True
    # include_superseded: it competes again, marked, in the answer and the explanation
    shown = result(api, **q, include_superseded=True)
    assert shown["winner"]["hash"] == sp and shown["winner"]["superseded"] is True
    assert lines(shown)[sp]["excluded"] is None and lines(shown)[sp]["superseded"] is True
    assert lines(shown)[sq]["superseded"] is False
    listed = api.query(subject=world.s["sup"], include_superseded=True)
    assert {x["hash"]: x["superseded"] for x in listed["assertions"]} == {sp: True, sq: False}
    # the pair endpoints replay T too
    pair = {"subject": world.s["sup"], "predicate": "p"}
    skeptic_then = api.get_ok("/v1/skeptic", {**pair, "known_at": world.t})
    assert sorted(c["object"]["value"] for c in skeptic_then["claims"]) == ["newer", "older"]
    skeptic_now = api.get_ok("/v1/skeptic", pair)
    assert [c["object"]["value"] for c in skeptic_now["claims"]] == ["older"]
    layered_then = api.get_ok("/v1/layered", {**pair, "known_at": world.t})
    assert layered_then["winner"]["hash"] == sp and layered_then["winner"]["superseded"] is False
    assert api.get_ok("/v1/layered", pair)["winner"]["hash"] == sq


def test_epochs_as_of_t(api: Api, world: World) -> None:
    q = {"subject": world.s["epoch"], "predicate": "p", "lens": "epoch"}
    then = result(api, **q, known_at=world.t)
    assert then["winner"]["hash"] == world.h["ep"]
    assert lines(then)[world.h["ep"]]["excluded"] is None
    now = result(api, **q)
    assert now["winner"]["hash"] == world.h["eq"]
    assert lines(now)[world.h["ep"]]["excluded"] == "epoch_superseded"


def test_outcomes_and_trust_as_of_t(api: Api, world: World) -> None:
    q = {"subject": world.s["trust"], "predicate": "p", "lens": "trust"}
    state = None
    for i, ok in enumerate(OUTCOMES_A):
        state = fold_outcome(state, ok, world.outcome_ts + i)
    assert state is not None
    then = result(api, **q, known_at=world.t)
    assert then["winner"]["hash"] == world.h["ta"]
    expected = 0.8 * trust_at(state.score, state.last_updated, world.t)  # relaxed at T
    assert lines(then)[world.h["ta"]]["score"] == pytest.approx(expected, rel=1e-12)
    assert lines(then)[world.h["tb"]]["score"] == pytest.approx(0.8 * 0.5)
    now = result(api, **q)
    assert now["winner"]["hash"] == world.h["tb"]
    assert lines(now)[world.h["ta"]]["score"] < 0.8 * 0.5


def test_decay_is_measured_at_known_at(api: Api, world: World) -> None:
    half_life_days = 0.01  # 864 s: a second's difference shows
    q = {"subject": world.s["decay"], "predicate": "p", "lens": "confidence"}
    then = result(api, **q, decay=str(half_life_days), known_at=world.t)
    assert then["winner"]["hash"] == world.h["dc"]
    ts = api.get_ok(f"/v1/assertions/{world.h['dc']}")["timestamp"]
    at_t = 0.9 * 2 ** (-(world.t - ts) / 86400 / half_life_days)
    assert then["resolution_confidence"] == pytest.approx(at_t, rel=1e-9)
    later = result(api, **q, decay=str(half_life_days))
    assert later["resolution_confidence"] < at_t * (1 - 1e-6)  # measured now, after T
    as_of = ts + 100
    both = result(api, **q, decay=str(half_life_days), known_at=world.t, as_of=as_of)
    assert both["resolution_confidence"] == pytest.approx(
        0.9 * 2 ** (-100 / 86400 / half_life_days), rel=1e-9
    )  # as_of wins over known_at


# ---- co-signers are voices ----------------------------------------------------------------


def test_cosigners_are_voices_in_consensus_skeptic_and_layered(api: Api) -> None:
    a, b, c, d, e = (Agent() for _ in range(5))
    subject = f"{unique('cs')}/claim"
    now = int(time.time())
    together = sign_record(
        "assertion",
        {"subject": subject, "predicate": "p", "object": "x", "confidence": 0.5, "timestamp": now},
        [a.seed, b.seed, c.seed],
    )
    x = api.write("/v1/assert", together)["hash"]
    y1 = api.write("/v1/assert", d.assertion(subject, "p", "y", 0.5, timestamp=now + 1))["hash"]
    y2 = api.write("/v1/assert", e.assertion(subject, "p", "y", 0.5, timestamp=now + 2))["hash"]
    res = result(api, subject=subject, predicate="p", lens="consensus")
    assert res["winner"]["hash"] == x  # three signers outvote two (one voice per assertion: y)
    assert res["voices"] == 5 and res["winning_voices"] == 3
    assert res["resolution_confidence"] == pytest.approx(3 / 5)
    assert {y1, y2} <= set(lines(res))
    skeptic = api.get_ok("/v1/skeptic", {"subject": subject, "predicate": "p"})
    claim_x = next(cl for cl in skeptic["claims"] if cl["object"]["value"] == "x")
    assert claim_x["agents"] == sorted([a.id, b.id, c.id])
    layered = api.get_ok("/v1/layered", {"subject": subject, "predicate": "p"})
    assert layered["winner"]["hash"] == x
    assert layered["tiers"][0]["resolution_confidence"] == pytest.approx(3 / 5)


def test_skeptic_of_a_pair_whose_only_claim_is_superseded_is_noclaims(api: Api) -> None:
    a = Agent()
    subject = f"{unique('nc')}/gone"
    h = api.write("/v1/assert", a.assertion(subject, "p", "x", 0.5))["hash"]
    api.write("/v1/supersede", a.record("supersession", target_hash=h, reason="retracted"))
    body = api.get_ok("/v1/skeptic", {"subject": subject, "predicate": "p"})
    assert body["status"] == "NoClaims" and body["claims"] == []
    assert body["candidates_count"] == 1
    shown = api.get_ok(
        "/v1/skeptic", {"subject": subject, "predicate": "p", "include_superseded": "true"}
    )
    assert shown["status"] == "Unanimous"
