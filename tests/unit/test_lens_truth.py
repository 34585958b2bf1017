"""The `truth` lens (issue 18): learned reliability, copier and clone discount, determinism.

The lens is pure: every scenario hands it the candidates of one pair plus the
neighbourhood the service would have read (`LensContext.truth`).
"""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from stemedb.lenses import Candidate, LensContext, resolve
from stemedb.lenses.candidate import TruthClaim, TruthEvidence, TruthVote
from stemedb.lenses.truth_model import _estimate

QUERY = ("drug/x", "dose")


def agent(name: str) -> str:
    return name.encode().hex().ljust(64, "0")[:64]


def value(v: str) -> str:
    return json.dumps({"type": "Text", "value": v}, separators=(",", ":"), sort_keys=True)


def cand(n: int, who: str, v: str, ts: int = 1000, tier: int = 2) -> Candidate:
    h = f"{n:064x}"
    return Candidate(h, *QUERY, value(v), 0.9, tier, ts, agent(who), "Proposed", None)


def claim(n: int, pair: int, who: str, v: str, ts: int = 500, tier: int = 2) -> TruthClaim:
    return TruthClaim(f"e/{pair}\x00p", value(v), (agent(who),), tier, ts, f"{10**6 + n:064x}")


def copier_world(seed: int = 7, pairs: int = 24) -> tuple[list[Candidate], TruthEvidence]:
    """Eight good agents (each on 70 % of the pairs); a poor original and three copiers
    repeating it (85 %). On the asked pair three good agents face the four others."""
    rng = random.Random(seed)
    claims: list[TruthClaim] = []
    n = 0
    for p in range(pairs):
        truth = "t"
        for h in ("h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"):
            if rng.random() < 0.7:
                said = truth if rng.random() < 0.85 else f"w{rng.randrange(6)}"
                claims.append(claim(n, p, h, said))
                n += 1
        original = truth if rng.random() < 0.3 else f"w{rng.randrange(6)}"
        claims.append(claim(n, p, "orig", original))
        n += 1
        for c in ("c1", "c2", "c3"):
            said = original if rng.random() < 0.85 else f"w{rng.randrange(6)}"
            claims.append(claim(n, p, c, said))
            n += 1
    group = [cand(1, "h1", "good"), cand(2, "h2", "good"), cand(3, "h3", "good")]
    group += [cand(4, "orig", "bad"), cand(5, "c1", "bad"), cand(6, "c2", "bad")]
    group += [cand(7, "c3", "bad", ts=1001)]
    return group, TruthEvidence(tuple(claims))


def run(group: list[Candidate], evidence: TruthEvidence | None, lens: str = "truth"):  # type: ignore[no-untyped-def]
    return resolve(lens, *QUERY, group, LensContext(at_s=2000.0, truth=evidence))


def test_copiers_outnumbering_reliable_agents_do_not_win() -> None:
    group, evidence = copier_world()
    assert run(group, evidence, "consensus").winner.value_key == value("bad")  # type: ignore[union-attr]
    result = run(group, evidence)
    assert result.winner is not None and result.winner.value_key == value("good")
    info = result.extra["truth"]
    rel = {a: info["agents"][agent(a)]["reliability"] for a in ("h1", "orig", "c1")}
    assert rel["h1"] > 0.75 > rel["orig"] and rel["c1"] < 0.6
    copied = {frozenset(c["agents"]) for c in info["copying"]}
    assert frozenset({agent("orig"), agent("c1")}) in copied
    bad_lines = [e.why for e in result.explanation if e.hash in {f"{n:064x}" for n in (5, 6, 7)}]
    assert any("likely copy" in why for why in bad_lines)
    assert 0.5 < result.resolution_confidence <= 1.0


def test_without_the_neighbourhood_there_is_nothing_to_learn_and_numbers_decide() -> None:
    group, _ = copier_world()
    result = run(group, None)
    assert result.winner is not None and result.winner.value_key == value("bad")
    assert result.extra["truth"]["pairs"] == 1


