"""The `truth` lens at the head, from its reliability table (lenses/truth_online.py):
numeric tolerance, the copier discount from the table's link counts, outcomes, and
the same answer for the same rows."""

from __future__ import annotations

import json
import random

from stemedb.lenses import Candidate, LensContext, resolve
from stemedb.lenses import truth_online as online
from stemedb.lenses.candidate import TruthEvidence
from stemedb.lenses.truth_model import COPY_RATE
from stemedb.lenses.truth_online import AgentStats, LinkStats, TruthTable

QUERY = ("drug/x", "dose")


def agent(name: str) -> str:
    return name.encode().hex().ljust(64, "0")[:64]


def number(v: float) -> dict[str, object]:
    return {"type": "Number", "value": v}


def key(obj: dict[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def cand(n: int, who: str, obj: dict[str, object], ts: int = 1000) -> Candidate:
    return Candidate(f"{n:064x}", *QUERY, key(obj), 0.9, 3, ts, agent(who), "Proposed", None)


def ctx(table: TruthTable, tolerance: float = 0.0) -> LensContext:
    return LensContext(at_s=0.0, truth=TruthEvidence(table=table, tolerance=tolerance))


GOOD = AgentStats(3, 20, 17.0, 15)  # right on 17 of 20 pairs


def test_similar_numbers_within_a_relative_tolerance() -> None:
    a, b, c = key(number(100)), key(number(100.5)), key(number(103))
    assert online.similar(a, b, 0.01) and not online.similar(a, c, 0.01)
    assert online.similar(a, c, 0.05)
    assert not online.similar(a, b, 0.0)  # 0: exact
    text = key({"type": "Text", "value": "100"})
    assert not online.similar(a, text, 0.5)  # only numbers are close to each other


def test_close_numbers_support_each_other_under_the_querys_tolerance() -> None:
    table = TruthTable({agent(n): GOOD for n in ("a", "b", "c", "d", "e")})
    group = [
        cand(1, "a", number(100.0)),
        cand(2, "b", number(100.4)),
        cand(3, "c", number(99.7)),
        cand(4, "d", number(150)),
        cand(5, "e", number(150)),
    ]
    exact = resolve("truth", *QUERY, group, ctx(table, 0.0))
    assert exact.winner is not None and exact.winner.hash == f"{4:064x}"  # two equal voices
    close = resolve("truth", *QUERY, group, ctx(table, 0.01))
    assert close.winner is not None and close.winner.value_key != key(number(150))
    assert close.extra["truth"]["tolerance"] == 0.01
    why = {e.hash: e.why for e in close.explanation}
    assert "similar value(s) within tolerance 0.01" in why[f"{1:064x}"]
    assert close.resolution_confidence > exact.resolution_confidence


def test_clones_in_the_table_count_once() -> None:
    honest = {agent(n): GOOD for n in ("h1", "h2")}
    clones = {agent(n): AgentStats(3, 20, 17.0, 2) for n in ("k1", "k2", "k3")}
    group = [cand(1, "h1", number(1)), cand(2, "h2", number(1))]
    group += [cand(3 + i, f"k{i + 1}", number(2)) for i in range(3)]
    free = resolve("truth", *QUERY, group, ctx(TruthTable({**honest, **clones})))
    assert free.winner is not None and free.winner.value_key == key(number(2))  # 3 beat 2
    ids = sorted(clones)
    links = {
        (a, b): LinkStats(18, 15.0, 0) for i, a in enumerate(ids) for b in ids[i + 1 :]
    }  # never differ, on most of their pairs, values the others rarely hold: clones
    table = TruthTable({**honest, **clones}, links)
    found = resolve("truth", *QUERY, group, ctx(table))
    assert found.winner is not None and found.winner.value_key == key(number(1))
    assert any(c["probability"] == 1.0 for c in found.extra["truth"]["copying"])
    assert "as a likely copy" in " ".join(e.why for e in found.explanation)
    assert found.extra["truth"]["source"] == "table" and found.extra["truth"]["pairs"] == 1
    # the same rows, the same answer
    assert resolve("truth", *QUERY, list(reversed(group)), ctx(table)) == found


def test_outcomes_move_the_weight_an_agent_votes_with() -> None:
    base = AgentStats(3, 10, 6.0, 5)
    praised = base._replace(outcomes_right=5)
    blamed = base._replace(outcomes_wrong=5)
    assert online.weight(praised, 3) > online.weight(base, 3) > online.weight(blamed, 3)
    group = [cand(1, "p", number(1)), cand(2, "b", number(2)), cand(3, "c", number(2))]
    table = TruthTable(
        {agent("p"): base._replace(outcomes_right=30), agent("b"): blamed, agent("c"): blamed}
    )
    out = resolve("truth", *QUERY, group, ctx(table))
    assert out.winner is not None and out.winner.value_key == key(number(1))


# ---- the writer's fast paths equal the plain definitions (issue 21: write cost) ----


def _backed_reference(
    speakers: list[tuple[str, str]], near: set[tuple[str, str]]
) -> dict[str, bool]:
    """`backed` as first written: every speaker copies the counts (O(speakers × values))."""
    counts: dict[str, int] = {}
    for _a, v in speakers:
        counts[v] = counts.get(v, 0) + 1
    value_of = dict(speakers)
    out = {}
    for a, va in speakers:
        others = dict(counts)
        others[va] -= 1
        for x, y in near:
            if a in (x, y):
                b = y if a == x else x
                if b in value_of:
                    others[value_of[b]] -= 1
        top = max(others.values(), default=0)
        out[a] = bool(top) and others.get(va, 0) == top
    return out


def test_weight_is_the_models_weight_of_the_posterior_bit_for_bit() -> None:
    from stemedb.lenses.truth_model import _weight

    rng = random.Random(7)
    for _ in range(3000):
        pairs = rng.randrange(0, 60)
        right = rng.choice([0.0, -0.0, float(pairs), pairs * rng.random(), pairs + rng.random()])
        stats = AgentStats(
            rng.randrange(-2, 9), pairs, right, rng.randrange(0, pairs + 1),
            rng.randrange(0, 5), rng.randrange(0, 5),
        )  # fmt: skip
        tier = rng.randrange(-2, 9)
        expected = _weight(*online.posterior(stats, tier))
        assert online.weight(stats, tier).hex() == expected.hex()


def test_backed_equals_its_plain_definition() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        names = [agent(f"a{i}") for i in range(rng.randrange(1, 12))]
        speakers = sorted((a, f"v{rng.randrange(rng.randrange(1, 5))}") for a in names)
        near = {(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if rng.random() < 0.2}
        assert online.backed(speakers, near) == _backed_reference(speakers, near)


def test_score_group_with_and_without_dependence_is_deterministic_in_its_inputs() -> None:
    """A clone's credit leaves out its twin; an independent group keeps every weight."""
    a, b, c = agent("a"), agent("b"), agent("c")
    speakers = [(a, "x"), (b, "x"), (c, "y")]
    weights = {a: 2.0, b: 1.0, c: 1.5}
    alone = online.score_group(speakers, weights, {})
    assert alone.counted == weights and not alone.dep
    clones = online.score_group(speakers, weights, {(a, b): 1.0})
    assert clones.counted[a] == 2.0 and clones.counted[b] == 1.0 * (1.0 - COPY_RATE)
    assert clones.counted[c] == 1.5
    assert clones.probs["x"] < alone.probs["x"] and clones.credit[c] > alone.credit[c]
