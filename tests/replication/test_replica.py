"""Read replicas (STEMEDB_ROLE=replica): reads follow the primary through the replica
storage, writes get 421 naming the primary, every answer carries X-StemeDB-Seq and
`min_seq` gives read-your-writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2ekit import Agent, ServerFactory, poll, unique
from tests.replication.replkit import free_addr, metric

PRIMARY_URL = "https://primary.example.org"


def test_replica_reads_follow_writes_refused_min_seq(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    url = f"file://{tmp_path / 'storage'}"
    primary = server_factory({"STEMEDB_REPLICA_URL": url, "STEMEDB_LITESTREAM_ADDR": free_addr()})
    poll(lambda: metric(primary.api, "stemedb_replication_up") == 1.0, timeout=15)
    agent = Agent()
    first = primary.api.write("/v1/assert", agent.assertion(f"r/{unique()}", "p", 1))
    replica = server_factory(
        {"STEMEDB_ROLE": "replica", "STEMEDB_REPLICA_URL": url, "STEMEDB_PRIMARY_URL": PRIMARY_URL}
    )
    api = replica.api

    # every answer carries the seq it was computed at
    resp = api.get("/v1/health")
    assert resp.status == 200 and int(resp.header("X-StemeDB-Seq") or -1) >= 0

    # read-your-writes: write on the primary, read on the replica with min_seq
    subject = f"r/{unique()}"
    written = primary.api.write("/v1/assert", agent.assertion(subject, "p", 2))
    assert written["seq"] > first["seq"]
    # the primary's answers carry the seq too: at least the write just acknowledged
    assert int(primary.api.get("/v1/health").header("X-StemeDB-Seq") or 0) >= written["seq"]
    got = api.get("/v1/query", {"subject": subject, "min_seq": written["seq"]})
    assert got.status == 200, got
    assert int(got.header("X-StemeDB-Seq") or 0) >= written["seq"]
    assert [a["hash"] for a in got.json["assertions"]] == [written["hash"]], got.json
    assert got.json["seq"] >= written["seq"]  # the snapshot the answer was computed at
    one = api.get(f"/v1/assertions/{written['hash']}")
    assert one.status == 200 and one.json["seq"] == written["seq"]

    # its health counts what arrived (no writer keeps the count on a replica)
    poll(lambda: api.get_ok("/v1/health")["assertion_count"] == 2, timeout=5)

    # a seq the primary never reached: bounded wait, then 503 replica_behind
    behind = api.get("/v1/health", {"min_seq": written["seq"] + 10_000})
    assert behind.status == 503 and behind.error["code"] == "replica_behind"
    assert behind.header("Retry-After") == "1"
    bad = api.get("/v1/health", {"min_seq": "soon"})
    assert bad.status == 400 and "min_seq" in str(bad.json)

    # writes: 421 naming the primary, nothing written on the replica
    refused = api.post("/v1/assert", agent.assertion(f"r/{unique()}", "p", 3))
    assert refused.status == 421, refused
    assert refused.error["code"] == "not_primary" and PRIMARY_URL in refused.error["message"]

    # the chain is verified on the replica's copy as on the primary
    out = subprocess.run(
        [sys.executable, "-m", "stemedb.cli.main", "verify", "--db", str(replica.db_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr

    # the follower gone: the replica says it is not ready, and why
    import os
    import signal

    children = Path(f"/proc/{replica.proc.pid}/task/{replica.proc.pid}/children").read_text()
    for pid in children.split():
        if b"restore" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(int(pid), signal.SIGKILL)
    poll(lambda: api.get("/v1/ready").status == 503, timeout=10)
    assert api.get("/v1/ready").json["reason"] == "replica_not_following"
