"""The estimation behind the `truth` lens: agent reliability and value probability, jointly.

Method (cited in docs/lenses.md, "truth"): TruthFinder (Yin, Han, Yu, KDD
2007) alternates between how trustworthy each source is and how likely each
value is; ACCU (Dong, Berti-Equille, Srivastava, VLDB 2009) gives both a
Bayesian reading and adds copy detection. Here:

* every agent has one voice per (subject, predicate) pair: its newest claim;
* an agent's accuracy A is a Beta posterior: the tier of its claims sets the
  prior (TIER_PRIOR, worth PRIOR_STRENGTH claims), each pair it spoke on adds
  the probability that its value is right, *computed without its own voice
  nor its likely copies' voices* (leave-one-out). Its vote weight is ACCU's
  ln(n·A / (1 − A)) at a lower confidence bound of A, so an agent with little
  history (a freshly minted key) weighs little however good its tier prior;
  never less than MIN_WEIGHT, enough to break a tie by numbers;
* a value's score is the sum of its supporters' weights, and its probability
  exp(score) / (Σ exp(scores) + UNSEEN per value of an (n + 1)-value domain
  nobody claimed);
* clones (agents that never disagree, over most of their pairs, in a family
  whose values the other agents mostly do not hold) are dependent for certain
  from the start; after a first convergence, each pair of agents that spoke
  on the same pairs gets a probability of dependence (ACCU's likelihood
  ratio: sharing *false* values is what copiers do and independent sources
  rarely do), and every supporter of a value is discounted by the chance it
  copied a higher-weighted supporter of the same value; then the iteration
  runs again.

Everything is iterated in sorted order with fixed constants, so the same
claims give the same numbers bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TIER_PRIOR: tuple[float, ...] = (0.85, 0.8, 0.7, 0.65, 0.6, 0.55)
PRIOR_STRENGTH = 4.0  # the tier prior counts as this many claims
LCB_Z = 1.0  # weights use A = mean − LCB_Z × sd of the accuracy posterior
MAX_WEIGHT = 8.0  # ln(n·A/(1−A)) at A ≈ 0.9997: no agent is certain
MIN_WEIGHT = 0.02  # an unproven agent: enough to break a tie by numbers, no more
UNSEEN = 1.0  # probability mass (in exp-score units) of each value nobody claimed
COPY_RATE = 0.8  # ACCU's c: how much of its source a copier copies
COPY_PRIOR = 0.2  # ACCU's alpha: prior probability that two agents are dependent
FALSE_VALUES = 10.0  # ACCU's n: how many false values an independent error picks from
MIN_TWIN_CLAIMS = 3  # clones: never differ, on at least this many shared pairs
TWIN_OVERLAP = 0.6  # ... covering at least this share of the smaller one's pairs
TWIN_BACKED = 0.5  # ... in a family whose values are rarely the others' most common
MAX_ITERATIONS = 30
TOLERANCE = 1e-7

Pair = str
Agent = str
# one value of one pair: the value, its supporters, and who each may copy among them
_Group = tuple[str, list[str], dict[str, list[tuple[str, float]]]]


@dataclass
class Estimate:
    """What the iteration learned: per agent and per value of each pair."""

    accuracy: dict[Agent, float] = field(default_factory=dict)  # posterior mean
    weight: dict[Agent, float] = field(default_factory=dict)  # vote weight (log-odds)
    evidence: dict[Agent, int] = field(default_factory=dict)  # pairs it spoke on
    prior: dict[Agent, float] = field(default_factory=dict)
    dependence: dict[tuple[Agent, Agent], float] = field(default_factory=dict)  # a < b
    iterations: tuple[int, int] = (0, 0)  # before / after copy detection


def _weight(alpha: float, beta: float) -> float:
    """ACCU's vote count ln(n·A / (1 − A)) at a lower confidence bound of A."""
    total = alpha + beta
    mean = alpha / total
    sd = math.sqrt(mean * (1.0 - mean) / (total + 1.0))
    lcb = min(1.0 - 1e-9, max(1e-9, mean - LCB_Z * sd))
    return min(MAX_WEIGHT, max(MIN_WEIGHT, math.log(FALSE_VALUES * lcb / (1.0 - lcb))))


def _unseen(claimed: int) -> float:
    """Values nobody claimed, out of a domain of FALSE_VALUES + 1 (never fewer than claimed)."""
    return max(0.0, FALSE_VALUES + 1.0 - claimed) * UNSEEN


