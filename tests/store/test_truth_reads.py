"""The reads behind the `truth` lens (store/reliability.py, service/truth_inputs.py,
migration 0007): an agent's other pairs, first-signed and co-signed, under as_of and
known_at; the neighbourhood of a group, bounded and without the group's own pair."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.crypto import generate_signing_key, public_key_hex
from stemedb.records import prepare_record
from stemedb.service import tier_policy, truth_inputs
from stemedb.signing import sign_record
from stemedb.store import PendingRecord, Store, reliability
from stemedb.store.candidates import CandidateFilter, iter_groups
from stemedb.store.schema import fetchall


def pend(fields: dict[str, Any], *seeds: bytes) -> PendingRecord:
    base = {"predicate": "dose", "confidence": 0.9, **fields}
    prepared = prepare_record(
        "assertion",
        sign_record("assertion", base, list(seeds)),
        now_s=int(time.time()),
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=True,
    )
    return PendingRecord(
        prepared.kind, prepared.hash, prepared.body, prepared.record, int(time.time() * 1000)
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(Settings(db_dir=tmp_path)).open()
    yield opened
    opened.close()


def test_an_agents_pairs_first_signed_and_co_signed_under_as_of_and_known_at(
    store: Store,
) -> None:
    a, b, c = generate_signing_key(), generate_signing_key(), generate_signing_key()
    aid, bid = bytes.fromhex(public_key_hex(a)), bytes.fromhex(public_key_hex(b))
    store.write(
        [pend({"subject": f"s/{i}", "object": "v", "timestamp": 100 * i}, a) for i in (1, 2, 3)]
    )
    store.write([pend({"subject": "s/9", "object": "v", "timestamp": 150}, b, c)])  # b co-signs
    with store.reader() as conn:
        first_ms = int(fetchall(conn, "SELECT max(written_ms) FROM journal")[0][0])
    while int(time.time() * 1000) <= first_ms:
        time.sleep(0.001)  # the next commit gets a later written_ms
    store.write([pend({"subject": "s/4", "object": "v", "timestamp": 120}, a)])
    with store.reader() as conn:

        def pairs(agent: bytes, **kw: Any) -> list[tuple[str, str]]:
            opts = {"as_of": None, "known_at_ms": None, "limit": 10, **kw}
            return reliability.recent_pairs(conn, agent, **opts)

        assert pairs(aid) == [("s/4", "dose"), ("s/3", "dose"), ("s/2", "dose"), ("s/1", "dose")]
        assert pairs(aid, as_of=200) == [("s/4", "dose"), ("s/2", "dose"), ("s/1", "dose")]
        assert pairs(aid, known_at_ms=first_ms) == [
            ("s/3", "dose"),
            ("s/2", "dose"),
            ("s/1", "dose"),
        ]
        assert pairs(aid, limit=2) == [("s/4", "dose"), ("s/3", "dose")]
        signer_rows = fetchall(conn, "SELECT agent_id FROM assertions WHERE subject = 's/9'")
        cosigner = bid if bytes(signer_rows[0][0]) != bid else bytes.fromhex(public_key_hex(c))
        assert pairs(cosigner) == [("s/9", "dose")]  # found through cosigners_by_agent
        plan = fetchall(
            conn,
            "EXPLAIN QUERY PLAN SELECT assertion_hash FROM cosigners WHERE agent_id = ?",
            (cosigner,),
        )
        assert any("cosigners_by_agent" in str(row[-1]) for row in plan)


def test_the_neighbourhood_of_a_group(store: Store) -> None:
    a, b = generate_signing_key(), generate_signing_key()
    store.write(
        [pend({"subject": f"s/{i}", "object": "t", "timestamp": 100 + i}, a) for i in range(5)]
        + [pend({"subject": f"s/{i}", "object": "x", "timestamp": 200 + i}, b) for i in range(3)]
        + [pend({"subject": "s/9", "object": "t", "timestamp": 300}, b)]
    )
    policy = tier_policy.TierPolicy.from_settings(Settings())
    with store.reader() as conn:
        f = CandidateFilter(subjects=("s/0",), predicate="dose")
        rows = next(iter_groups(conn, f))[2]
        # at the head the table answers (tests/store/test_truth_table.py); with an
        # as_of, even after every claim, the neighbourhood is read
        assert truth_inputs.gather(conn, f, rows, {}, policy).table is not None
        f = CandidateFilter(subjects=("s/0",), predicate="dose", as_of=10**9)
        evidence = truth_inputs.gather(conn, f, rows, {}, policy)
        assert evidence.table is None
        pairs = {c.pair for c in evidence.claims}
        # a's and b's other pairs, and every claim on them; never the group's own pair
        assert pairs == {f"s/{i}\x00dose" for i in (1, 2, 3, 4, 9)}
        assert len(evidence.claims) == 4 + 3 and evidence.bounded is False
        assert {c.tier for c in evidence.claims} <= {2, 3, 4, 5}  # capped: nobody registered
        later = truth_inputs.gather(conn, CandidateFilter(as_of=150), rows, {}, policy)
        # at as_of 150 only a's claims existed: b's pairs and claims are not read
        assert {c.pair for c in later.claims} == pairs - {"s/9\x00dose"}
        assert len(later.claims) == 4
