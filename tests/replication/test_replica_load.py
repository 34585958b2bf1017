"""A read replica under load: the primary writes continuously while clients read their
own writes from the replica with `min_seq`. No read may fail or miss its write while
Litestream applies pages under the replica's readers."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.e2ekit import Agent, ServerFactory, poll, unique
from tests.replication.replkit import free_addr, metric, percentile


def test_read_your_writes_under_continuous_replication(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    import time

    url = f"file://{tmp_path / 'storage'}"
    primary = server_factory({"STEMEDB_REPLICA_URL": url, "STEMEDB_LITESTREAM_ADDR": free_addr()})
    poll(lambda: metric(primary.api, "stemedb_replication_up") == 1.0, timeout=15)
    replica = server_factory(
        {"STEMEDB_ROLE": "replica", "STEMEDB_REPLICA_URL": url, "STEMEDB_PRIMARY_URL": "x"}
    )
    agent = Agent()
    waits: list[float] = []
    # readers hammering the replica meanwhile: Litestream applies pages under them
    stop = threading.Event()
    failures: list[str] = []
    reads = [0]

    def hammer() -> None:
        while not stop.is_set():
            resp = replica.api.get("/v1/query", {"prefix": "true", "subject": "load", "limit": 50})
            reads[0] += 1
            if resp.status != 200:
                failures.append(repr(resp))

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for _ in range(150):
        subject = f"load/{unique()}"
        records = [agent.assertion(subject, f"p{i}", i) for i in range(5)]
        hashes = primary.api.batch_ok(records)
        seq = max(r["seq"] for r in primary.api.batch(records)["results"])  # all "exists"
        started = time.monotonic()
        got = replica.api.get("/v1/query", {"subject": subject, "min_seq": seq, "limit": 10})
        waits.append(time.monotonic() - started)
        assert got.status == 200, got
        assert sorted(a["hash"] for a in got.json["assertions"]) == sorted(hashes)
        assert got.json["seq"] >= seq
    stop.set()
    for t in threads:
        t.join(10)
    assert not failures, failures[:3]
    assert reads[0] > 100, reads
    print(
        f"\nREPLICA {reads[0]} concurrent reads; read-your-writes wait "
        f"p50={percentile(waits, 0.5):.3f}s p99={percentile(waits, 0.99):.3f}s"
    )
