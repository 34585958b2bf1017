"""Issue #2, the write path of the store in-process: group commit under concurrency,
duplicates, per-record savepoints, atomic batches, read-your-writes, a stopped
writer, and a full disk (simulated with PRAGMA max_page_count on the writer)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.errors import InsufficientStorage, NotFound, Unavailable
from stemedb.records import prepare_record
from stemedb.store import PendingRecord, Store
from stemedb.store.projections import PROJECTION_TABLES
from stemedb.store.verify import verify

SQLITE3 = "/usr/bin/sqlite3"
CHAIN_QUERY = """SELECT j.seq FROM journal j JOIN journal p ON p.seq = j.seq - 1
WHERE j.hash <> sha3(j.body, 256)
   OR j.chain <> sha3(p.chain || j.hash || j.written_ms, 256);"""
ZERO = "0" * 64


def pend(kind: str = "assertion", **fields: Any) -> PendingRecord:
    """An unsigned record, validated and normalised exactly like the HTTP layer does."""
    now = int(time.time())
    if kind == "assertion":
        fields = {"subject": "s/x", "predicate": "p", "object": "v", "confidence": 0.5, **fields}
    prepared = prepare_record(
        kind, fields, now_s=now, scheme_tiers=DEFAULT_SCHEME_TIERS, require_signatures=False
    )
    return PendingRecord(
        prepared.kind, prepared.hash, prepared.body, prepared.record, int(time.time() * 1000)
    )


def shell(db: Path, sql: str) -> list[str]:
    out = subprocess.run(
        [SQLITE3, "-readonly", "-bail", str(db), sql],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


def journal_count(store: Store) -> int:
    with store.reader() as conn:
        return int(conn.execute("SELECT count(*) FROM journal").fetchall()[0][0])


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    with store.reader() as conn:
        return {
            t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}").fetchall()), key=repr)
            for t in (*PROJECTION_TABLES, "journal")
        }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(Settings(db_dir=tmp_path)).open()
    yield opened
    opened.close()


def test_eight_concurrent_writers_then_the_chain_verifies(store: Store) -> None:
    per_thread, threads = 60, 8
    results: dict[int, list[Any]] = {}
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        barrier.wait()
        mine: list[Any] = []
        i = 0
        while i < per_thread:
            size = 1 + (i + n) % 7
            batch = [
                pend(subject=f"c/t{n}", object=f"v{j}") for j in range(i, min(i + size, per_thread))
            ]
            mine += store.write(batch)
            i += size
        results[n] = mine

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    outcomes = [o for n in range(threads) for o in results[n]]
    assert len(outcomes) == per_thread * threads
    assert {o.status for o in outcomes} == {"created"}
    seqs = sorted(o.seq for o in outcomes)
    assert seqs == list(range(1, per_thread * threads + 1))  # gap-free, one frame each
    assert store.current_head.seq == per_thread * threads
    assert store.writer is not None and store.writer.commits < per_thread * threads  # grouped
    report = verify(store.path, full=True)
    assert report.ok, report.to_dict()
    assert report.journal_seq == per_thread * threads
    assert shell(store.path, CHAIN_QUERY) == []
    # Frame 0 is checked against zeroblob(32), as storage.md says.
    assert shell(
        store.path,
        "SELECT count(*) FROM journal WHERE seq = 0 AND "
        "chain = sha3(zeroblob(32) || hash || written_ms, 256);",
    ) == ["1"]
    with store.reader() as conn:
        count = conn.execute("SELECT count(*) FROM assertions").fetchall()[0][0]
    assert count == per_thread * threads == store.assertion_count


def test_duplicates_inside_and_across_batches_are_exists(store: Store) -> None:
    a, b = pend(object="a"), pend(object="b")
    first = store.write([a, a, b])
    assert [o.status for o in first] == ["created", "exists", "created"]
    assert first[0].seq == first[1].seq and first[0].error is None
    second = store.write([b, pend(object="c"), a])
    assert [o.status for o in second] == ["exists", "created", "exists"]
    assert second[0].seq == first[2].seq and second[2].seq == first[0].seq
    assert journal_count(store) == 1 + 3


def test_a_failing_record_does_not_sink_its_neighbours(store: Store) -> None:
    parent = pend(object="parent")
    outcomes = store.write(
        [
            pend(object="before"),
            pend(object="orphan", parent_hash=ZERO),
            parent,
            pend(object="child", parent_hash=parent.hash.hex()),
            pend("vote", assertion_hash=ZERO, weight=1),
            pend("epoch", name="e", supersedes=[ZERO]),
            pend(object="after"),
        ]
    )
    assert [o.status for o in outcomes] == [
        "created",
        "rejected",
        "created",
        "created",
        "rejected",
        "rejected",
        "created",
    ]
    for index in (1, 4, 5):
        assert isinstance(outcomes[index].error, NotFound)
        assert ZERO in outcomes[index].error.message
    created = [o.seq for o in outcomes if o.status == "created"]
    assert created == [1, 2, 3, 4]  # rejected records leave no gap
    assert verify(store.path, full=True).ok
    with store.reader() as conn:
        rows = conn.execute("SELECT count(*) FROM assertions").fetchall()[0][0]
    assert rows == 4


def test_atomic_batch_is_all_or_nothing(store: Store) -> None:
    store.write([pend(object="seed")])
    before = dump(store)
    head = store.current_head
    parent = pend(object="p")
    outcomes = store.write(
        [
            parent,
            pend(object="c", parent_hash=parent.hash.hex()),
            pend(object="x", parent_hash=ZERO),
        ],
        atomic=True,
    )
    assert [o.status for o in outcomes] == ["not_written", "not_written", "rejected"]
    assert dump(store) == before and store.current_head == head
    # The next write continues the chain from the unchanged head.
    ok = store.write([parent, pend(object="c", parent_hash=parent.hash.hex())], atomic=True)
    assert [o.status for o in ok] == ["created", "created"]
    assert [o.seq for o in ok] == [head.seq + 1, head.seq + 2]
    assert verify(store.path, full=True).ok


def test_atomic_and_plain_jobs_in_one_group_commit(store: Store) -> None:
    """A rolled-back atomic job shares its transaction with other callers' jobs."""
    barrier = threading.Barrier(6)
    results: dict[int, list[Any]] = {}

    def work(n: int) -> None:
        barrier.wait()
        if n % 2:
            batch = [pend(object=f"a{n}"), pend(object=f"b{n}", parent_hash=ZERO)]
            results[n] = store.write(batch, atomic=True)
        else:
            results[n] = store.write([pend(object=f"a{n}"), pend(object=f"b{n}")])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n, outcomes in results.items():
        expected = ["not_written", "rejected"] if n % 2 else ["created", "created"]
        assert [o.status for o in outcomes] == expected
    assert store.current_head.seq == 6
    assert verify(store.path, full=True).ok


