"""The read-connection pool: reuse across threads, snapshots, nesting, and clean returns."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from stemedb.config import Settings
from stemedb.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(Settings(db_dir=tmp_path)).open()
    yield opened
    opened.close()


def _journal_count(conn: apsw.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM journal").fetchall()[0][0])


def test_sequential_reads_on_many_threads_share_one_connection(store: Store) -> None:
    seen: list[int] = []

    def read() -> None:
        with store.reader() as conn:
            seen.append(id(conn))

    for _ in range(10):
        t = threading.Thread(target=read)
        t.start()
        t.join()
    assert len(set(seen)) == 1
    assert len(store._readers) == 1


def test_concurrent_readers_get_distinct_connections_then_reuse_them(store: Store) -> None:
    inside = threading.Barrier(4)  # three readers and this thread
    release = threading.Event()
    used: list[int] = []

    def hold() -> None:
        with store.reader() as conn:
            used.append(id(conn))
            inside.wait(5)
            release.wait(5)

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for t in threads:
        t.start()
    inside.wait(5)  # all three hold a connection at once
    release.set()
    for t in threads:
        t.join(5)
    assert len(set(used)) == 3
    with store.reader() as conn:
        assert id(conn) in used  # from the pool, not a fourth connection
    assert len(store._readers) == 3


def test_nested_use_reuses_the_open_snapshot(store: Store) -> None:
    with store.reader() as outer, store.reader() as inner:
        assert inner is outer
        assert not outer.getautocommit()
    assert outer.getautocommit()  # the outer block ended the transaction


def test_a_snapshot_does_not_see_a_commit_made_during_it(store: Store) -> None:
    with store.reader() as conn:
        before = _journal_count(conn)
        store.write_local(lambda c: c.execute("INSERT INTO meta (key, value) VALUES ('snap', 'x')"))
        assert conn.execute("SELECT count(*) FROM meta WHERE key = 'snap'").fetchall() == [(0,)]
        assert _journal_count(conn) == before
    with store.reader() as conn:
        assert conn.execute("SELECT count(*) FROM meta WHERE key = 'snap'").fetchall() == [(1,)]


def test_an_error_inside_returns_a_clean_connection(store: Store) -> None:
    with pytest.raises(RuntimeError), store.reader() as conn:
        raise RuntimeError("boom")
    assert conn.getautocommit()
    with store.reader() as again:
        assert again is conn


def test_a_connection_left_in_a_transaction_is_rolled_back_before_reuse(store: Store) -> None:
    with store.reader() as conn:
        conn.execute("COMMIT")
        conn.execute("BEGIN")  # the caller's own transaction: COMMIT at the end ends it
    assert conn.getautocommit()
    assert store._idle == [conn]
