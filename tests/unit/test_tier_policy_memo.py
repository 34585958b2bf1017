"""The per-query memo of the tier cap (stemedb/service/tier_policy.py `compute_caps`) gives
exactly the caps of the uncached rule, row by row, on random registrations; and the
faster candidate rebuilding gives the same candidates as `_replace`."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from stemedb.config import DEFAULT_SCHEME_TIERS
from stemedb.lenses import Candidate
from stemedb.service.candidate_rows import to_candidate
from stemedb.service.tier_policy import (
    TierCap,
    allowed_tier,
    cap_reason,
    cap_tier,
    capped_candidates,
    compute_caps,
    scheme_limit,
)
from stemedb.store.candidates import CandidateRow

AGENTS = [bytes([i]) * 32 for i in range(1, 9)]
SOURCES = [None, "", "fda://x", "FDA://y", "blog://p", "blog://q", "pubmed://1", "x-internal://1"]
SOURCES += ["forum://t", "wiki://w", "no scheme", "Wiki://v"]
SUBJECTS = ["drugs/x", "forum://thread/1", "doi://10.1/x", "fda://label/2"]


def _uncached(
    rows: Sequence[CandidateRow],
    registered: Mapping[bytes, int],
    sources: Mapping[int, str | None],
    cosigners: Mapping[bytes, Sequence[bytes]],
    unregistered_max: int,
) -> dict[bytes, TierCap]:
    """The rule as it was written before the memo: every row computed on its own."""
    caps: dict[bytes, TierCap] = {}
    for r in rows:
        signers = [r.agent_id, *cosigners.get(r.hash, ())] if r.agent_id else []
        scheme = scheme_limit(sources.get(r.seq), r.subject, DEFAULT_SCHEME_TIERS)
        allowed, why = allowed_tier(signers, registered, scheme, unregistered_max)
        if allowed > r.tier:
            caps[r.hash] = TierCap(r.tier, allowed, cap_reason(r.tier, allowed, why))
    return caps


def _rows(rng: random.Random, count: int) -> list[CandidateRow]:
    rows = []
    for seq in range(count):
        agent = rng.choice([None, *AGENTS])
        rows.append(
            CandidateRow(
                rng.choice(SUBJECTS),
                "p",
                seq.to_bytes(32, "big"),
                f'"{rng.randrange(5)}"',
                rng.random(),
                rng.randrange(6),
                1_700_000_000 + seq,
                agent,
                "Proposed",
                None,
                seq,
                seq,
                False,
            )
        )
    return rows


def test_the_memo_gives_the_uncached_caps_on_random_registrations() -> None:
    rng = random.Random(21)
    for _ in range(200):
        rows = _rows(rng, rng.randrange(1, 80))
        sources = {r.seq: rng.choice(SOURCES) for r in rows if rng.random() < 0.9}
        cosigners = {
            r.hash: rng.sample(AGENTS, rng.randrange(1, 4))
            for r in rows
            if r.agent_id and rng.random() < 0.4
        }
        unregistered_max = rng.randrange(6)
        # Several registries over the same rows: nothing of one call leaks into the next.
        for _ in range(3):
            registered = {a: rng.randrange(6) for a in AGENTS if rng.random() < 0.5}
            expected = _uncached(rows, registered, sources, cosigners, unregistered_max)
            got = compute_caps(
                rows, registered, sources, cosigners, DEFAULT_SCHEME_TIERS, unregistered_max
            )
            assert got == expected
            assert list(got) == list(expected)  # same rows, same order


def test_registering_the_only_signer_changes_the_next_call() -> None:
    row = _rows(random.Random(1), 1)[0]._replace(tier=0, agent_id=AGENTS[0], subject="drugs/x")
    sources: dict[int, str | None] = {row.seq: "fda://x"}

    def caps(registered: dict[bytes, int]) -> dict[bytes, TierCap]:
        return compute_caps([row], registered, sources, {}, DEFAULT_SCHEME_TIERS, 2)

    assert caps({})[row.hash].allowed == 2
    assert caps({AGENTS[0]: 0}) == {}
    registered_low = caps({AGENTS[0]: 4})[row.hash]
    assert registered_low.allowed == 4 and "registered up to Community" in registered_low.why


def test_capped_candidates_match_replace_and_the_tier_filter() -> None:
    rng = random.Random(7)
    rows = _rows(rng, 300)
    caps = {
        r.hash: TierCap(r.tier, r.tier + 1, "x") for r in rows if r.tier < 5 and rng.random() < 0.5
    }
    for tiers in (None, (2,), (0, 1, 2), ()):
        kept_rows, kept = capped_candidates(iter(rows), caps, to_candidate, tiers)
        expected = []
        for r in rows:
            c = to_candidate(r)
            cap = caps.get(r.hash)
            if cap is not None and c.tier < cap.allowed:
                c = c._replace(tier=cap.allowed)
            if tiers is None or c.tier in tiers:
                expected.append((r, c))
        assert list(zip(kept_rows, kept, strict=True)) == expected
        assert all(type(c) is Candidate for c in kept)


def test_to_candidate_and_cap_tier_build_plain_candidates() -> None:
    row = _rows(random.Random(3), 1)[0]._replace(tier=1, agent_id=AGENTS[2], epoch=b"\x01" * 32)
    c = to_candidate(row)
    assert c == Candidate(
        row.hash.hex(), row.subject, "p", row.value_key, row.confidence, 1,
        row.timestamp, AGENTS[2].hex(), "Proposed", "01" * 32, False,
    )  # fmt: skip
    for allowed in range(6):
        assert cap_tier(c, allowed) == c._replace(tier=max(1, allowed))
        assert type(cap_tier(c, allowed)) is Candidate
