"""The background WAL checkpointer (stemedb.store.checkpointer)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from test_store_writes import pend

from stemedb.config import Settings
from stemedb.store import Store, checkpointer


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(Settings(db_dir=tmp_path)).open()
    yield opened
    opened.close()


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _journal_rows_in_main_file(store: Store, scratch: Path) -> int:
    """Rows visible in the database file alone, i.e. what checkpoints copied out of the WAL."""
    scratch.mkdir()
    shutil.copy2(store.path, scratch / "copy.db")  # the main file only, no -wal beside it
    conn = apsw.Connection(str(scratch / "copy.db"), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return int(conn.execute("SELECT count(*) FROM journal").fetchall()[0][0])
    finally:
        conn.close()


def test_committed_frames_reach_the_database_file_before_any_autocheckpoint(
    store: Store, tmp_path: Path
) -> None:
    assert store.checkpointer is not None and store.checkpointer.alive
    store.write([pend(subject=f"s/ck{i}") for i in range(200)])
    written = 201  # and the journal header; far below the 1,000 pages of an autocheckpoint
    before = store.checkpointer.checkpoints
    _wait(lambda: store.checkpointer is not None and store.checkpointer.checkpoints >= before + 2)
    assert _journal_rows_in_main_file(store, tmp_path / "scratch") == written


STARTED_AT_NICE = os.getpriority(os.PRIO_PROCESS, 0)  # before any store's thread


def test_it_runs_at_a_lower_priority_than_requests(store: Store) -> None:
    assert store.checkpointer is not None
    _wait(lambda: store.checkpointer is not None and store.checkpointer.native_id is not None)
    tid = store.checkpointer.native_id
    assert tid is not None
    assert os.getpriority(os.PRIO_PROCESS, tid) == checkpointer.NICE
    # The rest of the process is untouched: as nice as pytest was started (`nice make test`).
    assert os.getpriority(os.PRIO_PROCESS, 0) == STARTED_AT_NICE


def test_close_stops_the_thread(tmp_path: Path) -> None:
    opened = Store(Settings(db_dir=tmp_path)).open()
    worker = opened.checkpointer
    assert worker is not None and worker.alive
    opened.close()
    assert not worker.alive and opened.checkpointer is None


class _FailingConnection:
    def __init__(self) -> None:
        self.calls = 0

    def wal_checkpoint(self, **kw: Any) -> tuple[int, int]:
        self.calls += 1
        raise apsw.IOError("disk I/O error")


def test_a_failed_checkpoint_is_logged_once_a_minute_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = checkpointer.Checkpointer(tmp_path / "x.db", sync="full")
    conn = _FailingConnection()
    with caplog.at_level("WARNING", logger="stemedb.store"):
        for _ in range(3):
            worker.checkpoint(conn)  # type: ignore[arg-type]
    assert conn.calls == 3 and worker.checkpoints == 0
    warnings = [r for r in caplog.records if "background WAL checkpoint failed" in r.message]
    assert len(warnings) == 1


class _BusyConnection(_FailingConnection):
    def wal_checkpoint(self, **kw: Any) -> tuple[int, int]:
        self.calls += 1
        raise apsw.BusyError("database is locked")


def test_a_busy_checkpoint_lock_is_routine_not_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another checkpoint holding the lock (the writer's, a backup's) is not a failure:
    `stemedb import` once printed 'checkpoint failed: database is locked' for it."""
    worker = checkpointer.Checkpointer(tmp_path / "x.db", sync="full")
    conn = _BusyConnection()
    with caplog.at_level("WARNING", logger="stemedb.store"):
        for _ in range(3):
            worker.checkpoint(conn)  # type: ignore[arg-type]
    assert conn.calls == 3 and worker.busy == 3 and worker.checkpoints == 0
    assert not [r for r in caplog.records if "checkpoint" in r.message]
