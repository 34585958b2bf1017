"""FIFO admission: order, slot counting, stepping out while blocked, re-entry."""

from __future__ import annotations

import threading
import time

import pytest

from stemedb import admission
from stemedb.admission import Admission


def _wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.001)


def test_unlimited_admits_everyone_and_released_is_a_no_op() -> None:
    gate = Admission(0)
    with gate.admit(), gate.admit():
        assert not gate.holding()
        with gate.released():
            pass
    assert gate.waiting == 0


def test_waiters_are_admitted_in_arrival_order() -> None:
    gate = Admission(1)
    order: list[int] = []
    threads = []
    with gate.admit():
        for i in range(8):
            t = threading.Thread(target=lambda i=i: _enter(gate, order, i))
            t.start()
            threads.append(t)
            _wait_until(lambda i=i: gate.waiting == i + 1)  # queued in this order
    for t in threads:
        t.join(5)
    assert order == list(range(8))
    assert gate.waiting == 0


def _enter(gate: Admission, order: list[int], i: int) -> None:
    with gate.admit():
        order.append(i)


def test_never_more_holders_than_slots() -> None:
    gate = Admission(2)
    active = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal active, peak
        with gate.admit():
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.002)
            with lock:
                active -= 1

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak == 2
    assert active == 0


def test_a_blocked_holder_lets_the_next_request_in_and_queues_again() -> None:
    gate = Admission(1)
    blocked = threading.Event()
    release = threading.Event()
    second_ran = threading.Event()

    def first() -> None:
        with gate.admit():
            with gate.released():
                blocked.set()
                release.wait(5)
            assert gate.holding()

    t1 = threading.Thread(target=first)
    t1.start()
    blocked.wait(5)
    with gate.admit():  # would deadlock if the blocked holder kept its slot
        second_ran.set()
        release.set()
        _wait_until(lambda: gate.waiting == 1)  # the first is back in the queue
    t1.join(5)
    assert second_ran.is_set() and not t1.is_alive()
    assert gate.waiting == 0


def test_admit_is_reentrant_for_the_holder() -> None:
    gate = Admission(1)
    with gate.admit():
        with gate.admit():
            assert gate.holding()
        assert gate.holding()
    assert not gate.holding()


def test_an_exception_gives_the_slot_back() -> None:
    gate = Admission(1)
    with pytest.raises(RuntimeError), gate.admit():
        raise RuntimeError("boom")
    with gate.admit():
        assert gate.holding()


def test_process_admission_is_configured_and_blocking_steps_out() -> None:
    previous = admission.current()
    try:
        gate = admission.configure(1)
        assert admission.current() is gate and gate.slots == 1
        with gate.admit():
            with admission.blocking():
                assert not gate.holding()
                with gate.admit():  # another request could run here
                    assert gate.holding()
            assert gate.holding()
    finally:
        admission.configure(previous.slots)


def test_an_exempt_thread_runs_without_a_slot_and_others_stay_limited() -> None:
    gate = Admission(1)
    gate.exempt_this_thread()
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with gate.admit():
            inside.set()
            release.wait(5)

    with gate.admit():  # takes no slot: the one slot is still free for another thread
        first = threading.Thread(target=other)
        first.start()
        assert inside.wait(5)
        second = threading.Thread(target=lambda: gate.admit().__enter__())
        second.start()
        _wait_until(lambda: gate.waiting == 1)  # but only one: the third queues
    release.set()
    first.join(5)
    second.join(5)
    assert gate.waiting == 0


def test_an_exempt_thread_never_takes_or_returns_a_slot() -> None:
    gate = Admission(1)
    done = threading.Event()

    def exempt() -> None:
        gate.exempt_this_thread()
        with gate.admit():
            assert not gate.holding()
            with gate.released():  # nothing held: nothing handed on
                pass
        done.set()

    with gate.admit():  # hold the only slot: an exempt thread still gets in
        t = threading.Thread(target=exempt)
        t.start()
        t.join(5)
        assert done.is_set()
        assert gate.waiting == 0
    with gate.admit():  # exactly one slot again, not two
        t2 = threading.Thread(target=lambda: gate.admit().__enter__())
        t2.start()
        _wait_until(lambda: gate.waiting == 1)
    t2.join(5)
