"""The pure parts of issue 17: constraint rules (lenses/constraints.py) and retraction
warnings (lenses/retraction.py), on hand-made candidates."""

from __future__ import annotations

import json
import random
from dataclasses import replace

from stemedb.lenses import LensContext, resolve
from stemedb.lenses.candidate import Candidate
from stemedb.lenses.constraints import check, in_force, report
from stemedb.lenses.retraction import annotate_report
from stemedb.lenses.skeptic import skeptic_report

T = 1_700_000_000
A, B = "a" * 64, "b" * 64


def rule(
    n: int, context: str, predicate: str, value: str, tier: int = 3, ts: int = T, **kw: str
) -> Candidate:
    return Candidate(
        f"{n:064x}",
        context,
        predicate,
        json.dumps({"type": "Text", "value": value}, separators=(",", ":")),
        0.9,
        tier,
        ts,
        kw.get("agent", A),
        kw.get("lifecycle", "Proposed"),
        None,
    )


def test_one_rule_per_value_authority_then_recency_and_order_free() -> None:
    claims = [
        rule(1, "code/python", "must_use", "httpx", tier=4, ts=T + 10),
        rule(2, "code/python/http", "must_use", "HTTPX ", tier=3, ts=T),
        rule(3, "code/python", "must_use", "httpx", tier=3, ts=T + 5),
        rule(4, "code/python", "colour", "blue"),  # not a constraint predicate
        rule(5, "code/python", "must_not_use", "urllib", lifecycle="Deprecated"),
    ]
    for _ in range(5):
        random.shuffle(claims)
        rules, conflicts = in_force(claims, {f"{3:064x}": "why: retries"}, {})
        assert [(r.predicate, r.claim.hash[-1]) for r in rules] == [("must_use", "3")]
        assert rules[0].why == "why: retries"
        assert sorted(rules[0].also) == [f"{1:064x}", f"{2:064x}"]
        assert conflicts == []


def test_conflicts_prefer_authority_then_specificity_then_recency() -> None:
    general = rule(1, "code", "must_use", "requests", tier=3, ts=T + 100)
    specific = rule(2, "code/python", "must_not_use", "requests", tier=3, ts=T)
    rules, conflicts = in_force([general, specific], {}, {})
    assert [(c["prevails"], c["overridden"]) for c in conflicts] == [(specific.hash, general.hash)]
    stronger = rule(3, "code", "must_use", "requests", tier=1, ts=T - 100)
    rules, conflicts = in_force([stronger, specific], {}, {})
    assert conflicts[0]["prevails"] == stronger.hash
    listed = {r["hash"]: r for r in report(rules, conflicts)}
    assert listed[specific.hash]["overridden_by"] == stronger.hash
    # The overridden rule is not applied: using requests is fine.
    assert check(rules, conflicts, ["requests"], [])["ok"] is True
    assert check(rules, conflicts, [], [])["ok"] is False  # must_use requests


def test_check_semantics_of_each_predicate() -> None:
    claims = [
        rule(1, "c", "must_use", "httpx"),
        rule(2, "c", "must_not_use", "urllib"),
        rule(3, "c", "requires", "tests"),
        rule(4, "c", "prefer", "respx"),
        rule(5, "c", "avoid", "mock"),
    ]
    rules, conflicts = in_force(claims, {}, {})
    verdict = check(rules, conflicts, ["URLLIB", "mock"], ["tests"])
    assert {v["rule"]["predicate"] for v in verdict["violations"]} == {"must_use", "must_not_use"}
    assert {a["rule"]["predicate"] for a in verdict["advice"]} == {"prefer", "avoid"}
    assert check(rules, conflicts, ["httpx", "respx"], ["tests"]) == {
        "ok": True,
        "violations": [],
        "advice": [],
    }
    # must_not_use also covers what the action does.
    assert not check(rules, conflicts, ["httpx"], ["tests", "urllib"])["ok"]


def test_retracted_candidates_warn_or_are_excluded() -> None:
    good = rule(1, "d/x", "dose", "5", ts=T)
    bad = rule(2, "d/x", "dose", "50", ts=T + 10, agent=B)
    note = {"message": "source 'doi:x' was retracted", "source_id": "c" * 64}
    ctx = LensContext(at_s=T + 20, retracted={bad.hash: note})
    result = resolve("recency", "d/x", "dose", [good, bad], ctx)
    assert result.winner == bad
    assert result.extra["warnings"][0]["hash"] == bad.hash
    line = next(e for e in result.explanation if e.hash == bad.hash)
    assert "WARNING: source 'doi:x' was retracted" in line.why
    excluded = resolve(
        "recency",
        "d/x",
        "dose",
        [good, bad],
        replace(ctx, exclude_retracted=True),
    )
    assert excluded.winner == good and excluded.conflict_score == 0.0
    assert [e.excluded for e in excluded.explanation] == [None, "retracted"]
    assert "warnings" not in excluded.extra
    report_body = annotate_report(skeptic_report("d/x", "dose", [good, bad], ctx), ctx)
    flagged = [c for c in report_body["claims"] if c.get("warnings")]
    assert [c["assertions"] for c in flagged] == [[bad.hash]]
    # Nothing retracted: the answer is exactly the old one.
    plain = LensContext(at_s=T + 20)
    assert "warnings" not in resolve("recency", "d/x", "dose", [good, bad], plain).extra


def test_a_retracted_candidate_left_out_for_another_reason_still_warns() -> None:
    regulator = rule(1, "d/x", "dose", "5", tier=0)
    forum = rule(2, "d/x", "dose", "50", tier=4, agent=B)
    ctx = LensContext(at_s=T + 20, retracted={forum.hash: {"message": "retracted!"}})
    result = resolve("authority", "d/x", "dose", [regulator, forum], ctx)
    line = next(e for e in result.explanation if e.hash == forum.hash)
    assert line.excluded == "tier" and line.why.endswith("WARNING: retracted!")
    assert [w["hash"] for w in result.extra["warnings"]] == [forum.hash]
