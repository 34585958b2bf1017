"""Triage caps each claim exactly as the lenses do: `TriageService._tier` (cached by
signers and scheme text, for the first fold's million rows) against
`TierPolicy.caps` (the lenses' rule) on every combination of signer registration,
co-signer, source scheme and subject scheme."""

from __future__ import annotations

import itertools
from pathlib import Path

from bench.console_triage import RowStore, register
from stemedb.config import Settings
from stemedb.service.tier_policy import TierPolicy
from stemedb.service.triage import TriageService
from stemedb.store import schema, triage_reads
from stemedb.store.candidates import CandidateRow

SOURCES = (None, "fda://label/1", "wiki:page", "Code://x", "free text: with a colon", "9x:y")
SUBJECTS = ("plain/drug", "fda://drugs/x", "wiki://topic", "notascheme/a:b")
AGENTS = [bytes([i]) * 32 for i in range(1, 5)]  # 1: Regulatory, 2: Community, 3, 4: none


def test_triage_tiers_equal_the_lens_caps(tmp_path: Path) -> None:
    store = RowStore(tmp_path / "c.db")
    conn = store.conn
    schema.apply_migrations(conn)
    register(conn, 900_000, AGENTS[0], 0)
    register(conn, 900_001, AGENTS[1], 4)
    signers = (None, AGENTS[0], AGENTS[1], AGENTS[2])
    rows = []
    cosigned = []
    cases = itertools.product(range(6), signers, (False, True), SOURCES, SUBJECTS)
    for seq, (tier, agent, cosign, source, subject) in enumerate(cases, start=1):
        hash_ = seq.to_bytes(32, "big")
        rows.append((seq, hash_, subject, "p", "Text", '"v"', 0.5, tier, source, agent))
        if cosign and agent is not None:
            cosigned.append((hash_, AGENTS[0] if agent != AGENTS[0] else AGENTS[3]))
    with conn:
        conn.executemany(
            "INSERT INTO assertions (seq, hash, subject, predicate, object_type, value_key, "
            "confidence, tier, source, agent_id, lifecycle, timestamp, written_ms) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,'Proposed',0,0)",
            rows,
        )
        conn.executemany("INSERT INTO cosigners (assertion_hash, agent_id) VALUES (?, ?)", cosigned)
    service = TriageService(store)  # type: ignore[arg-type]
    service.registry = triage_reads.registry(conn)
    policy = TierPolicy.from_settings(Settings())  # what the service uses without settings
    folded = triage_reads.assertions_after(conn, 0, len(rows))
    candidates = [
        CandidateRow(r[1], r[2], h, r[3], r[4], r[5], r[6], r[8], "Proposed", None, 0, r[0], False)
        for r, h in zip(folded, (row[1] for row in rows), strict=True)
    ]
    caps = policy.caps(conn, candidates)
    lens_tiers = [caps[c.hash].allowed if c.hash in caps else c.tier for c in candidates]
    assert [service._tier(r) for r in folded] == lens_tiers
    assert [service._tier(r) for r in folded] == lens_tiers  # from the cache: the same
    assert len(caps) > 100 and any(t > r[5] for t, r in zip(lens_tiers, folded, strict=True))
