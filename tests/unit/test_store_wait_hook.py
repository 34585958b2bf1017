"""The store reads no process-wide setting: the server injects how a request waits
for its commit (admission.blocking), everyone else waits plainly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stemedb import admission
from stemedb.config import Settings
from stemedb.server import default_store
from stemedb.store import Store


def test_a_write_waits_for_its_commit_inside_the_injected_hook(tmp_path: Path) -> None:
    entered: list[int] = []
    inside = threading.local()

    @contextmanager
    def hook() -> Iterator[None]:
        entered.append(threading.get_ident())
        inside.yes = True
        try:
            yield
        finally:
            inside.yes = False

    store = Store(Settings(db_dir=tmp_path), while_waiting=hook).open()
    try:
        assert store.write_local(lambda conn: 7) == 7
        assert entered == [threading.get_ident()]  # the waiting (calling) thread, once
        store.write_local(lambda conn: None, wait=False)
        assert len(entered) == 1  # a write nobody waits for needs no hook
    finally:
        store.close()


def _free_slots_during_commit(store: Store, process: admission.Admission) -> int:
    """Free admission slots seen from the writer thread while a holder waits on it."""
    with process.admit():
        free: int = store.write_local(lambda conn: process._free)
        assert process.holding()  # the holder has its slot again afterwards
    return free


def test_without_a_hook_the_store_does_not_touch_admission(tmp_path: Path) -> None:
    previous = admission.current()
    process = admission.configure(1)
    store = Store(Settings(db_dir=tmp_path)).open()
    try:
        assert _free_slots_during_commit(store, process) == 0  # kept through the wait
    finally:
        store.close()
        admission._process = previous


def test_the_server_store_gives_the_slot_back_while_waiting(tmp_path: Path) -> None:
    from stemedb.metrics import Metrics

    previous = admission.current()
    process = admission.configure(1)
    store = default_store(Settings(db_dir=tmp_path), Metrics("test"))
    assert isinstance(store, Store)
    store.open()
    try:
        assert _free_slots_during_commit(store, process) == 1  # given back while parked
    finally:
        store.close()
        admission._process = previous