class Model:
    """Claims as sorted pairs → {agent: value}; `run` estimates everything."""

    def __init__(self, pairs: Mapping[Pair, Mapping[Agent, str]], tiers: Mapping[Agent, int]):
        self.pairs: list[tuple[Pair, list[tuple[Agent, str]]]] = [
            (p, sorted(pairs[p].items())) for p in sorted(pairs)
        ]
        self.agents = sorted(tiers)
        self.prior = {a: TIER_PRIOR[min(5, max(0, tiers[a]))] for a in self.agents}
        self.evidence = {a: 0 for a in self.agents}
        for _, speakers in self.pairs:
            for a, _v in speakers:
                self.evidence[a] += 1
        self.twins = _twins(self.pairs, self.evidence)

    # ---- value scores -------------------------------------------------------

    def contributions(
        self,
        speakers: Sequence[tuple[Agent, str]],
        weight: Mapping[Agent, float],
        dep: Mapping[tuple[Agent, Agent], float],
    ) -> dict[Agent, float]:
        """Each speaker's counted weight: its own, discounted for likely copying.

        Supporters of one value are taken in order of weight (then agent id);
        each keeps Π (1 − COPY_RATE × P(dependent on an earlier one)).
        """
        by_value: dict[str, list[Agent]] = {}
        for a, v in speakers:
            by_value.setdefault(v, []).append(a)
        out: dict[Agent, float] = {}
        for members in by_value.values():
            members.sort(key=lambda a: (-weight[a], a))
            for i, a in enumerate(members):
                keep = 1.0
                if dep:
                    for b in members[:i]:
                        d = dep.get((a, b) if a < b else (b, a), 0.0)
                        keep *= 1.0 - COPY_RATE * d
                out[a] = weight[a] * keep
        return out

    @staticmethod
    def probabilities(
        speakers: Sequence[tuple[Agent, str]], counted: Mapping[Agent, float]
    ) -> dict[str, float]:
        """P(value) = exp(score) / (Σ exp(scores) + UNSEEN), computed stably."""
        score: dict[str, float] = {}
        for a, v in speakers:
            score[v] = score.get(v, 0.0) + counted[a]
        top = max(score.values(), default=0.0)
        mass = {v: math.exp(s - top) for v, s in sorted(score.items())}
        total = math.fsum(mass.values()) + _unseen(len(mass)) * math.exp(-top)
        return {v: m / total for v, m in mass.items()}

    # ---- iteration ------------------------------------------------------------

    def _plan(self, dep: Mapping[tuple[Agent, Agent], float]) -> list[list[_Group]]:
        """Per pair, its value groups with the dependence links inside each (fixed in a phase)."""
        plans: list[list[_Group]] = []
        for _, speakers in self.pairs:
            by_value: dict[str, list[Agent]] = {}
            for a, v in speakers:
                by_value.setdefault(v, []).append(a)
            groups: list[_Group] = []
            for v in sorted(by_value):
                members = by_value[v]
                links: dict[Agent, list[tuple[Agent, float]]] = {}
                if dep and len(members) > 1:
                    for i, a in enumerate(members):
                        for b in members[i + 1 :]:
                            d = dep.get((a, b) if a < b else (b, a), 0.0)
                            if d > 0.0:
                                links.setdefault(a, []).append((b, d))
                                links.setdefault(b, []).append((a, d))
                groups.append((v, members, links))
            plans.append(groups)
        return plans

    def _update(
        self, weight: dict[Agent, float], plan: list[list[_Group]]
    ) -> tuple[dict[Agent, float], dict[Agent, float]]:
        """One round: value probabilities from the weights, then accuracies from those.

        The same arithmetic as `contributions` + `probabilities`, on the phase's plan.
        """
        right = {a: 0.0 for a in self.agents}
        for groups in plan:
            counted: dict[Agent, float] = {}
            scores: list[float] = []
            for _v, members, links in groups:
                if links:
                    for a in sorted(members, key=lambda m: (-weight[m], m)):
                        keep = 1.0
                        for b, d in links.get(a, ()):
                            if b in counted:  # b comes earlier: higher weight
                                keep *= 1.0 - COPY_RATE * d
                        counted[a] = weight[a] * keep
                else:
                    for a in members:
                        counted[a] = weight[a]
                scores.append(math.fsum(counted[a] for a in members))
            top = max(scores)
            mass = [math.exp(x - top) for x in scores]
            total = math.fsum(mass) + _unseen(len(mass)) * math.exp(-top)
            for (_v, members, links), own in zip(groups, mass, strict=True):
                for a in members:
                    # leave-one-out: the probability of a's value without a's own voice,
                    # nor the part of its likely copies' voices (copies are no evidence)
                    removed = counted[a]
                    for b, d in links.get(a, ()):
                        removed += counted[b] * d
                    without = own * math.exp(-removed)
                    right[a] += without / (total - own + without)
        accuracy: dict[Agent, float] = {}
        new_weight: dict[Agent, float] = {}
        for a in self.agents:
            alpha = PRIOR_STRENGTH * self.prior[a] + right[a]
            beta = PRIOR_STRENGTH * (1.0 - self.prior[a]) + (self.evidence[a] - right[a])
            accuracy[a] = alpha / (alpha + beta)
            new_weight[a] = _weight(alpha, beta)
        return accuracy, new_weight

    def _converge(
        self, weight: dict[Agent, float], dep: Mapping[tuple[Agent, Agent], float]
    ) -> tuple[dict[Agent, float], dict[Agent, float], int]:
        accuracy = dict(self.prior)
        plan = self._plan(dep)
        for step in range(1, MAX_ITERATIONS + 1):
            accuracy, new_weight = self._update(weight, plan)
            change = max((abs(new_weight[a] - weight[a]) for a in self.agents), default=0.0)
            weight = new_weight
            if change < TOLERANCE:
                return accuracy, weight, step
        return accuracy, weight, MAX_ITERATIONS

    def dependence(
        self,
        accuracy: Mapping[Agent, float],
        weight: Mapping[Agent, float],
        known: Mapping[tuple[Agent, Agent], float],
    ) -> dict[tuple[Agent, Agent], float]:
        """ACCU's posterior that two agents are dependent, from what they share.

        Values are judged with the dependence already `known` (the clones), so
        a clone army's values do not make honest agreement look like copying.
        """
        shared: dict[tuple[Agent, Agent], list[float]] = {}  # [k_true, k_false, k_diff]
        for _, speakers in self.pairs:
            probs = self.probabilities(speakers, self.contributions(speakers, weight, known))
            for i, (a, va) in enumerate(speakers):
                for b, vb in speakers[i + 1 :]:
                    k = shared.setdefault((a, b), [0.0, 0.0, 0.0])
                    if va == vb:
                        k[0] += probs[va]
                        k[1] += 1.0 - probs[va]
                    else:
                        k[2] += 1.0
        out: dict[tuple[Agent, Agent], float] = {}
        for (a, b), (kt, kf, kd) in sorted(shared.items()):
            p = _dependent(accuracy[a], accuracy[b], kt, kf, kd)
            if p > 1e-6:
                out[(a, b)] = p
        return out

    def run(self) -> Estimate:
        weight = {
            a: _weight(PRIOR_STRENGTH * p, PRIOR_STRENGTH * (1.0 - p))
            for a, p in self.prior.items()
        }
        accuracy, weight, first = self._converge(weight, self.twins)
        dep = self.dependence(accuracy, weight, self.twins)
        for key, p in self.twins.items():
            dep[key] = max(p, dep.get(key, 0.0))
        second = 0
        if dep:
            accuracy, weight, second = self._converge(weight, dep)
        return Estimate(
            accuracy, weight, dict(self.evidence), dict(self.prior), dep, (first, second)
        )


