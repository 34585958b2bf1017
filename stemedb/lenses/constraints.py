"""`constraints`: the rules in force in a context, and what an intended action violates (pure).

A constraint is an ordinary signed assertion: `subject` is the context
(`code/python/http`), `predicate` one of a small vocabulary, `object` the
thing it is about (Text, e.g. `"requests"`), `source` why (a link to the
decision or a short reason). So rules are journalled, versioned, superseded,
capped in tier and replayed with `known_at` exactly like facts.

Vocabulary (docs/lenses.md, "constraints"):

| predicate | meaning | an action violates it when |
|---|---|---|
| `must_use` | use X here | X is not among its `uses` |
| `must_not_use` | never use X here | X is among its `uses` or `does` |
| `requires` | X must be part of the action | X is in neither `uses` nor `does` |
| `prefer` | X is preferred (advice) | never; advice when X is not used |
| `avoid` | X is discouraged (advice) | never; advice when X is used |

Inheritance: the rules of every ancestor context apply below it (rules of
`code/python` apply under `code/python/http`). One rule is a (predicate,
value) pair; when several claims state it (at several levels, by several
agents) the representative is chosen by authority (lower tier), then
recency, and the others are counted as `also_stated_by`. Two rules conflict
when one says use X (`must_use`, `requires`, `prefer`) and another says not
X (`must_not_use`, `avoid`); the conflict is reported with both, and the
one that prevails is chosen by authority, then the more specific context,
then recency. The losing rule stays listed (`overridden_by`) and is not
applied by `check`. Values compare case-insensitively, spaces trimmed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stemedb.lenses.base import EMPTY, Outcome, Scored, fmt_ts
from stemedb.lenses.candidate import Candidate, LensContext
from stemedb.lenses.scoring import tier_name

VOCABULARY: dict[str, str] = {
    "must_use": "use X in this context",
    "must_not_use": "never use X in this context",
    "requires": "X must be part of the action",
    "prefer": "X is preferred (advice, never a violation)",
    "avoid": "X is discouraged (advice, never a violation)",
}
POSITIVE = frozenset({"must_use", "requires", "prefer"})
NEGATIVE = frozenset({"must_not_use", "avoid"})


def norm(value: str) -> str:
    """How rule values and an action's items compare: trimmed, case-folded."""
    return " ".join(value.split()).casefold()


def value_text(value_key: str) -> str:
    """The rule's object as text (a Text/Reference value as is, others as JSON)."""
    try:
        parsed = json.loads(value_key)
    except ValueError:
        return value_key
    inner = parsed.get("value") if isinstance(parsed, dict) else parsed
    return inner if isinstance(inner, str) else json.dumps(inner)


def depth(path: str) -> int:
    return path.count("/") + 1


@dataclass(frozen=True)
class Rule:
    """One rule in force: its representative claim and who else stated it."""

    predicate: str
    value: str
    claim: Candidate
    why: str | None
    signers: tuple[str, ...]
    also: tuple[str, ...]  # hashes of the other claims stating the same rule

    @property
    def key(self) -> tuple[str, str]:
        return self.predicate, norm(self.value)

    def to_json(self) -> dict[str, Any]:
        c = self.claim
        return {
            "predicate": self.predicate,
            "value": self.value,
            "meaning": VOCABULARY[self.predicate].replace("X", repr(self.value)),
            "context": c.subject,
            "set_by": c.agent_id,
            "signers": list(self.signers),
            "why": self.why,
            "tier": tier_name(c.tier),
            "timestamp": c.timestamp,
            "set_at": fmt_ts(c.timestamp),
            "hash": c.hash,
            "also_stated_by": list(self.also),
        }


def _authority_recency(c: Candidate) -> tuple[int, int, str]:
    return c.tier, -c.timestamp, c.hash


def _prevailing(a: Rule, b: Rule) -> Rule:
    """Authority, then the more specific context, then recency, then hash."""

    def order(r: Rule) -> tuple[int, int, int, str]:
        return r.claim.tier, -depth(r.claim.subject), -r.claim.timestamp, r.claim.hash

    return min(a, b, key=order)


def in_force(
    candidates: Iterable[Candidate],
    why: Mapping[str, str | None],
    cosigners: Mapping[str, Sequence[str]],
) -> tuple[list[Rule], list[dict[str, Any]]]:
    """The rules the candidates (already filtered for supersession, time, tier caps) set,
    and the conflicts between them. Unknown predicates and Deprecated/Rejected claims
    set no rule."""
    grouped: dict[tuple[str, str], list[Candidate]] = {}
    for c in candidates:
        if c.predicate not in VOCABULARY or c.lifecycle in ("Deprecated", "Rejected"):
            continue
        grouped.setdefault((c.predicate, norm(value_text(c.value_key))), []).append(c)
    rules: list[Rule] = []
    for (predicate, _), claims in grouped.items():
        ordered = sorted(claims, key=_authority_recency)
        best = ordered[0]
        signers = (best.agent_id, *cosigners.get(best.hash, ())) if best.agent_id else ()
        rules.append(
            Rule(
                predicate,
                value_text(best.value_key),
                best,
                why.get(best.hash),
                tuple(signers),
                tuple(c.hash for c in ordered[1:]),
            )
        )
    rules.sort(key=lambda r: (r.predicate, norm(r.value)))
    return rules, conflicts_of(rules)