def test_read_your_writes(store: Store) -> None:
    errors: list[str] = []

    def work(n: int) -> None:
        for i in range(25):
            record = pend(subject=f"ryw/t{n}", object=f"v{i}")
            (outcome,) = store.write([record])
            with store.reader() as conn:
                rows = conn.execute(
                    "SELECT seq FROM assertions WHERE hash = ?", (record.hash,)
                ).fetchall()
                frames = conn.execute(
                    "SELECT count(*) FROM journal WHERE seq = ?", (outcome.seq,)
                ).fetchall()
            if rows != [(outcome.seq,)] or frames != [(1,)]:
                errors.append(f"thread {n} write {i}: {rows} {frames}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_stopped_writer_refuses_with_unavailable(store: Store) -> None:
    store.write([pend(object="one")])
    assert store.writer is not None
    store.writer.stop()
    with pytest.raises(Unavailable):
        store.write([pend(object="two")])
    assert store.degraded_reason() == "writer_down"
    with store.reader() as conn:  # reads keep working
        assert conn.execute("SELECT count(*) FROM assertions").fetchall() == [(1,)]


def test_disk_full_fails_every_waiter_keeps_reads_and_recovers_without_restart(
    store: Store,
) -> None:
    store.write([pend(subject=f"full/s{i}", object="x" * 2000) for i in range(20)])
    before = dump(store)
    head = store.current_head
    count = store.assertion_count
    pages = store.write_local(lambda c: c.execute("PRAGMA page_count").fetchall()[0][0])
    limit = store.write_local(
        lambda c: c.execute(f"PRAGMA max_page_count={pages + 2}").fetchall()[0][0]
    )
    assert limit == pages + 2

    errors: list[BaseException | None] = []
    barrier = threading.Barrier(6)

    def waiter(n: int) -> None:
        barrier.wait()
        try:
            store.write([pend(subject=f"full/w{n}/{i}", object="y" * 3000) for i in range(4)])
            errors.append(None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=waiter, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 6
    assert all(isinstance(e, InsufficientStorage) for e in errors), errors
    assert errors[0].code == "insufficient_storage"  # type: ignore[union-attr]
    assert store.degraded_reason() == "disk_full"
    assert store.stats()["degraded"] == "disk_full"
    # Nothing half-written: same head, same journal, same projections; chain intact.
    assert store.current_head == head and store.assertion_count == count
    assert dump(store) == before
    assert verify(store.path).ok
    assert shell(store.path, CHAIN_QUERY) == []
    # Reads keep working.
    with store.reader() as conn:
        assert conn.execute("SELECT count(*) FROM assertions").fetchall() == [(20,)]

    # Space returns: writes succeed again, no restart.
    store.write_local(lambda c: c.execute("PRAGMA max_page_count=1073741823").fetchall())
    (outcome,) = store.write([pend(subject="full/after", object="z" * 3000)])
    assert outcome.status == "created" and outcome.seq == head.seq + 1
    assert store.degraded_reason() is None
    assert verify(store.path, full=True).ok


# ---- deferred local jobs (the audit trail's commits) ---------------------------------


def _meta(store: Store, key: str) -> list[tuple[Any, ...]]:
    with store.reader() as conn:
        return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()


def _set_meta(key: str, value: str) -> Any:
    return lambda conn: conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)
    )