PairsKey = tuple[tuple[Pair, tuple[tuple[Agent, str], ...]], ...]
TiersKey = tuple[tuple[Agent, int], ...]


def estimate(
    pairs: Mapping[Pair, Mapping[Agent, str]], tiers: Mapping[Agent, int]
) -> tuple[Model, Estimate]:
    """`Model(pairs, tiers).run()`, remembered for the last CACHED inputs.

    The estimate is a pure function of the claims, and the groups of one
    subtree query (or repeated queries) often share the same neighbourhood:
    computing it once per distinct input changes no answer, only the cost.
    """
    key = tuple((p, tuple(sorted(pairs[p].items()))) for p in sorted(pairs))
    return _estimate(key, tuple(sorted(tiers.items())))


CACHED = 64


@functools.lru_cache(maxsize=CACHED)
def _estimate(pairs: PairsKey, tiers: TiersKey) -> tuple[Model, Estimate]:
    model = Model({p: dict(speakers) for p, speakers in pairs}, dict(tiers))
    return model, model.run()


def _twins(
    pairs: Sequence[tuple[Pair, list[tuple[Agent, str]]]], evidence: Mapping[Agent, int]
) -> dict[tuple[Agent, Agent], float]:
    """Clones: agents that never said different things, on at least MIN_TWIN_CLAIMS
    shared pairs covering at least TWIN_OVERLAP of the smaller one's pairs,
    in a family (connected by such links) whose values are the outside agents'
    most common value less than TWIN_BACKED of the time.

    Dependent for certain, before any value is judged. A family of fresh keys
    pushing the same values, or a copier of everything one source says, is
    this; independent sources rarely are (they err independently, and cover
    different pairs). Found before the first iteration, so a clone army never
    gets to vote its own values true -- which the likelihood test, run on
    those judgements, would then fail to see through: copies of values judged
    *true* prove little.
    """
    same: dict[tuple[Agent, Agent], int] = {}
    differ: set[tuple[Agent, Agent]] = set()
    for _pair, speakers in pairs:
        for i, (a, va) in enumerate(speakers):
            for b, vb in speakers[i + 1 :]:
                if va == vb:
                    same[(a, b)] = same.get((a, b), 0) + 1
                else:
                    differ.add((a, b))
    edges = [
        (a, b)
        for (a, b), n in sorted(same.items())
        if (a, b) not in differ
        and n >= MIN_TWIN_CLAIMS
        and n >= TWIN_OVERLAP * min(evidence[a], evidence[b])
    ]
    out: dict[tuple[Agent, Agent], float] = {}
    for family in _components(edges):
        if _backed_outside(pairs, family) < TWIN_BACKED:
            for i, a in enumerate(family):
                for b in family[i + 1 :]:
                    out[(a, b)] = 1.0
    return out


