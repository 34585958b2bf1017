"""Replication on the primary: Litestream as `stemedb serve`'s child, file:// target.

No WAL frame may be lost under write load: after a quiesce, a restore from the
replica storage holds the primary's journal frame for frame (seq, hash, chain).
"""

from __future__ import annotations

from pathlib import Path

from tests.e2ekit import ServerFactory, poll
from tests.replication.replkit import Writer, free_addr, metric, restored_equals


def test_no_frame_lost_under_write_load(server_factory: ServerFactory, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    url = f"file://{replica}"
    server = server_factory({"STEMEDB_REPLICA_URL": url, "STEMEDB_LITESTREAM_ADDR": free_addr()})
    api = server.api
    poll(lambda: metric(api, "stemedb_replication_up") == 1.0, timeout=15)
    writers = [Writer(api) for _ in range(2)]
    for w in writers:
        w.start()
    # long enough for Litestream to checkpoint (1,000 pages) several times under load
    poll(lambda: sum(len(w.acked) for w in writers) >= 20000, timeout=180, interval=0.2)
    for w in writers:
        w.stop()
    head = max(seq for w in writers for seq, _, _ in w.acked)
    # quiesce: the probe confirms the head shipped, lag back to 0
    poll(
        lambda: (
            (metric(api, "stemedb_replication_replicated_seq") or 0) >= head
            and metric(api, "stemedb_replication_lag_seconds") == 0.0
        ),
        timeout=30,
    )
    poll(lambda: restored_equals(url, tmp_path / "restored.db", server.db_path), timeout=30)
    assert metric(api, "stemedb_replication_errors_total") == 0.0
    # Litestream, not our checkpointer, checkpointed: the WAL stayed bounded anyway
    wal = Path(f"{server.db_path}-wal")
    assert not wal.exists() or wal.stat().st_size < 32 * 1024 * 1024


def test_litestream_killed_is_restarted_and_counted(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    import os
    import signal

    server = server_factory(
        {"STEMEDB_REPLICA_URL": f"file://{tmp_path / 'r'}", "STEMEDB_LITESTREAM_ADDR": free_addr()}
    )
    api = server.api
    poll(lambda: metric(api, "stemedb_replication_up") == 1.0, timeout=15)
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    litestream_pid = next(
        int(pid)
        for pid in children
        if "litestream" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    )
    os.kill(litestream_pid, signal.SIGKILL)
    poll(lambda: (metric(api, "stemedb_replication_errors_total") or 0) >= 1, timeout=10)
    poll(lambda: metric(api, "stemedb_replication_up") == 1.0, timeout=20)
    assert "litestream exited" in server.proc.output


def test_lag_grows_while_litestream_is_stuck(server_factory: ServerFactory, tmp_path: Path) -> None:
    """What the alert watches: commits Litestream does not ship age in the lag."""
    import os
    import signal

    from tests.e2ekit import Agent, unique

    server = server_factory(
        {"STEMEDB_REPLICA_URL": f"file://{tmp_path / 'r'}", "STEMEDB_LITESTREAM_ADDR": free_addr()}
    )
    api = server.api
    poll(lambda: metric(api, "stemedb_replication_up") == 1.0, timeout=15)
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    pid = next(int(p) for p in children if b"litestream" in Path(f"/proc/{p}/cmdline").read_bytes())
    os.kill(pid, signal.SIGSTOP)
    try:
        api.write("/v1/assert", Agent().assertion(f"lag/{unique()}", "p", 1))
        poll(lambda: (metric(api, "stemedb_replication_lag_seconds") or 0) > 1.0, timeout=10)
    finally:
        os.kill(pid, signal.SIGCONT)
    poll(lambda: metric(api, "stemedb_replication_lag_seconds") == 0.0, timeout=15)
