"""Item 8: followers long-polling the feed cannot starve writes of worker threads.

Five times as many followers as worker threads, each using the client's own
`follow(wait=25)`: only `STEMEDB_LONG_POLLS` of them may wait in a worker at
once, the rest are answered at once (`retry_after`) and poll again a second
later, so writes and pool reads keep their latency and every follower still
sees every frame.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from serverkit import http_json

from stemedb.client import Client
from stemedb.crypto import generate_signing_key

THREADS = 4
FOLLOWERS = 5 * THREADS


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of the live /metrics (0 when absent)."""
    status, _, text = http_json("GET", url + "/metrics", timeout=10)
    assert status == 200
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", str(text), re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def timed(call: Callable[[], Any]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_followers_five_times_the_threads_cannot_starve_writes(
    run_server_process: Callable[..., Any],
) -> None:
    server = run_server_process({"STEMEDB_THREADS": str(THREADS)})
    writer = Client(server.url, seed=generate_signing_key())
    start = writer.assert_("hostile/follow", "p", 0, 0.5)["seq"]
    assert start is not None
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(FOLLOWERS)]

    def follow(index: int) -> None:
        follower = Client(server.url)
        for frame in follower.follow(start, wait=25):
            seen[index].append(frame["seq"])
            if stop.is_set():
                return

    followers = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(FOLLOWERS)]
    for thread in followers:
        thread.start()
    try:
        # One follower waits in a worker thread (a quarter of 4 threads); every other
        # one was answered at once at least once.
        wait_until(
            lambda: (
                metric(server.url, "stemedb_long_polls_active") == 1
                and metric(server.url, "stemedb_long_polls_refused_total") >= FOLLOWERS - 1
            ),
            what="the long-poll lane to fill",
        )
        assert metric(server.url, "stemedb_long_polls_limit") == 1
        # Writes and reads served by the worker pool keep their latency.
        seqs = []
        for n in range(1, 6):
            took = timed(lambda n=n: seqs.append(writer.assert_("hostile/follow", "p", n, 0.5)))
            assert took < 2.0, f"write {n} took {took:.1f} s behind {FOLLOWERS} followers"
            took = timed(lambda: writer.concepts("hostile"))
            assert took < 2.0, f"a pool read took {took:.1f} s behind {FOLLOWERS} followers"
        written = [r["seq"] for r in seqs]
        # Every follower still gets every frame, capped or not.
        wait_until(
            lambda: all(s[: len(written)] == written for s in seen),
            what="every follower to see every write",
        )
    finally:
        stop.set()
        writer.assert_("hostile/follow", "p", "last", 0.5)  # wakes every follower to stop
        for thread in followers:
            thread.join(timeout=15)
    assert not any(thread.is_alive() for thread in followers)
