"""Issue 14 items 1 and 6/14 in the store, in-process: identity by signed content
(data-model.md §7), the backfill of records stored before v0.2, `reindex`, the
commit-time `written_ms`, and internal errors that are not the client's fault.

End-to-end HTTP versions are in tests/security/test_identity_replay.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from identitykit import (
    Signer,
    T,
    frame_of,
    old_style,
    renonced,
    sign_by,
    unsigned_of_every_kind,
)

import stemedb.store.writer as writer_module
from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.errors import NotFound
from stemedb.records import prepare_record
from stemedb.store import PendingRecord, Store, digests
from stemedb.store.schema import connect, fetchall
from stemedb.store.verify import rebuild_projections

SIGNERS = [Signer() for _ in range(4)]


def pend(kind: str, record: dict[str, Any], received_ms: int | None = None) -> PendingRecord:
    """Validated and normalised exactly like the HTTP layer does."""
    prepared = prepare_record(
        kind, record, now_s=T + 100, scheme_tiers=DEFAULT_SCHEME_TIERS, require_signatures=True
    )
    when = int(time.time() * 1000) if received_ms is None else received_ms
    return PendingRecord(
        prepared.kind, prepared.hash, prepared.body, prepared.record, when, prepared.digest
    )


def pend_old(kind: str, record: dict[str, Any]) -> PendingRecord:
    """The frame a pre-v0.2 server wrote for `record` (entries with timestamps): it
    bypasses validation, which refuses entry timestamps now."""
    old = old_style(record)
    frame_hash, body = frame_of(old)
    return PendingRecord(kind, frame_hash, body, old, int(time.time() * 1000))


def open_store(directory: Path) -> Store:
    directory.mkdir(parents=True, exist_ok=True)
    return Store(Settings(db_dir=directory)).open()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "db")
    yield opened
    opened.close()


def journal_head(store: Store) -> int:
    with store.reader() as conn:
        return int(fetchall(conn, "SELECT max(seq) FROM journal")[0][0])


def assertion(subject: str, signers: list[Signer], value: str = "v") -> dict[str, Any]:
    unsigned = {"subject": subject, "predicate": "p", "object": value, "confidence": 0.9}
    return sign_by("assertion", {**unsigned, "timestamp": T}, signers)


def records_of_every_kind(tag: str, store: Store) -> list[tuple[str, dict[str, Any]]]:
    """Two assertions written first, then (kind, record) of every other kind, the
    multi-signer kinds co-signed by two agents."""
    a = assertion(f"id/{tag}/a", SIGNERS[:2])
    b = assertion(f"id/{tag}/b", SIGNERS[2:3])
    outcomes = store.write([pend("assertion", a), pend("assertion", b)])
    target, other = (o.hash.hex() for o in outcomes)
    out: list[tuple[str, dict[str, Any]]] = [("assertion", a)]
    for kind, unsigned in unsigned_of_every_kind(target, other, None, SIGNERS[3].id, tag).values():
        signers = SIGNERS[:1] if kind in ("vote", "outcome") else SIGNERS[:2]
        out.append((kind, sign_by(kind, unsigned, signers)))
    return out


# ---- identity ---------------------------------------------------------------------------


def test_every_kind_is_found_by_signed_content_whatever_its_signatures(store: Store) -> None:
    written = records_of_every_kind("live", store)
    firsts = store.write([pend(kind, record) for kind, record in written[1:]])
    assert [o.status for o in firsts] == ["created"] * 5
    head = journal_head(store)
    for (kind, record), first in zip(written[1:], firsts, strict=True):
        # (variant, whether its id equals the stored one): a re-ordering sorts back to
        # the same bytes; a new nonce or a stripped entry gives another id.
        variants = [(renonced(record, SIGNERS[0]), False)]
        if len(record["signatures"]) > 1:
            variants += [
                ({**record, "signatures": record["signatures"][::-1]}, True),
                ({**record, "signatures": record["signatures"][:1]}, False),
                ({**record, "signatures": record["signatures"][1:]}, False),
            ]
        for variant, same_id in variants:
            pending = pend(kind, variant)
            assert (pending.hash == first.hash) is same_id
            (again,) = store.write([pending])
            assert (again.status, again.hash, again.seq) == ("exists", first.hash, first.seq), kind
    assert journal_head(store) == head


def test_two_agents_casting_the_same_vote_cast_two_votes(store: Store) -> None:
    """Single-signature kinds are told apart by their signer (what they mean is
    "this agent says"); the signer cannot be changed without its key."""
    (target,) = store.write([pend("assertion", assertion("id/votes", SIGNERS[:1]))])
    vote = {"assertion_hash": target.hash.hex(), "weight": 1, "timestamp": T + 1}
    first, second = store.write([pend("vote", sign_by("vote", vote, [s])) for s in SIGNERS[1:3]])
    assert (first.status, second.status) == ("created", "created")
    with store.reader() as conn:
        assert fetchall(conn, "SELECT count FROM vote_totals")[0][0] == 2


def test_same_content_twice_in_one_batch_is_one_record(store: Store) -> None:
    for atomic in (False, True):
        unsigned = {"subject": "id/batch", "predicate": "p", "object": "v", "timestamp": T}
        tagged = sign_by(
            "assertion", {**unsigned, "confidence": 0.5 if atomic else 0.4}, SIGNERS[:3]
        )
        part = {**tagged, "signatures": tagged["signatures"][2:]}
        first, second, third = store.write(
            [pend("assertion", tagged), pend("assertion", part), pend("assertion", tagged)],
            atomic=atomic,
        )
        assert first.status == "created"
        assert (second.status, second.hash, second.seq) == ("exists", first.hash, first.seq)
        assert (third.status, third.hash, third.seq) == ("exists", first.hash, first.seq)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=4, unique=True),
    st.lists(
        st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=4, unique=True),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_any_subset_or_order_of_valid_entries_is_one_stored_record(
    tmp_path_factory: pytest.TempPathFactory,
    first_subset: list[int],
    later_subsets: list[list[int]],
    renonce: bool,
) -> None:
    full = assertion(f"id/prop/{time.monotonic_ns()}", SIGNERS)
    by_agent = {e["agent_id"]: e for e in full["signatures"]}
    if renonce:
        by_agent = {e["agent_id"]: e for e in renonced(full, SIGNERS[1])["signatures"]}

    def variant(subset: list[int]) -> dict[str, Any]:
        return {**full, "signatures": [by_agent[SIGNERS[i].id] for i in subset]}

    (first,) = _PROPERTY_STORE.write([pend("assertion", variant(first_subset))])
    assert first.status == "created"
    later = _PROPERTY_STORE.write([pend("assertion", variant(s)) for s in later_subsets])
    assert {(o.status, o.hash, o.seq) for o in later} == {("exists", first.hash, first.seq)}


_PROPERTY_STORE: Store


@pytest.fixture(autouse=True, scope="module")
def _property_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    global _PROPERTY_STORE
    _PROPERTY_STORE = open_store(tmp_path_factory.mktemp("prop") / "db")
    yield
    _PROPERTY_STORE.close()


# ---- records stored before v0.2 --------------------------------------------------------


def _as_before_migration_3(path: Path) -> None:
    """The state right after migration 0003 ran on a pre-v0.2 database: no
    identities known yet, the backfill pending."""
    conn = connect(path)
    with conn:
        conn.execute("DELETE FROM record_digests")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('record_digests_backfill', -1)")
    conn.close()


def test_records_stored_before_v0_2_are_found_after_the_backfill(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    store = open_store(directory)
    written = records_of_every_kind("old", store)
    stored = store.write([pend_old(kind, record) for kind, record in written])
    assert [o.status for o in stored[1:]] == ["created"] * 5
    store.close()
    _as_before_migration_3(directory / "stemedb.db")

    store = Store(Settings(db_dir=directory))
    store.open_journal()
    assert "record digests of" in store.open_projections()
    store.start_writer()
    try:
        head = journal_head(store)
        for (kind, record), old in zip(written[1:], stored[1:], strict=True):
            (new_form,) = store.write([pend(kind, record)])  # no entry timestamps
            assert (new_form.status, new_form.hash, new_form.seq) == ("exists", old.hash, old.seq)
            for changed in (T - 5, T + 7):  # another unsigned entry timestamp: same record
                replay = old_style(record, changed)
                frame_hash, body = frame_of(replay)
                (again,) = store.write([PendingRecord(kind, frame_hash, body, replay, 0)])
                assert (again.status, again.hash) == ("exists", old.hash)
        assert journal_head(store) == head
    finally:
        store.close()


def test_backfill_is_idempotent_resumable_and_skips_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    store = open_store(directory)
    records_of_every_kind("bf", store)
    store.close()
    path = directory / "stemedb.db"
    conn = connect(path)
    try:
        want = fetchall(conn, "SELECT * FROM record_digests ORDER BY seq")
        assert len(want) == 2
        for chunk in (1, 3, 5000):
            with conn:
                conn.execute("DELETE FROM record_digests WHERE seq % 2 = 0")
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('record_digests_backfill', 0)")
            assert digests.backfill(conn, chunk) == 2
            assert digests.backfill(conn, chunk) == 0  # done: the meta row is gone
            assert fetchall(conn, "SELECT * FROM record_digests ORDER BY seq") == want
    finally:
        conn.close()


def test_reindex_rebuilds_the_identities(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    store = open_store(directory)
    written = records_of_every_kind("rx", store)
    store.write([pend(kind, record) for kind, record in written[1:]])
    store.close()
    conn = connect(directory / "stemedb.db")
    try:
        want = fetchall(conn, "SELECT * FROM record_digests ORDER BY seq")
        assert len(want) == 7
        with conn:
            conn.execute("DELETE FROM record_digests")
        rebuild_projections(conn)
        assert fetchall(conn, "SELECT * FROM record_digests ORDER BY seq") == want
    finally:
        conn.close()


# ---- written_ms is the commit time ------------------------------------------------------


def _frames_ms(store: Store, seqs: list[int]) -> list[int]:
    with store.reader() as conn:
        marks = ",".join("?" * len(seqs))
        rows = fetchall(conn, f"SELECT written_ms FROM journal WHERE seq IN ({marks})", seqs)
        return [int(r[0]) for r in rows]


def test_written_ms_is_the_commit_time_shared_by_the_batch(store: Store) -> None:
    long_ago = 1_000  # the receive time the records were normalised with
    records = [
        pend("assertion", assertion(f"id/ms/{i}", SIGNERS[:1]), received_ms=long_ago)
        for i in range(5)
    ]
    before = int(time.time() * 1000)
    outcomes = store.write(records)
    after = int(time.time() * 1000)
    stamps = _frames_ms(store, [int(o.seq or 0) for o in outcomes])
    assert len(set(stamps)) == 1, "every frame of one group commit has the same written_ms"
    assert before <= stamps[0] <= after


def test_written_ms_never_goes_back_when_the_clock_does(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    (first,) = store.write([pend("assertion", assertion("id/clock/1", SIGNERS[:1]))])
    (committed_ms,) = _frames_ms(store, [int(first.seq or 0)])
    real = time.time
    monkeypatch.setattr(writer_module.time, "time", lambda: real() - 3600.0)
    (second,) = store.write([pend("assertion", assertion("id/clock/2", SIGNERS[:1]))])
    monkeypatch.setattr(writer_module.time, "time", real)
    (second_ms,) = _frames_ms(store, [int(second.seq or 0)])
    assert second_ms == committed_ms  # max(now, last committed): not an hour back


# ---- internal errors are not the client's -----------------------------------------------


def test_a_constraint_violation_is_internal_and_writes_nothing(store: Store) -> None:
    head = journal_head(store)
    # Projections one frame ahead of the journal: the next assertion's seq is taken.
    side = connect(store.path)
    with side:
        side.execute(
            "INSERT INTO assertions (seq, hash, subject, predicate, object_type, value_key,"
            " confidence, tier, lifecycle, timestamp, written_ms)"
            " VALUES (?, ?, 's', 'p', 'Text', '\"x\"', 1, 0, 'Proposed', 0, 0)",
            (head + 1, b"\x01" * 32),
        )
    side.close()
    records = [pend("assertion", assertion(f"id/int/{i}", SIGNERS[:1])) for i in range(2)]
    with pytest.raises(writer_module.InternalWriteError) as info:
        store.write(records)
    assert info.value.code == "internal"
    assert journal_head(store) == head
    # A genuine client problem stays the client's: an unknown referenced assertion.
    vote = {"assertion_hash": "ab" * 32, "weight": 1, "timestamp": T}
    (missing,) = store.write([pend("vote", sign_by("vote", vote, SIGNERS[:1]))])
    assert missing.status == "rejected" and isinstance(missing.error, NotFound)


def test_an_unexpected_exception_in_a_batch_is_internal(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = journal_head(store)

    def broken(*args: Any) -> None:
        raise KeyError("weight")

    monkeypatch.setattr(writer_module.projections, "apply", broken)
    with pytest.raises(writer_module.InternalWriteError):
        store.write([pend("assertion", assertion("id/bug", SIGNERS[:1]))])
    monkeypatch.undo()
    assert journal_head(store) == head
    (ok,) = store.write([pend("assertion", assertion("id/bug", SIGNERS[:1]))])
    assert ok.status == "created" and ok.seq == head + 1


def test_the_writers_identity_lookup_is_one_primary_key_search(store: Store) -> None:
    """The hot path: one search of the record_digests primary key, then the journal
    row by its integer key; never a scan."""
    with store.reader() as conn:
        plan = [
            str(row[3])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN " + digests._LOOKUP, (b"\0" * 32, b"", "assertion")
            )
        ]
    assert plan == [
        "SEARCH d USING PRIMARY KEY (digest=? AND signer=?)",
        "SEARCH j USING INTEGER PRIMARY KEY (rowid=?)",
    ]