def test_a_clone_family_counts_as_about_one_poor_voice() -> None:
    """Fifteen fresh keys saying exactly the same things lose to three proven agents:
    clones are dependent for certain, and judged only by the others they are wrong."""
    claims: list[TruthClaim] = []
    n = 0
    for p in range(20):
        for h in ("h1", "h2", "h3"):
            claims.append(claim(n, p, h, "t" if (p + int(h[1])) % 7 else "x"))
            n += 1
    for p in range(4):  # the clones also push their value on four other pairs
        for k in range(15):
            claims.append(claim(n, p, f"clone{k:02d}", "spam"))
            n += 1
    group = [cand(i, h, "good") for i, h in enumerate(("h1", "h2", "h3"), start=1)]
    group += [cand(10 + k, f"clone{k:02d}", "spam", ts=1500 + k) for k in range(15)]
    assert run(group, TruthEvidence(tuple(claims)), "consensus").winner.value_key == value("spam")  # type: ignore[union-attr]
    result = run(group, TruthEvidence(tuple(claims)))
    assert result.winner is not None and result.winner.value_key == value("good")
    agents = result.extra["truth"]["agents"]
    assert agents[agent("clone00")]["reliability"] < 0.35 < 0.6 < agents[agent("h1")]["reliability"]
    assert agents[agent("h1")]["weight"] > 3 * agents[agent("clone00")]["weight"]
    clone_lines = [e.why for e in result.explanation if 'value "spam"' in e.why]
    assert len(clone_lines) == 15
    assert sum("likely copy" in why for why in clone_lines) == 14  # all but the first


def test_explanations_name_each_agent_reliability_and_evidence() -> None:
    group, evidence = copier_world()
    spoken = 1 + sum(agent("h1") in c.signers for c in evidence.claims)  # + the asked pair
    result = run(group, evidence)
    top = result.explanation[0]
    assert top.hash == result.winner.hash  # type: ignore[union-attr]
    assert agent("h1")[:12] in top.why and f"over {spoken} pairs" in top.why
    assert "reliability 0." in top.why and "weight " in top.why
    info = result.extra["truth"]
    assert info["agents"][agent("h1")]["evidence"] == spoken
    assert info["pairs"] == 25 and info["iterations"][0] >= 1
    assert info["bounded"] is False


def test_an_agent_speaks_once_through_its_newest_assertion() -> None:
    group = [cand(1, "a", "old", ts=10), cand(2, "a", "new", ts=20), cand(3, "b", "old", ts=5)]
    result = run(group, None)
    lines = {e.hash: e for e in result.explanation}
    assert lines[f"{1:064x}"].score == 0.0 and "newer assertion" in lines[f"{1:064x}"].why
    assert result.extra["truth"]["claims"] == 2


def test_unsigned_assertions_are_voices_of_their_own() -> None:
    group = [cand(1, "a", "x")._replace(agent_id=None), cand(2, "b", "y")]
    result = run(group, None)
    assert result.winner is not None and len(result.extra["truth"]["agents"]) == 2


world_params = st.tuples(
    st.integers(0, 10_000), st.integers(4, 12), st.permutations(list(range(7)))
)


@settings(max_examples=25, deadline=None)
@given(world_params, st.randoms(use_true_random=False))
def test_same_claims_in_any_order_give_the_same_answer(params, rnd) -> None:  # type: ignore[no-untyped-def]
    seed, pairs, order = params
    group, evidence = copier_world(seed, pairs)
    first = run(group, evidence)
    claims = list(evidence.claims)
    rnd.shuffle(claims)
    _estimate.cache_clear()  # computed afresh, not remembered
    again = run([group[i] for i in order], TruthEvidence(tuple(claims)))
    assert again == first
    assert 0.0 <= first.resolution_confidence <= 1.0
    assert first.winner in group
    assert json.dumps(first.extra, sort_keys=True) == json.dumps(again.extra, sort_keys=True)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.sampled_from("xyz"), st.integers(0, 5)),
        min_size=1,
        max_size=12,
    )
)
def test_any_group_resolves_to_one_of_its_values_with_a_probability(rows) -> None:  # type: ignore[no-untyped-def]
    group = [cand(i + 1, who, v, ts=100 + i, tier=t) for i, (who, v, t) in enumerate(rows)]
    result = run(group, None)
    assert result.winner in group
    scores = {e.hash: e.score for e in result.explanation}
    assert result.resolution_confidence == max(scores.values())
    assert all(0.0 <= s <= 1.0 for s in scores.values())