def _components(edges: Sequence[tuple[Agent, Agent]]) -> list[list[Agent]]:
    """Connected groups of agents (sorted, in sorted order) joined by `edges`."""
    parent: dict[Agent, Agent] = {}

    def root(a: Agent) -> Agent:
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[Agent, list[Agent]] = {}
    for a in sorted(parent):
        groups.setdefault(root(a), []).append(a)
    return [groups[r] for r in sorted(groups)]


def _backed_outside(
    pairs: Sequence[tuple[Pair, list[tuple[Agent, str]]]], family: Sequence[Agent]
) -> float:
    """Share of the family's claims whose value is the most common among the agents
    outside the family (ties included).

    Independent agents that happen never to disagree mostly say what most
    others say too; a clone family pushes values the others do not hold.
    """
    members = set(family)
    backed = total = 0
    for _pair, speakers in pairs:
        inside = [v for a, v in speakers if a in members]
        if not inside:
            continue
        outside: dict[str, int] = {}
        for a, v in speakers:
            if a not in members:
                outside[v] = outside.get(v, 0) + 1
        top = max(outside.values(), default=0)
        total += len(inside)
        backed += sum(1 for v in inside if top and outside.get(v, 0) == top)
    return backed / total if total else 0.0


def _dependent(a1: float, a2: float, kt: float, kf: float, kd: float) -> float:
    """P(dependent | shared true kt, shared false kf, different kd), after ACCU (VLDB 2009).

    Independent agents share a true value with probability A1·A2, a false one
    with (1−A1)(1−A2)/n; a copier copies with probability c, so it shares
    whatever its source said. A difference is (1−c) times as likely under
    dependence, whatever the independent probability of a difference.
    """
    a = min(1.0 - 1e-6, max(1e-6, (a1 + a2) / 2.0))
    pt = a1 * a2
    pf = (1.0 - a1) * (1.0 - a2) / FALSE_VALUES
    log_ratio = (
        kt * math.log((COPY_RATE * a + (1.0 - COPY_RATE) * pt) / pt)
        + kf * math.log((COPY_RATE * (1.0 - a) + (1.0 - COPY_RATE) * pf) / pf)
        + kd * math.log(1.0 - COPY_RATE)
    )
    prior_odds = COPY_PRIOR / (1.0 - COPY_PRIOR)
    log_odds = math.log(prior_odds) + log_ratio
    if log_odds > 50:
        return 1.0
    if log_odds < -50:
        return 0.0
    return 1.0 / (1.0 + math.exp(-log_odds))