def conflicts_of(rules: Sequence[Rule]) -> list[dict[str, Any]]:
    """Every pair saying use X and do not use X, with the rule that prevails."""
    by_value: dict[str, list[Rule]] = {}
    for rule in rules:
        by_value.setdefault(norm(rule.value), []).append(rule)
    found: list[dict[str, Any]] = []
    for value in sorted(by_value):
        group = by_value[value]
        for pro in (r for r in group if r.predicate in POSITIVE):
            for con in (r for r in group if r.predicate in NEGATIVE):
                winner = _prevailing(pro, con)
                loser = con if winner is pro else pro
                found.append(
                    {
                        "value": pro.value,
                        "rules": [pro.claim.hash, con.claim.hash],
                        "prevails": winner.claim.hash,
                        "overridden": loser.claim.hash,
                        "why": f"{pro.predicate} {pro.value!r} ({pro.claim.subject}, "
                        f"{tier_name(pro.claim.tier)}) against {con.predicate} {con.value!r} "
                        f"({con.claim.subject}, {tier_name(con.claim.tier)}): "
                        f"{winner.predicate} prevails by authority, then specificity, "
                        "then recency",
                    }
                )
    return found


def report(rules: Sequence[Rule], conflicts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rules as JSON, each losing rule marked with `overridden_by`."""
    overridden = {c["overridden"]: c["prevails"] for c in conflicts}
    out = []
    for rule in rules:
        body = rule.to_json()
        if rule.claim.hash in overridden:
            body["overridden_by"] = overridden[rule.claim.hash]
        out.append(body)
    return out


def check(
    rules: Sequence[Rule],
    conflicts: Sequence[Mapping[str, Any]],
    uses: Sequence[str],
    does: Sequence[str],
) -> dict[str, Any]:
    """Which rules an intended action (the things it `uses`, the things it `does`) violates."""
    used = {norm(u) for u in uses}
    done = {norm(d) for d in does}
    overridden = {c["overridden"] for c in conflicts}
    violations: list[dict[str, Any]] = []
    advice: list[dict[str, Any]] = []
    for rule in rules:
        if rule.claim.hash in overridden:
            continue
        value = norm(rule.value)
        problem = None
        note = None
        if rule.predicate == "must_use" and value not in used:
            problem = f"must use {rule.value!r}, which the action does not use"
        elif rule.predicate == "must_not_use" and (value in used or value in done):
            problem = f"must not use {rule.value!r}, which the action uses"
        elif rule.predicate == "requires" and value not in used | done:
            problem = f"requires {rule.value!r}, which the action neither uses nor does"
        elif rule.predicate == "prefer" and value not in used:
            note = f"{rule.value!r} is preferred here"
        elif rule.predicate == "avoid" and value in used:
            note = f"{rule.value!r} is discouraged here"
        if problem is not None:
            violations.append({"rule": rule.to_json(), "problem": problem})
        if note is not None:
            advice.append({"rule": rule.to_json(), "advice": note})
    return {"ok": not violations, "violations": violations, "advice": advice}


def constraints(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """The lens over one (context, predicate) group: every value is a rule in force.

    Each value's representative claim (authority, then recency) scores 1, the
    claims restating it 0; the group's `winner` is the highest-authority,
    newest representative, and `extra.rules` lists the rules when the
    predicate is in the vocabulary. Inheritance and conflicts need every
    predicate of every ancestor context, so `/v1/query?lens=constraints` and
    `GET /v1/constraints` answer through the constraint service instead.
    """
    if not candidates:
        return EMPTY
    live = [c for c in candidates if c.lifecycle not in ("Deprecated", "Rejected")]
    best_of: dict[str, Candidate] = {}
    for c in sorted(live, key=_authority_recency):
        best_of.setdefault(norm(value_text(c.value_key)), c)
    heads = {c.hash for c in best_of.values()}
    winner = min(best_of.values(), key=_authority_recency) if best_of else None

    def why(c: Candidate) -> str:
        if c.hash in heads:
            who = (c.agent_id or "an unsigned claim")[:16]
            return (
                f"rule {c.predicate} {value_text(c.value_key)!r} set by {who} "
                f"({tier_name(c.tier)}) at {fmt_ts(c.timestamp)}"
            )
        if c.lifecycle in ("Deprecated", "Rejected"):
            return f"{c.lifecycle}: not in force"
        return "restates a rule already set with more authority or more recently"

    lines = tuple(Scored(c, 1.0 if c.hash in heads else 0.0, why(c)) for c in candidates)
    extra: dict[str, Any] = {}
    if candidates[0].predicate in VOCABULARY:
        rules, conflicts = in_force(candidates, {}, ctx.cosigners)
        extra = {"rules": report(rules, conflicts)}
    return Outcome(winner, 1.0 if winner is not None else 0.0, lines, extra=extra)