def test_clones_need_not_say_exactly_the_same_things() -> None:
    """Each member of the family skips one of its four other pairs: still clones."""
    claims: list[TruthClaim] = []
    n = 0
    for p in range(20):
        for h in ("h1", "h2", "h3"):
            claims.append(claim(n, p, h, "t" if (p + int(h[1])) % 7 else "x"))
            n += 1
    for k in range(15):
        for p in range(4):
            if p != k % 4:
                claims.append(claim(n, p, f"clone{k:02d}", "spam"))
                n += 1
    group = [cand(i, h, "good") for i, h in enumerate(("h1", "h2", "h3"), start=1)]
    group += [cand(10 + k, f"clone{k:02d}", "spam", ts=1500 + k) for k in range(15)]
    result = run(group, TruthEvidence(tuple(claims)))
    assert result.winner is not None and result.winner.value_key == value("good")
    pairs = {frozenset(c["agents"]) for c in result.extra["truth"]["copying"]}
    assert frozenset({agent("clone00"), agent("clone01")}) in pairs


def test_up_votes_are_evidence_and_voters_earn_a_reliability() -> None:
    """Two equal claims tie; the up-vote of a voter who backed the majority on ten
    other pairs decides, the up-vote of one who always backed the minority does not."""
    claims: list[TruthClaim] = []
    votes: list[TruthVote] = []
    for p in range(10):
        for k, h in enumerate(("h1", "h2", "h3")):
            claims.append(claim(10 * p + k, p, h, "t" if p != k else "z"))  # each errs once
        claims.append(claim(10 * p + 5, p, "odd", "w"))
        votes.append(TruthVote(f"e/{p}\x00p", value("t"), agent("good_voter"), 1.0, 400))
        votes.append(TruthVote(f"e/{p}\x00p", value("w"), agent("bad_voter"), 1.0, 400))
    group = [cand(1, "a", "x", ts=1000), cand(2, "b", "y", ts=999)]
    pair = f"{QUERY[0]}\x00{QUERY[1]}"
    no_votes = run(group, TruthEvidence(tuple(claims)))
    assert no_votes.winner is not None and no_votes.winner.value_key == value("x")  # newer
    votes.append(TruthVote(pair, value("y"), agent("good_voter"), 1.0, 900))
    votes.append(TruthVote(pair, value("x"), agent("bad_voter"), 1.0, 900))
    result = run(group, TruthEvidence(tuple(claims), tuple(votes)))
    assert result.winner is not None and result.winner.value_key == value("y")
    agents = result.extra["truth"]["agents"]
    assert (
        agents[agent("good_voter")]["reliability"]
        > 0.7
        > 0.3
        > agents[agent("bad_voter")]["reliability"]
    )
    line = next(e.why for e in result.explanation if e.hash == result.winner.hash)
    assert "up-voted by 1 agent(s)" in line and agent("good_voter")[:12] in line


def test_a_vote_on_an_assertion_its_author_has_since_revised_no_longer_counts() -> None:
    old = claim(1, 0, "s", "old", ts=10)
    new = claim(2, 0, "s", "new", ts=20)
    group = [cand(1, "a", "x")]

    def voices(voted: TruthClaim) -> int:
        vote = TruthVote(old.pair, voted.value_key, agent("v"), 1.0, 30, voted.hash)
        result = run(group, TruthEvidence((old, new), (vote,)))
        return int(result.extra["truth"]["claims"])

    assert voices(new) == 3  # a on the asked pair; s and the voter on e/0
    assert voices(old) == 2  # the voter backed what s said before it changed its mind
