"""Migration 0004: the history tables behind `known_at`, and co-signers.

An upgraded database (its history backfilled by the migration's SQL) and a
rebuild from the journal (`apply`, `stemedb reindex`) must hold identical
rows; the as-of reads must use their primary keys; and read "now", the
history must give exactly what the current-state projections give.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.crypto import generate_signing_key, public_key_hex
from stemedb.records import prepare_record
from stemedb.signing import sign_record
from stemedb.store import PendingRecord, Store
from stemedb.store import reads as store_reads
from stemedb.store.schema import available_migrations
from stemedb.store.verify import reindex, verify

HISTORY = ("vote_history", "alias_history", "outcome_history", "cosigners")
FAR = 10**15  # a known_at (ms) after everything


def pend(kind: str, fields: dict[str, Any], *seeds: bytes) -> PendingRecord:
    payload = sign_record(kind, fields, list(seeds)) if seeds else fields
    prepared = prepare_record(
        kind,
        payload,
        now_s=int(time.time()),
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=False,
    )
    return PendingRecord(
        prepared.kind, prepared.hash, prepared.body, prepared.record, int(time.time() * 1000)
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    (tmp_path / "live").mkdir()
    opened = Store(Settings(db_dir=tmp_path / "live")).open()
    yield opened
    opened.close()


def populate(store: Store) -> dict[str, Any]:
    """Votes replacing votes (signed and unsigned), an alias rewritten, outcomes,
    and a claim signed by three agents."""
    a, b, c = generate_signing_key(), generate_signing_key(), generate_signing_key()
    now = int(time.time())
    x = pend(
        "assertion",
        {"subject": "h/x", "predicate": "p", "object": "one", "confidence": 0.5},
        a,
        b,
        c,
    )
    y = pend(
        "assertion", {"subject": "h/x", "predicate": "p", "object": "two", "confidence": 0.5}, b
    )
    xh, yh = x.hash.hex(), y.hash.hex()
    records = [
        x,
        y,
        pend("vote", {"assertion_hash": xh, "weight": 1, "timestamp": now - 9}, a),
        pend("vote", {"assertion_hash": xh, "weight": -1, "timestamp": now}, a),
        pend("vote", {"assertion_hash": xh, "weight": 0.5, "timestamp": now - 20}, a),  # older
        pend("vote", {"assertion_hash": yh, "weight": 0.25, "timestamp": now}),  # unsigned
        pend("vote", {"assertion_hash": yh, "weight": 0.5, "timestamp": now}, b),
        pend("alias", {"alias": "brand", "canonical": "h/x", "timestamp": now - 5}, a),
        pend("alias", {"alias": "brand", "canonical": "h/y", "timestamp": now}, a),
        *(
            pend(
                "outcome",
                {
                    "agent_id": public_key_hex(b),
                    "assertion_hash": yh,
                    "accurate": ok,
                    "timestamp": now - 100 + i,
                },
                a,
            )
            for i, ok in enumerate((False, True, True, False))
        ),
    ]
    outcomes = store.write(records)
    assert {o.status for o in outcomes} == {"created"}, outcomes
    return {"x": x.hash, "y": y.hash, "a": a, "b": b, "c": c}


def rows(conn: apsw.Connection, table: str) -> list[tuple[Any, ...]]:
    return sorted(map(tuple, conn.execute(f"SELECT * FROM {table}").fetchall()), key=repr)


def test_every_frame_leaves_a_history_row(store: Store) -> None:
    got = populate(store)
    with store.reader() as conn:
        assert len(rows(conn, "vote_history")) == 5
        assert len(rows(conn, "alias_history")) == 2
        assert len(rows(conn, "outcome_history")) == 4
        cosigners = rows(conn, "cosigners")
    signers = sorted(bytes.fromhex(public_key_hex(got[k])) for k in "abc")
    assert [r[0] for r in cosigners] == [got["x"], got["x"]]
    first = min(signers)  # the signature list is sorted by agent id
    assert sorted(r[1] for r in cosigners) == [s for s in signers if s != first]


def test_upgrade_backfill_equals_a_rebuild_from_the_journal(store: Store, tmp_path: Path) -> None:
    populate(store)
    path = store.path
    store.close()
    conn = apsw.Connection(str(path))
    try:
        applied = {t: rows(conn, t) for t in HISTORY}
        assert all(applied.values())
        # An existing database before 0004: the tables do not exist yet.
        with conn:
            for table in HISTORY:
                conn.execute(f"DROP TABLE {table}")
        migration = next(m for m in available_migrations() if m.version == 4)
        with conn:
            conn.execute(migration.sql)
        assert {t: rows(conn, t) for t in HISTORY} == applied
        with conn:  # the migration can run again without harm
            conn.execute(migration.sql)
        assert {t: rows(conn, t) for t in HISTORY} == applied
    finally:
        conn.close()
    report = verify(path, full=True)
    assert report.ok, report.to_dict()
    reindex(path)
    conn = apsw.Connection(str(path))
    try:
        assert {t: rows(conn, t) for t in HISTORY} == applied
    finally:
        conn.close()


def test_state_read_far_in_the_future_equals_the_current_state(store: Store) -> None:
    got = populate(store)
    b = bytes.fromhex(public_key_hex(got["b"]))
    with store.reader() as conn:
        hashes = [got["x"], got["y"]]
        assert store_reads.vote_totals_at(conn, hashes, FAR) == pytest.approx(
            store_reads.vote_totals(conn, hashes)
        )
        assert store_reads.vote_totals_at(conn, hashes, FAR)[got["x"]] == -1.0
        assert store_reads.trust_scores_at(conn, [b], FAR) == store_reads.trust_scores(conn, [b])
        assert store_reads.resolve_alias_at(conn, "brand", FAR) == "h/y"
        assert store_reads.vote_totals_at(conn, hashes, 0) == {}
        assert store_reads.trust_scores_at(conn, [b], 0) == {}
        assert store_reads.resolve_alias_at(conn, "brand", 0) is None


def _plan(conn: apsw.Connection, sql: str, params: list[Any]) -> list[str]:
    return [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def test_as_of_reads_use_their_primary_keys(store: Store) -> None:
    populate(store)
    probes = [
        (
            "SELECT assertion_hash, agent_id, weight, timestamp, seq FROM vote_history"
            " WHERE assertion_hash IN (?, ?) AND written_ms <= ?",
            [b"x" * 32, b"y" * 32, FAR],
        ),
        (
            "SELECT agent_id, accurate, timestamp FROM outcome_history"
            " WHERE agent_id IN (?) AND written_ms <= ? ORDER BY agent_id, seq",
            [b"a" * 32, FAR],
        ),
        (
            "SELECT canonical FROM alias_history WHERE alias = ? AND written_ms <= ?"
            " ORDER BY seq DESC LIMIT 1",
            ["brand", FAR],
        ),
        (
            "SELECT assertion_hash, agent_id FROM cosigners WHERE assertion_hash IN (?)"
            " ORDER BY assertion_hash, agent_id",
            [b"x" * 32],
        ),
    ]
    with store.reader() as conn:
        for sql, params in probes:
            plan = _plan(conn, sql, params)
            assert any("USING PRIMARY KEY" in step for step in plan), (sql, plan)
            assert not any(step.startswith("SCAN") for step in plan), (sql, plan)
            assert not any("TEMP B-TREE" in step for step in plan), (sql, plan)


def test_backfill_skips_a_damaged_body_instead_of_failing_the_upgrade() -> None:
    """A frame whose body is not JSON (the journal checkers name it) must not stop
    an upgrade: the migration skips it and backfills the rest."""
    conn = apsw.Connection(":memory:")
    conn.execute(
        "CREATE TABLE journal (seq INTEGER PRIMARY KEY, kind TEXT, hash BLOB, body TEXT,"
        " written_ms INTEGER, chain BLOB)"
    )
    good = '{"kind":"vote","assertion_hash":"' + "ab" * 32 + '","weight":1,"timestamp":5}'
    frames = [
        (1, "vote", b"1" * 32, "{not json", 10),
        (2, "vote", b"2" * 32, good, 20),
        (3, "alias", b"3" * 32, '{"alias": 7', 30),
        (4, "outcome", b"4" * 32, '{"agent_id":"zz","accurate":true,"timestamp":1}', 40),
        (5, "assertion", b"5" * 32, '{"signatures":{"agent_id":"00"}}', 50),
    ]
    conn.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, x'')", frames)
    migration = next(m for m in available_migrations() if m.version == 4)
    with conn:
        conn.execute(migration.sql)
    assert rows(conn, "vote_history") == [(bytes.fromhex("ab" * 32), 2, b"", 1.0, 5, 20)]
    assert rows(conn, "alias_history") == []
    assert rows(conn, "outcome_history") == []
    assert rows(conn, "cosigners") == []
