"""The `truth` lens's reliability table (store/truth_state.py, migration 0013):
maintained record by record from the journal, equal to a rebuild from scratch and
to `stemedb reindex`, kept across a restart; outcomes are evidence."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.crypto import generate_signing_key, public_key_hex
from stemedb.lenses import truth_online
from stemedb.records import prepare_record
from stemedb.signing import sign_record
from stemedb.store import PendingRecord, Store, schema, truth_state, verify
from stemedb.store.schema import fetchall


def pend(kind: str, fields: dict[str, Any], *seeds: bytes) -> PendingRecord:
    prepared = prepare_record(
        kind,
        sign_record(kind, fields, list(seeds)),
        now_s=int(time.time()),
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=True,
    )
    return PendingRecord(
        prepared.kind, prepared.hash, prepared.body, prepared.record, int(time.time() * 1000)
    )


def claim(subject: str, value: str, ts: int, *seeds: bytes) -> PendingRecord:
    fields = {"subject": subject, "predicate": "p", "object": value, "confidence": 0.9}
    return pend("assertion", {**fields, "timestamp": ts}, *seeds)


def dump(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {t: fetchall(conn, f"SELECT * FROM {t} ORDER BY 1, 2") for t in truth_state.TABLES}


def world(seed: int) -> tuple[list[bytes], list[list[PendingRecord]]]:
    """Eight agents on 15 pairs, some co-signed, a copier, then up-votes: in batches."""
    rng = random.Random(seed)
    keys = [generate_signing_key() for _ in range(8)]
    records = []
    for i in range(120):
        k = rng.randrange(7)
        said = "t" if rng.random() < 0.3 + 0.1 * k else f"w{rng.randrange(3)}"
        extra = [keys[k % 6 + 1]] if rng.random() < 0.15 and k != 6 else []
        subject = f"s/{rng.randrange(15)}"
        records.append(claim(subject, said, 1000 + i, keys[k], *extra))
        if k == 0:  # agent 7 copies agent 0
            records.append(claim(subject, said, 1001 + i, keys[7]))  # not a replay
    batches = [records[i : i + 9] for i in range(0, len(records), 9)]
    return keys, batches


def test_incremental_equals_rebuild_and_reindex_and_survives_restart(tmp_path: Path) -> None:
    keys, batches = world(3)
    store = Store(Settings(db_dir=tmp_path)).open()
    for batch in batches[:-3]:
        store.write(batch)
    with store.reader() as conn:
        hashes = [bytes(r[0]) for r in fetchall(conn, "SELECT hash FROM assertions LIMIT 4")]
    votes = [
        pend("vote", {"assertion_hash": h.hex(), "weight": 1.0, "timestamp": 2000 + i}, keys[i])
        for i, h in enumerate(hashes)
    ]
    store.write(votes)
    store.close()
    store = Store(Settings(db_dir=tmp_path)).open()  # a restart, then more writes
    for batch in batches[-3:]:
        store.write(batch)
    with store.reader() as conn:
        live = dump(conn)
    store.close()
    assert len(live["truth_agents"]) == 8 and len(live["truth_links"]) >= 20
    assert sum(1 for r in live["truth_voices"] if r[3] == truth_state.VOTE) == 4
    assert all(0.0 <= r[3] <= r[2] for r in live["truth_agents"])  # right ≤ pairs
    # the copier (never differs from agent 0) is linked to it with no difference
    a0, a7 = (bytes.fromhex(public_key_hex(keys[i])) for i in (0, 7))
    link = next(r for r in live["truth_links"] if {bytes(r[0]), bytes(r[1])} == {a0, a7})
    assert link[4] == 0 and link[2] >= 5

    conn = schema.connect(tmp_path / "stemedb.db")
    with conn:
        replayed = truth_state.rebuild(conn)
    assert replayed == sum(len(b) for b in batches) + len(votes)
    assert dump(conn) == live  # a rebuild from scratch, row for row, bit for bit
    with conn:
        truth_state.clear(conn)
    assert not any(dump(conn).values())
    conn.close()
    verify.reindex(tmp_path / "stemedb.db")
    conn = schema.connect(tmp_path / "stemedb.db")
    assert dump(conn) == live  # `stemedb reindex` rebuilds it too
    conn.close()


def test_the_order_of_batches_does_not_matter_only_the_journal_order(tmp_path: Path) -> None:
    _keys, batches = world(5)
    flat = [r for b in batches for r in b]
    (tmp_path / "one").mkdir()
    (tmp_path / "many").mkdir()
    one = Store(Settings(db_dir=tmp_path / "one")).open()
    one.write(flat)
    many = Store(Settings(db_dir=tmp_path / "many")).open()
    for r in flat:
        many.write([r])
    with one.reader() as c1, many.reader() as c2:
        d1, d2 = dump(c1), dump(c2)
    one.close()
    many.close()
    # seq differs between the two stores (a commit's header frame takes one); every
    # count and credit is equal: the journal order decides, not the batches
    assert d1["truth_voices"] and d1["truth_links"]
    for table in ("truth_voices", "truth_agents", "truth_links"):
        assert [_no_seq(table, r) for r in d1[table]] == [_no_seq(table, r) for r in d2[table]]


def _no_seq(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    drop = {"truth_voices": 7, "truth_agents": 7}.get(table)
    return tuple(v for i, v in enumerate(row) if i != drop)


def test_outcomes_are_evidence_for_and_against_an_agent(tmp_path: Path) -> None:
    a, admin = generate_signing_key(), generate_signing_key()
    aid = public_key_hex(a)
    store = Store(Settings(db_dir=tmp_path)).open()
    store.write([claim(f"s/{i}", "t", 100 + i, a) for i in range(3)])
    with store.reader() as conn:
        target = bytes(fetchall(conn, "SELECT hash FROM assertions LIMIT 1")[0][0]).hex()
        before = truth_state.agent_rows(conn, [bytes.fromhex(aid)])[bytes.fromhex(aid)]

    def outcome(accurate: bool, ts: int) -> PendingRecord:
        fields = {"agent_id": aid, "assertion_hash": target, "accurate": accurate}
        return pend("outcome", {**fields, "timestamp": ts}, admin)

    store.write([outcome(True, 200), outcome(True, 201)])
    with store.reader() as conn:
        good = truth_state.agent_rows(conn, [bytes.fromhex(aid)])[bytes.fromhex(aid)]
    store.write([outcome(False, 202 + i) for i in range(6)])
    with store.reader() as conn:
        bad = truth_state.agent_rows(conn, [bytes.fromhex(aid)])[bytes.fromhex(aid)]
    store.close()
    assert (good.outcomes_right, good.outcomes_wrong) == (2, 0)
    assert (bad.outcomes_right, bad.outcomes_wrong) == (2, 6)
    acc = [truth_online.accuracy(s, s.tier) for s in (before, good, bad)]
    assert acc[1] > acc[0] > acc[2]
    weights = [truth_online.weight(s, s.tier) for s in (before, good, bad)]
    assert weights[1] > weights[0] > weights[2]


def test_a_rolled_back_atomic_batch_leaves_no_trace_in_the_table(tmp_path: Path) -> None:
    keys, batches = world(7)
    store = Store(Settings(db_dir=tmp_path)).open()
    store.write(batches[0])
    missing = "ab" * 32  # a vote on an assertion that does not exist: rejected
    bad = pend("vote", {"assertion_hash": missing, "weight": 1.0, "timestamp": 5}, keys[0])
    outcomes = store.write([*batches[1], bad], atomic=True)
    assert {o.status for o in outcomes} == {"not_written", "rejected"}
    store.write([*batches[2], bad])  # not atomic: the good records stay
    with store.reader() as conn:
        live = dump(conn)
        voiced = {bytes(r[5]) for r in live["truth_voices"]}
        stored = {bytes(r[0]) for r in fetchall(conn, "SELECT hash FROM assertions")}
    store.close()
    assert voiced <= stored and len(stored) == len(batches[0]) + len(batches[2])
    conn = schema.connect(tmp_path / "stemedb.db")
    with conn:
        truth_state.rebuild(conn)
    assert dump(conn) == live
    conn.close()


def test_crowded_pairs_skip_the_copy_counts_consistently(tmp_path: Path, monkeypatch: Any) -> None:
    """A pair with more than LINK_LIMIT voices neither feeds nor uses the link counts
    (their upkeep is quadratic); crossing the limit both ways keeps the counts equal
    to a rebuild."""
    monkeypatch.setattr(truth_state, "LINK_LIMIT", 3)
    keys = [generate_signing_key() for _ in range(6)]
    records = [claim("s/a", "t", 100 + i, k) for i, k in enumerate(keys[:3])]
    records += [claim("s/b", "t", 200 + i, k) for i, k in enumerate(keys[:3])]
    records += [claim("s/a", "t", 300 + i, k) for i, k in enumerate(keys[3:])]  # crowded
    store = Store(Settings(db_dir=tmp_path)).open()
    for r in records:
        store.write([r])
    with store.reader() as conn:
        live = dump(conn)
    store.close()
    same = sorted(int(r[2]) for r in live["truth_links"])
    assert same and max(same) == 1  # only s/b's three voices are counted, once each pair
    conn = schema.connect(tmp_path / "stemedb.db")
    with conn:
        truth_state.rebuild(conn)
    assert dump(conn) == live
    conn.close()
