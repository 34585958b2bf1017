"""Scores of the truth benchmark: accuracy, expected calibration error, the majority baseline."""

from __future__ import annotations

from collections.abc import Sequence

from bench.truth.world import Query, World

BINS = 10


def accuracy(hits: Sequence[bool]) -> float:
    """Share of pairs whose winner is the true value (0 for no pairs)."""
    return sum(hits) / len(hits) if hits else 0.0


def ece(confidences: Sequence[float], hits: Sequence[bool], bins: int = BINS) -> float:
    """Expected calibration error: Σ_b |b|/N · |accuracy(b) − mean confidence(b)|.

    Equal-width bins over [0, 1]; a confidence of exactly 1.0 falls in the
    last bin.
    """
    if len(confidences) != len(hits):
        raise ValueError("one confidence per hit")
    if not hits:
        return 0.0
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, c in enumerate(confidences):
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"confidence {c!r} outside [0, 1]")
        members[min(bins - 1, int(c * bins))].append(i)
    total = 0.0
    for idx in members:
        if idx:
            acc = sum(hits[i] for i in idx) / len(idx)
            conf = sum(confidences[i] for i in idx) / len(idx)
            total += len(idx) / len(hits) * abs(acc - conf)
    return total


def majority(world: World, query: Query) -> tuple[str | None, float]:
    """Majority vote over agents: each agent's newest claim at `as_of` (co-signers too).

    Ties go to the lowest value (a fixed rule, so the baseline is reproducible).
    Returns (value, winning share of the voices).
    """
    newest: dict[str, tuple[int, str]] = {}
    for c in world.claims:
        if c.subject != query.subject or c.predicate != query.predicate:
            continue
        if c.timestamp > query.as_of:
            continue
        for agent in c.agents:
            seen = newest.get(agent)
            if seen is None or c.timestamp > seen[0]:
                newest[agent] = (c.timestamp, c.value)
    counts: dict[str, int] = {}
    for _ts, value in newest.values():
        counts[value] = counts.get(value, 0) + 1
    if not counts:
        return None, 0.0
    value = sorted(counts, key=lambda v: (-counts[v], v))[0]
    return value, counts[value] / sum(counts.values())
