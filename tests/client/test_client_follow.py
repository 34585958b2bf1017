"""`Client.follow` rides out a server restart and resumes gap-free from the last seq."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from stemedb.client import Client
from stemedb.crypto import generate_signing_key


def test_follow_survives_a_restart_without_gaps(
    run_server_process: Callable[..., Any], free_port: int
) -> None:
    env = {"STEMEDB_BIND_ADDR": f"127.0.0.1:{free_port}"}
    proc = run_server_process(env)
    writer = Client(proc.url, seed=generate_signing_key())
    first = writer.assert_("tests/follow", "p", 1, 0.5)["hash"]
    got: list[dict[str, Any]] = []
    done = threading.Event()

    def follow() -> None:
        follower = Client(proc.url, retries=1)
        follower.transport.backoff = 0.05
        for frame in follower.follow(0, wait=1, max_backoff=0.5):
            got.append(dict(frame))
            if len(got) == 3:
                done.set()
                return

    threading.Thread(target=follow, daemon=True).start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [f["hash"] for f in got] == [first]

    assert proc.stop() == 0
    second = run_server_process(env)  # same port, same data directory
    writer = Client(second.url, seed=generate_signing_key())
    later = [writer.assert_("tests/follow", "p", n, 0.5)["hash"] for n in (2, 3)]
    assert done.wait(20), got
    assert [f["hash"] for f in got] == [first, *later]
    assert [f["seq"] for f in got] == [1, 2, 3]