def test_a_deferred_job_commits_on_its_own_when_nothing_else_is_written(store: Store) -> None:
    writer = store._require_writer()
    commits = writer.commits
    store.write_local(_set_meta("deferred_idle", "one"), defer=True)
    assert _meta(store, "deferred_idle") == []  # not committed synchronously
    deadline = time.monotonic() + 5
    while not _meta(store, "deferred_idle") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _meta(store, "deferred_idle") == [("one",)]
    assert writer.commits == commits + 1


def test_deferred_jobs_ride_along_with_the_next_write_commit(store: Store) -> None:
    writer = store._require_writer()
    before = writer.commits
    for i in range(20):
        store.write_local(_set_meta(f"ride_{i}", f"v{i}"), defer=True)
    store.write([pend(subject="s/ride")])  # one group commit takes all of them
    assert writer.commits == before + 1
    assert all(_meta(store, f"ride_{i}") == [(f"v{i}",)] for i in range(20))


def test_deferred_jobs_are_committed_when_the_store_closes(tmp_path: Path) -> None:
    opened = Store(Settings(db_dir=tmp_path)).open()
    opened.write_local(_set_meta("at_close", "yes"), defer=True)
    opened.close()
    reopened = Store(Settings(db_dir=tmp_path)).open()
    try:
        assert _meta(reopened, "at_close") == [("yes",)]
    finally:
        reopened.close()


# ---- sparse tables: hot reads skip aliases/trust lookups while they are empty ----------


def test_may_have_rows_turns_true_with_the_first_alias_and_stays_true(tmp_path: Path) -> None:
    opened = Store(Settings(db_dir=tmp_path)).open()
    try:
        assert not opened.may_have_rows("aliases")
        assert not opened.may_have_rows("trust")
        opened.write([pend("alias", alias="drugs/ozempic", canonical="drugs/semaglutide")])
        assert opened.may_have_rows("aliases")
        assert not opened.may_have_rows("trust")
    finally:
        opened.close()
    reopened = Store(Settings(db_dir=tmp_path)).open()  # known from the file at open
    try:
        assert reopened.may_have_rows("aliases")
        assert not reopened.may_have_rows("trust")
    finally:
        reopened.close()
